-- nginx's own refusals (a request line, path or headers it cannot read; a method it will
-- not serve; an internal location asked for from outside), answered in the shared shapes.
-- nginx.conf sends them here by URI (/_edge/error/<name>, /_edge/error/graphql/<name> from
-- the GraphQL route), not to a named location: a request whose request line could not be
-- read has no URI, and nginx cannot send such a request to a named location (it answered 500).
local methods = require "tenantry.methods"
local respond = require "tenantry.respond"

local ngx = ngx

local _M = {}

-- The error page's name is the catalog code; its status and message are the catalog's
-- (tenantry.respond), but for a more precise message here and the Allow header.
local REFUSALS = {
  bad_request = { message = "malformed request line, path or headers, or oversized headers" },
  not_found = {},
  method_not_allowed = { headers = { Allow = methods.ALLOW } },
  length_required = {},
  precondition_failed = {},
  range_not_satisfiable = {},
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
  if not REFUSALS[name] then
    name = "not_found"
  end
  local refusal = REFUSALS[name]
  return respond.refuse(graphql, name, refusal.message, refusal.headers)
end

return _M
