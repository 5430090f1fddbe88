-- Reads the tenant claim of a bearer token. No signature check here: Hasura and the
-- services verify tokens; the edge only needs the claim to pick and cross-check the tenant.
local cjson = require "cjson.safe"
local config = require "tenantry.config"

local ngx = ngx

local _M = {}

local function decode_segment(segment)
  local padded = segment:gsub("-", "+"):gsub("_", "/")
  local remainder = #padded % 4
  if remainder == 2 then
    padded = padded .. "=="
  elseif remainder == 3 then
    padded = padded .. "="
  elseif remainder == 1 then
    return nil
  end
  return ngx.decode_base64(padded)
end

-- Returns has_token, claims, err. claims: { tenant_id, user_id, issued_at, api_key } (any may
-- be nil; api_key is true for an API key's token).
function _M.claims(authorization)
  if not authorization then
    return false
  end
  local token = authorization:match("^[Bb]earer%s+([%w%-_%.]+)$")
  if not token then
    return true, nil, "the Authorization header is not a bearer token"
  end
  local payload_segment = token:match("^[%w%-_]+%.([%w%-_]+)%.[%w%-_]*$")
  local payload = payload_segment and decode_segment(payload_segment)
  local claims = payload and cjson.decode(payload)
  if type(claims) ~= "table" then
    return true, nil, "the bearer token is not a JWT"
  end
  local namespace = claims[config.values.claims_namespace]
  if type(namespace) ~= "table" then
    return true, {}
  end
  local tenant, user = namespace["x-hasura-tenant-id"], namespace["x-hasura-user-id"]
  if (tenant ~= nil and type(tenant) ~= "string") or (user ~= nil and type(user) ~= "string") then
    return true, nil, "the token's tenant or user claim is not a string"
  end
  return true, {
    tenant_id = tenant and tenant:lower(),
    user_id = user and user:lower(),
    issued_at = type(claims.iat) == "number" and claims.iat or nil,
    -- Any value marks it: an API key acts for its creator's user, but is not that user's session.
    api_key = namespace["x-hasura-api-key-id"] ~= nil,
  }
end

return _M
