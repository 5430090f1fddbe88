-- The edge's clock for quota months and Reset headers: ngx.now() plus
-- EDGE_TEST_CLOCK_OFFSET_SECONDS, which only tests set (to cross a month's end on demand).
local config = require "tenantry.config"

local ngx = ngx
local floor = math.floor

local _M = {}

function _M.now()
  return ngx.now() + (config.values.clock_offset or 0)
end

-- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil):
-- os.time reads its table as local time, and months are UTC here.
local function days_from_civil(year, month, day)
  if month <= 2 then
    year = year - 1
  end
  local era = floor(year / 400)
  local year_of_era = year - era * 400
  local shifted_month = month > 2 and month - 3 or month + 9
  local day_of_year = floor((153 * shifted_month + 2) / 5) + day - 1
  local day_of_era = year_of_era * 365 + floor(year_of_era / 4) - floor(year_of_era / 100) + day_of_year
  return era * 146097 + day_of_era - 719468
end

-- The UTC month holding `at`, cached: it changes once a month.
local month = { name = nil, starts = math.huge, ends = -math.huge }

-- Returns the month's name (YYYY-MM), its first second and the first second of the next.
function _M.month(at)
  if at >= month.starts and at < month.ends then
    return month.name, month.starts, month.ends
  end
  local date = os.date("!*t", floor(at))
  local next_year, next_month = date.year, date.month + 1
  if next_month == 13 then
    next_year, next_month = next_year + 1, 1
  end
  month = {
    name = string.format("%04d-%02d", date.year, date.month),
    starts = days_from_civil(date.year, date.month, 1) * 86400,
    ends = days_from_civil(next_year, next_month, 1) * 86400,
  }
  return month.name, month.starts, month.ends
end

return _M
