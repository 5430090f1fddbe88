-- Redis for the request path (quota leases, the cluster rate limit) and the usage flush:
-- short timeouts, and a circuit breaker per worker so a dead or stalled Redis costs one
-- timeout per retry_interval, not one per request. Callers fail open when this fails.
local config = require "tenantry.config"

local ngx = ngx

-- Debian packages the client as nginx.redis, OpenResty as resty.redis: the same code.
local found, redis = pcall(require, "nginx.redis")
if not found then
  redis = require "resty.redis"
end

local _M = {}

-- Debian's client needs the stream commands the purge poller reads declared.
if redis.add_commands then
  redis.add_commands("xread", "xrevrange")
end

-- While open, no request tries Redis; after it, one request (a probe) at a time does.
local open_until = 0
local probing = false
local last_logged = 0
local LOG_INTERVAL = 5

local function note_failure(what, err)
  local values = config.values
  open_until = ngx.now() + values.redis_retry_interval
  local now = ngx.now()
  if now - last_logged >= LOG_INTERVAL then
    last_logged = now
    ngx.log(ngx.WARN, "redis unreachable (", what, "): ", err,
      "; quotas pass uncounted and the cluster rate limit counts per node until it answers")
  end
end

function _M.enabled()
  return config.values.redis_host ~= ""
end

-- Whether a caller may try Redis now (false while the breaker is open or a probe runs).
function _M.available()
  if not _M.enabled() then
    return false
  end
  if open_until == 0 then
    return true
  end
  if ngx.now() < open_until or probing then
    return false
  end
  return true
end

-- A new connection authenticates before its first command (the default user has a password);
-- a pooled one did so when it was new, and AUTH again would cost a round trip per request.
local function authenticate(red, values)
  local password = values.redis_password or ""
  if password == "" then
    return true
  end
  local username = values.redis_username or ""
  if username ~= "" then
    return red:auth(username, password)
  end
  return red:auth(password)
end

-- A connected, authenticated connection (from the pool or new), or nil and an error; no
-- breaker: the purge poller's timer uses it as it is, the request path through connect().
function _M.open(timeout_ms)
  local values = config.values
  local red = redis:new()
  red:set_timeout(timeout_ms)
  local ok, err = red:connect(values.redis_host, values.redis_port)
  if not ok then
    return nil, err
  end
  local reused = (red:get_reused_times() or 0) > 0
  if not reused then
    ok, err = authenticate(red, values)
    if not ok then
      red:close()
      -- The error names no secret: Redis answers WRONGPASS or NOAUTH, not the password.
      return nil, "AUTH refused: " .. tostring(err)
    end
  end
  red.reused = reused
  return red
end

-- A connection for the request path, or nil and an error (the breaker notes it).
function _M.connect(what)
  local probe = open_until ~= 0
  if probe then
    probing = true
  end
  local red, err = _M.open(config.values.redis_timeout_ms)
  if probe then
    probing = false
  end
  if not red then
    note_failure(what, err)
    return nil, err
  end
  return red
end

-- Back to the pool after a success (closes the breaker), or closed after a failure.
function _M.release(red, ok, what, err)
  if ok then
    open_until = 0
    red:set_keepalive(10000, 64)
  elseif red.reused and err ~= "timeout" then
    -- A pooled connection to a Redis that restarted fails at once: the next one is new
    -- (or pooled too, and fails as fast), so this is no reason to stop trying.
    red:close()
  else
    note_failure(what, err)
    red:close()
  end
end

-- EVALSHA of a script loaded once per worker (SCRIPT LOAD on first use or after NOSCRIPT:
-- a Redis restarted empty has forgotten it). script: { source, sha }.
local function load(red, script)
  local sha, err = red:script("load", script.source)
  if not sha then
    return nil, err
  end
  script.sha = sha
  return sha
end

function _M.run_script(red, script, nkeys, ...)
  if not script.sha then
    local sha, err = load(red, script)
    if not sha then
      return nil, err
    end
  end
  local result, err = red:evalsha(script.sha, nkeys, ...)
  if not result and err and err:find("NOSCRIPT", 1, true) then
    local sha, load_err = load(red, script)
    if not sha then
      return nil, load_err
    end
    result, err = red:evalsha(sha, nkeys, ...)
  end
  return result, err
end

return _M
