-- A method name given to client:call or client:batch runs that method; a name
-- that is neither a method nor a path (a path has a '/') is a typo, refused
-- before sending with the closest method or path: a typo never costs a
-- request of the quota.  (issue 17, item 3)
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

describe("names that are not paths", function()
  local sb = h.fresh_sandbox()
  local merchant

  lazy_setup(function()
    merchant = wemasy.new{ base_url = sb.base_url, token = sandbox.tokens.merchant, rate_limit = { shared = false } }
  end)

  local function sent() return sb:state().total_requests end

  it("client:rate_limit raises for a group that is not the client's, naming the known groups", function()
    local ok, err = pcall(merchant.rate_limit, merchant, "snyc")
    assert.is_false(ok)
    assert.matches("rate_limit", err)
    assert.matches("unknown limiter group 'snyc' %(known: default, sync%)", err)
    local own = wemasy.new{ base_url = sb.base_url,
                            rate_limit = { shared = false, groups = { reports = { limit = 3 } } } }
    assert.equal(3, own:rate_limit("reports").limit)
    assert.matches("known: default, reports, sync", select(2, pcall(own.rate_limit, own, "report")))
    own:close()
    assert.equal(0, sent())
  end)

  it("client:call runs a method given by its name", function()
    local body, err = merchant:call("orders_detail", { order_number = "ORD-2025-001" })
    assert.is_nil(err)
    assert.equal(2502, body.data.order_id)
    assert.equal(1, sb:state().requests["orders/detail"])
    -- validated as the method is: nothing sent for a bad body
    local _, bad = merchant:call("orders_detail", { order_number = 1.5 })
    assert.equal("invalid_argument", bad.kind)
    assert.equal(1, sent())
  end)

  it("client:call refuses a typo locally, naming the closest method", function()
    for typo, closest in pairs{ orders_detial = "orders_detail", ordersdetail = "orders_detail",
                                orders_gte = "orders_get", ["orders-detail"] = "orders_detail",
                                Customer_Orders_Get = "customer_orders_get",
                                orders_sync_snelstart = "orders_sync_snelstart_order" } do
      local body, err = merchant:call(typo, { order_number = "ORD-2025-001" })
      assert.is_nil(body)
      assert.equal("invalid_argument", err.kind, typo)
      assert.is_nil(err.status)
      assert.matches("did you mean '" .. closest:gsub("%p", "%%%0") .. "'", err.message)
      assert.matches(typo:gsub("%p", "%%%0"), tostring(err))
    end
    assert.equal(0, sent())
  end)

  it("client:batch runs method names and refuses typos, item by item", function()
    local results = merchant:batch{
      { "orders_detial", { order_number = "ORD-2025-001" } },
      { "orders_detail", { order_number = "ORD-2025-001" } },
      { "orders/detial", { order_number = "ORD-2025-001" } }, -- a path: the server answers
    }
    assert.equal("invalid_argument", results[1][2].kind)
    assert.matches("did you mean 'orders_detail'", results[1][2].message)
    assert.equal(2502, results[2][1].data.order_id)
    assert.equal("not_found", results[3][2].kind)
    assert.equal(2, sent())
  end)

  it("still sends paths the table does not know (with a '/')", function()
    local _, err = merchant:call("products/list", { page = 1 })
    assert.equal("not_found", err.kind)
    assert.equal(1, sent())
  end)

  it("names no token in the refusal, even when the typo is the token", function()
    local token = sandbox.tokens.merchant:gsub("|", "")
    local c = wemasy.new{ base_url = sb.base_url, token = token, rate_limit = { shared = false } }
    local _, err = c:call(token, {})
    assert.equal("invalid_argument", err.kind)
    assert.is_nil(tostring(err):find(token, 1, true))
    assert.is_nil(tostring(err.endpoint):find(token, 1, true))
    assert.equal(0, sent())
  end)
end)
