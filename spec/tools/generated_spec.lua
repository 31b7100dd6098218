-- types/wemasy.lua and docs/reference.md are generated from the endpoint
-- table and the response shapes (tools/gen.lua): they must be current, the
-- annotations must hang together, and the response shapes they document must
-- be what the API (the sandbox) answers.
local wemasy = require("wemasy")
local client_module = require("wemasy.client")
local responses = dofile("tools/responses.lua")
local sandbox = require("wemasy.sandbox")

local gen = dofile("tools/gen.lua")
local read = gen.read

describe("generated types and docs", function()
  it("types/wemasy.lua is current (make types)", function()
    local want = gen.types()
    assert.is_true(want == read(gen.TYPES_FILE), "types/wemasy.lua is stale: run `make types`")
  end)

  it("docs/reference.md is current (make docs)", function()
    local want = gen.docs(gen.cli_help())
    assert.is_true(want == read(gen.DOCS_FILE), "docs/reference.md is stale: run `make docs`")
  end)

  it("renders a template: values, a section once per item, an error for a name it lacks", function()
    local template = "a {{x}}\n{{#list}}\n- {{y}}\n{{/list}}\nz\n"
    -- A value that looks like a tag is text: a section's output is not read again.
    assert.equal("a 1\n- p\n- {{x}}\nz\n",
      gen.render_template(template, { x = 1, list = { { y = "p" }, { y = "{{x}}" } } }))
    assert.has_error(function() gen.render_template("{{nope}}", {}) end, "template: no value nope")
    assert.has_error(function() gen.render_template("{{#nope}}\n{{/nope}}\n", {}) end, "template: no list nope")
  end)

  it("the meta file is valid Lua and starts with ---@meta wemasy", function()
    local text = read(gen.TYPES_FILE)
    assert.matches("^%-%-%-@meta wemasy\n", text)
    assert.is_function((loadstring or load)(text))
  end)

  it("every wemasy.* type the annotations use is declared", function()
    local text = read(gen.TYPES_FILE)
    local declared = {}
    for name in text:gmatch("%-%-%-@class (wemasy[%w_.]*)") do declared[name] = true end
    for name in text:gmatch("%-%-%-@alias (wemasy[%w_.]*)") do declared[name] = true end
    for line in text:gmatch("[^\n]+") do
      if line:match("^%-%-%-@") and not line:match("^%-%-%-@class") and not line:match("^%-%-%-@alias") then
        for name in line:gmatch("%f[%w%.]wemasy%.[%a_][%w_]*") do -- not api.wemasy.nl
          assert.is_true(declared[name] == true, name .. " is used but not declared: " .. line)
        end
      end
    end
  end)

  it("annotates every method of the client and every endpoint's request and response", function()
    local text = read(gen.TYPES_FILE)
    for name, v in pairs(client_module.Client) do
      if type(v) == "function" and not name:match("^_") then
        assert.truthy(text:find("\nfunction Client:" .. name .. "(", 1, true),
          "client:" .. name .. " has no annotation")
      end
    end
    for _, ep in ipairs(wemasy.endpoints) do
      assert.is_string(ep.response, ep.path .. " names no response type")
      assert.is_table(responses.types[ep.response], ep.path .. "'s response type is not in tools/responses.lua")
      assert.truthy(text:find("---@class " .. gen.request_class(ep) .. "\n", 1, true))
      assert.truthy(text:find("---@param body " .. gen.request_class(ep) .. "\n---@return "
        .. gen.response_class(ep) .. "? body\n", 1, true), ep.method)
      for _, f in ipairs(ep.fields) do
        assert.matches("\n%-%-%-@field " .. f.name .. (f.required and " " or "%? "), text)
      end
    end
    for kind in pairs(wemasy.error_kinds) do
      assert.truthy(text:find('---| "' .. kind .. '" #', 1, true), kind)
    end
  end)

  -- README's options table is held against the same declaration in options_spec.
  it("documents every option the core declares, in its order, with its default", function()
    local core = require("wemasy.core")
    assert.equal(#core.options, #gen.OPTIONS)
    for i, o in ipairs(core.options) do
      assert.equal(o.name, gen.OPTIONS[i][1])
      assert.equal(o.type, gen.OPTIONS[i][2])
      if o.default ~= nil then
        assert.truthy(gen.OPTIONS[i][3]:find("(default " .. o.default_text, 1, true), o.name)
      end
    end
    for i, o in ipairs(core.options.rate_limit.fields) do
      assert.equal(o.name, gen.RATE_LIMIT_OPTIONS[i][1])
    end
  end)

  it("documents every hook info field the client reports", function()
    local documented = {}
    for _, f in ipairs(gen.HOOK_FIELDS) do documented[(f[1]:gsub("%?$", ""))] = true end
    local seen = {}
    local c = wemasy.new{ base_url = "http://127.0.0.1:1/api", token = "spec-x", max_retries = 0,
      connect_timeout = 1, rate_limit = { shared = false },
      hooks = { on_request = function(i) for k in pairs(i) do seen[k] = true end end,
                on_response = function(i) for k in pairs(i) do seen[k] = true end end } }
    c:orders_detail{ order_number = "X" }
    c:close()
    for k in pairs(seen) do assert.is_true(documented[k] == true, "hook field " .. k .. " is not documented") end
  end)
end)

describe("response shapes (tools/responses.lua) against the sandbox", function()
  local base_url, sb
  local merchant, customer, other_customer

  -- The seed orders of sandbox/README.md.
  local SEEDS = {
    { 42, "ORD-2024-042", 1, "f3a9c1d27b5e4a60", "guest@example.net" },
    { 2502, "ORD-2025-001", 1, "abc123def456ghi789", "john@example.com", "customer" },
    { 2503, "ORD-2025-002", 1, "b7c8d9e0f1a2b3c4d5e6", "john@example.com", "customer" },
    { 2504, "QUO-2025-001", 2, "q1w2e3r4t5y6u7i8o9p0", "jane@example.org", "other_customer" },
    { 2505, "ORD-2025-003", 2, "abc123def456ghi789", "jane@example.org", "other_customer" },
    { 2506, "ORD-2025-004", 3, "z9y8x7w6v5u4t3s2r1q0", "guest@example.net" },
    { 2507, "QUO-2025-002", 3, "m1n2b3v4c5x6z7l8k9j0", "john@example.com", "customer" },
  }

  lazy_setup(function()
    base_url, sb = sandbox.start{ window = 60, limits = { default = 1000, sync = 100 } }
    assert(base_url, sb)
    local function client(token)
      return wemasy.new{ base_url = base_url, token = token, timeout = 10, rate_limit = { shared = false } }
    end
    merchant = client(sandbox.tokens.merchant)
    customer = client(sandbox.tokens.customer)
    other_customer = client(sandbox.tokens.other_customer)
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  local function conforms(path, body, err)
    assert.is_nil(err, tostring(err))
    local ok, why = responses.check(body, wemasy.endpoints[path].response, path, wemasy.null)
    assert.is_true(ok, why)
  end

  for _, s in ipairs(SEEDS) do
    local id, number, website, session, email, owner = s[1], s[2], s[3], s[4], s[5], s[6]
    it("matches every endpoint's answer for order " .. number, function()
      conforms("orders/detail", merchant:orders_detail{ order_number = number })
      conforms("orders/get", merchant:orders_get{ website_id = website, order_session = session, email = email })
      if number:match("^ORD") then
        conforms("orders/mark-purchase-tracked",
          merchant:orders_mark_purchase_tracked{ website_id = website, order_session = session, mark = false })
      end
      conforms("orders/sync-snelstart-order", merchant:orders_sync_snelstart_order{ order_id = id })
      if owner then
        local who = owner == "customer" and customer or other_customer
        conforms("customer/orders/get", who:customer_orders_get{ order_id = id })
      end
    end)
  end

  it("the checker refuses what a shape does not allow", function()
    local null = wemasy.null
    local function refuses(value, type_name, pattern)
      local ok, why = responses.check(value, type_name, "body", null)
      assert.is_nil(ok)
      assert.matches(pattern, why)
    end
    refuses({ error = false, data = { order_id = "x" } }, "OrdersDetailResponse",
      "body%.data%.order_id: string where integer")
    refuses({ error = false, extra = 1, data = {} }, "OrdersDetailResponse", "body%.extra: not documented")
    refuses({ error = null, message = "m", data = {} }, "CustomerOrdersGetResponse", "body%.error: null where boolean")
    refuses({ error = false, message = "m", data = { order = { id = 1 } } }, "CustomerOrdersGetResponse",
      "body%.data%.order%.order_number: missing")
    refuses({ a = 1 }, "Ga4Item[]", "body: an object where an array")
    assert.is_true(responses.check({ ["21"] = 1.5, ["9"] = 0 }, "map<number>", "t", null))
    assert.is_true(responses.check(null, "string|null", "t", null))
  end)
end)
