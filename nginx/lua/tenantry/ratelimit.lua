-- Requests per second per tenant, from the tenant's plan: a counter per tenant and
-- second in a shared dict. The limiter fails open: losing it must not take tenants down.
local ngx = ngx
local shm = ngx.shared.edge_ratelimit
local floor = math.floor

local _M = {}

-- Returns true, or false and the seconds to wait.
function _M.allow(tenant)
  local limit = tenant.rate_limit_rps
  if type(limit) ~= "number" or limit <= 0 then
    return true
  end
  local now = ngx.now()
  local second = floor(now)
  local count, err = shm:incr("rps:" .. tenant.id .. ":" .. second, 1, 0, 2)
  if not count then
    ngx.log(ngx.WARN, "rate limit: ", err)
    return true
  end
  if count > limit then
    return false, 1
  end
  return true
end

return _M
