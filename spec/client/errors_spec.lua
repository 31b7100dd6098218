local errors = require("wemasy.errors")

local H = { ["x-ratelimit-limit"] = "60", ["x-ratelimit-remaining"] = "57", ["content-type"] = "application/json" }
-- The core's reading of H's quota headers: retry_after, limit, remaining.
local NO_WAIT, LIMIT, REMAINING = nil, 60, 57

describe("error mapping", function()
  it("returns body, nil, res on success", function()
    local body, err, res = errors.from_response("orders/detail", 200, '{"error":false,"data":{"x":1}}', H, NO_WAIT,
      LIMIT, REMAINING)
    assert.is_nil(err)
    assert.equal(1, body.data.x)
    assert.same({ limit = 60, remaining = 57 }, res.rate_limit)
    assert.equal(200, res.status)
  end)

  local cases = {
    { 401, '{"error":true,"message":"Unauthenticated."}', "unauthenticated", "Unauthenticated." },
    { 403, '{"error":true,"message":"This action is unauthorized."}', "forbidden" },
    { 404, '{"error":true,"message":"Order not found"}', "not_found", "Order not found" },
    { 422, '{"message":"The order id field is required.","errors":{"order_id":["The order id field is required."]}}',
      "validation", "The order id field is required." },
    { 429, '{"error":true,"message":"Too Many Attempts."}', "rate_limited" },
    { 500, "<html>oops</html>", "server", "HTTP 500 Internal Server Error" },
    { 503, "", "server" },
    { 302, "", "http", "HTTP 302" },
    { 400, '{"message":"bad"}', "http", "bad" },
    { 200, '{"error":true,"message":"Order locked"}', "api", "Order locked" },
    { 200, "not json", "decode" },
    { 200, "", "decode", "empty response body" },
  }
  for _, c in ipairs(cases) do
    it(("maps %d %s to %s"):format(c[1], c[2]:sub(1, 20), c[3]), function()
      local body, err = errors.from_response("orders/detail", c[1], c[2], H, NO_WAIT, LIMIT, REMAINING)
      assert.is_nil(body)
      assert.equal(c[3], err.kind)
      assert.equal("orders/detail", err.endpoint)
      assert.equal(c[1], err.status)
      if c[4] then assert.equal(c[4], err.message) end
      assert.same({ limit = 60, remaining = 57 }, err.rate_limit)
    end)
  end

  it("carries the field errors of a 422 and the core's Retry-After of a 429", function()
    local _, err = errors.from_response("orders/get", 422, '{"message":"m","errors":{"email":["a","b"]}}', H)
    assert.same({ email = { "a", "b" } }, err.errors)
    _, err = errors.from_response("orders/get", 429, "{}", { ["retry-after"] = "17" }, 17)
    assert.equal(17, err.retry_after)
  end)

  it("reads no quota header itself: the values are the core's", function()
    local _, _, res = errors.from_response("orders/get", 200, "{}", { ["x-ratelimit-limit"] = "60",
      ["x-ratelimit-remaining"] = "5" })
    assert.same({}, res.rate_limit)
    local _, err = errors.from_response("orders/get", 429, "{}", { ["retry-after"] = "17" })
    assert.is_nil(err.retry_after)
  end)

  it("says which Content-Type came back when the body is not JSON", function()
    local _, err = errors.from_response("orders/get", 200, "<html>", { ["content-type"] = "text/html" })
    assert.equal("decode", err.kind)
    assert.matches("Content%-Type: text/html", err.message)
  end)

  it("prints one readable line", function()
    local _, err = errors.from_response("orders/detail", 404, '{"error":true,"message":"Order\nnot found"}', H)
    assert.equal("wemasy not_found 404 on orders/detail: Order not found", tostring(err))
  end)

  it("redacts the token wherever a server or transport echoes it", function()
    local _, err = errors.from_response("orders/get", 401,
      '{"error":true,"message":"bad token sekret123 sekret123","data":{"t":"sekret123"}}', { h = "sekret123" })
    errors.redact(err, "sekret123")
    assert.equal("bad token [REDACTED] [REDACTED]", err.message)
    assert.equal("[REDACTED]", err.body.data.t)
    assert.equal("[REDACTED]", err.headers.h)
    assert.not_matches("sekret123", tostring(err))
  end)

  it("maps transport failures", function()
    assert.equal("timeout", errors.from_transport("x", "timeout", "m").kind)
    assert.equal("tls", errors.from_transport("x", "tls", "m").kind)
    assert.equal("network", errors.from_transport("x", "network", "m").kind)
    local too_large = errors.from_transport("x", "too_large", "m")
    assert.equal("decode", too_large.kind)
    assert.equal("too_large", too_large.reason)
    assert.equal("invalid_argument", errors.from_transport("x", "closed", "client is closed").kind)
  end)

  -- The core names its kinds once (core.kinds); wemasy.errors maps each to
  -- the contract's, so a kind added in C without a mapping fails here instead
  -- of reaching callers as "network".
  it("maps every kind the core reports to a kind of the contract", function()
    local core = require("wemasy.core")
    assert.is_table(core.kinds)
    assert.is_true(#core.kinds >= 11)
    for _, kind in ipairs(core.kinds) do
      local err = errors.from_transport("x", kind, "m")
      assert.truthy(errors.kinds[err.kind], kind)
      assert.truthy(errors.core_kinds()[kind], "core kind '" .. kind .. "' has no mapping in wemasy.errors")
    end
    -- A malformed batch item, caught by the core before sending.
    assert.equal("invalid_argument", errors.from_transport("x", "invalid_argument", "item.path must be a string").kind)
  end)
end)
