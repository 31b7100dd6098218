-- Quickstart: all five endpoints, their answers and their errors.
--
--   make demo                      -- starts a sandbox and runs this file
--   lua5.4 examples/quickstart.lua -- the same, with wemasy installed (luarocks)
--
-- Against the real API instead: WEMASY_BASE_URL=https://api.wemasy.nl/api
-- WEMASY_TOKEN=... and WEMASY_ORDER=<an order number of yours>.
local wemasy = require("wemasy")

local base_url = os.getenv("WEMASY_BASE_URL")
local merchant_token = os.getenv("WEMASY_TOKEN")
local customer_token, other_customer_token, no_finance_token
local sandbox

if not base_url then
  base_url, sandbox = wemasy.sandbox.start()
  if not base_url then
    io.stderr:write("could not start the sandbox: ", tostring(sandbox), "\n")
    os.exit(1)
  end
  local tokens = wemasy.sandbox.tokens
  merchant_token = tokens.merchant
  no_finance_token = tokens.merchant_no_finance
  customer_token, other_customer_token = tokens.customer, tokens.other_customer
  print("sandbox running at " .. base_url)
end

local function show(title, body, err, res)
  if err then
    print(string.format("  %-44s -> %s", title, tostring(err)))
    if err.errors then
      for field, messages in pairs(err.errors) do
        print(string.format("  %-44s    %s: %s", "", field, table.concat(messages, "; ")))
      end
    end
    return
  end
  local quota = res.rate_limit.remaining and
    string.format(" [quota %s/%s]", res.rate_limit.remaining, res.rate_limit.limit) or ""
  print(string.format("  %-44s -> %s%s", title, body, quota))
end

local function money(n) return string.format("%.2f", n) end

local shop = wemasy.new{ base_url = base_url, token = merchant_token, timeout = 10 }
print(shop)

print("\norders/detail (Auth: merchant)")
local order_number = os.getenv("WEMASY_ORDER") or "ORD-2025-001"
local detail, err, res = shop:orders_detail{ order_number = order_number }
if detail then
  local d = detail.data
  local order = d[d.type].order
  show("orders_detail{order_number=" .. order_number .. "}",
    string.format("%s order #%s, %d product(s), total %s incl. %s tax, customer %s %s",
      d.type, tostring(d.order_id), #order.products, money(order.total_price_with_tax),
      money(order.total_price_tax), d.users.invoice_firstname, d.users.invoice_lastname), nil, res)
else
  show("orders_detail", nil, err)
end
show("orders_detail{order_number='NOPE'}", shop:orders_detail{ order_number = "NOPE" })

print("\norders/get (Public)")
local order, res2
order, err, res2 = shop:orders_get{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" }
if order then
  local o = order.checkout.order
  show("orders_get{website_id=1, ...}", string.format("checkout total %s, payment %s, VIES %s",
    money(o.total_price_with_tax), tostring(order.checkout.payment.selected), tostring(order.vies.status)), nil, res2)
else
  show("orders_get", nil, err)
end
show("orders_get{... email='someone@else.nl'}",
  shop:orders_get{ website_id = 1, order_session = "abc123def456ghi789", email = "someone@else.nl" })

print("\norders/mark-purchase-tracked (Public)")
for attempt = 1, 2 do
  local tracked, terr, tres = shop:orders_mark_purchase_tracked{
    website_id = "1", order_session = "abc123def456ghi789" }
  if tracked then
    show("mark_purchase_tracked (call " .. attempt .. ")", string.format(
      "already_tracked=%s, payment %s, GA4 purchase %s EUR %s",
      tostring(tracked.already_tracked), tostring(tracked.payment_status),
      tostring(tracked.purchase.transaction_id), money(tracked.purchase.value)), nil, tres)
  else
    show("mark_purchase_tracked", nil, terr)
  end
end

print("\norders/sync-snelstart-order (Auth: merchant with finance permission; 5 a minute)")
local synced, serr, sres = shop:orders_sync_snelstart_order{ order_id = 2502 }
show("orders_sync_snelstart_order{order_id=2502}", synced and synced.message, serr, sres)
if no_finance_token then
  local clerk = wemasy.new{ base_url = base_url, token = no_finance_token }
  show("same, token without finance permission", clerk:orders_sync_snelstart_order{ order_id = 2502 })
end
show("orders_sync_snelstart_order{order_id=42.5}", shop:orders_sync_snelstart_order{ order_id = 42.5 })
show("orders_sync_snelstart_order{order_id=999999}", shop:orders_sync_snelstart_order{ order_id = 999999 })

if customer_token then
  print("\ncustomer/orders/get (Auth: customer)")
  local customer = wemasy.new{ base_url = base_url, token = customer_token }
  local mine, cerr, cres = customer:customer_orders_get{ order_id = 2502 }
  show("customer_orders_get{order_id=2502}", mine and string.format("%s, %s, total %s",
    tostring(mine.data.order.order_number), tostring(mine.data.order.payment_status),
    money(mine.data.order.total_amount)), cerr, cres)
  local other = wemasy.new{ base_url = base_url, token = other_customer_token }
  show("same order, another customer's token", other:customer_orders_get{ order_id = 2502 })
  local anonymous = wemasy.new{ base_url = base_url }
  show("same, no token (nothing is sent)", anonymous:customer_orders_get{ order_id = 2502 })
end

print("\nany endpoint through client:call(path, body)")
show("call('orders/detail', {})", shop:call("orders/detail", {}))

shop:close()
if sandbox then sandbox:stop() end
