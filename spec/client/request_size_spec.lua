-- max_request_body: a request body is bounded before it is encoded (issue 12,
-- item 6).  lua-cjson 2.1 sizes its buffer for a string as an int of 6 times
-- its length, so a ~358 MB string field made the encoder overflow and crash
-- the process; a merely big one went to the server whole.  A body over the
-- bound is invalid_argument naming the field, and nothing is sent.
local core = require("wemasy.core")
local wemasy = require("wemasy")
local cli = require("wemasy.cli")
local sandbox = require("wemasy.sandbox")
local helpers = require("support.helpers")

local tokens = sandbox.tokens
local MiB = 1024 * 1024

-- Bytes of '{"order_number":""}': the body around an order number.
local DETAIL_FRAME = #'{"order_number":""}'

describe("max_request_body", function()
  local sb = helpers.sandbox()

  local function client(opts)
    opts = opts or {}
    opts.base_url, opts.token = sb.base_url, tokens.merchant
    opts.rate_limit, opts.max_retries = { shared = false }, 0
    return wemasy.new(opts)
  end

  local function sent_since(before) return sb:state().total_requests - before end

  local function assert_too_large(err, field, endpoint)
    assert.truthy(wemasy.is_error(err), tostring(err))
    assert.equal("invalid_argument", err.kind, tostring(err))
    assert.equal(0, err.attempts or 0)
    if endpoint then assert.equal(endpoint, err.endpoint) end
    assert.truthy(err.message:find(field, 1, true), err.message)
    assert.truthy(err.message:find("max_request_body", 1, true), err.message)
    assert.is_table(err.errors[field], "errors has no entry for " .. field)
  end

  describe("the option", function()
    it("is checked by the core, naming it", function()
      for _, bad in ipairs{ 0, -1, 1.5, "4096", true, 2 ^ 53 } do
        local ok, why = pcall(wemasy.new, { max_request_body = bad })
        assert.is_false(ok, tostring(bad))
        assert.matches("wemasy.new: option 'max_request_body' must be", why, 1, true)
      end
    end)

    it("defaults to 4 MiB, read from the core (no Lua restates it)", function()
      local c = core.new{ base_url = sb.base_url, rate_limit = false }
      assert.equal(4 * MiB, c:max_request_body())
      c:close()
      assert.equal(4 * MiB, c:max_request_body()) -- still known once closed
      c = core.new{ base_url = sb.base_url, rate_limit = false, max_request_body = 1234 }
      assert.equal(1234, c:max_request_body())
      c:close()
      -- The default bounds a plain client: one byte over 4 MiB is refused, unsent.
      local w = client()
      local before = sb:state().total_requests
      local _, err = w:orders_detail{ order_number = string.rep("a", 4 * MiB - DETAIL_FRAME + 1) }
      assert_too_large(err, "order_number", "orders/detail")
      assert.equal(0, sent_since(before))
      w:close()
    end)
  end)

  describe("on every way to call", function()
    local LIMIT = 1000

    -- A client bounded at LIMIT, and how many requests the sandbox got since.
    local function bounded()
      local c, before = client{ max_request_body = LIMIT }, sb:state().total_requests
      return c, function() return sent_since(before) end
    end

    it("an endpoint method: exactly the bound is sent, one byte more is refused and nothing sent", function()
      local c = client{ max_request_body = LIMIT }
      local before = sb:state().total_requests
      local _, err = c:orders_detail{ order_number = string.rep("a", LIMIT - DETAIL_FRAME) }
      assert.equal("not_found", err.kind) -- it went out, whole
      assert.equal(1, sent_since(before))
      before = sb:state().total_requests
      _, err = c:orders_detail{ order_number = string.rep("a", LIMIT - DETAIL_FRAME + 1) }
      assert_too_large(err, "order_number", "orders/detail")
      assert.equal(0, sent_since(before))
      c:close()
    end)

    it("counts the encoded body: escapes that grow it and fields that add up", function()
      local c, sent = bounded()
      -- 200 control bytes are 200 bytes in Lua and 1200 in JSON (\u0001).
      local _, err = c:orders_detail{ order_number = string.rep("\1", 200) }
      assert_too_large(err, "order_number", "orders/detail")
      -- Each field under the bound, the three together over it: the one that passes it is named.
      _, err = c:orders_get{ website_id = string.rep("1", 400), order_session = string.rep("s", 400),
                             email = string.rep("e", 400) }
      assert_too_large(err, "email", "orders/get")
      assert.equal(0, sent())
      c:close()
    end)

    it("client:call, to a known endpoint and to any other path (nested fields named by their place)", function()
      local c, sent = bounded()
      local _, err = c:call("orders/detail", { order_number = string.rep("a", LIMIT) })
      assert_too_large(err, "order_number", "orders/detail")
      local items = { { note = string.rep("n", 10) }, { note = string.rep("n", LIMIT) } }
      _, err = c:call("orders/unknown", { items = items })
      assert.equal("invalid_argument", err.kind)
      assert.truthy(err.message:find("body.items[2].note", 1, true), err.message)
      assert.truthy(err.message:find("max_request_body", 1, true), err.message)
      assert.equal(0, sent())
      -- At the bound exactly, an unknown path's body goes out.
      local text = '{"a":"' .. string.rep("x", LIMIT - 8) .. '"}'
      assert.equal(LIMIT, #text)
      _, err = c:call("orders/unknown", { a = string.rep("x", LIMIT - 8) })
      assert.is_number(err.status) -- an answer: it was sent
      assert.equal(1, sent())
      _, err = c:call("orders/unknown", { a = string.rep("x", LIMIT - 7) })
      assert.equal("invalid_argument", err.kind)
      assert.equal(1, sent())
      c:close()
    end)

    it("client:batch: the item over the bound gets its own invalid_argument, the others run", function()
      local c, sent = bounded()
      local results = c:batch{
        { "orders_detail", { order_number = "ORD-2025-001" } },
        { "orders_detail", { order_number = string.rep("a", LIMIT) } },
        { "orders/unknown", { a = string.rep("a", LIMIT) } },
      }
      assert.equal(200, results[1][3].status)
      assert_too_large(results[2][2], "order_number", "orders/detail")
      assert.equal("invalid_argument", results[3][2].kind)
      assert.equal(1, sent())
      c:close()
    end)

    it("hooks see the refusal as a call with no attempt", function()
      local seen
      local c = client{ max_request_body = LIMIT, hooks = { on_response = function(info) seen = info end } }
      c:orders_detail{ order_number = string.rep("a", LIMIT) }
      assert.equal("invalid_argument", seen.kind)
      assert.equal(0, seen.attempts)
      c:close()
    end)

    it("the core itself refuses a body over the bound (a request raises, a batch item fails)", function()
      local c = core.new{ base_url = sb.base_url, rate_limit = false, max_retries = 0, max_request_body = 10 }
      local before = sb:state().total_requests
      local ok, why = pcall(c.request, c, "/x", string.rep("a", 11))
      assert.is_false(ok)
      assert.matches("max_request_body", tostring(why), 1, true)
      local results = helpers.core_batch(c, { { path = "/x", body = string.rep("a", 11) } }, 1)
      assert.is_nil(results[1].status)
      assert.matches("max_request_body", results[1].message, 1, true)
      assert.equal(0, sent_since(before))
      c:close()
    end)

    it("the command line: a body over the default bound exits 3 naming the field, nothing sent", function()
      local big = string.rep("a", 4 * MiB)
      for _, case in ipairs{
        { argv = { "orders/detail", "order_number=" .. big }, stdin = "" },
        { argv = { "orders/detail", "-" }, stdin = '{"order_number":"' .. big .. '"}' },
      } do
        local before = sb:state().total_requests
        local code, _, errs = helpers.cli(case.argv, { WEMASY_BASE_URL = sb.base_url, WEMASY_TOKEN = tokens.merchant },
          case.stdin)
        assert.equal(cli.EXIT.invalid_argument, code, errs)
        assert.truthy(errs:find("order_number", 1, true), errs)
        assert.truthy(errs:find("max_request_body", 1, true), errs)
        assert.equal(0, sent_since(before))
      end
      core._debug_unlink(sb.base_url, tokens.merchant)
    end)
  end)

  describe("a string of 400 MB (the size that crashed lua-cjson)", function()
    local function available_kib()
      local f = io.open("/proc/meminfo")
      local text = f and f:read("*a") or ""
      if f then f:close() end
      return tonumber(text:match("MemAvailable:%s*(%d+)")) or 0
    end

    it("is refused without a crash on every path, in a few seconds", function()
      if available_kib() < 3 * 1024 * 1024 then
        pending("needs 3 GiB of free memory")
        return
      end
      -- A child process: a crash must not take busted down with it.
      local child = helpers.spawn([[
        local wemasy = require("wemasy")
        local json = require("wemasy.json")
        local big = string.rep(string.rep("a", 1000 * 1000), 400) -- 400 copies: fast
        local t0 = os.time()
        for _, opts in ipairs{ {}, { max_request_body = 256 * 1024 * 1024 } } do
          opts.base_url, opts.token = "http://127.0.0.1:1/api", "spec-big-token"
          opts.rate_limit, opts.max_retries = false, 0
          local c = wemasy.new(opts)
          local _, e1 = c:call("no/such", { big = big })
          local _, e2 = c:orders_detail{ order_number = big }
          local _, e3 = c:call("orders/detail", { order_number = big .. "/" })
          local r = c:batch{ { "orders_detail", { order_number = big } }, { "no/such", { big = big } } }
          print(e1.kind, e2.kind, e3.kind, r[1][2].kind, r[2][2].kind)
          c:close()
        end
        -- Nor does the encoder itself crash when asked directly, with no bound.
        print(json.encode({ big = big }))
        print("seconds", os.time() - t0)
      ]])
      local out = helpers.finish(child)
      local kinds = ("invalid_argument\t"):rep(4) .. "invalid_argument\n"
      assert.equal(kinds .. kinds, out:sub(1, 2 * #kinds), out:sub(1, 2000))
      assert.truthy(out:find("\nnil\tbody.big: ", 1, true), out:sub(1, 2000))
      local seconds = tonumber(out:match("seconds%s+(%d+)"))
      assert.truthy(seconds and seconds <= 10, out:sub(1, 2000))
    end)
  end)
end)
