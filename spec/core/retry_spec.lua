-- Specs for the retry policy of wemasy.core's client:request: what is
-- retried, how often, after how long, and what `sent` and `attempts` say.
-- Clock, sleep and random are injected, so backoff takes no real time; the
-- server (tiny_server) counts what really arrived.
local core = require "wemasy.core"
local h = require "support.helpers"

local srv = h.tiny_server()

-- A fresh counter name on the server: "/c/<name>/<route>" counts, count(name) tells.
local function counter() return h.counter("n") end
local function count(name) return h.count(srv, name) end

-- c:request's results for a failure: no status, this kind, whether a byte
-- was sent, how many tries were made.
local function assert_failure(kind, sent, attempts, status, got_kind, _, got_sent, got_attempts)
  assert.is_nil(status)
  assert.equal(kind, got_kind)
  assert.equal(sent, got_sent)
  assert.equal(attempts, got_attempts)
end

-- An idempotent request of `route` fails with `kind` after `attempts` tries,
-- each of which reached the server.
local function assert_tried(c, route, kind, attempts)
  local name = counter()
  local _, got_kind, _, _, got_attempts = c:request("/c/" .. name .. route, "{}", true, nil, true)
  assert.equal(kind, got_kind)
  assert.equal(attempts, got_attempts)
  assert.equal(attempts, count(name))
end

-- A client with fake time and a fixed random number.
local function client(opts, random)
  local t = h.fake_time()
  opts = opts or {}
  opts.base_url = opts.base_url or srv.url
  opts.clock, opts.sleep = t.clock, t.sleep
  opts.random = function() return random or 0.5 end
  opts.rate_limit = opts.rate_limit or { shared = false, groups = { default = { limit = 1000, window = 1 } } }
  -- Retries are what these count: the breaker would cut a run of 5xx short.
  if opts.breaker == nil then opts.breaker = false end
  return core.new(opts), t
end

describe("wemasy.core retries", function()
  describe("of HTTP statuses", function()
    -- /status/<code>, idempotent or not: the status comes back after
    -- `attempts` tries, each of which reached the server, with these sleeps.
    local function assert_status(code, idempotent, attempts, sleeps)
      local c, t = client()
      local name = counter()
      local flag = idempotent or nil
      local status, _, _, got = c:request("/c/" .. name .. "/status/" .. code, "{}", flag, nil, flag)
      assert.equal(code, status)
      assert.equal(attempts, got)
      assert.equal(attempts, count(name))
      assert.same(sleeps, t.sleeps)
      c:close()
    end

    for _, code in ipairs { 502, 503, 504 } do
      it("retries " .. code .. " on an idempotent call up to max_retries", function()
        assert_status(code, true, 3, { 0.25, 0.5 }) -- random 0.5 * 0.5, 0.5 * 1.0
      end)

      it("does not retry " .. code .. " on a non-idempotent call", function()
        assert_status(code, false, 1, {})
      end)
    end

    for _, code in ipairs { 400, 401, 403, 404, 422, 500 } do
      it("never retries " .. code .. ", even when idempotent", function()
        assert_status(code, true, 1, {})
      end)
    end

    it("stops at max_retries and says how many tries were made", function()
      for _, n in ipairs { 0, 1, 4 } do
        local c = client { max_retries = n }
        local name = counter()
        local _, _, _, attempts = c:request("/c/" .. name .. "/status/503", "{}", true, nil, true)
        assert.equal(n + 1, attempts)
        assert.equal(n + 1, count(name))
        c:close()
      end
    end)
  end)

  describe("of 429", function()
    -- A request (not idempotent) that the server answers 429 with
    -- Retry-After: `seconds`: the 429 comes back after `attempts` tries, each
    -- of which reached the server.
    local function assert_429(c, seconds, attempts)
      local name = counter()
      local status, _, headers, got = c:request("/c/" .. name .. "/429/" .. seconds, "{}")
      assert.equal(429, status)
      assert.equal(tostring(seconds), headers["retry-after"])
      assert.equal(attempts, got)
      assert.equal(attempts, count(name))
    end

    it("retries a non-idempotent call after Retry-After: the server refused it", function()
      local c, t = client({}, 0.1)
      assert_429(c, 2, 3)
      -- never shorter than Retry-After, whatever the jitter says
      assert.same({ 2, 2 }, t.sleeps)
      c:close()
    end)

    it("uses the backoff when it is longer than Retry-After", function()
      local c, t = client({ backoff = { base = 4, cap = 8 } }, 0.75)
      c:request("/429/2", "{}")
      assert.same({ 3, 6 }, t.sleeps)
      c:close()
    end)

    it("understands Retry-After as an HTTP date", function()
      local c, t = client({ max_retries = 1 }, 0)
      c:request("/429date/5", "{}")
      assert.equal(1, #t.sleeps)
      assert.is_true(t.sleeps[1] > 3 and t.sleeps[1] <= 6, t.sleeps[1])
      c:close()
    end)

    it("returns the 429 at once when Retry-After is beyond max_wait", function()
      local c, t = client { rate_limit = { shared = false, max_wait = 10 } }
      assert_429(c, 60, 1)
      assert.same({}, t.sleeps)
      c:close()
    end)
  end)

  describe("backoff", function()
    it("is full jitter: random times base * 2^(try - 1), capped", function()
      local c, t = client({ max_retries = 5, backoff = { base = 1, cap = 6 } }, 0.999)
      c:request("/status/503", "{}", true, nil, true)
      local want = { 0.999, 1.998, 3.996, 5.994, 5.994 }
      assert.equal(#want, #t.sleeps)
      for i, w in ipairs(want) do
        assert.is_true(math.abs(t.sleeps[i] - w) < 1e-9, "sleep " .. i .. ": " .. t.sleeps[i])
      end
      c:close()
    end)

    it("stays within [0, min(cap, base * 2^(try - 1))) for any random number", function()
      for _, r in ipairs { 0, 0.1, 0.5, 0.9, 0.999999 } do
        local c, t = client({ max_retries = 4 }, r)
        c:request("/status/502", "{}", true, nil, true)
        for i, s in ipairs(t.sleeps) do
          assert.is_true(s >= 0 and s <= math.min(8, 0.5 * 2 ^ (i - 1)), s)
        end
        c:close()
      end
    end)

    it("keeps the bounds when the random hook misbehaves", function()
      for _, r in ipairs { -5, 7, 0 / 0 } do
        local c, t = client({ max_retries = 1 }, r)
        c:request("/status/503", "{}", true, nil, true)
        assert.is_true(#t.sleeps == 0 or (t.sleeps[1] >= 0 and t.sleeps[1] <= 0.5))
        c:close()
      end
    end)

    it("sleeps for real without hooks, briefly with a tiny backoff", function()
      local socket = require "socket"
      local c = core.new { base_url = srv.url, rate_limit = false, backoff = { base = 0.05, cap = 0.05 } }
      local t0 = socket.gettime()
      local _, _, _, attempts = c:request("/status/503", "{}", true, nil, true)
      assert.equal(3, attempts)
      assert.is_true(socket.gettime() - t0 < 1)
      c:close()
    end)
  end)

  describe("of transport failures", function()
    it("re-sends a non-idempotent call after connection refused: it never left", function()
      local c, t = client { base_url = "http://127.0.0.1:" .. h.closed_port() }
      assert_failure("network", false, 3, c:request("/echo", "{}"))
      assert.equal(2, #t.sleeps)
      c:close()
    end)

    it("calls a timeout before any request byte left 'not sent', and re-sends it", function()
      -- A listener that never accepts: TCP connects, the TLS handshake never
      -- finishes, so the HTTP request is never handed to the connection.
      local socket = require "socket"
      local mute = assert(socket.bind("127.0.0.1", 0))
      local _, port = mute:getsockname()
      local c = client { base_url = "https://127.0.0.1:" .. port, timeout = 0.2 }
      local status, kind, _, sent, attempts = c:request("/echo", "{}")
      mute:close()
      assert.is_nil(status)
      assert.equal("timeout", kind)
      assert.is_false(sent)
      assert.equal(3, attempts)
      c:close()
    end)

    it("does not re-send a non-idempotent call after a timeout", function()
      local c, t = client { timeout = 0.2 }
      local name = counter()
      assert_failure("timeout", true, 1, c:request("/c/" .. name .. "/sleep/1500", "{}"))
      assert.equal(1, count(name))
      assert.same({}, t.sleeps)
      c:close()
    end)

    it("re-sends an idempotent call after a timeout", function()
      local c = client { timeout = 0.2, max_retries = 1 }
      assert_tried(c, "/sleep/1500", "timeout", 2)
      c:close()
    end)

    it("does not re-send a non-idempotent call after a reset mid-response", function()
      local c = client()
      local name = counter()
      assert_failure("network", true, 1, c:request("/c/" .. name .. "/reset", "{}"))
      assert.equal(1, count(name))
      -- idempotent: it is
      assert_tried(c, "/reset", "network", 3)
      c:close()
    end)

    it("never retries a TLS failure", function()
      local c, t = client { base_url = srv.url:gsub("^http:", "https:") }
      assert_failure("tls", false, 1, c:request("/echo", "{}", true, nil, true))
      assert.same({}, t.sleeps)
      c:close()
    end)

    it("never retries a response over max_body", function()
      local c = client { max_body = 100 }
      assert_tried(c, "/big/5000", "too_large", 1)
      c:close()
    end)

    it("never shows the previous response to the next call", function()
      local c = client { timeout = 0.2 }
      c:request("/nul", "{}")
      assert.is_nil((c:request("/sleep/1000", "{}", true, nil, true)))
      local status, body, headers = c:request("/echo", "after")
      assert.equal(200, status)
      assert.equal("after", body:match("\r\n\r\n(.*)$"))
      assert.is_nil(headers["x-final"])
      assert.is_nil((c:request("/reset", "{}")))
      status, body = c:request("/status/404", "{}")
      assert.equal(404, status)
      assert.equal('{"status":404}', body)
      c:close()
    end)
  end)

  describe("hooks", function()
    it("raises a sleep hook's error, and the client stays usable", function()
      local c = core.new { base_url = srv.url, rate_limit = false,
                           sleep = function() error("no sleeping") end }
      local ok, err = pcall(c.request, c, "/status/503", "{}", true, nil, true)
      assert.is_false(ok)
      assert.matches("no sleeping", err)
      assert.equal(200, (c:request("/echo", "{}")))
      c:close()
    end)

    it("raises a random hook's error", function()
      local c = core.new { base_url = srv.url, rate_limit = false,
                           random = function() error("no dice") end }
      local ok, err = pcall(c.request, c, "/status/503", "{}", true, nil, true)
      assert.is_false(ok)
      assert.matches("no dice", err)
      c:close()
    end)
  end)
end)
