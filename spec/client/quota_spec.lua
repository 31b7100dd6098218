-- The client's limiter against the sandbox's Laravel-style throttle (a fixed
-- window per token that starts at the first request): separate OS processes
-- on one token share one quota and never get a 429.
local core = require("wemasy.core")
local helpers = require("support.helpers")
local sandbox = require("wemasy.sandbox")
local wemasy = require("wemasy")

local WINDOW, LIMIT = 1, 8

-- A worker: calls orders/detail until `seconds` have passed, then prints
-- "ok=<n> limited=<n> other=<n>".  max_retries = 0 makes a server 429 visible.
local WORKER = [[
local wemasy = require("wemasy")
local base_url, token, seconds, limit, window = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local client = wemasy.new{ base_url = base_url, token = token, max_retries = 0,
  rate_limit = { shared = true, max_wait = 60, groups = { default = { limit = limit, window = window } } } }
local counts = { ok = 0, limited = 0, other = 0 }
local deadline = os.time() + seconds
while os.time() < deadline do
  local body, err = client:orders_detail{ order_number = "ORD-2025-001" }
  if body then counts.ok = counts.ok + 1
  elseif err.kind == "rate_limited" then counts.limited = counts.limited + 1
  else counts.other = counts.other + 1; io.stderr:write(tostring(err), "\n") end
end
print(string.format("ok=%d limited=%d other=%d", counts.ok, counts.limited, counts.other))
]]

local function run_workers(base_url, token, n, seconds)
  local children = {}
  for i = 1, n do
    children[i] = helpers.spawn(WORKER, { base_url, token, seconds, LIMIT, WINDOW })
  end
  local total = { ok = 0, limited = 0, other = 0 }
  for _, child in ipairs(children) do
    local out = helpers.finish(child)
    local ok, limited, other = out:match("ok=(%d+) limited=(%d+) other=(%d+)")
    assert(ok, "worker printed: " .. out)
    total.ok = total.ok + tonumber(ok)
    total.limited = total.limited + tonumber(limited)
    total.other = total.other + tonumber(other)
  end
  return total
end

describe("one quota for several processes against the sandbox", function()
  local sb = helpers.sandbox{ window = WINDOW, limits = { default = LIMIT, sync = 5 } }

  for _, n in ipairs{ 2, 4 } do
    it(n .. " processes on one token get no 429 and use most of the quota", function()
      local token = sandbox.tokens.merchant
      finally(function() core._debug_unlink(sb.base_url, token) end)
    sb:reset()
      core._debug_unlink(sb.base_url, token)
      local seconds = 4
      local total = run_workers(sb.base_url, token, n, seconds)
      local state = sb:state()
      assert.equal(0, total.limited)
      assert.equal(0, total.other)
      assert.equal(total.ok, state.requests["orders/detail"])
      -- The limiter keeps LIMIT per WINDOW + 0.25 s margin: over `seconds` (plus
      -- the last second os.time() rounds off) that allows about this many.
      local ceiling = LIMIT * math.ceil((seconds + 1) / WINDOW)
      local expected = LIMIT * math.floor(seconds / (WINDOW + 0.25))
      assert.is_true(total.ok <= ceiling, total.ok .. " > " .. ceiling)
      assert.is_true(total.ok >= expected * 0.9, total.ok .. " < 0.9 × " .. expected)
    end)
  end

  it("without sharing, the same processes do get 429s (the control)", function()
    local token = sandbox.tokens.merchant_no_finance
    sb:reset()
    local control = WORKER:gsub("shared = true", "shared = false")
    local children = {}
    for i = 1, 4 do children[i] = helpers.spawn(control, { sb.base_url, token, 2, LIMIT, WINDOW }) end
    local limited = 0
    for _, child in ipairs(children) do
      limited = limited + tonumber(helpers.finish(child):match("limited=(%d+)") or 0)
    end
    assert.is_true(limited > 0)
  end)

  it("a 429 from the server closes the group for every client sharing the token", function()
    local token = sandbox.tokens.merchant
    finally(function() core._debug_unlink(sb.base_url, token) end)
    core._debug_unlink(sb.base_url, token)
    sb:reset()
    local function shop(wait)
      return wemasy.new{ base_url = sb.base_url, token = token, max_retries = 0,
        rate_limit = { wait = wait, groups = { default = { limit = LIMIT, window = WINDOW } } } }
    end
    local first, second = shop(true), shop(false)
    sb:fault{ kind = "rate_limited", path = "orders/detail", retry_after = 3 }
    local _, err = first:orders_detail{ order_number = "ORD-2025-001" }
    assert.equal("rate_limited", err.kind)
    assert.equal(429, err.status)
    assert.equal(3, err.retry_after)
    -- The other client (think: another nginx worker) does not even try.
    local before = sb:state().total_requests
    local _, err2 = second:customer_orders_get{ order_id = 2502 }
    assert.equal("rate_limited", err2.kind)
    assert.is_nil(err2.status)
    assert.equal(0, err2.attempts)
    assert.is_true(err2.retry_after > 2 and err2.retry_after <= 3.5, tostring(err2.retry_after))
    assert.is_true(second:rate_limit().closed_for > 2)
    assert.equal(before, sb:state().total_requests)
    -- The sync group is not closed by the default group's 429.
    assert.equal(0, second:rate_limit("sync").closed_for)
  end)

  -- A client of the customer's token with a quota of LIMIT per `window`, on
  -- a segment of its own (unlinked before the test and after it), the
  -- sandbox reset.
  local function customer_client(window)
    local token = sandbox.tokens.customer
    finally(function() core._debug_unlink(sb.base_url, token) end)
    core._debug_unlink(sb.base_url, token)
    local c = wemasy.new{ base_url = sb.base_url, token = token,
      rate_limit = { groups = { default = { limit = LIMIT, window = window } } } }
    sb:reset()
    return c
  end

  it("reports the quota without sending anything", function()
    local c = customer_client(WINDOW)
    assert.same({ limit = LIMIT, remaining = LIMIT, reset_in = 0, closed_for = 0, store = "shm" }, c:rate_limit())
    assert(c:customer_orders_get{ order_id = 2502 })
    local state = c:rate_limit("default")
    assert.equal(LIMIT - 1, state.remaining)
    assert.equal(1, sb:state().total_requests)
    c:close()
  end)

  it("sb:reset() also forgets this host's quota of the sandbox's tokens and of the tokens of its helpers", function()
    local own = helpers.token("sbreset")
    local clients = {}
    for i, token in ipairs{ sandbox.tokens.merchant_no_finance, own } do
      clients[i] = wemasy.new{ base_url = sb.base_url, token = token, max_retries = 0,
        rate_limit = { wait = false, groups = { default = { limit = 2, window = 60 } } } }
    end
    finally(function()
      for _, c in ipairs(clients) do c:close() end
      core._debug_unlink(sb.base_url, sandbox.tokens.merchant_no_finance)
      core._debug_unlink(sb.base_url, own)
    end)
    sb:reset()
    for _, c in ipairs(clients) do
      c:call("orders/detail", { order_number = "ORD-2025-001" }) -- the spec's own token gets a 401: sent all the same
      c:call("orders/detail", { order_number = "ORD-2025-001" })
      local state = c:rate_limit()
      assert.equal(state.limit - 2, state.remaining)
    end
    sb:reset()
    for _, c in ipairs(clients) do
      assert.same({ limit = 2, remaining = 2, reset_in = 0, closed_for = 0, store = "shm" }, c:rate_limit())
    end
  end)

  it("client:rate_limit_reset() forgets this host's record of the token's quota", function()
    local c = customer_client(60)
    assert(c:customer_orders_get{ order_id = 2502 })
    assert.equal(LIMIT - 1, c:rate_limit().remaining)
    assert.is_true(c:rate_limit_reset())
    assert.equal(LIMIT, c:rate_limit().remaining)
    c:close()
    local _, err = c:rate_limit_reset()
    assert.equal("invalid_argument", err.kind)
    assert.has_error(function() c.rate_limit_reset({}) end)
  end)
end)
