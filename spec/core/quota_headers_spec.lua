-- One reading of Retry-After and X-RateLimit-*: the C core parses them once
-- per response, and err.retry_after, res.rate_limit, the hooks and the
-- limiter all see those values.  What RFC 9110 allows is accepted
-- (delay-seconds = 1*DIGIT, HTTP-date in its three forms), the rest is as
-- if absent; repeated headers give the most cautious value (the longest
-- Retry-After, the lowest Limit and Remaining).  Against odd_server, which
-- answers each request with exactly the bytes the spec chose.
local wemasy = require "wemasy"
local core = require "wemasy.core"
local odd = require "support.odd"
local h = require "support.helpers"

local GET = { website_id = "1", order_session = "abc123def456ghi789", email = "john@example.com" }

local function imf(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
local function rfc850(t) return os.date("!%A, %d-%b-%y %H:%M:%S GMT", t) end
local function asctime(t) return os.date("!%a %b %e %H:%M:%S %Y", t) end

describe("Retry-After and X-RateLimit-*", function()
  local srv

  setup(function() srv = odd.start() end)
  teardown(function() odd.stop(srv) end)

  -- A client whose every call gets `bytes`, with its hook payloads recorded;
  -- the clock stands still, so the limiter's closed_for is the Retry-After.
  local function client(bytes)
    local seen = {}
    local c = wemasy.new {
      base_url = odd.raw_url(srv, odd.name(), bytes), max_retries = 0,
      rate_limit = { shared = false }, clock = function() return 1000 end, sleep = function() end,
      hooks = { on_response = function(info) seen[#seen + 1] = info end },
    }
    return c, seen
  end

  local function answer429(lines)
    return odd.response(429, lines, '{"error":true,"message":"Too Many Attempts."}')
  end

  describe("one value of Retry-After for the error, the hooks and the limiter", function()
    local later = os.time() + 120
    -- { value, expected seconds (nil: refused), tolerance }
    local FORMS = {
      { "120", 120 },
      { "0", 0 },
      { " 30 ", 30 },
      { "86401", 86400 },
      { "100000000000000000000000", 86400 },
      { imf(later), 120, 10 },
      { rfc850(later), 120, 10 },
      { asctime(later), 120, 10 },
      { "Sun, 06 Nov 1994 08:49:37 GMT", 0 },
      { "Sunday, 06-Nov-94 08:49:37 GMT", 0 },
      { "Sun Nov  6 08:49:37 1994", 0 },
      { "1.5", nil },
      { "1e23", nil },
      { "1e+2", nil },
      { "0x10", nil },
      { "0x1p30", nil },
      { "-5", nil },
      { "+5", nil },
      { "30s", nil },
      { "", nil },
      { "soon", nil },
      { "sun, 06 nov 2094 08:49:37 gmt", nil },
      { "Sun, 06 Nov 2094 08:49:37 +0000", nil },
      { "Sun, 30 Feb 2094 08:49:37 GMT", nil },
      { "Sun, 06 Nov 2094 24:00:00 GMT", nil },
      { "2094-11-06T08:49:37Z", nil },
    }

    for _, f in ipairs(FORMS) do
      local value, want, slack = f[1], f[2], f[3] or 1e-9
      it(string.format("%q: %s", value, want and want .. " s" or "refused"), function()
        local c, seen = client(answer429 { "Retry-After: " .. value })
        local _, err = c:orders_get(GET)
        assert.equal("rate_limited", err.kind)
        assert.equal(429, err.status)
        if want then
          assert.is_number(err.retry_after)
          assert.is_true(math.abs(err.retry_after - want) <= slack, tostring(err.retry_after))
        else
          assert.is_nil(err.retry_after)
        end
        assert.equal(err.retry_after, seen[1].retry_after)
        -- What the limiter closed the group for is the same number.
        assert.is_true(math.abs(c:rate_limit().closed_for - (err.retry_after or 0)) < 1e-6,
          "closed for " .. c:rate_limit().closed_for)
        c:close()
      end)
    end
  end)

  describe("repeated headers: the most cautious value", function()
    it("the longest Retry-After, whatever the order", function()
      for _, lines in ipairs { { "Retry-After: 5", "Retry-After: 30" }, { "Retry-After: 30", "Retry-After: 5" },
                               { "Retry-After: 30", "Retry-After: soon", "Retry-After: 5" } } do
        local c = client(answer429(lines))
        local _, err = c:orders_get(GET)
        assert.equal(30, err.retry_after)
        assert.is_true(math.abs(c:rate_limit().closed_for - 30) < 1e-6)
        c:close()
      end
    end)

    it("a date and a number: the longer", function()
      local c = client(answer429 { "Retry-After: 10", "Retry-After: " .. imf(os.time() + 100) })
      local _, err = c:orders_get(GET)
      assert.is_true(err.retry_after > 95 and err.retry_after <= 100, tostring(err.retry_after))
      c:close()
    end)

    it("the lowest X-RateLimit-Limit and -Remaining, on a success and on an error", function()
      local lines = { "X-RateLimit-Limit: 60", "X-RateLimit-Remaining: 10", "X-RateLimit-Limit: 50",
                      "X-RateLimit-Remaining: 3", "X-RateLimit-Remaining: 7" }
      local c, seen = client(odd.response(200, lines, "{}"))
      local body, err, res = c:orders_get(GET)
      assert.is_nil(err)
      assert.same({}, body)
      assert.same({ limit = 50, remaining = 3 }, res.rate_limit)
      assert.same({ limit = 50, remaining = 3 }, seen[1].rate_limit)
      assert.equal("60, 50", res.headers["x-ratelimit-limit"]) -- the headers as they came
      assert.equal(50, c:rate_limit().limit)                   -- what the limiter learnt
      c:close()
      c = client(odd.response(404, lines, '{"error":true,"message":"Order not found"}'))
      body, err = c:orders_get(GET)
      assert.is_nil(body)
      assert.equal("not_found", err.kind)
      assert.same({ limit = 50, remaining = 3 }, err.rate_limit)
      c:close()
    end)
  end)

  describe("X-RateLimit-* values", function()
    local FORMS = {
      { "60", 60 }, { " 60 ", 60 }, { "0", 0 }, { "1000000", 1000000 },
      { "1000001", nil }, { "60.0", nil }, { "6e1", nil }, { "0x3c", nil }, { "-1", nil }, { "+60", nil },
      { "", nil }, { "sixty", nil },
    }
    for _, f in ipairs(FORMS) do
      it(string.format("%q: %s", f[1], tostring(f[2])), function()
        local c = client(odd.response(200, { "X-RateLimit-Remaining: " .. f[1] }, "{}"))
        local _, _, res = c:orders_get(GET)
        assert.equal(f[2], res.rate_limit.remaining)
        c:close()
      end)
    end
  end)

  describe("the core returns them with the outcome", function()
    local bytes = answer429 { "Retry-After: 7", "X-RateLimit-Limit: 60", "X-RateLimit-Remaining: 0" }

    it("client:request: status, body, headers, attempts, retry_after, limit, remaining", function()
      local c = core.new { base_url = odd.raw_url(srv, odd.name(), bytes), rate_limit = false, max_retries = 0 }
      local status, body, headers, attempts, retry_after, limit, remaining = c:request("/x", "{}")
      assert.equal(429, status)
      assert.is_string(body)
      assert.equal("7", headers["retry-after"])
      assert.same({ 1, 7, 60, 0 }, { attempts, retry_after, limit, remaining })
      c:close()
      c = core.new { base_url = odd.raw_url(srv, odd.name(), odd.response(200, {}, "{}")), rate_limit = false }
      status, body, headers, attempts, retry_after, limit, remaining = c:request("/x", "{}")
      assert.same({ 200, "{}", 1 }, { status, body, attempts })
      assert.is_table(headers)
      assert.is_nil(retry_after)
      assert.is_nil(limit)
      assert.is_nil(remaining)
      c:close()
    end)

    it("client:batch: the same values to on_result, and in the results collected from it", function()
      local c = core.new { base_url = odd.raw_url(srv, odd.name(), bytes), rate_limit = false, max_retries = 0 }
      local got = {}
      c:batch({ { path = "/x", body = "{}" } }, 1, nil, function(_, status, _, _, attempts, retry_after, limit,
                                                                  remaining)
        got = { status, attempts, retry_after, limit, remaining }
      end)
      assert.same({ 429, 1, 7, 60, 0 }, got)
      local results = h.core_batch(c, { { path = "/x", body = "{}" } })
      assert.equal(7, results[1].retry_after)
      assert.equal(60, results[1].limit)
      assert.equal(0, results[1].remaining)
      c:close()
    end)

    it("client:batch through wemasy.new: err.retry_after and rate_limit", function()
      local c = client(bytes)
      local results = c:batch { { "orders_get", GET }, { "orders/get", GET } }
      for i = 1, 2 do
        local err = results[i][2]
        assert.equal("rate_limited", err.kind)
        assert.equal(7, err.retry_after)
        assert.same({ limit = 60, remaining = 0 }, err.rate_limit)
      end
      c:close()
    end)
  end)
end)
