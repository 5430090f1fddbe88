-- nginx's own refusals (a request line, path or headers it cannot read; an internal
-- location asked for from outside), answered in the shared shapes. nginx.conf sends them
-- here by URI, not to a named location: a request whose request line could not be read
-- has no URI, and nginx cannot send such a request to a named location (it answered 500).
local respond = require "tenantry.respond"

local ngx = ngx

local _M = {}

local REFUSALS = {
  bad_request = { 400, "bad_request", "malformed request line, path or headers, or oversized headers" },
  not_found = { 404, "not_found", "no such route" },
}

-- Which shape to answer in when nginx refused before choosing a route: the route the raw
-- request target names, in origin form or absolute form, as nginx's prefix location would.
local function targets_graphql()
  local request_line = ngx.var.request
  local target = request_line and request_line:match("^%S+%s+(%S+)")
  if not target then
    return false
  end
  target = target:gsub("^%a[%w+.-]*://[^/]*", "", 1)
  return target:sub(1, 11) == "/v1/graphql"
end

-- name: a key of REFUSALS; graphql_route: called from the GraphQL route's own error pages.
-- The server's error pages leave the shape to the request target.
function _M.send(name, graphql_route)
  local refusal = REFUSALS[name]
  local graphql = graphql_route
  if graphql_route then
    -- The redirect here ran the server's `set`s again; the access log keeps the route.
    ngx.var.edge_route = "graphql"
  else
    graphql = targets_graphql()
  end
  return respond.refuse(graphql, refusal[1], refusal[2], refusal[3])
end

return _M
