-- GET /thank-you?website_id=1&order_session=...
--
-- The page after checkout.  It pushes the GA4 `purchase` event to the
-- dataLayer exactly once per order, and only for a paid order:
--
--   1. read the order's state without marking it (mark = false): payment
--      status and whether the purchase was tracked before;
--   2. paid and not tracked: mark it.  The mark's `already_tracked` is the
--      state *before* this call, so of two tabs racing here only one sees
--      false and renders the event.
--
-- An order that is not paid yet is not marked, so the visit after the
-- payment still tracks it.  The thank-you text renders whatever the API says:
-- tracking is best effort, the shopper's page is not.
local cjson = require("cjson.safe")
local storefront = require("storefront")

local html = storefront.html

-- The dataLayer push for GA4's purchase event.  JSON inside <script>: "<"
-- is escaped so no value can close the script element.
local function purchase_script(purchase)
  local ecommerce = {
    transaction_id = purchase.transaction_id,
    value = purchase.value,
    tax = purchase.tax,
    shipping = purchase.shipping,
    currency = purchase.currency,
    items = {},
  }
  for i, item in ipairs(purchase.items or {}) do
    ecommerce.items[i] = { item_id = item.item_id, item_name = item.item_name,
                           price = item.price, quantity = item.quantity }
  end
  local text = cjson.encode({ event = "purchase", ecommerce = ecommerce }) or "{}"
  text = text:gsub("<", "\\u003c"):gsub("\226\128\168", "\\u2028"):gsub("\226\128\169", "\\u2029")
  return "<script>\nwindow.dataLayer = window.dataLayer || [];\n"
    .. "window.dataLayer.push({ ecommerce: null });\n"
    .. "window.dataLayer.push(" .. text .. ");\n</script>\n"
end

return function()
  local website_id, session = storefront.arg("website_id"), storefront.arg("order_session")
  if not website_id or not session then
    return storefront.page(400, "Thank you", "<p>This link is incomplete.</p>")
  end
  local client = storefront.shop
  local order = { website_id = website_id, order_session = session }

  local state, err = client:orders_mark_purchase_tracked{
    website_id = website_id, order_session = session, mark = false }
  if not state then
    if err.kind == "not_found" or err.kind == "validation" or err.kind == "invalid_argument" then
      return storefront.page(404, "Order not found", "<p>We could not find this order.</p>")
    end
    storefront.log_error("thank-you: reading the purchase state", err)
    return storefront.page(200, "Thank you for your order", "<p>Your order is being processed.</p>")
  end

  local event = ""
  if state.payment_status == "paid" and not state.already_tracked then
    local marked, merr = client:orders_mark_purchase_tracked(order)
    if not marked then
      storefront.log_error("thank-you: marking the purchase", merr)
    elseif not marked.already_tracked then
      event = purchase_script(marked.purchase or state.purchase)
    end
  end

  local purchase = state.purchase or {}
  local status = state.payment_status == "paid" and "Your payment has been received."
    or "We are waiting for your payment."
  return storefront.page(200, "Thank you for your order",
    "<p>Order <strong>" .. html(purchase.transaction_id) .. "</strong>: "
    .. storefront.money(purchase.value) .. ". " .. html(status) .. "</p>\n" .. event)
end
