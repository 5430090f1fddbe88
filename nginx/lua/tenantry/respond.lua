-- One way to refuse a request: the services' {"error":{code,message}} shape, or
-- GraphQL's {"errors":[…]} on the GraphQL route.
-- Codes, statuses and default messages come from the one error catalog
-- (tenantry.error_catalog, generated from services/shared/src/errors/catalog.ts).
local cjson = require "cjson.safe"
local catalog = require "tenantry.error_catalog"

local ngx = ngx

local _M = {}

-- graphql: answer in GraphQL's shape (the GraphQL route). message: the catalog's when nil.
function _M.refuse(graphql, code, message, headers)
  local status
  local entry = catalog[code]
  if entry then
    status = entry.status
    message = message or entry.message
  else
    ngx.log(ngx.ERR, "error code missing from the error catalog: ", code)
    status, code, message = 500, "internal", catalog.internal.message
  end
  ngx.var.edge_error = code
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if headers then
    for name, value in pairs(headers) do
      ngx.header[name] = value
    end
  end
  local body
  if graphql then
    body = { errors = { { message = message, extensions = { code = code } } } }
  else
    body = { error = { code = code, message = message } }
  end
  ngx.say(cjson.encode(body))
  return ngx.exit(status)
end

return _M
