-- nginx's own refusals (a request line, path or headers it cannot read; a method it will
-- not serve; an internal location asked for from outside), answered in the shared shapes.
-- nginx.conf sends them here by URI (/_edge/error/<name>, /_edge/error/graphql/<name> from
-- the GraphQL route), not to a named location: a request whose request line could not be
-- read has no URI, and nginx cannot send such a request to a named location (it answered 500).
local methods = require "tenantry.methods"
local respond = require "tenantry.respond"

local ngx = ngx

local _M = {}

local REFUSALS = {
  bad_request = { 400, "bad_request", "malformed request line, path or headers, or oversized headers" },
  not_found = { 404, "not_found", "no such route" },
  method_not_allowed = { 405, "method_not_allowed", "this method is not served here", { Allow = methods.ALLOW } },
  length_required = { 411, "length_required", "this request needs a Content-Length" },
  precondition_failed = { 412, "precondition_failed", "a precondition of this request does not hold" },
  range_not_satisfiable = { 416, "range_not_satisfiable", "the requested range is not satisfiable" },
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

-- Answers the refusal the error page's URI names. The GraphQL route's own error pages
-- name GraphQL's shape; the server's leave the shape to the request target.
function _M.send()
  local uri = ngx.var.uri
  local name = uri:match("^/_edge/error/graphql/([%w_]+)$")
  local graphql = name ~= nil
  if graphql then
    -- The redirect here ran the server's `set`s again; the access log keeps the route.
    ngx.var.edge_route = "graphql"
  else
    name = uri:match("^/_edge/error/([%w_]+)$")
    graphql = targets_graphql()
  end
  local refusal = REFUSALS[name] or REFUSALS.not_found
  return respond.refuse(graphql, refusal[1], refusal[2], refusal[3], refusal[4])
end

return _M
