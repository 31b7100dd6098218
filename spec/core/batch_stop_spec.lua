-- A batch stops sending what the server has refused: after a 401 no item
-- that needs the token is started (each gets unauthenticated, attempts = 0),
-- after a 403 no item of that endpoint; the sandbox's counters prove what
-- went out.  (issue 17, item 4)
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

local tokens = sandbox.tokens
local SESSION, EMAIL = "abc123def456ghi789", "john@example.com"

describe("a batch refused by the server", function()
  local sb = h.fresh_sandbox()

  local function client(token, opts)
    opts = opts or {}
    opts.base_url, opts.token, opts.rate_limit = sb.base_url, token, { shared = false }
    return wemasy.new(opts)
  end

  local function details(n)
    local calls = {}
    for i = 1, n do calls[i] = { "orders_detail", { order_number = "ORD-2025-001" } } end
    return calls
  end

  -- Results by what happened: sent (with the server's answer) or not sent.
  local function split(results)
    local sent, unsent = {}, {}
    for i, r in ipairs(results) do
      local err = r[2]
      if err and err.attempts == 0 then unsent[#unsent + 1] = i else sent[#sent + 1] = i end
    end
    return sent, unsent
  end

  for _, concurrency in ipairs{ 1, 8 } do
    it("sends no more after a 401, concurrency " .. concurrency, function()
      local stranger = client("not-a-known-token")
      local results = stranger:batch(details(24), { concurrency = concurrency })
      assert.equal(24, #results)
      local sent, unsent = split(results)
      local requests = sb:state().requests["orders/detail"]
      assert.equal(#sent, requests)
      assert.is_true(requests >= 1 and requests <= concurrency, "sent " .. requests)
      for _, i in ipairs(sent) do
        assert.equal("unauthenticated", results[i][2].kind)
        assert.equal(401, results[i][2].status)
      end
      for _, i in ipairs(unsent) do
        local err = results[i][2]
        assert.equal("unauthenticated", err.kind)
        assert.is_nil(err.status)
        assert.is_false(err.sent)
        assert.equal("orders/detail", err.endpoint)
        assert.matches("401", err.message)
      end
    end)

    it("still runs Public endpoints after a 401 (they take no token), concurrency " .. concurrency, function()
      local stranger = client("not-a-known-token")
      local calls = details(12)
      for i = 13, 18 do calls[i] = { "orders_get", { website_id = 1, order_session = SESSION, email = EMAIL } } end
      local results = stranger:batch(calls, { concurrency = concurrency })
      for i = 13, 18 do assert.is_table(results[i][1], tostring(results[i][2])) end
      local requests = sb:state().requests
      assert.equal(6, requests["orders/get"])
      assert.is_true(requests["orders/detail"] <= concurrency)
    end)

    it("sends no more to an endpoint after its 403, and goes on with the others, concurrency "
       .. concurrency, function()
      local customer = client(tokens.customer)
      local calls = {}
      for i = 1, 24, 2 do
        calls[i] = { "orders_detail", { order_number = "ORD-2025-001" } }       -- 403 for a customer
        calls[i + 1] = { "customer_orders_get", { order_id = 2502 } }          -- the customer's own order
      end
      local results = customer:batch(calls, { concurrency = concurrency })
      local requests = sb:state().requests
      assert.equal(12, requests["customer/orders/get"])
      assert.is_true(requests["orders/detail"] >= 1 and requests["orders/detail"] <= concurrency,
        "sent " .. tostring(requests["orders/detail"]))
      local refused, unsent = 0, 0
      for i = 1, 24, 2 do
        local err = results[i][2]
        assert.equal("forbidden", err.kind)
        if err.attempts == 0 then
          unsent = unsent + 1
          assert.is_nil(err.status)
          assert.matches("403", err.message)
        else
          refused = refused + 1
          assert.equal(403, err.status)
        end
        assert.equal(2502, results[i + 1][1].data.order.id)
      end
      assert.equal(requests["orders/detail"], refused)
      assert.equal(12 - refused, unsent)
    end)
  end

  it("does not retry an item backing off when another one got the 401", function()
    -- The first try of item 1 is a 503 (a read: retried after the backoff);
    -- item 2 goes meanwhile (random = 1: the backoff is the whole second) and gets the 401.
    sb:fault{ kind = "status", status = 503, path = "orders/detail", count = 1 }
    local stranger = client("not-a-known-token", { backoff = { base = 1, cap = 1 }, random = function() return 1 end })
    local results = stranger:batch(details(4), { concurrency = 1 })
    assert.equal(2, sb:state().requests["orders/detail"])
    assert.equal("unauthenticated", results[1][2].kind)
    assert.equal(1, results[1][2].attempts)
    assert.is_nil(results[1][2].status)
    assert.equal(401, results[2][2].status)
    for i = 3, 4 do assert.equal(0, results[i][2].attempts) end
  end)

  it("reports the items it did not send to the hooks, with attempts = 0", function()
    local seen = {}
    local stranger = client("not-a-known-token",
      { hooks = { on_response = function(info) seen[#seen + 1] = info end } })
    stranger:batch(details(5), { concurrency = 1 })
    assert.equal(5, #seen)
    assert.equal(1, seen[1].attempts)
    for i = 2, 5 do
      assert.equal(0, seen[i].attempts)
      assert.equal("unauthenticated", seen[i].kind)
    end
    assert.equal(1, sb:state().requests["orders/detail"])
  end)
end)
