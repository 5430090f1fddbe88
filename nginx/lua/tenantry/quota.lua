-- The monthly API quota (max_api_requests_month: the tenant's override or its plan's).
-- The count lives in Redis, shared by every edge: hash tenant:{<id>}:platform:quota:<YYYY-MM>,
-- field `granted` = the budget leased to edge workers this month. A worker leases budget
-- with one script call and spends it locally, so the hot path pays no round trip; a lease
-- shrinks as the headroom does (headroom / 16, at least 1), so the last requests of a month
-- are leased one by one and no worker sits on budget another is refused. The script never
-- grants past the limit: all edges together accept at most the limit, exactly.
-- Unused budget goes back when a lease sits idle while budget is scarce, when the month
-- ends, and when the limit changes (a purge brings the new resolution; the lease remembers the limit it was taken under).
-- Redis unreachable: the request passes uncounted (never billed); see docs/edge.md.
local clock = require "tenantry.clock"
local config = require "tenantry.config"
local redis_client = require "tenantry.redis_client"
local usage = require "tenantry.usage"

local ngx = ngx
local ceil, floor, max = math.ceil, math.floor, math.max
local tostring = tostring

local _M = {}

local LEASE = {
  source = [[
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local max_lease = tonumber(ARGV[2])
local give_back = tonumber(ARGV[6])
local epoch = redis.call('HGET', key, 'epoch')
if not epoch then
  -- A new month, or a Redis that lost it: start from what tenant_usage already holds.
  epoch = ARGV[5]
  redis.call('HSET', key, 'granted', ARGV[3], 'epoch', epoch)
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
elseif give_back > 0 and epoch == ARGV[7] then
  redis.call('HINCRBY', key, 'granted', -give_back)
end
local granted = tonumber(redis.call('HGET', key, 'granted'))
local headroom = limit - granted
local grant = 0
if headroom > 0 then
  grant = math.floor(headroom / 16)
  if grant > max_lease then grant = max_lease end
  if grant < 1 then grant = 1 end
  granted = redis.call('HINCRBY', key, 'granted', grant)
end
return { grant, granted, epoch }
]],
}

-- Gives unused budget back, only to the hash it came from (not to one rebuilt since).
local GIVE_BACK = [[
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  return redis.call('HINCRBY', KEYS[1], 'granted', -tonumber(ARGV[1]))
end
return false
]]

local MONTH_KEY_TTL = 40 * 86400
-- A tenant refused for want of budget is not asked about again for this long (unless its
-- limit changes): budget comes back only when another worker's lease idles.
local EXHAUSTED_RECHECK = 0.25
local MAX_PENDING_RETURNS = 10000

-- tenant id → { key, month, limit, epoch, remaining, granted, used_at }
local leases = {}
-- tenant id → { month, limit, until }
local exhausted = {}
-- { key, epoch, amount } waiting for the next tick.
local returns = {}
local lease_counter = 0

local function month_key(tenant_id, month)
  return "tenant:{" .. tenant_id .. "}:platform:quota:" .. month
end

local function queue_return(lease)
  if lease.remaining > 0 and #returns < MAX_PENDING_RETURNS then
    returns[#returns + 1] = { key = lease.key, epoch = lease.epoch, amount = lease.remaining }
  end
  lease.remaining = 0
end

local function headers(limit, remaining, month_end)
  return {
    ["X-Quota-Limit"] = limit,
    ["X-Quota-Remaining"] = max(0, remaining),
    ["X-Quota-Reset"] = month_end,
  }
end

-- What tenant_usage already holds for the month, when the resolution counted this month
-- (an answer cached across a month's end counted the last one; the test clock may be in
-- another month than the database's).
local function recorded(tenant, month)
  local counted_month = tenant.usage_month or clock.month(ngx.now())
  if counted_month ~= month then
    return 0
  end
  return tonumber(tenant.api_requests_month_used) or 0
end

-- Leases budget: returns the grant and the month's granted total, or nil and an error.
local function lease_from_redis(tenant, key, month, limit, give_back)
  local red, err = redis_client.connect("quota")
  if not red then
    return nil, err
  end
  lease_counter = lease_counter + 1
  local nonce = tostring(ngx.now()) .. ":" .. ngx.worker.pid() .. ":" .. lease_counter
  local result
  result, err = redis_client.run_script(red, LEASE, 1, key, limit, config.values.quota_max_lease,
    recorded(tenant, month), MONTH_KEY_TTL, nonce, give_back and give_back.amount or 0, give_back and give_back.epoch or "")
  local ok = type(result) == "table"
  redis_client.release(red, ok, "quota", err)
  if not ok then
    return nil, err or "unexpected answer"
  end
  return tonumber(result[1]), tonumber(result[2]), result[3]
end

-- Returns true and the quota headers (nil when the request passes uncounted), or false,
-- the headers and the seconds until the month ends.
function _M.charge(tenant)
  local id, limit = tenant.id, tenant.max_api_requests_month
  local now = clock.now()
  local hour = floor(now / 3600) * 3600
  if type(limit) ~= "number" then
    -- Unlimited: nothing to lease, but the request is still metered.
    usage.count(id, hour)
    return true
  end
  local month, _, month_end = clock.month(now)

  local lease = leases[id]
  local give_back
  if lease and lease.month ~= month then
    queue_return(lease)
    leases[id], lease = nil, nil
  elseif lease and lease.limit ~= limit then
    -- The next lease gives the rest back in the same script call, then sees the new limit.
    give_back = { amount = lease.remaining, epoch = lease.epoch }
    lease.remaining = 0
    leases[id], lease = nil, nil
  end

  if lease and lease.remaining > 0 then
    lease.remaining = lease.remaining - 1
    lease.used_at = ngx.now()
    usage.count(id, hour)
    return true, headers(limit, limit - lease.granted + lease.remaining, month_end)
  end

  local refusal = exhausted[id]
  if refusal and not give_back and refusal.month == month and refusal.limit == limit and ngx.now() < refusal["until"] then
    return false, headers(limit, 0, month_end), ceil(month_end - now)
  end

  local key = month_key(id, month)
  if not redis_client.available() then
    if give_back and #returns < MAX_PENDING_RETURNS then
      returns[#returns + 1] = { key = key, epoch = give_back.epoch, amount = give_back.amount }
    end
    return true
  end
  local grant, granted, epoch = lease_from_redis(tenant, key, month, limit, give_back)
  if not grant then
    -- Fail open: the request passes, uncounted and unbilled. A give-back that may have
    -- landed is not sent again (under-granting, never past the limit).
    return true
  end
  if grant <= 0 then
    exhausted[id] = { month = month, limit = limit, ["until"] = ngx.now() + EXHAUSTED_RECHECK }
    return false, headers(limit, 0, month_end), ceil(month_end - now)
  end
  exhausted[id] = nil

  -- Other requests of this worker may have leased meanwhile (the call yielded).
  lease = leases[id]
  if lease and lease.key == key and lease.limit == limit and lease.epoch == epoch then
    lease.remaining = lease.remaining + grant - 1
    if granted > lease.granted then
      lease.granted = granted
    end
  else
    if lease then
      queue_return(lease)
    end
    lease = { key = key, month = month, limit = limit, epoch = epoch, remaining = grant - 1, granted = granted }
    leases[id] = lease
  end
  lease.used_at = ngx.now()
  usage.count(id, hour)
  return true, headers(limit, limit - lease.granted + lease.remaining, month_end)
end

-- Whether the timer has leases to look at.
function _M.has_work()
  return next(leases) ~= nil or #returns > 0
end

-- Whether a lease's budget may be wanted elsewhere: while the month's headroom allows 16
-- full leases, the lease script hands out full leases whatever sits idle in a worker, so an
-- idle lease refuses nobody and giving it back would cost a Redis call per quiet tenant per
-- second (bench:quota, 10,000 tenants: timeouts, then requests passing uncounted).
local function budget_is_scarce(lease)
  return lease.limit - lease.granted < 16 * config.values.quota_max_lease
end

-- Every second (tenantry.usage's timer): leases of a month that ended, and leases idle for
-- quota_idle_seconds while budget is scarce, give their budget back, so other workers and
-- edges can spend it.
function _M.tick(red)
  local now = ngx.now()
  local month = clock.month(clock.now())
  local idle = config.values.quota_idle_seconds
  for id, lease in pairs(leases) do
    if lease.month ~= month or (now - lease.used_at >= idle and budget_is_scarce(lease)) then
      queue_return(lease)
      leases[id] = nil
    end
  end
  for id, refusal in pairs(exhausted) do
    if now >= refusal["until"] then
      exhausted[id] = nil
    end
  end
  if #returns == 0 then
    return true
  end
  local sending = returns
  returns = {}
  red:init_pipeline(#sending)
  for _, item in ipairs(sending) do
    red:eval(GIVE_BACK, 1, item.key, item.amount, item.epoch)
  end
  local results, err = red:commit_pipeline()
  if not results then
    -- Some may have landed: dropping the rest under-grants (the month ends a little short
    -- for these tenants) where sending them again could grant past the limit.
    return nil, err
  end
  return true
end

return _M
