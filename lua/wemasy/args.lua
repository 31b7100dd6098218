-- Argument errors, as luasocket raises them: a wrong type of argument is a
-- programming mistake, and the message names the argument and the type it
-- got, never the value (it may be huge, or the token).
local json = require("wemasy.json")

local M = {}

-- A value's type for messages: "null" for JSON null, "integer" for a whole
-- number, "NaN"; the Lua type otherwise.
function M.describe(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.floor(v) and v > -math.huge and v < math.huge then return "integer" end
    return "number"
  end
  return t
end

-- Raises "bad argument #n to 'fname' (<expected> expected, got <type>)".
-- `level` is error()'s level as seen from the function that calls this one.
function M.bad_argument(n, fname, expected, value, level)
  error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected, M.describe(value)),
    level + 1)
end

return M
