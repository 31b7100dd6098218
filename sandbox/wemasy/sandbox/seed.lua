-- Seed data of the sandbox: websites, customers and orders. Immutable: the
-- nginx side keeps everything that changes (tracked flags, syncs, counters)
-- in shared dicts, and views copy from here instead of changing it.
--
-- Order 2502 is the example of the orders/detail page: its response example
-- is kept below as the page prints it and decoded as it is; the one value
-- changed is order_number ("8" on the page), set to "ORD-2025-001", the
-- page's request example, so that the example request finds the example order.
--
-- Lookups: seed.order_by_id(id), seed.order_by_number(s),
-- seed.order_by_session(website_id, session), seed.orders (list, id order).

local json = require "wemasy.sandbox.json"

local A, O, null = json.array, json.object, json.null

local seed = {}

-- The orders/detail page's "Response Example", unchanged.
local DETAIL_EXAMPLE = [==[
{
    "error": false,
    "data": {
        "order_id": 2502,
        "order_number": "8",
        "vendor_comment": null,
        "type": "checkout",
        "quote": {
            "order": {
                "products": []
            }
        },
        "checkout": {
            "order": {
                "tax_amounts": {
                    "0": 0,
                    "9": 0,
                    "21": 22.56
                },
                "show_price_tax_included": true,
                "session": "eeX6TCxiubsfJEE7h49dzS3RaNcHXUTHaHcjnUqd69944a0e334ed",
                "total_price": 107.43802,
                "total_price_tax": 22.55749,
                "total_price_with_tax": 129.99551,
                "total_discount_amount": 0,
                "products": [
                    {
                        "quantity": "1",
                        "title": "T Shirt",
                        "options": [],
                        "price_excl_tax": 103.30579,
                        "price_tax": 21.69447,
                        "price_incl_tax": 125.00026,
                        "original_price_excl_tax": 111.57025,
                        "original_price_incl_tax": 135,
                        "has_discount": true,
                        "tax_percentage": 21,
                        "total_price_excl_tax": 103.30579,
                        "total_price_tax": 21.69447,
                        "total_price_incl_tax": 125.00026,
                        "total_discount_amount": 0,
                        "applied_discount": null
                    }
                ],
                "status": null,
                "invoice_id": null,
                "pdf_status": {
                    "invoice": {
                        "status": "not_generated",
                        "url": null,
                        "pending": false
                    },
                    "package_slip": {
                        "status": "not_generated",
                        "url": null,
                        "pending": false
                    }
                },
                "discount": null,
                "should_snelstart_sync": false,
                "metadata": {
                    "sendcloud_no_parcels": 1,
                    "sendcloud_weight": 0.5,
                    "sendcloud_labels_created": false,
                    "sendcloud_shipment_created": false
                }
            },
            "shipment": {
                "selected": {
                    "selected": "kJ9hqHhCYhCHOKHE",
                    "title": "Standard Shipping",
                    "price": {
                        "tax_class": 2,
                        "incl_tax": 4.99972,
                        "tax": 0.86749,
                        "excl_tax": 4.13223
                    }
                }
            },
            "payment": {
                "selected": "ideal",
                "methods": [],
                "payment_status": null
            }
        },
        "users": {
            "invoice_email": "john@example.com",
            "invoice_firstname": "John",
            "invoice_lastname": "Doe",
            "invoice_phonenumber": "+31612345678",
            "invoice_is_company": null,
            "invoice_company": null,
            "invoice_tax_number": null,
            "invoice_street": "Keizersgracht",
            "invoice_number": "123",
            "invoice_postcode": "1015 CJ",
            "invoice_city": "Amsterdam",
            "invoice_country": "NL",
            "invoice_notes": null,
            "custom_shipping_information": null,
            "shipping_firstname": null,
            "shipping_lastname": null,
            "shipping_phonenumber": null,
            "shipping_email": null,
            "shipping_company": null,
            "shipping_street": null,
            "shipping_number": null,
            "shipping_postcode": null,
            "shipping_city": null,
            "shipping_country": "NL"
        }
    }
}]==]

------------------------------------------------------------------ websites

seed.websites = {
   [1] = { id = 1, name = "Demo Fashion Store", payment_methods = { "ideal", "creditcard", "bancontact" } },
   [2] = { id = 2, name = "Demo Coffee Corner", payment_methods = { "ideal", "bancontact" } },
   [3] = { id = 3, name = "Demo B2B Supplies", payment_methods = { "ideal", "banktransfer" } },
}

------------------------------------------------------------------ customers

seed.customers = {
   [1] = {
      id = 1, email = "john@example.com", firstname = "John", lastname = "Doe",
      phone = "+31612345678", street = "Keizersgracht", number = "123",
      postcode = "1015 CJ", city = "Amsterdam", country = "NL",
   },
   [2] = {
      id = 2, email = "jane@example.org", firstname = "Jane", lastname = "Smit",
      phone = "+31687654321", street = "Oudegracht", number = "45a",
      postcode = "3511 AB", city = "Utrecht", country = "NL",
   },
}

local GUEST = {
   email = "guest@example.net", firstname = "Piet", lastname = "Jansen",
   phone = "+32470123456", company = "Jansen BV", tax_number = "BE0123456789",
   street = "Meir", number = "10", postcode = "2000", city = "Antwerpen", country = "BE",
}

------------------------------------------------------------------ builders

local function round(x, places)
   local m = 10 ^ (places or 5)
   local r = math.floor(x * m + 0.5) / m
   return (math.tointeger and math.tointeger(r)) or r
end

local function users_block(p, shipping)
   return O{
      "invoice_email", p.email,
      "invoice_firstname", p.firstname,
      "invoice_lastname", p.lastname,
      "invoice_phonenumber", p.phone,
      "invoice_is_company", p.company and true or null,
      "invoice_company", p.company or null,
      "invoice_tax_number", p.tax_number or null,
      "invoice_street", p.street,
      "invoice_number", p.number,
      "invoice_postcode", p.postcode,
      "invoice_city", p.city,
      "invoice_country", p.country,
      "invoice_notes", null,
      "custom_shipping_information", shipping and true or null,
      "shipping_firstname", shipping and shipping.firstname or null,
      "shipping_lastname", shipping and shipping.lastname or null,
      "shipping_phonenumber", shipping and shipping.phone or null,
      "shipping_email", shipping and shipping.email or null,
      "shipping_company", shipping and shipping.company or null,
      "shipping_street", shipping and shipping.street or null,
      "shipping_number", shipping and shipping.number or null,
      "shipping_postcode", shipping and shipping.postcode or null,
      "shipping_city", shipping and shipping.city or null,
      "shipping_country", shipping and shipping.country or p.country,
   }
end

local function options_list(opts)
   local list = A()
   for _, o in ipairs(opts or {}) do
      list[#list + 1] = O{ "label", o[1], "value", o[2] }
   end
   return list
end

local function pdf(status, url)
   return O{ "status", status, "url", url or null, "pending", false }
end

-- Builds one order (record + orders/detail "data") from a compact description.
-- Prices are per unit, excluding tax, with 5 decimals like the page's example.
local function build(d)
   local tax_amounts = O{ "0", 0, "9", 0, "21", 0 }
   local products, items = A(), {}
   local sum_excl, sum_tax, discount_total = 0, 0, 0
   for _, p in ipairs(d.products) do
      local unit_excl = p.price
      local discount = d.discount and round(unit_excl * d.discount.percentage / 100) or 0
      unit_excl = round(unit_excl - discount)
      local unit_tax = round(unit_excl * p.tax / 100)
      local unit_incl = round(unit_excl + unit_tax)
      local orig_incl = round(p.price * (1 + p.tax / 100), 2)
      local line_excl, line_tax = round(unit_excl * p.qty), round(unit_tax * p.qty)
      local line_incl = round(line_excl + line_tax)
      sum_excl, sum_tax = sum_excl + line_excl, sum_tax + line_tax
      discount_total = discount_total + discount * p.qty
      local key = tostring(p.tax)
      tax_amounts[key] = round(tax_amounts[key] + line_tax, 2)
      products[#products + 1] = O{
         "quantity", tostring(p.qty),
         "title", p.title,
         "options", options_list(p.options),
         "price_excl_tax", unit_excl,
         "price_tax", unit_tax,
         "price_incl_tax", unit_incl,
         "original_price_excl_tax", p.price,
         "original_price_incl_tax", orig_incl,
         "has_discount", discount > 0,
         "tax_percentage", p.tax,
         "total_price_excl_tax", line_excl,
         "total_price_tax", line_tax,
         "total_price_incl_tax", line_incl,
         "total_discount_amount", round(discount * p.qty),
         "applied_discount", d.discount and d.discount.code or null,
      }
      items[#items + 1] = {
         item_id = p.sku, title = p.title, quantity = p.qty, options = p.options,
         price_excl_tax = unit_excl, price_incl_tax = unit_incl, tax_percentage = p.tax,
         total_price_incl_tax = line_incl,
      }
   end
   local ship = d.shipping
   local ship_tax = ship and round(ship.excl * 0.21) or 0
   local ship_incl = ship and round(ship.excl + ship_tax) or 0
   if ship then
      sum_excl, sum_tax = sum_excl + ship.excl, sum_tax + ship_tax
      tax_amounts["21"] = round(tax_amounts["21"] + ship_tax, 2)
   end
   local total_excl, total_tax = round(sum_excl), round(sum_tax)
   local total_incl = round(total_excl + total_tax)

   local discount = null
   if d.discount then
      discount = O{
         "discount_type", "coupon",
         "discount_code", d.discount.code,
         "label", d.discount.label,
         "discount_value", d.discount.percentage,
         "discount_value_type", "percentage",
         "discount_amount", round(discount_total),
         "applied_to_shipping", false,
         "total_amount_after_discount", total_incl,
      }
   end
   local paid = d.payment_status == "paid"
   local order = O{
      "tax_amounts", tax_amounts,
      "show_price_tax_included", true,
      "session", d.cart_session,
      "total_price", total_excl,
      "total_price_tax", total_tax,
      "total_price_with_tax", total_incl,
      "total_discount_amount", round(discount_total),
      "products", products,
   }
   local detail = O{
      "order_id", d.id,
      "order_number", d.number,
      "vendor_comment", d.vendor_comment or null,
      "type", d.type,
   }
   if d.type == "checkout" then
      order.status = d.status
      order.invoice_id = d.invoice_id or null
      order.pdf_status = O{
         "invoice", d.invoice_id and pdf("generated",
            "https://shop.example.com/invoices/" .. d.invoice_id .. ".pdf") or pdf("not_generated"),
         "package_slip", pdf(paid and "generated" or "not_generated",
            paid and ("https://shop.example.com/package-slips/" .. d.number .. ".pdf") or nil),
      }
      order.discount = discount
      order.should_snelstart_sync = paid
      order.metadata = O{
         "sendcloud_no_parcels", 1,
         "sendcloud_weight", d.weight or 0.5,
         "sendcloud_labels_created", paid,
         "sendcloud_shipment_created", paid,
      }
      json.order(order, { "tax_amounts", "show_price_tax_included", "session", "total_price",
         "total_price_tax", "total_price_with_tax", "total_discount_amount", "products", "status",
         "invoice_id", "pdf_status", "discount", "should_snelstart_sync", "metadata" })
      detail.quote = O{ "order", O{ "products", A() } }
      detail.checkout = O{
         "order", order,
         "shipment", O{ "selected", O{
            "selected", ship.id,
            "title", ship.title,
            "price", O{ "tax_class", 2, "incl_tax", ship_incl, "tax", ship_tax, "excl_tax", ship.excl },
         } },
         "payment", O{
            "selected", d.payment_method or null,
            "methods", A(),
            "payment_status", d.payment_status,
         },
      }
   else
      order.discount = discount
      json.order(order, { "show_price_tax_included", "tax_amounts", "session", "total_price",
         "total_price_tax", "total_price_with_tax", "total_discount_amount", "products", "discount" })
      detail.quote = O{ "order", order }
      detail.checkout = O{ "order", O{ "products", A() } }
   end
   detail.users = users_block(d.person, d.ship_to)
   json.order(detail, { "order_id", "order_number", "vendor_comment", "type", "quote", "checkout", "users" })

   return {
      id = d.id,
      order_number = d.number,
      type = d.type,
      website_id = d.website_id,
      session = d.session,
      email = d.person.email,
      customer_id = d.customer_id,
      payment_status = d.payment_status,
      payment_method = d.payment_method,
      status = d.status,
      status_label = d.status_label,
      invoice_id = d.invoice_id,
      created_at = d.created_at,
      shipping_method = ship and ship.title or nil,
      currency = "EUR",
      total = total_incl,
      tax = total_tax,
      total_without_tax = total_excl,
      shipping = ship_incl,
      items = items,
      detail = detail,
   }
end

------------------------------------------------------------------ orders

local example = assert(json.decode(DETAIL_EXAMPLE)).data
example.order_number = "ORD-2025-001"

-- Order 2502: everything the other endpoints need, with the example's values.
local order_2502 = {
   id = 2502,
   order_number = "ORD-2025-001",
   type = "checkout",
   website_id = 1,
   session = "abc123def456ghi789",
   email = "john@example.com",
   customer_id = 1,
   payment_status = "open",
   payment_method = "ideal",
   status = "pending",
   status_label = "Pending",
   created_at = "2025-01-15T10:30:00.000000Z",
   shipping_method = "Standard Shipping",
   currency = "EUR",
   total = 129.99551,
   tax = 22.55749,
   total_without_tax = 107.43802,
   shipping = 4.99972,
   items = {
      {
         item_id = "TSHIRT-001", title = "T Shirt", quantity = 1, options = {},
         price_excl_tax = 103.30579, price_incl_tax = 125.00026, tax_percentage = 21,
         total_price_incl_tax = 125.00026,
      },
   },
   detail = example,
}

local STANDARD = { id = "kJ9hqHhCYhCHOKHE", title = "Standard Shipping", excl = 4.13223 }
local EXPRESS = { id = "Xp7Rt2LmQa9ZcVbN", title = "Express Shipping", excl = 8.26446 }
local PICKUP = { id = "Pk0UpStoreLocal01", title = "Pick-up in store", excl = 0 }

seed.orders = {
   build{
      id = 42, number = "ORD-2024-042", type = "checkout", website_id = 1,
      session = "f3a9c1d27b5e4a60", cart_session = "Hq2vLw8ZpNc4Xy7Tb1RmKe5Ja3Ud6Sf9Gi0Oo42",
      person = GUEST, customer_id = nil, created_at = "2024-11-02T14:05:12.000000Z",
      payment_status = "paid", payment_method = "ideal", status = "completed", status_label = "Completed",
      invoice_id = "INV-2024-0042",
      products = {
         { sku = "MUG-CLASSIC", title = "Coffee Mug", qty = 2, price = 12.35537, tax = 21 },
      },
      shipping = STANDARD,
   },
   order_2502,
   build{
      id = 2503, number = "ORD-2025-002", type = "checkout", website_id = 1,
      session = "b7c8d9e0f1a2b3c4d5e6", cart_session = "Rt5Yu7Io9Pa1Sd3Fg5Hj7Kl9Zx1Cv3Bn5Mq2503",
      person = seed.customers[1], customer_id = 1, created_at = "2025-02-03T09:12:44.000000Z",
      payment_status = "paid", payment_method = "creditcard", status = "completed", status_label = "Completed",
      invoice_id = "INV-2025-0002", weight = 1.2,
      discount = { code = "WELCOME10", label = "Welcome discount 10%", percentage = 10 },
      products = {
         { sku = "HOODIE-GRY", title = "Hoodie", qty = 1, price = 49.5, tax = 21,
           options = { { "Size", "L" }, { "Colour", "Grey" } } },
         { sku = "SOCKS-3P", title = "Socks (3 pack)", qty = 3, price = 7.33945, tax = 9 },
      },
      shipping = EXPRESS,
   },
   build{
      id = 2504, number = "QUO-2025-001", type = "quote", website_id = 2,
      session = "q1w2e3r4t5y6u7i8o9p0", cart_session = "Qu0t3Se55i0nJaneSmit2504wXyZaBcDeFgHiJk",
      person = seed.customers[2], customer_id = 2, created_at = "2025-02-10T16:45:00.000000Z",
      payment_status = "open", payment_method = nil, status = "open", status_label = "Open",
      vendor_comment = "Price valid for 30 days.",
      products = {
         { sku = "BEANS-1KG", title = "Espresso beans 1 kg", qty = 10, price = 22.93578, tax = 9 },
         { sku = "GRINDER-PRO", title = "Coffee grinder", qty = 1, price = 185.95041, tax = 21 },
      },
   },
   build{
      id = 2505, number = "ORD-2025-003", type = "checkout", website_id = 2,
      session = "abc123def456ghi789", cart_session = "Ja9eSm1tCart2505aBcDeFgHiJkLmNoPqRsTuVw",
      person = seed.customers[2], customer_id = 2, created_at = "2025-03-01T08:00:00.000000Z",
      payment_status = "open", payment_method = "bancontact", status = "pending", status_label = "Pending",
      products = {
         { sku = "BEANS-250G", title = "Espresso beans 250 g", qty = 2, price = 7.29358, tax = 9 },
      },
      shipping = STANDARD,
   },
   build{
      id = 2506, number = "ORD-2025-004", type = "checkout", website_id = 3,
      session = "z9y8x7w6v5u4t3s2r1q0", cart_session = "Gu3stB2bCart2506ZyXwVuTsRqPoNmLkJiHgFe",
      person = GUEST, customer_id = nil, created_at = "2025-03-04T11:20:30.000000Z",
      payment_status = "paid", payment_method = "banktransfer", status = "processing",
      status_label = "Processing", invoice_id = "INV-2025-0004", weight = 12,
      ship_to = {
         firstname = "Magazijn", lastname = "Jansen BV", phone = "+32470123456",
         email = "warehouse@example.net", company = "Jansen BV", street = "Havenlaan",
         number = "200", postcode = "2030", city = "Antwerpen", country = "BE",
      },
      products = {
         { sku = "PAPER-A4-BOX", title = "A4 paper (box of 5 reams)", qty = 4, price = 24.75, tax = 21 },
      },
      shipping = PICKUP,
   },
   build{
      id = 2507, number = "QUO-2025-002", type = "quote", website_id = 3,
      session = "m1n2b3v4c5x6z7l8k9j0", cart_session = "Qu0t3Se55i0nJohnDoe2507hGfEdCbAzYxWvUt",
      person = seed.customers[1], customer_id = 1, created_at = "2025-03-12T13:37:00.000000Z",
      payment_status = "open", payment_method = nil, status = "open", status_label = "Open",
      products = {
         { sku = "DESK-OAK", title = "Standing desk (oak)", qty = 1, price = 536.36364, tax = 21 },
      },
   },
}

------------------------------------------------------------------ lookups

local by_id, by_number, by_session = {}, {}, {}
for _, o in ipairs(seed.orders) do
   by_id[o.id] = o
   by_number[o.order_number] = o
   by_session[o.website_id .. "\0" .. o.session] = o
end

function seed.order_by_id(id)
   return by_id[id]
end

function seed.order_by_number(number)
   return by_number[number]
end

-- website_id as given by the client (string or number).
function seed.order_by_session(website_id, session)
   return by_session[tostring(website_id) .. "\0" .. tostring(session)]
end

return seed
