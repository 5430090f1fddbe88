-- Whether a request path is one the edge passes on. nginx routes by the normalised path
-- (percent-decoded, dot segments resolved) but proxy_pass forwards the raw one, so a path
-- that normalises to something else could be routed by one reading and served by another;
-- and a NUL, a control character, a backslash or an overlong UTF-8 byte means something
-- different to every server behind us. Such paths are refused, not repaired.
local ngx = ngx
local find, match = string.find, string.match
local unescape_uri = ngx.unescape_uri

local _M = {}

-- NUL, other control characters, backslash, and bytes that never occur in UTF-8 (C0 and C1
-- start only overlong encodings, such as %c0%ae for ".").
local FORBIDDEN_BYTE = "[%z\1-\31\127\\\192\193\245-\255]"

-- Returns nil when the path is acceptable, else why not.
function _M.problem(request_uri)
  local path = match(request_uri, "^[^?]*")
  local decoded = path
  if find(path, "%", 1, true) then
    if find(path, "%%2[fF]") or find(path, "%%5[cC]") then
      return "the request path has an encoded slash or backslash"
    end
    decoded = unescape_uri(path)
  end
  if find(decoded, FORBIDDEN_BYTE) then
    return "the request path has a control character, a backslash or an invalid byte"
  end
  if find(decoded, "/%.%.?/") or find(decoded, "/%.%.?$") then
    return "the request path has a . or .. segment"
  end
  return nil
end

return _M
