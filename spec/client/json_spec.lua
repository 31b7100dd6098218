local json = require("wemasy.json")

describe("wemasy.json", function()
  describe("encode", function()
    it("keeps integers and prices exact", function()
      assert.equal("123456789012345", json.encode(123456789012345))
      assert.equal("107.43802", json.encode(107.43802))
      assert.equal("0.1", json.encode(0.1))
      assert.equal(0.1 + 0.2, tonumber(json.encode(0.1 + 0.2)))
      assert.equal("-5", json.encode(-5))
    end)

    it("encodes objects with sorted keys, arrays, null and booleans", function()
      assert.equal('{"a":[1,2],"b":null,"c":false,"d":{}}',
        json.encode{ d = {}, c = false, b = json.null, a = { 1, 2 } })
    end)

    it("escapes control characters and NUL bytes", function()
      assert.equal('"a\\u0000b\\n\\""', json.encode("a\0b\n\""))
    end)

    it("names the place of every value it cannot encode", function()
      local cyclic = {}
      cyclic.self = cyclic
      local cases = {
        { { x = 0 / 0 }, "body.x: cannot encode NaN" },
        { { x = math.huge }, "body.x: cannot encode infinity" },
        { { x = print }, "body.x: cannot encode a function" },
        { { x = io.stdout }, "body.x: cannot encode a userdata" },
        { { x = { 1, { y = coroutine.create(print) } } }, "body.x[2].y: cannot encode a thread" },
        { cyclic, "body.self: cyclic table" },
        { { [true] = 1 }, "body: key of type boolean is not a string" },
        { { x = "\255" }, "body.x: string is not valid UTF-8" },
      }
      for _, case in ipairs(cases) do
        local text, err = json.encode(case[1])
        assert.is_nil(text)
        assert.truthy(err:find(case[2], 1, true), err)
      end
    end)

    it("refuses nesting deeper than 100 levels without a stack overflow", function()
      local deep = {}
      local t = deep
      for _ = 1, 10000 do t.x = {}; t = t.x end
      local text, err = json.encode(deep)
      assert.is_nil(text)
      assert.matches("nested deeper than 100", err)
    end)

    it("ignores metatables, even ones that raise", function()
      local raising = setmetatable({ a = 1 }, {
        __index = function() error("boom") end,
        __pairs = function() error("boom") end,
        __len = function() error("boom") end,
      })
      assert.equal('{"a":1}', json.encode(raising))
    end)
  end)

  describe("decode", function()
    it("returns JSON null as wemasy's null sentinel", function()
      local v = json.decode('{"a":null}')
      assert.equal(json.null, v.a)
    end)

    it("gives whole numbers as integers on Lua 5.4 (order ids print as 2502)", function()
      local v = json.decode('{"id":2502,"n":[1,2.5,{"x":-7}],"price":129.99551}')
      assert.equal("2502", tostring(v.id))
      assert.equal("-7", tostring(v.n[3].x))
      assert.equal(2.5, v.n[2])
      if math.type then assert.equal("integer", math.type(v.id)) end
    end)

    it("keeps the documented prices", function()
      assert.equal(129.99551, json.decode('{"p":129.99551}').p)
    end)

    it("returns nil and a message on invalid JSON, never raises", function()
      for _, text in ipairs{ "", "{", "<html>", "NaN", "[1,]", "\0", string.rep("[", 5000) } do
        local v, err = json.decode(text)
        assert.is_nil(v)
        assert.is_string(err)
      end
    end)
  end)

  it("checks UTF-8 strictly", function()
    assert.is_true(json.valid_utf8("héllo € 𝄞"))
    assert.is_false(json.valid_utf8("\192\128"))     -- overlong NUL
    assert.is_false(json.valid_utf8("\237\160\128")) -- surrogate
    assert.is_false(json.valid_utf8("\244\144\128\128")) -- past U+10FFFF
    assert.is_false(json.valid_utf8("\226\130"))     -- truncated
  end)
end)
