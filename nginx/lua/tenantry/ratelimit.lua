-- Requests per second per tenant, from the tenant's plan.
-- Each worker counts a tenant's requests itself and adds them to the tenant's shared
-- per-second counter in batches: touching the shared dict costs a lock and, once a second
-- per tenant, a new key, and most tenants never fill a batch. A batch is at most
-- OVERSHOOT of the limit divided among the workers, so all workers together let at most
-- that share more through than the limit; below 2 / OVERSHOOT requests a second per worker
-- (40) a batch is one request, so every request goes to the shared counter at once.
-- The limiter fails open: losing it must not take tenants down.
local ngx = ngx
local shm = ngx.shared.edge_ratelimit
local floor = math.floor

local _M = {}

local OVERSHOOT = 0.05

-- The second the tables below describe; both start empty every second.
local window = -1
-- tenant id → requests this worker let through this second and has not added yet.
local unshared = {}
-- tenant id → the shared count this second, as of this worker's last addition.
local shared_count = {}

-- Read at the first request: the worker count never changes while a worker lives.
local workers

local function batch_size(limit)
  workers = workers or ngx.worker.count()
  local size = floor(limit * OVERSHOOT / workers)
  return size > 1 and size or 1
end

-- Returns true, or false and the seconds to wait.
function _M.allow(tenant)
  local limit = tenant.rate_limit_rps
  if type(limit) ~= "number" or limit <= 0 then
    return true
  end
  local second = floor(ngx.now())
  if second ~= window then
    window, unshared, shared_count = second, {}, {}
  end
  local id = tenant.id
  local known = shared_count[id] or 0
  local pending = (unshared[id] or 0) + 1
  if known + pending > limit then
    return false, 1
  end
  if pending < batch_size(limit) then
    unshared[id] = pending
    return true
  end
  unshared[id] = 0
  local count, err = shm:incr("rps:" .. id .. ":" .. second, pending, 0, 2)
  if not count then
    ngx.log(ngx.WARN, "rate limit: ", err)
    return true
  end
  shared_count[id] = count
  if count > limit then
    return false, 1
  end
  return true
end

return _M
