-- GET /order: the lookup form.  POST /order (website_id, order_session,
-- email): the order, from orders/get (a Public endpoint: the three values
-- together are the shopper's proof).  The e-mail address travels in the form
-- body, not in a URL that access logs would keep.
local storefront = require("storefront")

local html, money = storefront.html, storefront.money

local FORM = [[
<form method="post" action="/order">
<label>Order code <input name="order_session" required></label>
<label>E-mail <input name="email" type="email" required></label>
<input type="hidden" name="website_id" value="1">
<button>Find my order</button>
</form>]]

local function render(body)
  -- A quote's content is under quote.order, a checkout's under checkout.order.
  local quote = body.quote and body.quote.order
  local is_quote = quote and quote.products and #quote.products > 0
  local block = is_quote and body.quote or body.checkout or {}
  local order = block.order or {}
  local user = body.users or {}
  local out = {}
  local function add(...) for _, s in ipairs({ ... }) do out[#out + 1] = s end end

  add("<p>", is_quote and "Quote" or "Order", " for ", html(user.invoice_firstname), " ",
    html(user.invoice_lastname), " (", html(user.invoice_email), ")</p>\n")
  add("<table class=\"items\">\n<tr><th>Product</th><th>Qty</th><th>Price</th></tr>\n")
  for _, p in ipairs(order.products or {}) do
    add("<tr><td>", html(p.title), "</td><td>", html(p.quantity), "</td><td>",
      money(p.total_price_incl_tax), "</td></tr>\n")
  end
  add("</table>\n")
  local shipment = block.shipment and block.shipment.selected
  if type(shipment) == "table" and shipment.price then
    add("<p>Shipping: ", html(shipment.title), " ", money(shipment.price.incl_tax), "</p>\n")
  end
  add("<p>Total: <strong class=\"total\">", money(order.total_price_with_tax), "</strong> (VAT ",
    money(order.total_price_tax), ")</p>\n")
  local payment = block.payment or {}
  add("<p>Payment: ", html(payment.selected), " — ", html(payment.payment_status ~= nil
    and type(payment.payment_status) == "string" and payment.payment_status or "pending"), "</p>\n")
  return table.concat(out)
end

-- client: the storefront's (wemasy.ngx) unless given; the benchmark passes a
-- plain blocking client here to show what that costs the worker.
return function(client)
  client = client or storefront.shop
  if ngx.req.get_method() ~= "POST" then
    return storefront.page(200, "Find your order", FORM)
  end
  local website_id, session, email = storefront.arg("website_id"), storefront.arg("order_session"),
    storefront.arg("email")
  if not website_id or not session or not email then
    return storefront.page(400, "Find your order", "<p>Please fill in every field.</p>\n" .. FORM)
  end
  local body, err = client:orders_get{ website_id = website_id, order_session = session, email = email }
  if body then
    return storefront.page(200, "Your order", render(body))
  end
  if err.kind == "not_found" or err.kind == "validation" or err.kind == "invalid_argument" then
    -- One answer for every mismatch: the page must not tell which value was wrong.
    return storefront.page(404, "Find your order", "<p>No order matches these details.</p>\n" .. FORM)
  end
  if err.kind == "rate_limited" then
    ngx.header["Retry-After"] = storefront.retry_after(err)
    return storefront.page(503, "Find your order", "<p>Busy right now: please try again in a moment.</p>")
  end
  storefront.log_error("order lookup", err)
  return storefront.page(502, "Find your order", "<p>We cannot look up orders right now.</p>")
end
