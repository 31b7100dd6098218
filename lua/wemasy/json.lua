-- JSON for wemasy: lua-cjson decodes responses; requests are encoded here.
--
-- Why not cjson.encode for requests: lua-cjson 2.1.0 (Debian's) prints every
-- number with at most 14 significant digits, so a 15-digit order id or a price
-- like 0.1 + 0.2 would reach the server altered.  Request bodies are small, so
-- an exact encoder in Lua costs nothing measurable and also lets bad input
-- (cycles, functions, NaN, invalid UTF-8) come back as a message naming the
-- field instead of a raised error.
local cjson = require("cjson")

local M = {}

local decoder = cjson.new()
decoder.decode_invalid_numbers(false) -- NaN, Infinity and hex are not JSON

M.null = cjson.null

-- lua-cjson 2.1 decodes every number as a float, so on Lua 5.4 an order id
-- would print as 2502.0.  Whole numbers a double holds exactly become
-- integers there (they compare and compute the same); LuaJIT has one type.
local integerize
if math.type then
  local EXACT = 2 ^ 53
  function integerize(t, depth)
    for k, v in next, t do
      if type(v) == "table" then
        if depth < 1000 then integerize(v, depth + 1) end
      elseif math.type(v) == "float" and v == math.floor(v) and v > -EXACT and v < EXACT then
        t[k] = math.tointeger(v)
      end
    end
    return t
  end
end

-- wemasy.core's decoder (csrc/json.c) gives the very same values in one pass,
-- integers included, in about a third of the time on Lua 5.4.  It is used once
-- the core is loaded (the client loads it); until then, e.g. in nginx's main
-- VM where wemasy.ngx runs without the core, lua-cjson and integerize do.
local core_decode

-- Returns value or nil, message.  Never raises.
function M.decode(text)
  local fast = core_decode
  if not fast then
    local core = package.loaded["wemasy.core"]
    fast = type(core) == "table" and core.json_decode
    core_decode = fast or nil
  end
  local ok, value = pcall(fast or decoder.decode, text)
  if not ok then return nil, tostring(value) end
  if not fast and integerize and type(value) == "table" then integerize(value, 0) end
  return value
end

local MAX_DEPTH = 100
local INT_LIMIT = 2 ^ 63

local escape_string = cjson.new().encode -- strings only: exact and fast

local function is_integral(n)
  return n == n and n > -INT_LIMIT and n < INT_LIMIT and n == math.floor(n)
end

-- The shortest "%.Ng", N from `fewest` (15 unless given) up to 17, that
-- reads back as the same double.  wemasy.pretty's numbers too.
function M.shortest_float(n, fewest)
  for digits = fewest or 15, 17 do
    local s = string.format("%." .. digits .. "g", n)
    if tonumber(s) == n then return s end
  end
  return string.format("%.17g", n)
end

local function encode_number(n)
  if n ~= n or n == math.huge or n == -math.huge then
    return nil, "cannot encode " .. (n ~= n and "NaN" or "infinity") .. " (not a JSON number)"
  end
  if math.type and math.type(n) == "integer" then return string.format("%d", n) end
  if is_integral(n) and math.abs(n) < 2 ^ 53 then return string.format("%d", n) end
  return M.shortest_float(n)
end

-- Valid UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
local function valid_utf8(s)
  if not s:find("[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then -- luacheck: ignore 542 (ASCII: one byte, nothing to check)
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    for k = 1, len - 1 do
      local b = s:byte(i + k)
      if not b or b < (k == 1 and lo or 0x80) or b > (k == 1 and hi or 0xBF) then return false end
    end
    i = i + len
  end
  return true
end
M.valid_utf8 = valid_utf8

-- lua-cjson 2.1 sizes its buffer for a string as an int of 6 bytes per byte
-- plus the quotes: a longer string overflows it and crashes the process.
local CJSON_MAX_STRING = math.floor((2 ^ 31 - 1 - 2) / 6)

function M.encode_string(s)
  if #s > CJSON_MAX_STRING then return nil, "string is too long to encode (" .. #s .. " bytes)" end
  if not valid_utf8(s) then return nil, "string is not valid UTF-8" end
  return escape_string(s)
end

-- A table is an array when its keys are exactly 1..#t; an empty table is {}.
-- Raw access throughout: a metatable on user data must not run (or raise) here.
local rawlen = rawlen or function(t) return #t end -- LuaJIT's # ignores __len

local function array_length(t)
  local n = rawlen(t)
  if n == 0 then return nil end
  local count = 0
  for _ in next, t do count = count + 1 end
  if count == n then return n end
  return nil
end

-- room.left: the bytes of text still allowed (math.huge without a bound).
-- Each piece is counted as it is made, so the text is never longer than the
-- bound, and a string is checked before it is escaped.
local function spend(room, n, path)
  room.left = room.left - n
  if room.left < 0 then
    return nil, path .. ": makes the request body larger than max_request_body (" .. room.limit .. " bytes)"
  end
  return true
end

local encode_value

local function encode_table(t, path, seen, depth, room)
  if seen[t] then return nil, path .. ": cyclic table" end
  if depth > MAX_DEPTH then return nil, path .. ": nested deeper than " .. MAX_DEPTH end
  seen[t] = true
  local parts, n = {}, array_length(t)
  local ok, why = spend(room, 2, path) -- the brackets
  if not ok then return nil, why end
  if n then
    for i = 1, n do
      local s, err = encode_value(rawget(t, i), path .. "[" .. i .. "]", seen, depth + 1, room)
      if not s then return nil, err end
      if i > 1 then
        ok, why = spend(room, 1, path .. "[" .. i .. "]")
        if not ok then return nil, why end
      end
      parts[i] = s
    end
    seen[t] = nil
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, v in next, t do
    if type(k) ~= "string" then
      local shown = type(k) == "number" and tostring(k) or "of type " .. type(k)
      return nil, path .. ": key " .. shown .. " is not a string (mixed or sparse table?)"
    end
    if #k + 3 > room.left then return spend(room, #k + 3, path .. "." .. k) end
    local key, kerr = M.encode_string(k)
    if not key then return nil, path .. "." .. k .. ": key " .. kerr end
    ok, why = spend(room, #key + (#parts > 0 and 2 or 1), path .. "." .. k) -- and ':', ','
    if not ok then return nil, why end
    local s, err = encode_value(v, path .. "." .. k, seen, depth + 1, room)
    if not s then return nil, err end
    parts[#parts + 1] = key .. ":" .. s
  end
  seen[t] = nil
  table.sort(parts) -- stable output: the same body always encodes the same way
  return "{" .. table.concat(parts, ",") .. "}"
end

function encode_value(v, path, seen, depth, room)
  local t = type(v)
  local s, err
  if t == "string" then
    if #v + 2 > room.left then return spend(room, #v + 2, path) end -- refused before escaping
    s, err = M.encode_string(v)
  elseif t == "number" then
    s, err = encode_number(v)
  elseif t == "boolean" then
    s = v and "true" or "false"
  elseif v == cjson.null then
    s = "null"
  elseif t == "table" then
    return encode_table(v, path, seen, depth, room)
  else
    return nil, path .. ": cannot encode a " .. t
  end
  if not s then return nil, path .. ": " .. err end
  local ok, why = spend(room, #s, path)
  if not ok then return nil, why end
  return s
end

-- Returns the JSON text or nil, message naming the offending place
-- ("body.items[2]").  With `limit`, a text longer than that many bytes is
-- refused, naming the place that would pass it, before that is encoded.
function M.encode(value, name, limit)
  return encode_value(value, name or "body", {}, 0, { left = limit or math.huge, limit = limit })
end

M.encode_number = encode_number

return M
