-- Every fault the sandbox can inject, through the whole client (wemasy.new
-- over plain HTTP/1.1), on an idempotent endpoint (orders/detail) and a
-- non-idempotent one (orders/mark-purchase-tracked):
--
--   * the error kind (or the success after a permitted retry) and err.attempts;
--   * the time it took, against the client's timeout and backoff;
--   * what reached the server (the sandbox's request counters): exactly one
--     request per attempt, never a hidden extra;
--   * the next call on the same client gets its own, correct response.
--
-- README.md's "Faults" table is this file in prose.
local socket = require("socket")
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

local TIMEOUT = 1                        -- seconds, per attempt
local RETRIES = 2
local BACKOFF = { base = 0.05, cap = 0.1 }
local SLACK = os.getenv("WEMASY_UNDER_VALGRIND") and 3 or 1 -- seconds of scheduling slack

local SESSION = "b7c8d9e0f1a2b3c4d5e6" -- order 2503, ORD-2025-002, website 1

local IDEMPOTENT = {
  name = "orders/detail (idempotent)", path = "orders/detail",
  call = function(c) return c:orders_detail{ order_number = "ORD-2025-001" } end,
}
local NOT_IDEMPOTENT = {
  name = "orders/mark-purchase-tracked (not idempotent)", path = "orders/mark-purchase-tracked",
  call = function(c) return c:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = false } end,
}

-- What each fault must come to.  retried: the policy may send it again on an
-- idempotent endpoint; always_retried: on any endpoint (a 429 was refused,
-- nothing was processed).  spec: the sandbox fault.
local FAULTS = {
  { name = "reset before the response", spec = { kind = "reset_before" }, kind = "network", sent = true,
    retried = true, connection = true },
  { name = "reset after the headers", spec = { kind = "reset_after_headers" }, kind = "network", sent = true,
    retried = true, connection = true },
  { name = "headers that never come", spec = { kind = "no_headers", seconds = 5 }, kind = "timeout", sent = true,
    retried = true, slow = true },
  { name = "a body that trickles past the timeout", spec = { kind = "trickle", seconds = 4, interval = 0.2 },
    kind = "timeout", sent = true, retried = true, slow = true },
  { name = "a body shorter than its Content-Length", spec = { kind = "short_body", bytes = 200 },
    kind = "network", sent = true, retried = true, connection = true },
  { name = "500", spec = { kind = "status", status = 500 }, kind = "server", status = 500 },
  { name = "502", spec = { kind = "status", status = 502 }, kind = "server", status = 502, retried = true },
  { name = "503", spec = { kind = "status", status = 503 }, kind = "server", status = 503, retried = true },
  { name = "504", spec = { kind = "status", status = 504 }, kind = "server", status = 504, retried = true },
  { name = "a storm of 429s", spec = { kind = "rate_limited", retry_after = 1 }, kind = "rate_limited",
    status = 429, always_retried = true, waits = 1 },
  { name = "malformed JSON", spec = { kind = "malformed_json" }, kind = "decode", status = 200 },
  { name = "an HTML page", spec = { kind = "html" }, kind = "decode", status = 200, message = "text/html" },
  { name = "a 50 MB body", spec = { kind = "big_body" }, kind = "decode", reason = "too_large" },
  { name = "an empty 200", spec = { kind = "empty_200" }, kind = "decode", status = 200,
    message = "empty response body" },
  { name = "a JSON array for an object", spec = { kind = "status", status = 200, body = "[1,2,3]" },
    kind = "decode", status = 200, message = "expected a JSON object, got array" },
  { name = "a bare JSON string", spec = { kind = "status", status = 200, body = '"ok"' }, kind = "decode",
    status = 200, message = "expected a JSON object, got string" },
  { name = "a bare JSON number", spec = { kind = "status", status = 201, body = "42" }, kind = "decode",
    status = 201, message = "expected a JSON object, got number" },
  { name = "a redirect", spec = { kind = "redirect", location = "http://127.0.0.1:1/elsewhere" }, kind = "http",
    status = 302 },
}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

describe("faults", function()
  local sb = h.fresh_sandbox{ limits = { default = 100000, sync = 1000 } }

  local function new_client(extra)
    local opts = {
      base_url = sb.base_url, token = sandbox.tokens.merchant, timeout = TIMEOUT, connect_timeout = TIMEOUT,
      max_retries = RETRIES, backoff = BACKOFF,
      -- In-process, and roomy enough that only the server's word (a 429) ever waits.
      rate_limit = { shared = false, groups = { default = { limit = 1000, window = 60 } } },
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return wemasy.new(opts)
  end

  local function requests(path)
    return sb:state().requests[path] or 0
  end

  -- The next call on the same client: its own answer, nothing of the fault's.
  local function assert_next_call_correct(c, ep)
    local before = requests(ep.path)
    local body, err, res = ep.call(c)
    assert.is_nil(err, err and tostring(err))
    assert.equal(200, res.status)
    assert.equal(1, res.attempts)
    if ep == IDEMPOTENT then
      assert.equal(2502, body.data.order_id)
      assert.equal("ORD-2025-001", body.data.order_number)
    else
      assert.equal("ORD-2025-002", body.purchase.transaction_id)
      assert.is_false(body.already_tracked)
    end
    assert.equal(before + 1, requests(ep.path))
  end

  -- The bound a call must finish within: each attempt within the timeout,
  -- each backoff within its cap (or the server's Retry-After).
  local function bound(f, attempts)
    return attempts * TIMEOUT + (attempts - 1) * math.max(BACKOFF.cap, f.waits or 0) + SLACK
  end

  -- warm: the fault meets a kept-alive connection that served a call before.
  -- libcurl re-sends a request by itself when such a connection dies before
  -- any response byte; the core must not let it (the counters would show it).
  local function fault_case(f, ep, warm)
    local retried = f.always_retried or (f.retried and ep == IDEMPOTENT)
    local attempts = retried and RETRIES + 1 or 1
    it(f.name .. " on " .. ep.name .. (warm and ", on a reused connection" or "") .. ": " .. f.kind
       .. " after " .. attempts .. " attempt(s)", function()
      local c = new_client()
      if warm then assert_next_call_correct(c, ep) end
      local spec = copy(f.spec)
      spec.path, spec.count = ep.path, -1 -- every attempt meets the fault
      sb:fault(spec)
      local before = requests(ep.path)
      local t0 = socket.gettime()
      local body, err = ep.call(c)
      local elapsed = socket.gettime() - t0
      assert.is_nil(body)
      assert.truthy(wemasy.is_error(err))
      assert.equal(f.kind, err.kind, tostring(err))
      assert.equal(attempts, err.attempts, tostring(err))
      assert.equal(ep.path, err.endpoint)
      if f.status then assert.equal(f.status, err.status) end
      if f.reason then assert.equal(f.reason, err.reason) end
      if f.sent ~= nil then assert.equal(f.sent, err.sent) end
      if f.message then assert.truthy(err.message:find(f.message, 1, true), err.message) end
      if f.kind == "rate_limited" then assert.equal(1, err.retry_after) end
      assert.is_string(tostring(err))
      -- Exactly what was re-sent reached the server, nothing more.
      assert.equal(before + attempts, requests(ep.path))
      assert.is_true(elapsed < bound(f, attempts), ("took %.2f s, bound %.2f s"):format(elapsed, bound(f, attempts)))
      if f.slow then
        assert.is_true(elapsed >= attempts * TIMEOUT * 0.9, ("took %.2f s"):format(elapsed))
      end
      sb:clear_faults()
      assert_next_call_correct(c, ep)
      c:close()
    end)
  end

  for _, f in ipairs(FAULTS) do
    fault_case(f, IDEMPOTENT)
    fault_case(f, NOT_IDEMPOTENT)
    if f.connection then
      fault_case(f, IDEMPOTENT, true)
      fault_case(f, NOT_IDEMPOTENT, true)
    end

    if f.retried or f.always_retried then
      it(f.name .. " once on " .. IDEMPOTENT.name .. ": succeeds on the retry", function()
        local c = new_client()
        local spec = copy(f.spec)
        spec.path, spec.count = IDEMPOTENT.path, 1
        sb:fault(spec)
        local before = requests(IDEMPOTENT.path)
        local t0 = socket.gettime()
        local body, err, res = IDEMPOTENT.call(c)
        local elapsed = socket.gettime() - t0
        assert.is_nil(err, err and tostring(err))
        assert.equal(2, res.attempts)
        assert.equal(2502, body.data.order_id)
        assert.equal(before + 2, requests(IDEMPOTENT.path))
        assert.is_true(elapsed < bound(f, 2), ("took %.2f s"):format(elapsed))
        assert_next_call_correct(c, IDEMPOTENT)
        c:close()
      end)
    end
  end

  it("a 50 MB body passes with a max_body that allows it", function()
    local c = new_client{ max_body = 64 * 1024 * 1024 }
    sb:fault{ kind = "big_body", path = "orders/detail" }
    local body, err, res = IDEMPOTENT.call(c)
    assert.is_nil(err, err and tostring(err))
    assert.equal(200, res.status)
    assert.equal(52428800, tonumber(res.headers["content-length"]))
    assert.equal("big body", body.message)
    assert_next_call_correct(c, IDEMPOTENT)
    c:close()
  end)

  it("a 50 MB body over a small max_body stops early, not after reading it all", function()
    local c = new_client{ max_body = 256 * 1024 }
    sb:fault{ kind = "big_body", path = "orders/detail" }
    local t0 = socket.gettime()
    local _, err = IDEMPOTENT.call(c)
    assert.equal("decode", err.kind)
    assert.equal("too_large", err.reason)
    assert.equal(1, err.attempts)
    assert.is_true(socket.gettime() - t0 < SLACK)
    assert_next_call_correct(c, IDEMPOTENT)
    c:close()
  end)

  it("a Retry-After beyond max_wait fails at once, sending nothing more", function()
    local c = new_client{ rate_limit = { shared = false, max_wait = 0.5,
                                         groups = { default = { limit = 1000, window = 60 } } } }
    sb:fault{ kind = "rate_limited", retry_after = 30, path = "orders/detail", count = -1 }
    local t0 = socket.gettime()
    local _, err = IDEMPOTENT.call(c)
    assert.equal("rate_limited", err.kind)
    assert.equal(1, err.attempts)
    assert.equal(30, err.retry_after)
    assert.is_true(socket.gettime() - t0 < SLACK)
    assert.equal(1, requests("orders/detail"))
    -- The group stays closed for the server's 30 s: the next call says so
    -- at once (attempts 0), sending nothing.
    local _, again = IDEMPOTENT.call(c)
    assert.equal("rate_limited", again.kind)
    assert.equal(0, again.attempts)
    assert.equal(1, requests("orders/detail"))
    c:close()
  end)

  it("faults on one endpoint leave a batch's other calls their own answers", function()
    local c = new_client()
    sb:fault{ kind = "reset_before", path = "orders/mark-purchase-tracked", count = -1 }
    sb:fault{ kind = "malformed_json", path = "orders/get", count = -1 }
    local results = c:batch({
      { "orders_detail", { order_number = "ORD-2025-001" } },
      { "orders_mark_purchase_tracked", { website_id = 1, order_session = SESSION, mark = false } },
      { "orders_get", { website_id = 1, order_session = SESSION, email = "john@example.com" } },
      { "orders_detail", { order_number = "ORD-2025-002" } },
    }, { concurrency = 4 })
    assert.equal(2502, results[1][1].data.order_id)
    assert.equal("network", results[2][2].kind)
    assert.equal(1, results[2][2].attempts)
    assert.equal("decode", results[3][2].kind)
    assert.equal(2503, results[4][1].data.order_id)
    c:close()
  end)
end)
