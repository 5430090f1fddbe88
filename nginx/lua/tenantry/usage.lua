-- Usage metering: each worker counts its accepted, counted requests per (tenant, UTC hour)
-- and every second appends them to the Redis stream usage:api (fields tenant, hour, count)
-- in one script call, for the usage worker (services/billing/src/usage/) to move into
-- tenant_usage. A failed flush keeps the counts for the next second; newer counts wait
-- beside them, up to MAX_PENDING (tenant, hour) pairs. The same one-second timer returns idle quota leases.
local config = require "tenantry.config"
local redis_client = require "tenantry.redis_client"

local ngx = ngx
local tostring = tostring
local unpack = unpack

local _M = {}

local MAX_PENDING = 50000
local STREAM_LENGTH = "1000000"
local BATCH_PAIRS = 2000

-- tenant id → hour → count; pending_size counts the (tenant, hour) pairs.
local pending = {}
local pending_size = 0
local dropped = 0

function _M.count(tenant_id, hour)
  local hours = pending[tenant_id]
  local count = hours and hours[hour]
  if count then
    hours[hour] = count + 1
  elseif pending_size < MAX_PENDING then
    if not hours then
      hours = {}
      pending[tenant_id] = hours
    end
    hours[hour] = 1
    pending_size = pending_size + 1
  else
    dropped = dropped + 1
  end
end

-- One batch per worker and second, appended by one script call that first claims the
-- batch's id: a batch whose answer was lost (a timeout after Redis ran it) is sent again
-- with the same id and appended once. A failed batch goes out again, unchanged, before any
-- newer counts.
local APPEND = {
  source = [[
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', 300) then
  return 0
end
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'tenant', ARGV[i], 'hour', ARGV[i + 1], 'count', ARGV[i + 2])
end
return (#ARGV - 1) / 3
]],
}

local unsent
local batch_counter = 0

local function append(red, batch)
  local stream = config.values.usage_stream
  local result, err = redis_client.run_script(red, APPEND, 2, stream, stream .. ":batch:" .. batch.id,
    STREAM_LENGTH, unpack(batch.arguments))
  return result ~= nil and result ~= false, err
end

local function flush(red)
  if unsent then
    local ok, err = append(red, unsent)
    if not ok then
      return nil, err
    end
    unsent = nil
  end
  if pending_size == 0 then
    return true
  end
  -- At most BATCH_PAIRS a batch: a script's arguments are a Lua stack.
  local arguments, n = {}, 0
  for tenant_id, hours in pairs(pending) do
    for hour, count in pairs(hours) do
      arguments[n + 1], arguments[n + 2], arguments[n + 3] = tenant_id, tostring(hour), tostring(count)
      n = n + 3
      hours[hour] = nil
      pending_size = pending_size - 1
    end
    pending[tenant_id] = nil
    if n >= BATCH_PAIRS * 3 then
      break
    end
  end
  batch_counter = batch_counter + 1
  local batch = { id = ngx.worker.pid() .. ":" .. tostring(ngx.now()) .. ":" .. batch_counter, arguments = arguments }
  local ok, err = append(red, batch)
  if not ok then
    unsent = batch
    return nil, err
  end
  return true
end

local function tick(premature)
  if premature then
    return
  end
  if dropped > 0 then
    ngx.log(ngx.ERR, "usage: ", dropped, " counted requests dropped: Redis has been unreachable too long")
    dropped = 0
  end
  local quota = require "tenantry.quota"
  if pending_size == 0 and not unsent and not quota.has_work() then
    return
  end
  if not redis_client.available() then
    return
  end
  local red, err = redis_client.connect("usage")
  if not red then
    return
  end
  local ok
  ok, err = flush(red)
  if ok then
    ok, err = quota.tick(red)
  end
  redis_client.release(red, ok, "usage", err)
end

function _M.start_worker()
  if not redis_client.enabled() then
    return
  end
  local ok, err = ngx.timer.every(1, tick)
  if not ok then
    ngx.log(ngx.ERR, "usage: cannot start the flush timer: ", err)
  end
end

return _M
