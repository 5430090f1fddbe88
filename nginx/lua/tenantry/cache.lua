-- Tenant answers cached in a shared dict, shared by all workers. Positive answers stay
-- fresh for positive_ttl and may be served stale up to stale_ttl more while the resolver
-- is down; negative answers stay negative_ttl. A purge stamps the tenant's id with the
-- time, and every entry cached before that stamp counts as absent.
-- In front of the shared dict each worker keeps decoded answers in a plain table per kind
-- of lookup, so a hit costs one table lookup: no JSON decoding, no key to build. A table
-- that reaches worker_cache_items is dropped whole and refills from the shared dict, which
-- is cheaper per request than keeping an LRU order. Any purge bumps a shared sequence
-- number, which sends every worker back to the shared dict (and its stamps) once.
local cjson = require "cjson.safe"
local config = require "tenantry.config"

local ngx = ngx
local shm = ngx.shared.tenants

local _M = {}

local PURGE_SEQUENCE = "purge_sequence"
-- kind → { value → { tenant, fresh_until, sequence } }, and how many values each holds.
local decoded = {}
local decoded_count = {}

local function purge_key(tenant_id)
  return "purged:" .. tenant_id
end

local function purged_since(tenant_id, cached_at)
  local stamp = shm:get(purge_key(tenant_id))
  return stamp ~= nil and stamp >= cached_at
end

local function remember(by, value, entry, sequence)
  local answers = decoded[by]
  local count = decoded_count[by] or 0
  if not answers or count >= config.values.worker_cache_items then
    answers, count = {}, 0
    decoded[by] = answers
  end
  if answers[value] == nil then
    decoded_count[by] = count + 1
  end
  answers[value] = { tenant = entry.tenant, fresh_until = entry.fresh_until, sequence = sequence }
end

-- Membership answers go stale sooner: a removed member's tokens must stop within seconds.
local function fresh_ttl(by, found)
  local values = config.values
  if by == "member" then
    return values.member_ttl
  end
  return found and values.positive_ttl or values.negative_ttl
end

local function store(by, value, tenant, now, sequence)
  local values = config.values
  local key = by .. ":" .. value
  local fresh = fresh_ttl(by, tenant)
  local lifetime = tenant and (fresh + values.stale_ttl) or fresh
  local entry = { tenant = tenant or false, at = now, fresh_until = now + fresh }
  remember(by, value, entry, sequence)
  local ok, err, forcible = shm:set(key, cjson.encode(entry), lifetime)
  if not ok then
    ngx.log(ngx.WARN, "tenant cache: cannot store ", key, ": ", err)
  elseif forcible then
    ngx.log(ngx.INFO, "tenant cache: evicted older entries to store ", key)
  end
end

local function read(key)
  local raw = shm:get(key)
  if not raw then
    return nil
  end
  local entry = cjson.decode(raw)
  if not entry then
    return nil
  end
  if entry.tenant and purged_since(entry.tenant.id, entry.at) then
    return nil
  end
  return entry
end

local function ask_resolver(by, value)
  local response = ngx.location.capture("/_edge/resolve", { args = { by = by, value = value } })
  if response.status == ngx.HTTP_OK then
    local body = cjson.decode(response.body)
    local answer = type(body) == "table" and (body.tenant or body.member)
    if type(answer) == "table" then
      return answer
    end
    return nil, "the resolver sent an unreadable answer"
  end
  -- 422 validation_failed (400 from older resolvers): the value can never name a tenant;
  -- 404: it names none now. Both are negative.
  local status = response.status
  if status == ngx.HTTP_NOT_FOUND or status == 422 or status == ngx.HTTP_BAD_REQUEST then
    return false
  end
  return nil, "the resolver answered " .. response.status
end

-- by: "id", "slug", "domain" (answers are tenants) or "member" (value "<tenant>:<user>").
-- Returns the answer table, false when there is none, or nil and an error when the
-- answer is unknown (resolver down and nothing usable cached).
function _M.lookup(by, value)
  local now = ngx.now()
  local sequence = shm:get(PURGE_SEQUENCE) or 0
  local answers = decoded[by]
  local hit = answers and answers[value]
  if hit and hit.sequence == sequence and now < hit.fresh_until then
    return hit.tenant
  end
  local key = by .. ":" .. value
  local entry = read(key)
  if entry and now < entry.fresh_until then
    remember(by, value, entry, sequence)
    return entry.tenant
  end
  local tenant, err = ask_resolver(by, value)
  if tenant ~= nil then
    store(by, value, tenant, now, sequence)
    -- Found by slug or domain: the id key is warm too.
    if tenant and (by == "slug" or by == "domain") then
      store("id", tenant.id, tenant, now, sequence)
    end
    return tenant
  end
  if entry and entry.tenant and now < entry.fresh_until + config.values.stale_ttl then
    ngx.log(ngx.WARN, "tenant cache: serving stale ", key, ": ", err)
    return entry.tenant
  end
  return nil, err
end

-- How many answers this worker holds, by kind of name (for /_edge/stats).
function _M.worker_counts()
  local counts = {}
  for by, count in pairs(decoded_count) do
    counts[by] = count
  end
  return counts
end

-- Drops a tenant's answers (by any key) and, when given, the keys of names that may
-- have changed meaning (a slug or domain that was unknown and now exists, or moved).
function _M.purge(tenant_id, keys)
  local now = ngx.now()
  if tenant_id then
    shm:set(purge_key(tenant_id), now, config.values.positive_ttl + config.values.stale_ttl + 1)
  end
  for _, key in ipairs(keys or {}) do
    shm:delete(key)
  end
  shm:incr(PURGE_SEQUENCE, 1, 0)
end

return _M
