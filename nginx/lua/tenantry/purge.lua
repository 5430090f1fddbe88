-- Purging cached tenant answers, on one edge and on all of them.
-- One edge: POST /_edge/purge with the X-Edge-Secret header (or from loopback, unless
-- purge_trust_loopback is off).
-- All edges: the CLI and the services append to a Redis stream; worker 0 of every edge
-- polls it (default every 250 ms) and purges its shared dict, so a suspension takes
-- effect everywhere within a second without the publisher knowing the edges.
local cjson = require "cjson.safe"
local cache = require "tenantry.cache"
local config = require "tenantry.config"
local redis_client = require "tenantry.redis_client"
local patterns = require "tenantry.patterns"
local respond = require "tenantry.respond"

local ngx = ngx

local _M = {}

local UUID = patterns.UUID

-- Turns {tenant_id, slug, domain} into what cache.purge takes; nil, err when malformed.
local function purge_request(message)
  if type(message) ~= "table" then
    return nil, "expected a JSON object"
  end
  local tenant_id, slug, domain = message.tenant_id, message.slug, message.domain
  if tenant_id ~= nil and (type(tenant_id) ~= "string" or not tenant_id:lower():find(UUID)) then
    return nil, "tenant_id must be a UUID"
  end
  local keys = {}
  if slug ~= nil then
    if type(slug) ~= "string" or #slug > 63 then return nil, "slug must be a string" end
    keys[#keys + 1] = "slug:" .. slug
  end
  if domain ~= nil then
    if type(domain) ~= "string" or #domain > 253 then return nil, "domain must be a string" end
    keys[#keys + 1] = "domain:" .. domain:lower()
  end
  if not tenant_id and #keys == 0 then
    return nil, "name a tenant_id, a slug or a domain"
  end
  return { tenant_id = tenant_id and tenant_id:lower(), keys = keys }
end

local function trusted()
  local addr = ngx.var.remote_addr
  if config.values.purge_trust_loopback and (addr == "127.0.0.1" or addr == "::1") then
    return true
  end
  local given = ngx.req.get_headers()["x-edge-secret"]
  local secret = config.values.purge_secret
  -- Comparing digests keeps the comparison time independent of the secret.
  return type(given) == "string" and secret ~= "" and ngx.sha1_bin(given) == ngx.sha1_bin(secret)
end

function _M.handle_request()
  if ngx.req.get_method() ~= "POST" then
    return respond.refuse(false, "method_not_allowed", "use POST")
  end
  if not trusted() then
    return respond.refuse(false, "forbidden", "purging is for the platform only")
  end
  ngx.req.read_body()
  local request, err = purge_request(cjson.decode(ngx.req.get_body_data() or ""))
  if not request then
    return respond.refuse(false, "bad_request", err)
  end
  cache.purge(request.tenant_id, request.keys)
  ngx.say(cjson.encode({ purged = true }))
end

function _M.stats()
  if not trusted() then
    return respond.refuse(false, "forbidden", "stats are for the platform only")
  end
  local dict = ngx.shared.tenants
  ngx.say(cjson.encode({
    tenant_cache = { capacity_bytes = dict:capacity(), free_bytes = dict:free_space(), keys = #dict:get_keys(0) },
    -- The answering worker's own tables, by kind of name.
    worker_cache = cache.worker_counts(),
  }))
end

-- Stream entries are flat field/value lists: {"tenant_id", "…", "slug", "…"}.
local function fields_of(flat)
  local message = {}
  for index = 1, #flat, 2 do
    message[flat[index]] = flat[index + 1]
  end
  return message
end

local last_id

local function poll(premature)
  if premature then
    return
  end
  local values = config.values
  local red, err = redis_client.open(500)
  if not red then
    ngx.log(ngx.WARN, "purge stream: cannot reach redis: ", err)
    return
  end
  if not last_id then
    -- Start after the newest entry: the cache is empty at start, older purges are moot.
    local newest, xerr = red:xrevrange(values.purge_stream, "+", "-", "COUNT", 1)
    if not newest then
      ngx.log(ngx.WARN, "purge stream: ", xerr)
      return red:close()
    end
    last_id = (newest ~= ngx.null and newest[1]) and newest[1][1] or "0-0"
  end
  local result, rerr = red:xread("COUNT", 500, "STREAMS", values.purge_stream, last_id)
  if not result then
    ngx.log(ngx.WARN, "purge stream: ", rerr)
    return red:close()
  end
  if result ~= ngx.null then
    for _, entry in ipairs(result[1][2]) do
      last_id = entry[1]
      local request, perr = purge_request(fields_of(entry[2]))
      if request then
        cache.purge(request.tenant_id, request.keys)
      else
        ngx.log(ngx.WARN, "purge stream: skipping ", entry[1], ": ", perr)
      end
    end
  end
  red:set_keepalive(10000, 2)
end

function _M.start_worker()
  local values = config.values
  if values.redis_host and values.redis_host ~= "" and ngx.worker.id() == 0 then
    local ok, err = ngx.timer.every(values.purge_poll_interval, poll)
    if not ok then
      ngx.log(ngx.ERR, "purge stream: cannot start the poller: ", err)
    end
  end
end

return _M
