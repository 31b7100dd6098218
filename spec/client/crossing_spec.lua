-- wemasy.client.request and wemasy.client.outcome: the two halves of a call
-- that wemasy.ngx runs in two VMs (the request and the core's undecoded
-- values in a thread VM, decoding and error mapping in the worker's).
-- Together they must give exactly what the client's method gives.
local wemasy = require("wemasy")
local plain = require("wemasy.client")
local methods = require("wemasy.methods")
local h = require("support.helpers")

local unpack = table.unpack or unpack

local function pack(...) return { n = select("#", ...), ... } end

describe("wemasy.client.request + outcome", function()
  local sb = h.fresh_sandbox{ window = 60, limits = { default = 1000, sync = 100 } }

  local function client(opts) return h.sandbox_client(sb, opts) end

  -- What crosses back from the thread VM: all of request's values.
  local function halves(c, body)
    local path, text, group, idempotent = methods.prepare(methods.target_of("orders_detail"), body, true, 1e6)
    local crossed = pack(plain.request(c, path, text, group, idempotent))
    local state = crossed[1]
    local limits = function() return state or nil end
    return state, plain.outcome(c, methods.state(c), limits, path, group, unpack(crossed, 2, crossed.n))
  end

  it("gives the method's body and res for an answer, the body as text until outcome decodes it", function()
    local c = client()
    local crossed = pack(plain.request(c, "orders/detail", '{"order_number":"ORD-2025-001"}', "default",
      true))
    assert.equal(8, crossed.n)
    assert.is_false(crossed[1]) -- not rate limited: no limiter state
    assert.equal(200, crossed[2])
    assert.equal("string", type(crossed[3]))
    local state, body, err, res = halves(c, { order_number = "ORD-2025-001" })
    assert.is_false(state)
    local body2, err2, res2 = c:orders_detail{ order_number = "ORD-2025-001" }
    assert.is_nil(err)
    assert.is_nil(err2)
    assert.same(body2, body)
    -- The same res but for the quota left (one more request was made).
    assert.equal(res.rate_limit.remaining - 1, res2.rate_limit.remaining)
    res.rate_limit.remaining, res.headers["x-ratelimit-remaining"] = nil, nil
    res2.rate_limit.remaining, res2.headers["x-ratelimit-remaining"] = nil, nil
    res.headers.date, res2.headers.date = nil, nil
    assert.same(res2, res)
    c:close()
  end)

  it("gives the method's error, redacted, for a failure", function()
    local c = client{ token = "spec-crossing-unknown-token" }
    local _, body, err = halves(c, { order_number = "ORD-2025-001" })
    local _, err2 = c:orders_detail{ order_number = "ORD-2025-001" }
    assert.is_nil(body)
    assert.equal("unauthenticated", err.kind)
    assert.is_true(wemasy.is_error(err))
    for _, e in ipairs{ err, err2 } do e.headers, e.rate_limit = nil, nil end
    assert.same(err2, err)
    assert.equal(tostring(err2), tostring(err))
    c:close()
    h.forget_tokens(sb.base_url)
  end)

  it("brings the limiter state with a rate_limited answer: the error's group and closed_for", function()
    sb:fault{ kind = "rate_limited", retry_after = 30, path = "orders/detail" }
    local c = client{ max_retries = 0, rate_limit = { shared = false, wait = false } }
    local state, _, err = halves(c, { order_number = "ORD-2025-001" })
    assert.equal("table", type(state))
    assert.is_true(state.closed_for > 29 and state.closed_for <= 30, state.closed_for)
    assert.equal("rate_limited", err.kind)
    assert.equal("default", err.group)
    assert.equal(state.closed_for, err.closed_for)
    -- Refused by the client's own limiter now: a core kind, and the state again.
    local state2, _, err2 = halves(c, { order_number = "ORD-2025-001" })
    assert.equal("table", type(state2))
    assert.equal("rate_limited", err2.kind)
    assert.is_false(err2.sent)
    assert.is_true(err2.closed_for > 29, err2.closed_for)
    c:close()
  end)

  it("says which of the core's values are rate_limited", function()
    assert.is_true(plain.rate_limited(429))
    assert.is_false(plain.rate_limited(200))
    assert.is_false(plain.rate_limited(503))
    assert.is_true(plain.rate_limited(nil, "rate_limited"))
    assert.is_false(plain.rate_limited(nil, "timeout"))
  end)
end)
