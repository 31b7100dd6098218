-- JSON for the sandbox: an encoder that keeps what lua-cjson 2.1.0 cannot
-- (empty arrays, key order, numbers such as 107.43802 exactly as written),
-- and a small order-preserving decoder used to load seed documents verbatim.
--
-- Runs in the nginx worker (LuaJIT), in LuaJIT and in plain Lua 5.4.
--
--   json.array{...}      a table that always encodes as an array, [] when empty
--   json.object{k, v...} a table whose keys encode in the given order
--   json.null            JSON null (cjson.null when lua-cjson is there, so it
--                        compares equal to the nulls cjson.safe decodes)
--   json.encode(v)       -> string (raises on values JSON cannot hold)
--   json.decode(s)       -> value | nil, "message"   (order-preserving)

local has_cjson, cjson = pcall(require, "cjson")

local json = {}

json.null = has_cjson and cjson.null or setmetatable({}, {
   __tostring = function() return "null" end,
})

local ARRAY = { __jsonarray = true }

-- Marks t (a new table when nil) as an array.
function json.array(t)
   return setmetatable(t or {}, ARRAY)
end

function json.is_array(t)
   return getmetatable(t) == ARRAY
end

-- json.object{ "a", 1, "b", json.null } -> { a = 1, b = null } encoded as {"a":1,"b":null}
function json.object(pairs_list)
   local t, order = {}, {}
   for i = 1, #pairs_list, 2 do
      local k, v = pairs_list[i], pairs_list[i + 1]
      if t[k] == nil then order[#order + 1] = k end
      t[k] = v
   end
   return setmetatable(t, { __jsonorder = order })
end

-- The key order of a table made by json.object (or given by json.order).
function json.keys(t)
   local mt = getmetatable(t)
   return mt and mt.__jsonorder
end

-- Gives an existing plain table a key order (keys missing from `order`
-- follow in sorted order); returns t.
function json.order(t, order)
   return setmetatable(t, { __jsonorder = order })
end

------------------------------------------------------------------ encoding

local escapes = {
   ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
   return escapes[c] or string.format("\\u%04x", c:byte())
end

local function encode_string(s)
   return '"' .. s:gsub('[%c"\\]', escape_char) .. '"'
end

local tointeger = math.tointeger or function(n)
   if n == math.floor(n) then return n end
end

local function encode_number(n)
   if n ~= n or n == math.huge or n == -math.huge then
      error("json: cannot encode " .. tostring(n), 0)
   end
   local i = tointeger(n)
   if i and i > -2^53 and i < 2^53 then
      return string.format("%d", i)
   end
   -- Shortest of %.14g / %.17g that reads back as the same number.
   local s = string.format("%.14g", n)
   if tonumber(s) ~= n then s = string.format("%.17g", n) end
   return s
end

local function key_less(a, b)
   local na, nb = tonumber(a), tonumber(b)
   if na and nb and na ~= nb then return na < nb end
   return a < b
end

local encode_value

local function encode_array(t, n, seen, out)
   out[#out + 1] = "["
   for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], seen, out)
   end
   out[#out + 1] = "]"
end

local function is_sequence(t)
   local n = 0
   for k in pairs(t) do
      if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then return nil end
      if k > n then n = k end
   end
   if n == 0 then return nil end
   for i = 1, n do
      if t[i] == nil then return nil end
   end
   return n
end

local function encode_object(t, seen, out)
   local keys, done = {}, {}
   for _, k in ipairs(json.keys(t) or {}) do
      if t[k] ~= nil and not done[k] then
         keys[#keys + 1], done[k] = k, true
      end
   end
   local rest = {}
   for k in pairs(t) do
      local tk = type(k)
      if tk ~= "string" and tk ~= "number" then
         error("json: cannot encode a " .. tk .. " key", 0)
      end
      if not done[k] then rest[#rest + 1] = k end
   end
   for i, k in ipairs(rest) do rest[i] = tostring(k) end
   table.sort(rest, key_less)
   for _, k in ipairs(rest) do keys[#keys + 1] = k end

   out[#out + 1] = "{"
   for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      local v = t[k]
      if v == nil then v = t[tonumber(k)] end
      out[#out + 1] = encode_string(tostring(k))
      out[#out + 1] = ":"
      encode_value(v, seen, out)
   end
   out[#out + 1] = "}"
end

function encode_value(v, seen, out)
   local tv = type(v)
   if v == json.null or v == nil then
      out[#out + 1] = "null"
   elseif tv == "string" then
      out[#out + 1] = encode_string(v)
   elseif tv == "number" then
      out[#out + 1] = encode_number(v)
   elseif tv == "boolean" then
      out[#out + 1] = v and "true" or "false"
   elseif tv == "table" then
      if seen[v] then error("json: cannot encode a cycle", 0) end
      seen[v] = true
      if json.is_array(v) then
         encode_array(v, #v, seen, out)
      elseif json.keys(v) then
         encode_object(v, seen, out)
      else
         local n = is_sequence(v)
         if n then encode_array(v, n, seen, out) else encode_object(v, seen, out) end
      end
      seen[v] = nil
   else
      error("json: cannot encode a " .. tv, 0)
   end
end

function json.encode(v)
   local out = {}
   encode_value(v, {}, out)
   return table.concat(out)
end

------------------------------------------------------------------ decoding

local decode_value

local function fail(pos, what)
   error({ json_error = string.format("json: %s at character %d", what, pos) }, 0)
end

local function skip(s, pos)
   return s:find("[^ \t\r\n]", pos) or #s + 1
end

local function utf8_char(cp)
   if cp < 0x80 then return string.char(cp) end
   if cp < 0x800 then
      return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
   end
   if cp < 0x10000 then
      return string.char(0xE0 + math.floor(cp / 0x1000),
         0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
   end
   return string.char(0xF0 + math.floor(cp / 0x40000),
      0x80 + math.floor(cp / 0x1000) % 0x40,
      0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local unescapes = {
   ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
   n = "\n", r = "\r", t = "\t",
}

local function decode_string(s, pos)
   local buf, i = {}, pos + 1
   while true do
      local j = s:find('["\\%c]', i)
      if not j then fail(pos, "unterminated string") end
      buf[#buf + 1] = s:sub(i, j - 1)
      local c = s:sub(j, j)
      if c == '"' then
         return table.concat(buf), j + 1
      elseif c == "\\" then
         local e = s:sub(j + 1, j + 1)
         if unescapes[e] then
            buf[#buf + 1], i = unescapes[e], j + 2
         elseif e == "u" then
            local hex = s:match("^%x%x%x%x", j + 2)
            if not hex then fail(j, "bad \\u escape") end
            local cp, nxt = tonumber(hex, 16), j + 6
            if cp >= 0xD800 and cp <= 0xDBFF then
               local lo = s:match("^\\u(%x%x%x%x)", nxt)
               lo = lo and tonumber(lo, 16)
               if lo and lo >= 0xDC00 and lo <= 0xDFFF then
                  cp, nxt = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00), nxt + 6
               end
            end
            buf[#buf + 1], i = utf8_char(cp), nxt
         else
            fail(j, "bad escape")
         end
      else
         fail(j, "control character in string")
      end
   end
end

local function decode_number(s, pos)
   local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
   local n = num and tonumber(num)
   if not n then fail(pos, "bad number") end
   if not num:find("[.eE]") and math.tointeger then n = math.tointeger(n) or n end
   return n, pos + #num
end

local literals = { ["true"] = true, ["false"] = false }

function decode_value(s, pos)
   pos = skip(s, pos)
   local c = s:sub(pos, pos)
   if c == "{" then
      local list = {}
      pos = skip(s, pos + 1)
      if s:sub(pos, pos) == "}" then return json.object(list), pos + 1 end
      while true do
         pos = skip(s, pos)
         if s:sub(pos, pos) ~= '"' then fail(pos, "expected a key") end
         local k
         k, pos = decode_string(s, pos)
         pos = skip(s, pos)
         if s:sub(pos, pos) ~= ":" then fail(pos, "expected ':'") end
         local v
         v, pos = decode_value(s, pos + 1)
         list[#list + 1] = k
         list[#list + 1] = v
         pos = skip(s, pos)
         c = s:sub(pos, pos)
         if c == "}" then return json.object(list), pos + 1 end
         if c ~= "," then fail(pos, "expected ',' or '}'") end
         pos = pos + 1
      end
   elseif c == "[" then
      local arr = json.array()
      pos = skip(s, pos + 1)
      if s:sub(pos, pos) == "]" then return arr, pos + 1 end
      while true do
         local v
         v, pos = decode_value(s, pos)
         arr[#arr + 1] = v
         pos = skip(s, pos)
         c = s:sub(pos, pos)
         if c == "]" then return arr, pos + 1 end
         if c ~= "," then fail(pos, "expected ',' or ']'") end
         pos = pos + 1
      end
   elseif c == '"' then
      return decode_string(s, pos)
   elseif c == "-" or c:match("%d") then
      return decode_number(s, pos)
   end
   for word, v in pairs(literals) do
      if s:sub(pos, pos + #word - 1) == word then return v, pos + #word end
   end
   if s:sub(pos, pos + 3) == "null" then return json.null, pos + 4 end
   fail(pos, "unexpected character")
end

function json.decode(s)
   if type(s) ~= "string" then return nil, "json: expected a string" end
   local ok, v, pos = pcall(decode_value, s, 1)
   if not ok then
      if type(v) == "table" and v.json_error then return nil, v.json_error end
      error(v, 0)
   end
   if skip(s, pos) <= #s then return nil, "json: trailing garbage at character " .. pos end
   return v
end

return json
