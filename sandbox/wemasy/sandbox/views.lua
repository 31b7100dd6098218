-- The response bodies built from seed orders. Views copy what they need and
-- never change seed tables (the encoder only reads them).

local json = require "wemasy.sandbox.json"
local seed = require "wemasy.sandbox.seed"

local A, O, null = json.array, json.object, json.null

local views = {}

local function opt(v)
   if v == nil then return null end
   return v
end

-- orders/mark-purchase-tracked: the purchase (analytics "purchase" event).
function views.purchase(order, already_tracked)
   local items = A()
   for _, it in ipairs(order.items) do
      items[#items + 1] = O{
         "item_id", it.item_id,
         "item_name", it.title,
         "price", it.price_incl_tax,
         "quantity", it.quantity,
      }
   end
   return O{
      "error", false,
      "already_tracked", already_tracked,
      "payment_status", order.payment_status,
      "purchase", O{
         "transaction_id", order.order_number,
         "value", order.total,
         "tax", order.tax,
         "shipping", order.shipping,
         "currency", order.currency,
         "items", items,
      },
   }
end

-- orders/get: the documented top level, without an "error" key.
function views.public_order(order)
   local d = order.detail
   local vies = order.vies or {}
   return O{
      "quote", d.quote,
      "checkout", d.checkout,
      "users", d.users,
      "vies", O{
         "status", vies.status or "unchecked",
         "reverse_charge_applied", vies.reverse_charge_applied or false,
      },
   }
end

-- orders/detail
function views.detail(order)
   return O{ "error", false, "data", order.detail }
end

-- An address in the API's key order: each key and the user's field under
-- a prefix (invoice_ or shipping_) that holds it; the tax number is billing's.
local ADDRESS = {
   { "email", "email" }, { "firstname", "firstname" }, { "lastname", "lastname" }, { "phone", "phonenumber" },
   { "company", "company" }, { "tax_number", "tax_number", billing = true }, { "street", "street" },
   { "number", "number" }, { "postcode", "postcode" }, { "city", "city" }, { "country", "country" },
}

local function address(u, prefix, is_billing, country)
   local list, n = {}, 0
   for _, f in ipairs(ADDRESS) do
      if is_billing or not f.billing then
         list[n + 1], list[n + 2] = f[1], u[prefix .. f[2]]
         n = n + 2
      end
   end
   if country ~= nil then list[n] = country end -- country is the last key
   return O(list)
end

local function billing(u)
   return address(u, "invoice_", true)
end

-- Without a separate shipping address the order ships to the billing
-- address, in the shipping country when one is set.
local function shipping(u)
   if u.custom_shipping_information == true then return address(u, "shipping_") end
   return address(u, "invoice_", false, u.shipping_country ~= null and u.shipping_country or u.invoice_country)
end

-- customer/orders/get: data.order
function views.customer_order(order)
   local can_pay = order.type == "checkout" and order.payment_status == "open"
   local methods = A()
   if can_pay then
      for _, m in ipairs(seed.websites[order.website_id].payment_methods) do
         methods[#methods + 1] = m
      end
   end
   local items = A()
   for _, it in ipairs(order.items) do
      local options = A()
      for _, o in ipairs(it.options or {}) do
         options[#options + 1] = O{ "label", o[1], "value", o[2] }
      end
      items[#items + 1] = O{
         "item_id", it.item_id,
         "title", it.title,
         "quantity", it.quantity,
         "options", options,
         "price_excl_tax", it.price_excl_tax,
         "price_incl_tax", it.price_incl_tax,
         "tax_percentage", it.tax_percentage,
         "total_price_incl_tax", it.total_price_incl_tax,
      }
   end
   local u = order.detail.users
   return O{
      "id", order.id,
      "order_session", order.session,
      "type", order.type,
      "order_number", order.order_number,
      "invoice_id", opt(order.invoice_id),
      "status", order.status,
      "status_label", order.status_label,
      "payment_status", order.payment_status,
      "payment_method", opt(order.payment_method),
      "can_pay", can_pay,
      "payment_methods", methods,
      "total_amount", order.total,
      "total_tax", order.tax,
      "total_amount_without_tax", order.total_without_tax,
      "shipping_method", opt(order.shipping_method),
      "created_at", order.created_at,
      "billing", billing(u),
      "shipping", shipping(u),
      "items", items,
   }
end

return views
