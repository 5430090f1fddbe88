-- The edge's settings: a JSON file beside nginx.conf, written by scripts/edge/render.ts and
-- read once in the master process, where workers inherit them. Data, never Lua source: no
-- value can end a string literal and run as code.
local cjson = require "cjson.safe"

local _M = {}

local function read_file(path)
  local file, err = io.open(path, "rb")
  if not file then
    error("cannot read the edge settings: " .. tostring(err))
  end
  local content = file:read("*a")
  file:close()
  return content
end

function _M.load_file(path)
  local values, err = cjson.decode(read_file(path))
  if type(values) ~= "table" then
    error("the edge settings in " .. path .. " are not a JSON object: " .. tostring(err))
  end
  local reserved = {}
  for _, label in ipairs(values.reserved_labels) do
    reserved[label] = true
  end
  values.reserved = reserved
  values.base_suffix = "." .. values.base_domain
  _M.values = values
end

return _M
