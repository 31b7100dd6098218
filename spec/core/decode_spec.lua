-- core.json_decode (csrc/json.c) must give exactly what wemasy.json gave with
-- lua-cjson: the same values (integers on Lua 5.4 included), the same
-- refusals and the same messages.  The reference here is that path itself:
-- lua-cjson with decode_invalid_numbers(false), then integerize.
local core = require("wemasy.core")
local cjson = require("cjson")
local json = require("wemasy.json")

local reference_decoder = cjson.new()
reference_decoder.decode_invalid_numbers(false)

local EXACT = 2 ^ 53
local function integerize(t)
  for k, v in next, t do
    if type(v) == "table" then
      integerize(v)
    elseif math.type and math.type(v) == "float" and v == math.floor(v) and v > -EXACT and v < EXACT then
      t[k] = math.tointeger(v)
    end
  end
end

local function reference(text)
  local ok, v = pcall(reference_decoder.decode, text)
  if not ok then return nil, v end
  if math.type and type(v) == "table" then integerize(v) end
  return v
end

local function decoded(text)
  local ok, v = pcall(core.json_decode, text)
  if not ok then return nil, v end
  return v
end

-- Same type, same subtype (integer/float), same sign of zero, same contents.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type and math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    return a == b and (a ~= 0 or 1 / a == 1 / b)
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function check(text)
  local want, want_err = reference(text)
  local got, got_err = decoded(text)
  if want_err or got_err then
    assert.equal(want_err, got_err, ("%q"):format(text:sub(1, 120)))
  else
    assert.is_true(same(want, got), ("%q"):format(text:sub(1, 120)))
  end
end

local ORDER = table.concat{
  '{"error":false,"data":{"order_id":2502,"order_number":"ORD-2025-001","vendor_comment":null,',
  '"quote":{"order":{"products":[]}},"checkout":{"order":{"tax_amounts":{"0":0,"9":0,"21":22.56},',
  '"show_price_tax_included":true,"total_price":107.43802,"total_price_with_tax":129.99551,',
  '"products":[{"quantity":"1","title":"T Shirt \\u00e9\\ud834\\udd1e","options":[],"price_incl_tax":125.00026}]}}}}',
}

describe("core.json_decode", function()
  it("decodes an order as lua-cjson did, integers included", function()
    check(ORDER)
    local v = core.json_decode(ORDER)
    assert.equal(json.null, v.data.vendor_comment)
    assert.equal("2502", tostring(v.data.order_id))
    assert.equal(129.99551, v.data.checkout.order.total_price_with_tax)
    assert.equal("T Shirt é𝄞", v.data.checkout.order.products[1].title)
  end)

  it("reads numbers as strtod does and refuses what lua-cjson refused", function()
    for _, text in ipairs{
      "[0]", "[-0]", "[-0.0]", "[1.0]", "[1.5]", "[1e3]", "[1E+3]", "[1e-3]", "[1.]", "[-.5]", "[0.1]",
      "[107.43802]", "[9007199254740991]", "[9007199254740992]", "[-9007199254740992]", "[123456789012345]",
      "[1234567890123456]", "[12345678901234567890]", "[1e22]", "[1e23]", "[1.5e-22]", "[1e400]", "[-1e400]",
      "[4.9e-324]", "[2.2250738585072014e-308]", "[0.000000000000001]", "[1x]", "[1e]", "[1.5e]", "[-]",
      "[- 1]", "[-e5]", "[+1]", "[01]", "[-01]", "[0x10]", "[-0x10]", "[NaN]", "[-nan]", "[Infinity]",
      "[-inf]", "5", "-0", "2.5",
    } do
      check(text)
    end
  end)

  it("agrees on strings, literals, structure errors and where they are", function()
    for _, text in ipairs{
      "", " ", "{", "}", "[", "]", "{}", "[]", "[1,]", "[,1]", "[1,,2]", "{,}", '{"a"}', '{"a":}', '{"a":1,}',
      '{1:2}', "\0", "{}\0junk", "\0a", "[1 2]", "[1]]", '{"a":1} x', "\t[\r\n1\n]\r\n", '{"":1}',
      '{"a":1,"a":2}', "[true,false,null]", "[tru]", "[nul]", "[truex]", "[True]", '"x"', "null",
      '["\\u00e9"]', '["\\ud834\\udd1e"]', '["\\ud834"]', '["\\udd1e"]', '["\\ud834\\u0041"]', '["\\u0000"]',
      '["\\uZZZZ"]', '["\\u12"]', '["\\x"]', '["\\/\\b\\f\\n\\r\\t\\"\\\\"]', '["abc', '["ab\\', '["a\1b"]',
      '["\255\254"]', '["' .. string.rep("abcdefgh", 9) .. '\\n"]',
    } do
      check(text)
    end
  end)

  it("stops at 1000 levels with lua-cjson's message, and takes wide tables", function()
    for _, n in ipairs{ 999, 1000, 1001, 5000 } do
      check(string.rep("[", n) .. string.rep("]", n))
      check(string.rep('{"a":', n) .. "1" .. string.rep("}", n))
    end
    local items, pairs_ = {}, {}
    for i = 1, 10000 do items[i] = tostring(i) end
    for i = 1, 5000 do pairs_[i] = ('"k%d":%d'):format(i, i) end
    check("[" .. table.concat(items, ",") .. "]")
    check("{" .. table.concat(pairs_, ",") .. ',"k1":"last wins"}')
    local wide_deep = {}
    for d = 1, 900 do wide_deep[d] = "[" .. string.rep("1,", 20) end
    check(table.concat(wide_deep) .. "1" .. string.rep("]", 900))
  end)

  it("agrees on 5000 damaged copies of an order", function()
    local alphabet = '{}[]:,"\\-0123456789.eE+tfnulx \t\n\0'
    local seed = 12345
    local function rand(n) -- the same sequence on every Lua
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for _ = 1, 5000 do
      local s = ORDER
      for _ = 1, rand(4) do
        local i, j = rand(#s), rand(#alphabet)
        local r = rand(3)
        if r == 1 then s = s:sub(1, i - 1) .. s:sub(i + 1)
        elseif r == 2 then s = s:sub(1, i - 1) .. alphabet:sub(j, j) .. s:sub(i)
        else s = s:sub(1, i - 1) .. alphabet:sub(j, j) .. s:sub(i + 1) end
      end
      check(s)
    end
  end)

  -- The key cache (Lua 5.3+) keeps the keys of earlier bodies: keys that
  -- share their first and last eight bytes, differ in one byte or in length,
  -- hold NUL or escapes, or are one byte either side of the 32-byte limit
  -- must each come back as themselves, body after body, in any order.
  it("gives every object key back exactly, whatever keys earlier bodies had", function()
    local keys = { "", "a", "ab", "\0", "a\0b", "x\\u0000y", "invoice_city", "shipping_city",
      "total_price_tax", "total_price_with_tax", string.rep("k", 31), string.rep("k", 32), string.rep("k", 33),
      "abcdefgh" .. "1" .. "stuvwxyz", "abcdefgh" .. "2" .. "stuvwxyz", "abcdefgh" .. "12" .. "stuvwxyz",
      "caf\\u00e9", "\\\"q\\\"" }
    -- Each pair in turn, so the second finds the first in the cache.
    for i = 1, #keys do
      for j = 1, #keys do
        check('{"' .. keys[i] .. '":1}')
        check('{"' .. keys[j] .. '":2,"' .. keys[i] .. '":3}')
      end
    end
    for i = 1, 3000 do keys[#keys + 1] = "key_" .. i .. "_" .. string.rep("z", i % 29) end
    local seed = 99
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for round = 1, 400 do
      local parts = {}
      for j = 1, 1 + round % 17 do
        parts[j] = '"' .. keys[rand(#keys)] .. '":' .. j
      end
      check("{" .. table.concat(parts, ",") .. "}")
      check('[{"' .. keys[rand(#keys)] .. '":{"' .. keys[rand(#keys)] .. '":null}}]')
    end
  end)

  it("is what wemasy.json.decode uses once the core is loaded", function()
    local v, err = json.decode('{"id":2502,"p":1.5}')
    assert.is_nil(err)
    assert.equal("2502", tostring(v.id))
    local none, why = json.decode("[1,]")
    assert.is_nil(none)
    assert.equal("Expected value but found T_ARR_END at character 4", why)
  end)
end)
