-- wemasy.pretty: what the REPL and the command line print.  The expected
-- texts are exact, so the output is the same on Lua 5.4 and LuaJIT.
local wemasy = require("wemasy")
local pretty = require("wemasy.pretty")
local errors = require("wemasy.errors")

describe("wemasy.pretty", function()
  it("prints wemasy.null as null, at the top and inside tables", function()
    assert.equal("null", pretty.format(wemasy.null))
    assert.equal("{ a = null, b = 1 }", pretty.format({ a = wemasy.null, b = 1 }))
    assert.equal("{ null, 2 }", pretty.format({ wemasy.null, 2 }))
  end)

  it("is callable and reachable as wemasy.pretty", function()
    assert.equal(pretty, wemasy.pretty)
    assert.equal("{ 1, 2, 3 }", pretty({ 1, 2, 3 }))
  end)

  it("prints numbers as the JSON had them", function()
    assert.equal("2502", pretty.format(2502.0))
    assert.equal("2502", pretty.format(2502))
    assert.equal("129.99551", pretty.format(129.99551))
    assert.equal("0.30000000000000004", pretty.format(0.1 + 0.2))
    assert.equal("-0.5", pretty.format(-0.5))
    assert.equal("1e+300", pretty.format(1e300))
    assert.equal("nan", pretty.format(0 / 0))
    assert.equal("inf", pretty.format(math.huge))
  end)

  it("quotes and escapes strings, and leaves UTF-8 as it is", function()
    assert.equal('"a\\"b\\\\c\\n\\t\\001"', pretty.format('a"b\\c\n\t\1'))
    assert.equal('"Café €"', pretty.format("Café €"))
  end)

  it("sorts keys: numbers, then strings; brackets keys that are not identifiers", function()
    local text = pretty.format({ b = 1, a = 2, ["21"] = 3, ["end"] = 4, ["x y"] = 5, [10] = 6 }, { width = 200 })
    assert.equal('{ [10] = 6, ["21"] = 3, a = 2, b = 1, ["end"] = 4, ["x y"] = 5 }', text)
  end)

  it("puts short flat tables on one line and the rest one entry per line", function()
    local text = pretty.format({ data = { order = { id = 2502, tags = { "a", "b" } } }, error = false })
    assert.equal(table.concat({
      "{",
      "  data = {",
      "    order = {",
      "      id = 2502,",
      "      tags = { \"a\", \"b\" }",
      "    }",
      "  },",
      "  error = false",
      "}",
    }, "\n"), text)
    local long = {}
    for i = 1, 40 do long[i] = i * 1000 end
    assert.truthy(pretty.format(long, { width = 80 }):find("\n", 1, true))
    assert.equal("{}", pretty.format({}))
  end)

  it("marks cycles and tables already shown instead of looping", function()
    local t = { name = "root" }
    t.self = t
    local shared = { x = 1 }
    local u = { a = shared, b = shared }
    assert.equal('{ name = "root", self = <cycle> }', pretty.format(t))
    assert.equal("{\n  a = { x = 1 },\n  b = <table shown above>\n}", pretty.format(u))
  end)

  it("cuts tables deeper than max_depth, without running out of stack", function()
    local deep = {}
    local cur = deep
    for _ = 1, 100000 do
      cur.next = {}
      cur = cur.next
    end
    local text = pretty.format(deep)
    assert.truthy(text:find("{...}", 1, true))
    local lines = select(2, text:gsub("\n", "\n"))
    assert.is_true(lines < 40)
    assert.equal("{\n  next = {...}\n}", pretty.format(deep, { max_depth = 1 }))
  end)

  it("prints an error as its one-line tostring plus the field errors", function()
    local err = errors.invalid_argument("orders/get", {
      email = { "field 'email' is required" },
      website_id = { "field 'website_id' must be a string (got boolean)", "second" },
    }, "field 'email' is required")
    local text = pretty.format(err)
    local first = text:match("^[^\n]*")
    assert.equal(tostring(err), first)
    assert.equal(table.concat({
      tostring(err),
      "  email: field 'email' is required",
      "  website_id: field 'website_id' must be a string (got boolean); second",
    }, "\n"), text)
    assert.equal("wemasy not_found 404 on orders/detail: Order not found",
      pretty.format(errors.new("not_found", { status = 404, endpoint = "orders/detail",
        message = "Order not found", headers = { ["x-big"] = "..." } })))
  end)

  it("prints an error inside a table (a batch result) the same way, indented", function()
    local err = errors.new("validation", { status = 422, endpoint = "orders/detail", message = "bad",
      errors = { order_number = { "The order number field is required." } } })
    local text = pretty.format({ { wemasy.null, err } })
    assert.truthy(text:find(tostring(err), 1, true))
    assert.truthy(text:find("\n  *order_number: The order number field is required%.\n"))
  end)

  it("prints the client as its tostring, never the token", function()
    local client = wemasy.new{ token = "spec-secret-token-123", base_url = "http://127.0.0.1:9/api",
                               rate_limit = false }
    assert.equal(tostring(client), pretty.format(client))
    local text = pretty.format({ client = client, list = { client } })
    assert.falsy(text:find("spec-secret-token-123", 1, true))
    client:close()
  end)

  it("uses a table's __tostring, and falls back when that raises", function()
    local named = setmetatable({}, { __tostring = function() return "<thing>" end })
    assert.equal("<thing>", pretty.format(named))
    local broken = setmetatable({ x = 1 }, { __tostring = function() error("no") end })
    assert.equal("{ x = 1 }", pretty.format(broken))
    local guarded = setmetatable({ y = 2 },
      { __index = function() error("no") end, __pairs = function() error("no") end })
    assert.equal("{ y = 2 }", pretty.format(guarded))
  end)

  it("prints functions and other values by their tostring", function()
    assert.truthy(pretty.format(print):match("^builtin: ") or pretty.format(print):match("^function"))
    assert.equal("true", pretty.format(true))
    assert.equal("nil", pretty.format(nil))
  end)

  it("colours only when asked", function()
    local plain = pretty.format({ a = "x", b = wemasy.null })
    assert.falsy(plain:find("\27", 1, true))
    local coloured = pretty.format({ a = "x", b = wemasy.null }, { color = true })
    assert.truthy(coloured:find("\27[32m\"x\"\27[0m", 1, true))
    assert.truthy(coloured:find("\27[35mnull\27[0m", 1, true))
    assert.equal(plain, (coloured:gsub("\27%[[%d;]*m", "")))
  end)

  it("print_to writes every argument like print does", function()
    local out = {}
    local file = { write = function(_, ...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end end }
    pretty.print_to(file, nil, "text", { 1 }, nil, wemasy.null)
    assert.equal("text\t{ 1 }\tnil\tnull\n", table.concat(out))
  end)

  it("honours NO_COLOR and a non-terminal stdout", function()
    -- Under busted stdout is a pipe or a file, not a terminal.
    assert.is_false(pretty.want_color(1) and not pretty.is_terminal(1))
    assert.is_boolean(pretty.is_terminal(1))
  end)
end)
