-- Requests per second per tenant, from the tenant's plan, and per address for anonymous
-- requests. Two scopes (EDGE_RATE_LIMIT_SCOPE):
--
-- node: each worker counts a tenant's requests itself and adds them to the tenant's shared
-- per-second counter in batches: touching the shared dict costs a lock and, once a second
-- per tenant, a new key, and most tenants never fill a batch. A batch is at most
-- OVERSHOOT of the limit divided among the workers, so all workers together let at most
-- that share more through than the limit; below 2 / OVERSHOOT requests a second per worker
-- (40) a batch is one request, so every request goes to the shared counter at once.
--
-- cluster: the count is Redis's, shared by every edge (tenant:{<id>}:platform:rps:<second>).
-- Each worker leases a batch of the second's budget with one script call that never grants
-- past the limit (min(batch, limit − count)); the batch shrinks with the headroom, so the
-- budget left unspent in workers when the second ends stays small. Redis unreachable: the
-- node limiter counts instead (a limit per node beats none, and beats refusing everyone).
--
-- Both fail open: losing the limiter must not take tenants down.
local config = require "tenantry.config"
local redis_client = require "tenantry.redis_client"

local ngx = ngx
local shm = ngx.shared.edge_ratelimit
local floor, max = math.floor, math.max

local _M = {}

local OVERSHOOT = 0.05

-- The second the tables below describe; all start empty every second.
local window = -1
-- node: tenant id → requests this worker let through this second and has not added yet.
local unshared = {}
-- node: tenant id → the shared count this second, as of this worker's last addition.
local shared_count = {}
-- cluster: tenant id → { remaining, count } (count: Redis's, as of the last lease), or
-- false once Redis granted nothing this second.
local cluster_leases = {}

-- Read at the first request: the worker count never changes while a worker lives.
local workers

local function batch_size(limit)
  workers = workers or ngx.worker.count()
  local size = floor(limit * OVERSHOOT / workers)
  return size > 1 and size or 1
end

local function headers(limit, remaining, second)
  return {
    ["X-RateLimit-Limit"] = limit,
    ["X-RateLimit-Remaining"] = max(0, remaining),
    ["X-RateLimit-Reset"] = second + 1,
  }
end

local function node_allow(id, limit, second)
  local known = shared_count[id] or 0
  local pending = (unshared[id] or 0) + 1
  if known + pending > limit then
    return false, headers(limit, 0, second)
  end
  if pending < batch_size(limit) then
    unshared[id] = pending
    return true, headers(limit, limit - known - pending, second)
  end
  unshared[id] = 0
  local count, err = shm:incr("rps:" .. id .. ":" .. second, pending, 0, 2)
  if not count then
    ngx.log(ngx.WARN, "rate limit: ", err)
    return true
  end
  shared_count[id] = count
  if count > limit then
    return false, headers(limit, 0, second)
  end
  return true, headers(limit, limit - count, second)
end

local LEASE = {
  source = [[
local limit = tonumber(ARGV[1])
local max_batch = tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local headroom = limit - count
if headroom <= 0 then
  return { 0, count }
end
local grant = math.floor(headroom / 16)
if grant > max_batch then grant = max_batch end
if grant < 1 then grant = 1 end
count = redis.call('INCRBY', KEYS[1], grant)
if count == grant then
  redis.call('EXPIRE', KEYS[1], 2)
end
return { grant, count }
]],
}

-- Returns allowed, headers; or nil when Redis could not answer.
local function cluster_allow(id, limit, second)
  local lease = cluster_leases[id]
  if lease then
    if lease.remaining > 0 then
      lease.remaining = lease.remaining - 1
      return true, headers(limit, limit - lease.count + lease.remaining, second)
    end
  elseif lease == false then
    return false, headers(limit, 0, second)
  end
  if not redis_client.available() then
    return nil
  end
  local red, err = redis_client.connect("rate limit")
  if not red then
    return nil
  end
  local result
  result, err = redis_client.run_script(red, LEASE, 1, "tenant:{" .. id .. "}:platform:rps:" .. second, limit, batch_size(limit))
  local ok = type(result) == "table"
  redis_client.release(red, ok, "rate limit", err)
  if not ok then
    return nil
  end
  local grant, count = tonumber(result[1]), tonumber(result[2])
  if window ~= second then
    -- The second ended while Redis answered: the grant was this request's second's.
    return grant > 0, headers(limit, limit - count, second)
  end
  if grant <= 0 then
    cluster_leases[id] = false
    return false, headers(limit, 0, second)
  end
  lease = cluster_leases[id]
  if lease then
    lease.remaining = lease.remaining + grant - 1
    if count > lease.count then
      lease.count = count
    end
  else
    lease = { remaining = grant - 1, count = count }
    cluster_leases[id] = lease
  end
  return true, headers(limit, limit - lease.count + lease.remaining, second)
end

-- Returns allowed (true or false), the X-RateLimit-* headers (nil when no limit applies)
-- and, when refused, the seconds to wait.
function _M.allow(tenant)
  local limit = tenant.rate_limit_rps
  if type(limit) ~= "number" or limit <= 0 then
    return true
  end
  local second = floor(ngx.now())
  if second ~= window then
    window, unshared, shared_count, cluster_leases = second, {}, {}, {}
  end
  local id = tenant.id
  if config.values.rate_limit_scope == "cluster" then
    local allowed, limit_headers = cluster_allow(id, limit, second)
    if allowed ~= nil then
      return allowed, limit_headers, 1
    end
  end
  local allowed, limit_headers = node_allow(id, limit, second)
  return allowed, limit_headers, 1
end

-- Anonymous requests (no token): a limit per client address and second, on this node.
function _M.allow_anonymous()
  local limit = config.values.anonymous_rps
  if not limit or limit <= 0 then
    return true
  end
  local second = floor(ngx.now())
  local count, err = shm:incr("anon:" .. ngx.var.remote_addr .. ":" .. second, 1, 0, 2)
  if not count then
    ngx.log(ngx.WARN, "anonymous rate limit: ", err)
    return true
  end
  if count > limit then
    return false, headers(limit, 0, second), 1
  end
  return true, headers(limit, limit - count, second)
end

return _M
