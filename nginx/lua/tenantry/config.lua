-- The edge's settings, rendered into nginx.conf as JSON by scripts/edge/render.ts and
-- loaded once in the master process; workers inherit them.
local cjson = require "cjson.safe"

local _M = {}

function _M.load(json)
  local values, err = cjson.decode(json)
  if not values then
    error("edge config is not valid JSON: " .. tostring(err))
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
