-- Whether a request path is one the edge passes on. nginx routes by the normalised path
-- (percent-decoded, dot segments resolved) but proxy_pass forwards the raw one, so a path
-- that normalises to something else could be routed by one reading and served by another;
-- and a NUL, a control character, a backslash or a byte sequence that is not UTF-8 (an
-- overlong "." or "/", a UTF-16 surrogate, a code point past U+10FFFF) means something
-- different to every server behind us. Such paths are refused, not repaired.
local ngx = ngx
local byte, find, match = string.byte, string.find, string.match
local unescape_uri = ngx.unescape_uri

local _M = {}

-- NUL, other control characters and backslash, or the first byte of a multi-byte sequence.
local CONTROL_OR_NON_ASCII = "[%z\1-\31\127\\\128-\255]"
local CONTROL = "[%z\1-\31\127\\]"
local NON_ASCII = "[\128-\255]"

-- Whether `text`, from index `from` (a byte >= 0x80), is well-formed UTF-8: RFC 3629, or
-- table 3-7 of the Unicode standard. The second byte's range is what rules out overlong
-- forms (E0, F0), surrogates (ED) and code points past U+10FFFF (F4); lead bytes C0, C1
-- and F5-FF, and continuation bytes (80-BF) with no lead, are never valid.
local function is_utf8(text, from)
  local length = #text
  local at = from
  while at do
    local lead = byte(text, at)
    local continuations, second_min, second_max
    if lead >= 0xC2 and lead <= 0xDF then
      continuations, second_min, second_max = 1, 0x80, 0xBF
    elseif lead == 0xE0 then
      continuations, second_min, second_max = 2, 0xA0, 0xBF
    elseif lead == 0xED then
      continuations, second_min, second_max = 2, 0x80, 0x9F
    elseif lead >= 0xE1 and lead <= 0xEF then
      continuations, second_min, second_max = 2, 0x80, 0xBF
    elseif lead == 0xF0 then
      continuations, second_min, second_max = 3, 0x90, 0xBF
    elseif lead >= 0xF1 and lead <= 0xF3 then
      continuations, second_min, second_max = 3, 0x80, 0xBF
    elseif lead == 0xF4 then
      continuations, second_min, second_max = 3, 0x80, 0x8F
    else
      return false
    end
    local last = at + continuations
    if last > length then
      return false
    end
    local second = byte(text, at + 1)
    if second < second_min or second > second_max then
      return false
    end
    for index = at + 2, last do
      local continuation = byte(text, index)
      if continuation < 0x80 or continuation > 0xBF then
        return false
      end
    end
    at = find(text, NON_ASCII, last + 1)
  end
  return true
end

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
  -- One search decides an ASCII path, the common case.
  local suspect = find(decoded, CONTROL_OR_NON_ASCII)
  if suspect then
    if byte(decoded, suspect) < 0x80 or find(decoded, CONTROL, suspect + 1) then
      return "the request path has a control character or a backslash"
    end
    -- A request target is ASCII (RFC 9112); the services refuse raw bytes in their own shape.
    if find(path, NON_ASCII) then
      return "the request path has bytes outside ASCII; percent-encode them"
    end
    if not is_utf8(decoded, suspect) then
      return "the request path is not well-formed UTF-8 once percent-decoded"
    end
  end
  if find(decoded, "/%.%.?/") or find(decoded, "/%.%.?$") then
    return "the request path has a . or .. segment"
  end
  return nil
end

return _M
