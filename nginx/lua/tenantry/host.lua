-- What the Host header says about the tenant.
local config = require "tenantry.config"

local _M = {}

-- Lower case, without port and trailing dots. Non-ASCII names are left for the
-- resolver service, which turns them into punycode the way the database stores them.
function _M.normalise(raw)
  if not raw or raw == "" then
    return nil
  end
  local host = raw:lower()
  if host:sub(1, 1) == "[" then
    return nil -- an IPv6 literal names no tenant
  end
  host = host:gsub(":%d*$", ""):gsub("%.+$", "")
  if host == "" or host:find("^[%d.]+$") then
    return nil -- an IPv4 literal names no tenant either
  end
  return host
end

-- Returns "subdomain", label | "domain", host | nil when the host names no tenant.
function _M.classify(host)
  if not host then
    return nil
  end
  local values = config.values
  if host == values.base_domain then
    return nil
  end
  local suffix = values.base_suffix
  if #host > #suffix and host:sub(-#suffix) == suffix then
    local label = host:sub(1, #host - #suffix)
    if label:find(".", 1, true) or values.reserved[label] then
      return nil
    end
    return "subdomain", label
  end
  if not host:find(".", 1, true) then
    return nil
  end
  return "domain", host
end

return _M
