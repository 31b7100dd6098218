-- The REPL's parts that need no terminal (issue 17 item 2): Tab completion
-- as a pure function (line, cursor -> candidates), which lines the history
-- keeps, where the history lives, and `_err`, the last error a client method
-- returned.  spec/tools/repl_tty_spec.lua types at the real prompt in tmux.
local core = require("wemasy.core")
local wemasy = require("wemasy")
local repl = require("wemasy.repl")
local helpers = require("support.helpers")

local CLOSED = "http://127.0.0.1:1/api"
local LUA = os.getenv("WEMASY_TEST_LUA") or "lua5.4"

local sink = helpers.sink

local function lines_of(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
  return { read = function() return table.remove(list, 1) end }
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

local function sorted(list)
  table.sort(list)
  return list
end

describe("wemasy REPL", function()
  local client, env

  lazy_setup(function()
    client = wemasy.new{ base_url = CLOSED, rate_limit = false, max_retries = 0 }
    env = setmetatable({ client = client, wemasy = wemasy, pp = print }, { __index = _G })
  end)

  lazy_teardown(function()
    if client then client:close() end
    core._debug_unlink(CLOSED, nil)
  end)

  describe("completion (line, cursor -> candidates, start)", function()
    local function complete(line, cursor)
      return repl.complete(line, cursor or #line, env)
    end

    it("completes globals of the prompt and of Lua", function()
      local list, start = complete("cli")
      assert.same({ "client" }, list)
      assert.equal(1, start)
      assert.truthy(contains(complete("pr"), "print"))
      assert.truthy(contains(complete("x = wem"), "wemasy"))
      assert.equal(5, select(2, complete("x = wem")))
      -- The word before the cursor, not the end of the line.
      assert.same({ "client" }, complete("cli = 1", 3))
    end)

    it("completes client: with every method, and nothing that is not one", function()
      local list = complete("client:")
      for _, ep in ipairs(wemasy.endpoints) do
        assert.truthy(contains(list, "client:" .. ep.method), ep.method)
      end
      for _, m in ipairs({ "call", "batch", "rate_limit", "has_token", "close" }) do
        assert.truthy(contains(list, "client:" .. m), m)
      end
      assert.falsy(contains(list, "client:base_url"))
      assert.falsy(contains(list, "client:__tostring"))
      assert.same({ "client:orders_detail" }, complete("client:orders_d"))
      local _, start = complete("x = [client:or")
      assert.equal(6, start)
    end)

    it("completes fields of tables: wemasy.endpoints.gr", function()
      assert.same({ "wemasy.endpoints" }, complete("wemasy.endp"))
      assert.same({ "wemasy.endpoints.groups" }, complete("wemasy.endpoints.gr"))
      assert.same({}, complete("nosuch.x"))
      assert.same({}, complete("client:orders_detail().da")) -- a call's result is not known
    end)

    it("inside client:METHOD{ completes that endpoint's field names, from the endpoint table", function()
      for _, ep in ipairs(wemasy.endpoints) do
        local names = {}
        for i, f in ipairs(ep.fields) do names[i] = f.name end
        assert.same(sorted(names), complete("client:" .. ep.method .. "{"), ep.method)
        assert.same(sorted(names), complete("r = client:" .. ep.method .. "({ "), ep.method)
      end
      local list, start = complete('client:orders_get{ website_id = "1", em')
      assert.same({ "email" }, list)
      assert.equal(#'client:orders_get{ website_id = "1", ' + 1, start)
      -- Fields already given are not offered again; commas in strings are not separators.
      assert.same({ "email" }, complete('client:orders_get{ website_id = "1", order_session = "a,b", '))
    end)

    it("offers nothing inside a string, and values (not fields) after =", function()
      assert.same({}, complete('client:orders_detail{ order_number = "ORD'))
      assert.same({}, complete('x = "cli'))
      assert.same({ "client" }, complete("client:orders_detail{ order_number = cli"))
    end)

    it("runs no code of the values it walks (no __index function, no call)", function()
      local called = false
      env.trap = setmetatable({}, { __index = function() called = true; error("ran") end })
      finally(function() env.trap = nil end)
      assert.same({}, complete("trap.x"))
      assert.same({}, complete("trap:x"))
      assert.is_false(called)
    end)
  end)

  describe("history", function()
    it("keeps no line that holds a known token or looks like it gives one", function()
      local secrets = { "s3cr3t-token-value" }
      for _, line in ipairs({
        't = "s3cr3t-token-value"',
        'c = wemasy.new{ token = "abcdefgh" }',
        "c = wemasy.new{token='abcdefgh'}",
        "opts.token = [[abcdefgh]]",
        [[body = '{"token": "abcdefgh"}']],
        'os.execute("wemasy --token abcdefgh orders/detail")',
        'h = "Bearer abcdefgh"',
        "h = { Authorization = x }",
        -- Over-cautious: any `token =` is dropped, a literal or not.
        "c = wemasy.new{ base_url = sandbox.base_url, token = tokens.customer }",
        "", "   ",
      }) do
        assert.is_false(repl.keeps_in_history(line, secrets), line)
      end
      for _, line in ipairs({
        'client:orders_detail{ order_number = "ORD-2025-001" }',
        "client:has_token()",
        "if token == nil then print(1) end",
        "1 + 1",
      }) do
        assert.is_true(repl.keeps_in_history(line, secrets), line)
      end
    end)

    it("lives in $XDG_STATE_HOME/wemasy/history, else ~/.wemasy_history", function()
      local function path(vars) return repl.history_file(function(k) return vars[k] end) end
      assert.equal("/s/wemasy/history", path({ XDG_STATE_HOME = "/s", HOME = "/h" }))
      assert.equal("/h/.wemasy_history", path({ HOME = "/h" }))
      assert.equal("/h/.wemasy_history", path({ XDG_STATE_HOME = "relative", HOME = "/h" }))
      assert.is_nil(path({}))
    end)
  end)

  describe("_err", function()
    local function session(text)
      local out = sink()
      assert.is_true(repl.run{ client = client, input = lines_of(text), output = out, color = false })
      return out.text()
    end

    it("keeps the error a chained call lost, and shows it after the nil error", function()
      local out = session(table.concat({
        'client:orders_detail{ order_number = "ORD-2025-001" }.data.order_id',
        "_err.kind",
        "undefined_table.x",
        "",
      }, "\n"))
      assert.truthy(out:find("attempt to index a nil value", 1, true), out)
      local shown = out:match("\n(last wemasy error[^\n]*)\n")
      assert.is_string(shown, out)
      assert.truthy(shown:find("wemasy unauthenticated on orders/detail", 1, true), shown)
      assert.truthy(out:find('wemasy> "unauthenticated"\n', 1, true), out)
      -- A line that called nothing failing is not blamed on the last call.
      local _, count = out:gsub("last wemasy error", "")
      assert.equal(1, count, out)
    end)

    it("is set by a call that returns nil, err directly, and the client is left as it was", function()
      local out = session('client:orders_detail{ order_number = "X" }\n_err.endpoint\n')
      assert.truthy(out:find('wemasy> "orders/detail"\n', 1, true), out)
      assert.is_nil(rawget(client, "orders_detail")) -- no wrapper left on the caller's client
    end)

    it("is set in `lua -i` too (repl.setup)", function()
      local script = [[
        require("wemasy.repl").setup{ base_url = "]] .. CLOSED .. [[", options = { rate_limit = false } }
        pcall(function() return client:orders_detail{ order_number = "X" }.data end)
        io.stdout:write("kind=", tostring(_err and _err.kind), "\n")
      ]]
      local p = assert(io.popen(LUA .. " -e '" .. script:gsub("'", "'\\''") .. "' 2>&1"))
      local text = p:read("*a")
      p:close()
      assert.truthy(text:find("kind=unauthenticated", 1, true), text)
    end)
  end)
end)
