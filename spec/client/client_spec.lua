-- The client against the real sandbox (nginx + ngx_lua): every endpoint, every
-- documented status, and the contract's promises about what is sent.
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

local tokens = sandbox.tokens
local SESSION, EMAIL = "abc123def456ghi789", "john@example.com"

describe("wemasy client against the sandbox", function()
  local sb = h.fresh_sandbox()
  local merchant, no_finance, customer, other_customer, anonymous, stranger

  -- The client's own limiter is in-process here (no shared segment left
  -- behind by specs); the sandbox's quota is large enough for the whole file
  -- except where a spec is about the quota.
  local function client(token, opts)
    opts = opts or {}
    opts.base_url, opts.token, opts.timeout = opts.base_url or sb.base_url, token, opts.timeout or 10
    if opts.rate_limit == nil then opts.rate_limit = { shared = false } end
    return wemasy.new(opts)
  end

  lazy_setup(function()
    merchant = client(tokens.merchant)
    no_finance = client(tokens.merchant_no_finance)
    customer = client(tokens.customer)
    other_customer = client(tokens.other_customer)
    anonymous = client(nil)
    stranger = client("not-a-known-token")
  end)

  describe("orders/detail", function()
    it("returns the documented example order with exact numbers and nulls", function()
      local body, err, res = merchant:orders_detail{ order_number = "ORD-2025-001" }
      assert.is_nil(err)
      assert.is_false(body.error)
      local order = body.data.checkout.order
      assert.equal(129.99551, order.total_price_with_tax)
      assert.equal(107.43802, order.total_price)
      assert.equal(22.56, order.tax_amounts["21"])
      assert.equal(wemasy.null, order.status)
      assert.equal(wemasy.null, body.data.vendor_comment)
      assert.equal("checkout", body.data.type)
      assert.equal("T Shirt", order.products[1].title)
      assert.equal(2502, body.data.order_id)
      assert.equal(200, res.status)
      assert.equal(1000, res.rate_limit.limit)
      assert.equal(999, res.rate_limit.remaining)
      assert.matches("json", res.headers["content-type"])
      for name in pairs(res.headers) do assert.equal(name:lower(), name) end
    end)

    it("returns not_found for an unknown order", function()
      local body, err = merchant:orders_detail{ order_number = "NO-SUCH-ORDER" }
      assert.is_nil(body)
      assert.equal("not_found", err.kind)
      assert.equal(404, err.status)
      assert.equal("orders/detail", err.endpoint)
      assert.is_string(err.message)
      assert.equal(999, err.rate_limit.remaining)
    end)

    it("is forbidden for a customer token and unauthenticated for an unknown one", function()
      local _, err = customer:orders_detail{ order_number = "ORD-2025-001" }
      assert.equal("forbidden", err.kind)
      assert.equal(403, err.status)
      _, err = stranger:orders_detail{ order_number = "ORD-2025-001" }
      assert.equal("unauthenticated", err.kind)
      assert.equal(401, err.status)
    end)

    it("fails fast without a token and sends nothing", function()
      local before = sb:state().total_requests
      local body, err = anonymous:orders_detail{ order_number = "ORD-2025-001" }
      assert.is_nil(body)
      assert.equal("unauthenticated", err.kind)
      assert.is_nil(err.status)
      assert.equal(before, sb:state().total_requests)
    end)

    it("sends nothing when validation fails", function()
      local before = sb:state().total_requests
      local _, err = merchant:orders_detail{ order_number = 12.5 }
      assert.equal("invalid_argument", err.kind)
      _, err = merchant:orders_detail{ order_nummer = "x" }
      assert.equal("invalid_argument", err.kind)
      assert.matches("unknown field 'order_nummer'", err.message)
      assert.equal(before, sb:state().total_requests)
    end)
  end)

  describe("orders/get", function()
    it("returns the order for the right website, session and e-mail", function()
      local body, err, res = anonymous:orders_get{ website_id = 1, order_session = SESSION, email = EMAIL }
      assert.is_nil(err)
      assert.is_table(body.checkout.order)
      assert.is_table(body.vies)
      assert.equal(200, res.status)
    end)

    it("matches the e-mail case-insensitively and 404s for a wrong one", function()
      assert.is_table((anonymous:orders_get{ website_id = "1", order_session = SESSION, email = "JOHN@example.com" }))
      local _, err = anonymous:orders_get{ website_id = "2", order_session = SESSION, email = EMAIL }
      assert.equal("not_found", err.kind)
      _, err = anonymous:orders_get{ website_id = "1", order_session = SESSION, email = "x@example.com" }
      assert.equal("not_found", err.kind)
    end)

    it("sends the token on Public endpoints too (the limiter counts it apart)", function()
      local _, _, res1 = merchant:orders_get{ website_id = 1, order_session = SESSION, email = EMAIL }
      local _, _, res2 = merchant:orders_get{ website_id = 1, order_session = SESSION, email = EMAIL }
      local _, _, res3 = customer:orders_get{ website_id = 1, order_session = SESSION, email = EMAIL }
      assert.equal(res1.rate_limit.remaining - 1, res2.rate_limit.remaining)
      assert.equal(res1.rate_limit.remaining, res3.rate_limit.remaining)
    end)
  end)

  describe("orders/mark-purchase-tracked", function()
    it("flips already_tracked and returns the GA4 purchase", function()
      local first, err = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION }
      assert.is_nil(err)
      assert.is_false(first.already_tracked)
      assert.is_table(first.purchase)
      assert.is_number(first.purchase.value)
      local second = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION }
      assert.is_true(second.already_tracked)
    end)

    it("only reads with mark = false and marks with mark = wemasy.null", function()
      local peek = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = false }
      assert.is_false(peek.already_tracked)
      local again = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = false }
      assert.is_false(again.already_tracked)
      anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = wemasy.null }
      local after = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = false }
      assert.is_true(after.already_tracked)
    end)

    it("returns not_found for an unknown session", function()
      local _, err = anonymous:orders_mark_purchase_tracked{ website_id = 1, order_session = "nope" }
      assert.equal("not_found", err.kind)
      assert.equal(404, err.status)
    end)
  end)

  describe("orders/sync-snelstart-order", function()
    it("queues the sync and the sandbox records it", function()
      local body, err, res = merchant:orders_sync_snelstart_order{ order_id = 2502 }
      assert.is_nil(err)
      assert.is_false(body.error)
      assert.is_string(body.message)
      assert.equal(100, res.rate_limit.limit)
      assert.equal(99, res.rate_limit.remaining)
      local state = sb:state()
      assert.is_truthy(state.syncs["2502"])
    end)

    it("is forbidden without the finance permission", function()
      local _, err = no_finance:orders_sync_snelstart_order{ order_id = 2502 }
      assert.equal("forbidden", err.kind)
      assert.equal(403, err.status)
    end)

    it("maps the server's 422 with Laravel's field errors", function()
      local _, err = merchant:orders_sync_snelstart_order{ order_id = 999999 }
      assert.equal("validation", err.kind)
      assert.equal(422, err.status)
      assert.same({ "The selected order id is invalid." }, err.errors.order_id)
      assert.equal("The selected order id is invalid.", err.message)
    end)

    it("refuses order_id = 42.5 or '42' before sending", function()
      for _, bad in ipairs{ 42.5, "42" } do
        local _, err = merchant:orders_sync_snelstart_order{ order_id = bad }
        assert.equal("invalid_argument", err.kind)
      end
    end)
  end)

  describe("customer/orders/get", function()
    it("returns the customer's own order", function()
      local body, err = customer:customer_orders_get{ order_id = 2502 }
      assert.is_nil(err)
      assert.is_false(body.error)
      assert.equal(2502, body.data.order.id)
    end)

    it("is not_found for another customer's order", function()
      local _, err = other_customer:customer_orders_get{ order_id = 2502 }
      assert.equal("not_found", err.kind)
      assert.equal(404, err.status)
    end)

    it("is unauthenticated for an unknown token", function()
      local _, err = stranger:customer_orders_get{ order_id = 2502 }
      assert.equal("unauthenticated", err.kind)
    end)
  end)

  describe("client:call", function()
    it("reaches a known endpoint by path, validated like its method", function()
      local body = merchant:call("orders/detail", { order_number = "ORD-2025-001" })
      assert.equal("checkout", body.data.type)
      body = merchant:call("/services/webshop/v1/orders/detail", { order_number = "ORD-2025-001" })
      assert.equal("checkout", body.data.type)
      local _, err = merchant:call("orders/detail", { order_number = 1.5 })
      assert.equal("invalid_argument", err.kind)
    end)

    it("reaches endpoints the table does not wrap (the server answers 404)", function()
      local _, err = merchant:call("products/list", { page = 1 })
      assert.equal("not_found", err.kind)
      assert.equal("products/list", err.endpoint)
    end)

    it("refuses paths that leave the API prefix", function()
      for _, p in ipairs{ "../admin", "orders//detail", "", "orders/detail?x=1", "a b", "/\0" } do
        local _, err = merchant:call(p, {})
        assert.equal("invalid_argument", err.kind, p)
      end
    end)
  end)

  describe("rate limit (the server's)", function()
    it("maps 429 to rate_limited with retry_after", function()
      local url, small = sandbox.start{ window = 30, limits = { default = 2, sync = 1 } }
      assert(url, small)
      finally(function() small:stop() end)
      -- Without the client's limiter (it would have waited instead) and retries.
      local c = client(tokens.merchant, { base_url = url, rate_limit = false, max_retries = 0 })
      assert.is_table((c:orders_detail{ order_number = "ORD-2025-001" }))
      assert.is_table((c:orders_detail{ order_number = "ORD-2025-001" }))
      local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
      assert.is_nil(body)
      assert.equal("rate_limited", err.kind)
      assert.equal(429, err.status)
      assert.is_true(err.retry_after >= 1 and err.retry_after <= 30)
      assert.equal(0, err.rate_limit.remaining)
      assert.equal(1, err.attempts)
      -- sync-snelstart counts in its own group
      assert.is_table((c:orders_sync_snelstart_order{ order_id = 2502 }))
    end)
  end)

  describe("transport failures", function()
    it("returns network for a closed port, and says nothing was sent", function()
      local c = wemasy.new{ base_url = "http://127.0.0.1:9/api", connect_timeout = 2, rate_limit = false }
      local body, err = c:orders_get{ website_id = 1, order_session = "s", email = "e@x.nl" }
      assert.is_nil(body)
      assert.equal("network", err.kind)
      assert.is_false(err.sent)
    end)

    it("returns tls when speaking https to a plain http port", function()
      local c = wemasy.new{ base_url = sb.base_url:gsub("^http:", "https:"), connect_timeout = 2, timeout = 5,
                            rate_limit = false }
      local _, err = c:orders_get{ website_id = 1, order_session = "s", email = "e@x.nl" }
      assert.equal("tls", err.kind)
    end)
  end)

  describe("the token", function()
    local secret = tokens.merchant

    it("never appears in tostring of the client or of any error", function()
      assert.not_matches(secret, tostring(merchant), 1, true)
      local insecure = wemasy.new{ base_url = sb.base_url, token = secret, insecure = true, rate_limit = false }
      assert.matches("INSECURE", tostring(insecure))
      local _, e1 = merchant:orders_detail{ order_number = "NOPE" }
      local _, e2 = merchant:orders_detail{ order_number = {} }
      local unreachable = wemasy.new{ base_url = "http://127.0.0.1:9/api", token = secret, rate_limit = false }
      local _, e3 = unreachable:orders_detail{ order_number = "x" }
      for _, e in ipairs{ e1, e2, e3 } do
        assert.is_nil(tostring(e):find(secret, 1, true))
        assert.is_nil(tostring(e.message):find(secret, 1, true))
      end
    end)

    it("is not stored in the client table", function()
      for k, v in pairs(merchant) do
        assert.is_falsy(type(v) == "string" and v:find(secret, 1, true), k)
      end
      assert.is_true(merchant:has_token())
      assert.is_false(anonymous:has_token())
    end)
  end)

  describe("closing", function()
    it("is idempotent; calls on a closed client return invalid_argument", function()
      local c = client(tokens.merchant)
      assert.is_true(c:close())
      assert.is_true(c:close())
      local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
      assert.is_nil(body)
      assert.equal("invalid_argument", err.kind)
      assert.matches("closed", err.message)
      assert.matches("closed", tostring(c))
    end)

    if _VERSION == "Lua 5.4" then
      it("closes at the end of a to-be-closed scope", function()
        local run = assert(load([[
          local wemasy, base_url = ...
          local kept
          do
            local c <close> = wemasy.new{ base_url = base_url, rate_limit = false }
            kept = c
          end
          return kept
        ]]))
        local kept = run(wemasy, sb.base_url)
        local _, err = kept:orders_get{ website_id = 1, order_session = SESSION, email = EMAIL }
        assert.equal("invalid_argument", err.kind)
      end)
    end
  end)

  it("reuses one client for many calls (keep-alive) with each answer its own", function()
    for i = 1, 20 do
      local number = (i % 2 == 0) and "ORD-2025-001" or "NOPE-" .. i
      local body, err = merchant:orders_detail{ order_number = number }
      if i % 2 == 0 then
        assert.equal(2502, body.data.order_id)
      else
        assert.equal("not_found", err.kind)
      end
    end
  end)
end)
