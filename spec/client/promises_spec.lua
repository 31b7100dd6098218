-- Small promises a new user tries in the first hour (issue 17, item 5):
-- base_url parts that cannot work are refused by name, has_token() after
-- close(), a batch list with a hole, and error lines that say what to do
-- (when to retry, what closed, which limit).
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

local tokens = sandbox.tokens

local function new_error(opts)
  local ok, err = pcall(wemasy.new, opts)
  assert.is_false(ok, "wemasy.new accepted " .. tostring(opts.base_url))
  return err
end

describe("base_url", function()
  it("refuses a query, naming it (every path would be appended after it)", function()
    for _, url in ipairs{ "https://api.wemasy.nl/api?lang=nl", "https://api.wemasy.nl/api/?",
                          "http://127.0.0.1:8080?x" } do
      local err = new_error{ base_url = url }
      assert.matches("option 'base_url' must not have a query", err, 1, true)
      assert.is_nil(err:find("lang=nl", 1, true))
    end
  end)

  it("refuses a fragment, naming it", function()
    local err = new_error{ base_url = "https://api.wemasy.nl/api#top" }
    assert.matches("option 'base_url' must not have a fragment", err, 1, true)
  end)

  it("refuses user info, naming it and never the password, also for this machine", function()
    for _, url in ipairs{ "https://shop:s3cr3t-pw@api.wemasy.nl/api", "http://shop:s3cr3t-pw@127.0.0.1:8080/api",
                          "https://s3cr3t-pw@api.wemasy.nl" } do
      local err = new_error{ base_url = url }
      assert.matches("option 'base_url' must not have user info", err, 1, true)
      assert.is_nil(err:find("s3cr3t", 1, true))
      assert.is_nil(err:find("not this machine", 1, true))
    end
  end)

  it("still takes what works: a trailing '/', a port, an '@' in the path", function()
    for _, url in ipairs{ "https://api.wemasy.nl/api/", "http://127.0.0.1:8080/api", "https://api.wemasy.nl/a@b" } do
      wemasy.new{ base_url = url, rate_limit = false }:close()
    end
  end)
end)

describe("against the sandbox", function()
  local sb = h.fresh_sandbox{ window = 60, limits = { default = 2, sync = 100 } }

  local function client(opts) return h.sandbox_client(sb, opts) end

  local function detail(c) return c:orders_detail{ order_number = "ORD-2025-001" } end

  it("has_token() is false after close()", function()
    local c = client()
    assert.is_true(c:has_token())
    c:close()
    assert.is_false(c:has_token())
  end)

  describe("a batch list", function()
    it("with a hole raises instead of dropping the items after it", function()
      local c = client()
      local call = { "orders_detail", { order_number = "ORD-2025-001" } }
      local ok, err = pcall(function() local r = c:batch{ [1] = call, [3] = call }; return r end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'batch' (a list of calls expected: calls[2] is nil but calls[3] is not)",
        err, 1, true)
      assert.matches("promises_spec.lua", err, 1, true)
      ok, err = pcall(c.batch, c, { call, note = "x" })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'batch' (a list of calls expected, got a string key)", err, 1, true)
      assert.equal(0, sb:state().total_requests)
      assert.same({}, c:batch{})
    end)
  end)

  describe("tostring of rate_limited", function()
    it("says when to retry and that the server's Retry-After closed the group", function()
      sb:fault{ kind = "rate_limited", retry_after = 4, path = "orders/detail" }
      local c = client{ max_retries = 0 }
      local _, err = detail(c)
      assert.equal("rate_limited", err.kind)
      assert.equal(4, err.retry_after)
      assert.equal("default", err.group)
      assert.is_true(err.closed_for > 3 and err.closed_for <= 4, err.closed_for)
      assert.matches("^wemasy rate_limited 429 on orders/detail: .*; retry in 4 s; the server's Retry%-After"
        .. " closed group 'default' for every caller on this token$", tostring(err))
    end)

    it("says no group was closed when the client's limiter is off", function()
      sb:fault{ kind = "rate_limited", retry_after = 4, path = "orders/detail" }
      local _, err = detail(client{ max_retries = 0, rate_limit = false })
      assert.matches("; retry in 4 s; no limiter group closed$", tostring(err))
    end)

    it("gives the wait and max_wait when the client's own limiter refuses", function()
      local c = client{ rate_limit = { shared = false, max_wait = 1.5 } }
      assert.is_table((detail(c)))
      assert.is_table((detail(c))) -- the sandbox's X-RateLimit-Limit is 2 a minute
      local _, err = detail(c)
      assert.equal(0, err.attempts)
      assert.is_true(err.retry_after > 50, err.retry_after)
      assert.matches("^wemasy rate_limited on orders/detail: rate limit: the next slot is further away than"
        .. " max_wait %(1%.5 s%); retry in %d+%.?%d? s$", tostring(err))
      -- Another token: another quota on the sandbox.
      c = client{ token = tokens.merchant_no_finance, rate_limit = { shared = false, wait = false } }
      assert.is_table((detail(c)))
      assert.is_table((detail(c)))
      _, err = detail(c)
      assert.matches("^wemasy rate_limited on orders/detail: rate limit: no slot free and wait is off;"
        .. " retry in %d+%.?%d? s$", tostring(err))
      assert.equal(4, sb:state().total_requests)
    end)
  end)

  it("a too_large error names the limit", function()
    local _, err = detail(client{ max_body = 1000, rate_limit = false })
    assert.equal("too_large", err.reason)
    assert.matches("max_body (1000 bytes)", tostring(err), 1, true)
  end)
end)

describe("the rate_limited line", function()
  local errors = require("wemasy.errors")

  it("rounds the wait up and says when the server sent no Retry-After", function()
    local line = tostring(errors.new("rate_limited", { message = "m", retry_after = 4.41 }))
    assert.equal("wemasy rate_limited: m; retry in 4.5 s", line)
    assert.equal("wemasy rate_limited: m; retry in 0.1 s",
      tostring(errors.new("rate_limited", { message = "m", retry_after = 0.001 })))
    assert.equal("wemasy rate_limited 429: m; the server sent no Retry-After",
      tostring(errors.new("rate_limited", { message = "m", status = 429 })))
    -- fields a caller replaced do not break the line
    assert.equal("wemasy rate_limited: m",
      tostring(errors.new("rate_limited", { message = "m", retry_after = "soon", closed_for = {} })))
  end)
end)
