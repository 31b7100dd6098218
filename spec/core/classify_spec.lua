-- What a reply no well-behaved server sends comes to, through the whole
-- client (wemasy.new, plain calls and client:batch), against
-- spec/support/odd_server.lua, which counts what really arrived:
--
--   * `err.sent` is false only when no request byte left: a reply without a
--     status line, or with a status libcurl refuses, came after the server
--     got the request, so mark-purchase-tracked is never sent again;
--   * response headers over the core's cap or libcurl's own limits are the
--     server's fault: decode, reason "too_large", never retried;
--   * a 2xx body that is not what the endpoint answers (a top-level array,
--     string, number) is decode; client:call to other paths takes an object or
--     an array.
local wemasy = require "wemasy"
local odd = require "support.odd"
local h = require "support.helpers"

local MARK = { website_id = "1", order_session = "abc123def456ghi789" }
local GET = { website_id = "1", order_session = "abc123def456ghi789", email = "john@example.com" }

describe("what odd replies come to", function()
  local srv

  setup(function() srv = odd.start() end)
  teardown(function() odd.stop(srv) end)

  local function client(base_url, extra)
    -- breaker = false: tries are counted here, and dead ports fail every one.
    local opts = { base_url = base_url, rate_limit = false, breaker = false, max_retries = 2,
                   backoff = { base = 0.001, cap = 0.001 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return wemasy.new(opts)
  end

  -- A client whose every request gets exactly `bytes`, and the name they are counted under.
  local function answered_by(bytes)
    local name = odd.name()
    return client(odd.raw_url(srv, name, bytes)), name
  end

  describe("err.sent", function()
    local REPLIES = {
      { "no status line (HTTP/0.9)", "hello, this is not HTTP\n" },
      { "status 0", "HTTP/1.1 0 X\r\nContent-Length: 2\r\n\r\n{}" },
      { "status 2000", "HTTP/1.1 2000 X\r\nContent-Length: 2\r\n\r\n{}" },
      { "status 099", "HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\n{}" },
      { "status 199", "HTTP/1.1 199 X\r\nContent-Length: 2\r\n\r\n{}" },
      { "an unknown HTTP version", "HTTP/3.0 200 X\r\nContent-Length: 2\r\n\r\n{}" },
      { "an empty reply", "" },
    }

    for _, r in ipairs(REPLIES) do
      local what, bytes = r[1], r[2]

      it(what .. ": network, sent = true, mark-purchase-tracked not sent again", function()
        local c, name = answered_by(bytes)
        local body, err = c:orders_mark_purchase_tracked(MARK)
        assert.is_nil(body)
        assert.equal("network", err.kind)
        assert.is_true(err.sent, tostring(err))
        assert.equal(1, err.attempts)
        assert.equal(1, odd.count(srv, name))
        c:close()
      end)

      it(what .. ", in a batch: sent = true, not sent again", function()
        local c, name = answered_by(bytes)
        local results = c:batch { { "orders_mark_purchase_tracked", MARK }, { "orders/mark-purchase-tracked", MARK } }
        for i = 1, 2 do
          local err = results[i][2]
          assert.equal("network", err.kind)
          assert.is_true(err.sent, tostring(err))
          assert.equal(1, err.attempts)
        end
        assert.equal(2, odd.count(srv, name))
        c:close()
      end)

      it(what .. ": a read is retried, as any broken transfer", function()
        local c, name = answered_by(bytes)
        local _, err = c:orders_get(GET)
        assert.equal("network", err.kind)
        assert.is_true(err.sent)
        assert.equal(3, err.attempts)
        assert.equal(3, odd.count(srv, name))
        c:close()
      end)
    end

    it("connection refused: sent = false, and even mark-purchase-tracked is tried again", function()
      local c = client("http://127.0.0.1:" .. h.closed_port())
      local _, err = c:orders_mark_purchase_tracked(MARK)
      assert.equal("network", err.kind)
      assert.is_false(err.sent)
      assert.equal(3, err.attempts)
      local results = c:batch { { "orders_mark_purchase_tracked", MARK } }
      assert.is_false(results[1][2].sent)
      assert.equal(3, results[1][2].attempts)
      c:close()
    end)

    -- libcurl counts a proxy's CONNECT as request bytes: they are not ours.
    it("a TLS failure behind a proxy's tunnel: tls, sent = false", function()
      local c = client("https://api.wemasy.invalid:3", { proxy = srv.url })
      local _, err = c:orders_mark_purchase_tracked(MARK)
      assert.equal("tls", err.kind, tostring(err))
      assert.is_false(err.sent)
      assert.equal(1, err.attempts)
      c:close()
    end)
  end)

  describe("response headers the server overdoes", function()
    -- libcurl 7.88.1 refuses a header line of 100 KiB or more (before our
    -- callback sees it) and more than 300 KiB of headers in all; the core's
    -- own cap (256 KiB, counted as libcurl counts) comes first for the latter.
    local TOO_LARGE = {
      { "100 000 headers", "/many/100000" },
      { "40 000 headers (320 KB as sent, under 256 KB as stored)", "/many/40000" },
      { "33 000 headers (264 KB)", "/many/33000" },
      { "one 10 MB header line", "/long/10000000" },
      { "one header line of exactly 100 KiB", "/long/102400" },
    }

    for _, case in ipairs(TOO_LARGE) do
      it(case[1] .. ": decode, reason too_large, not retried on a read", function()
        local name = odd.name()
        local c = client(srv.url .. "/c/" .. name .. case[2])
        local body, err = c:orders_get(GET)
        assert.is_nil(body)
        assert.equal("decode", err.kind, tostring(err))
        assert.equal("too_large", err.reason)
        assert.matches("header", err.message)
        assert.equal(1, err.attempts)
        assert.equal(1, odd.count(srv, name))
        c:close()
      end)
    end

    it("a proxy's CONNECT answer with 40 000 headers (libcurl counts them, the core is not shown them)", function()
      local c = client("https://api.wemasy.invalid:40000", { proxy = srv.url })
      local _, err = c:orders_get(GET)
      assert.equal("decode", err.kind, tostring(err))
      assert.equal("too_large", err.reason)
      assert.matches("libcurl", err.message)
      assert.is_false(err.sent)
      assert.equal(1, err.attempts)
      c:close()
    end)

    it("in a batch too", function()
      local name = odd.name()
      local c = client(srv.url .. "/c/" .. name .. "/many/100000")
      local results = c:batch { { "orders_get", GET }, { "orders_get", GET } }
      for i = 1, 2 do
        assert.equal("decode", results[i][2].kind)
        assert.equal("too_large", results[i][2].reason)
        assert.equal(1, results[i][2].attempts)
      end
      assert.equal(2, odd.count(srv, name))
      c:close()
    end)

    for _, case in ipairs { { "30 000 headers (240 KB)", "/many/30000" },
                            { "one header line just under 100 KiB", "/long/102390" } } do
      it(case[1] .. " still pass", function()
        local c = client(srv.url .. case[2])
        local body, err, res = c:orders_get(GET)
        assert.is_nil(err, err and tostring(err))
        assert.same({}, body)
        assert.equal(200, res.status)
        c:close()
      end)
    end
  end)

  describe("a 2xx body that is not a JSON object", function()
    local NOT_OBJECTS = {
      { "an array", "[1,2,3]", "array" },
      { "an empty array", " []", "array" },
      { "a string", '"ok"', "string" },
      { "a number", "42", "number" },
      { "true", "true", "boolean" },
      { "null", "null", "null" },
    }

    for _, b in ipairs(NOT_OBJECTS) do
      it(b[1] .. " from an endpoint of the table: decode, status 200", function()
        local c = client(odd.raw_url(srv, odd.name(), odd.response(200, {}, b[2])))
        local body, err = c:orders_get(GET)
        assert.is_nil(body)
        assert.equal("decode", err.kind)
        assert.equal(200, err.status)
        assert.equal("expected a JSON object, got " .. b[3], err.message)
        assert.equal(1, err.attempts)
        body, err = c:call("orders/get", GET)
        assert.is_nil(body)
        assert.equal("decode", err.kind)
        c:close()
      end)

      it(b[1] .. " in a batch: decode", function()
        local c = client(odd.raw_url(srv, odd.name(), odd.response(200, {}, b[2])))
        local results = c:batch { { "orders_get", GET } }
        assert.is_nil(results[1][1])
        assert.equal("decode", results[1][2].kind)
        c:close()
      end)
    end

    it("client:call to another path returns an array as it came", function()
      local c = client(odd.raw_url(srv, odd.name(), odd.response(200, {}, '[{"id":1},{"id":2}]')))
      local body, err, res = c:call("orders/list", {})
      assert.is_nil(err, err and tostring(err))
      assert.same({ { id = 1 }, { id = 2 } }, body)
      assert.equal(200, res.status)
      c:close()
    end)

    for _, b in ipairs { { '"ok"', "string" }, { "42", "number" }, { "false", "boolean" }, { "null", "null" } } do
      it("client:call to another path: a bare " .. b[2] .. " is decode", function()
        local c = client(odd.raw_url(srv, odd.name(), odd.response(200, {}, b[1])))
        local body, err = c:call("orders/list", {})
        assert.is_nil(body)
        assert.equal("decode", err.kind)
        assert.equal("expected a JSON object or array, got " .. b[2], err.message)
        c:close()
      end)
    end
  end)
end)
