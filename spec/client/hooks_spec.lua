-- Observability: the hooks and debug options, against the sandbox.  What a
-- shop wires to its logs and metrics: one on_request and one on_response per
-- call, the facts of the call, never the token.
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local pretty = require("wemasy.pretty")
local h = require("support.helpers")

local tokens = sandbox.tokens

describe("client hooks and debug", function()
  local sb = h.fresh_sandbox()

  -- A client whose hooks and debug lines are recorded.
  local function observed(token, extra)
    local rec = { requests = {}, responses = {}, lines = {} }
    local opts = {
      base_url = sb.base_url, token = token, timeout = 10, rate_limit = { shared = false },
      hooks = {
        on_request = function(info) rec.requests[#rec.requests + 1] = info end,
        on_response = function(info) rec.responses[#rec.responses + 1] = info end,
      },
      debug = function(line) rec.lines[#rec.lines + 1] = line end,
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return wemasy.new(opts), rec
  end

  describe("options", function()
    it("refuses malformed hooks and debug, naming the option", function()
      local function raises(opts, pattern)
        local ok, err = pcall(function()
          local c = wemasy.new(opts) -- not a tail call: the error names this line
          return c
        end)
        assert.is_false(ok)
        assert.matches(pattern, err)
        assert.matches("^[^\n]*hooks_spec.lua:%d+: wemasy.new: ", err) -- raised at the caller
      end
      raises({ hooks = "x" }, "option 'hooks' must be a table")
      raises({ hooks = { on_send = print } }, "option 'hooks' has an unknown key 'on_send'")
      raises({ hooks = { on_request = 1 } }, "option 'hooks.on_request' must be a function %(got integer%)")
      raises({ debug = "yes" }, "option 'debug' must be a boolean or a function")
    end)

    it("accepts debug = false and empty hooks, and then observes nothing", function()
      local c = wemasy.new{ base_url = sb.base_url, hooks = {}, debug = false, rate_limit = { shared = false } }
      local body = c:orders_get{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" }
      assert.is_table(body)
      c:close()
    end)
  end)

  it("calls on_request then on_response once per call, with the call's facts", function()
    local order = {}
    local c = wemasy.new{ base_url = sb.base_url, token = tokens.merchant, rate_limit = { shared = false },
      hooks = {
        on_request = function(info) order[#order + 1] = "request " .. info.endpoint end,
        on_response = function(info) order[#order + 1] = "response " .. info.endpoint end,
      } }
    assert.is_table(c:orders_detail{ order_number = "ORD-2025-001" })
    assert.same({ "request orders/detail", "response orders/detail" }, order)
    c:close()

    local client, rec = observed(tokens.merchant)
    local body, err, res = client:orders_detail{ order_number = "ORD-2025-001" }
    assert.is_nil(err)
    assert.equal(2502, body.data.order_id)
    assert.equal(1, #rec.requests)
    assert.equal(1, #rec.responses)
    local req, info = rec.requests[1], rec.responses[1]
    assert.same({ endpoint = "orders/detail", method = "orders_detail", group = "default", idempotent = true,
                  batch = false }, req)
    assert.equal("orders/detail", info.endpoint)
    assert.equal("orders_detail", info.method)
    assert.is_true(info.ok)
    assert.equal(200, info.status)
    assert.is_nil(info.kind)
    assert.equal(1, info.attempts)
    assert.equal(res.attempts, info.attempts)
    assert.is_number(info.duration)
    assert.is_true(info.duration >= 0 and info.duration < 10)
    assert.same({ limit = 1000, remaining = 998 }, info.rate_limit) -- the first client above sent one
    assert.equal(1000, info.limiter.limit)
    assert.is_number(info.limiter.remaining)
    assert.is_number(info.limiter.reset_in)
    assert.is_number(info.limiter.closed_for)
    assert.matches("^%l+$", info.limiter.store)
    client:close()
  end)

  it("reports the error kind and status of a failed call", function()
    local client, rec = observed(tokens.merchant)
    local _, err = client:orders_detail{ order_number = "NO-SUCH-ORDER" }
    assert.equal("not_found", err.kind)
    local info = rec.responses[1]
    assert.is_false(info.ok)
    assert.equal("not_found", info.kind)
    assert.equal(404, info.status)
    assert.equal(1, info.attempts)
    client:close()
  end)

  it("names the sync group for sync-snelstart and the server's quota of that group", function()
    local client, rec = observed(tokens.merchant)
    assert.is_table(client:orders_sync_snelstart_order{ order_id = 2502 })
    local info = rec.responses[1]
    assert.equal("sync", info.group)
    assert.is_false(info.idempotent)
    assert.same({ limit = 100, remaining = 99 }, info.rate_limit)
    assert.equal(100, info.limiter.limit)
    client:close()
  end)

  it("observes calls refused before sending, with 0 attempts, and nothing reaches the server", function()
    local client, rec = observed(tokens.merchant)
    local _, err = client:orders_detail{ order_number = 5.5 }
    assert.equal("invalid_argument", err.kind)
    local anonymous, rec2 = observed(nil)
    local _, err2 = anonymous:customer_orders_get{ order_id = 2502 }
    assert.equal("unauthenticated", err2.kind)
    for _, r in ipairs({ rec, rec2 }) do
      assert.equal(1, #r.requests)
      assert.equal(1, #r.responses)
      assert.equal(0, r.responses[1].attempts)
      assert.is_nil(r.responses[1].status)
    end
    assert.equal("invalid_argument", rec.responses[1].kind)
    assert.equal("unauthenticated", rec2.responses[1].kind)
    assert.equal(0, sb:state().total_requests)
    client:close()
    anonymous:close()
  end)

  it("reports the client's own rate limiting: rate_limited, 0 attempts, retry_after", function()
    -- A sandbox with a quota of 1: the first answer teaches the limiter that none is left.
    local small_url, small = sandbox.start{ window = 60, limits = { default = 1 } }
    assert(small_url, small)
    local client, rec = observed(tokens.merchant,
      { base_url = small_url, rate_limit = { shared = false, wait = false } })
    finally(function() small:stop() end)
    assert.is_table(client:orders_detail{ order_number = "ORD-2025-001" })
    local _, err = client:orders_detail{ order_number = "ORD-2025-001" }
    assert.equal("rate_limited", err.kind)
    local info = rec.responses[2]
    assert.equal("rate_limited", info.kind)
    assert.equal(0, info.attempts)
    assert.is_number(info.retry_after)
    assert.equal(0, info.limiter.remaining)
    client:close()
  end)

  it("observes client:call, known and unknown paths", function()
    local client, rec = observed(tokens.merchant)
    assert.is_table(client:call("/services/webshop/v1/orders/detail", { order_number = "ORD-2025-001" }))
    local _, err = client:call("orders/no-such-thing", {})
    assert.equal("not_found", err.kind)
    local _, bad = client:call("../etc", {})
    assert.equal("invalid_argument", bad.kind)
    assert.equal(3, #rec.responses)
    assert.equal("orders/detail", rec.responses[1].endpoint)
    assert.equal("orders_detail", rec.responses[1].method)
    assert.equal("orders/no-such-thing", rec.responses[2].endpoint)
    assert.is_nil(rec.responses[2].method)
    assert.equal("default", rec.responses[2].group)
    assert.equal(0, rec.responses[3].attempts)
    client:close()
  end)

  it("observes every call of a batch, refused items included, marked batch = true", function()
    local client, rec = observed(tokens.merchant)
    local results = client:batch({
      { "orders_detail", { order_number = "ORD-2025-001" } },
      { "orders/sync-snelstart-order", { order_id = 2502 } },
      { "orders_detail", { order_number = 42.5 } },
      { "orders_detail", { order_number = "NOPE" } },
    })
    assert.equal(4, #results)
    assert.equal(4, #rec.requests)
    assert.equal(4, #rec.responses)
    local by_outcome = {}
    for _, info in ipairs(rec.responses) do
      assert.is_true(info.batch)
      by_outcome[(info.kind or tostring(info.status)) .. " " .. info.endpoint] = info
    end
    assert.is_table(by_outcome["200 orders/detail"])
    assert.equal("sync", by_outcome["200 orders/sync-snelstart-order"].group)
    assert.equal(0, by_outcome["invalid_argument orders/detail"].attempts)
    assert.equal(404, by_outcome["not_found orders/detail"].status)
    client:close()
  end)

  it("writes one debug line per call: endpoint, outcome, time, attempts, quota", function()
    local client, rec = observed(tokens.merchant)
    client:orders_detail{ order_number = "ORD-2025-001" }
    client:orders_detail{ order_number = "NOPE" }
    client:orders_sync_snelstart_order{ order_id = 2502 }
    assert.equal(3, #rec.lines)
    assert.matches("^wemasy: orders/detail %-> 200 in [%d.]+ ms "
      .. "%(1 attempt, server quota 999/1000, default slots %d+/1000 %(%l+%)%)$", rec.lines[1])
    assert.matches("^wemasy: orders/detail %-> not_found 404 in ", rec.lines[2])
    assert.matches("^wemasy: orders/sync%-snelstart%-order %-> 200 .* sync slots 99/100 %(%l+%)%)$", rec.lines[3])
    client:close()
  end)

  it("debug = true writes the lines to stderr", function()
    local lua = os.getenv("WEMASY_TEST_LUA") or "lua5.4"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
      local wemasy = require("wemasy")
      local c = wemasy.new{ base_url = %q, token = %q, debug = true, rate_limit = { shared = false } }
      c:orders_detail{ order_number = "ORD-2025-001" }
    ]], sb.base_url, tokens.merchant))
    f:close()
    local p = assert(io.popen(lua .. " " .. script .. " 2>&1 >/dev/null"))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    assert.matches("^wemasy: orders/detail %-> 200 in ", out)
    assert.falsy(out:find(tokens.merchant, 1, true))
  end)

  it("a hook that raises does not break the call; the debug log says so", function()
    local lines = {}
    local c = wemasy.new{ base_url = sb.base_url, token = tokens.merchant, rate_limit = { shared = false },
      hooks = { on_request = function() error("request hook bug") end,
                on_response = function() error({ "not even a string" }) end },
      debug = function(line) lines[#lines + 1] = line end }
    local body, err, res = c:orders_detail{ order_number = "ORD-2025-001" }
    assert.is_nil(err)
    assert.equal(2502, body.data.order_id)
    assert.equal(200, res.status)
    assert.equal(3, #lines)
    assert.matches("^wemasy: hook on_request raised: .*request hook bug$", lines[1])
    assert.matches("^wemasy: orders/detail %-> 200", lines[2])
    assert.matches("^wemasy: hook on_response raised: table", lines[3])
    c:close()
  end)

  it("without debug, a raising hook is ignored", function()
    local c = wemasy.new{ base_url = sb.base_url, token = tokens.merchant, rate_limit = { shared = false },
      hooks = { on_response = function() error("ignored") end } }
    local body, err = c:orders_detail{ order_number = "NOPE" }
    assert.is_nil(body)
    assert.equal("not_found", err.kind)
    c:close()
  end)

  it("a debug function that raises does not break the call either", function()
    local c = wemasy.new{ base_url = sb.base_url, token = tokens.merchant, rate_limit = { shared = false },
      debug = function() error("log sink down") end }
    assert.is_table(c:orders_detail{ order_number = "ORD-2025-001" })
    c:close()
  end)

  it("never hands the token to a hook or a debug line", function()
    local secret = tokens.merchant
    local client, rec = observed(secret)
    client:orders_detail{ order_number = "ORD-2025-001" }
    client:orders_detail{ order_number = "NOPE" }
    client:orders_detail{ order_number = 1.5 }
    client:orders_sync_snelstart_order{ order_id = 999999 }
    client:call("orders/unknown", { note = "x" })
    client:batch({ { "orders_detail", { order_number = "ORD-2025-001" } }, { "x" } })
    local stranger, rec2 = observed("spec-unknown-token-" .. os.time())
    stranger:orders_detail{ order_number = "ORD-2025-001" }
    local dump = pretty.format({ rec, rec2 }, { max_depth = 50 })
    assert.truthy(dump:find("orders/detail", 1, true)) -- the dump did see the infos
    assert.falsy(dump:find(secret, 1, true))
    assert.falsy(dump:find("wemasy-sandbox-merchant", 1, true))
    assert.falsy(dump:find("spec-unknown-token-", 1, true))
    assert.falsy(dump:lower():find("authorization", 1, true))
    for _, list in ipairs({ rec.requests, rec.responses }) do
      for _, info in ipairs(list) do
        for k in pairs(info) do
          assert.truthy(({ endpoint = 1, method = 1, group = 1, idempotent = 1, batch = 1, ok = 1, status = 1,
            kind = 1, attempts = 1, duration = 1, retry_after = 1, rate_limit = 1, limiter = 1 })[k],
            "unexpected hook info field " .. tostring(k))
        end
      end
    end
    client:close()
    stranger:close()
  end)

  it("uses an injected clock for durations", function()
    local now = 1000
    local client, rec = observed(tokens.merchant, { clock = function() now = now + 0.5; return now end })
    client:orders_detail{ order_number = "ORD-2025-001" }
    local d = rec.responses[1].duration
    assert.is_true(d >= 0.5 and d == math.floor(d * 2) / 2)
    client:close()
  end)

  it("times calls on the core's monotonic clock when none is injected", function()
    local core = require("wemasy.core")
    local client, rec = observed(tokens.merchant)
    local before = core.now()
    client:orders_detail{ order_number = "ORD-2025-001" }
    local elapsed = core.now() - before
    local d = rec.responses[1].duration
    -- Sub-millisecond resolution (os.time would say 0 or 1) and inside the
    -- time the call took on the same clock.
    assert.is_true(d > 0 and d <= elapsed, ("duration %s, elapsed %s"):format(d, elapsed))
    client:close()
  end)
end)
