-- One way to refuse a request: the services' {"error":{code,message}} shape, or
-- GraphQL's {"errors":[…]} on the GraphQL route.
local cjson = require "cjson.safe"

local ngx = ngx

local _M = {}

-- graphql: answer in GraphQL's shape (the GraphQL route).
function _M.refuse(graphql, status, code, message, headers)
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
