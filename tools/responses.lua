-- The response bodies of the endpoints, as the API pages document them (and
-- the sandbox serves them), and a checker of decoded values against them.
-- For the tools, not the client: the LuaLS annotations in types/ and the
-- reference in docs/ are generated from this and wemasy.endpoints (whose
-- entries name their response type) by tools/gen.lua;
-- spec/tools/generated_spec.lua checks every field against the sandbox's answers,
-- so a shape here cannot drift from what comes back.
--
--   local responses = dofile("tools/responses.lua")
--
-- A type is written as a string:
--   string | number | integer | boolean | any | table   primitives (table: any object)
--   Name                       one of the named objects below
--   T[]                        an array of T
--   map<T>                     an object with free keys (tax_amounts: "21" -> 22.56)
--   T|null                     JSON null allowed (wemasy.null)
-- A field whose name ends in "?" may be absent.
local M = {}

M.types = {}

local function object(name, doc, fields)
  local t = { name = name, doc = doc, fields = {} }
  for i, f in ipairs(fields) do
    local fname, optional = f[1]:match("^(.-)(%??)$")
    t.fields[i] = { name = fname, type = f[2], doc = f[3], optional = optional == "?" }
  end
  M.types[#M.types + 1] = t
  M.types[name] = t
  return t
end

object("OrderProduct", "A product line of a checkout or quote.", {
  { "title", "string" },
  { "quantity", "string", "a string in these blocks, e.g. \"1\"" },
  { "options", "ProductOption[]" },
  { "has_discount", "boolean" },
  { "applied_discount", "string|null", "the discount code applied, if any" },
  { "original_price_excl_tax", "number" },
  { "original_price_incl_tax", "number" },
  { "price_excl_tax", "number" },
  { "price_incl_tax", "number" },
  { "price_tax", "number" },
  { "tax_percentage", "number" },
  { "total_discount_amount", "number" },
  { "total_price_excl_tax", "number" },
  { "total_price_incl_tax", "number" },
  { "total_price_tax", "number" },
})

object("ProductOption", "A chosen product option.", {
  { "label", "string" },
  { "value", "string" },
})

object("Discount", "The discount applied to an order.", {
  { "label", "string" },
  { "discount_code", "string|null" },
  { "discount_type", "string", "e.g. \"coupon\"" },
  { "discount_value", "number" },
  { "discount_value_type", "string", "\"percentage\" or \"fixed\"" },
  { "discount_amount", "number" },
  { "applied_to_shipping", "boolean" },
  { "total_amount_after_discount", "number" },
})

object("OrderMetadata", "Shipping (Sendcloud) metadata of a checkout order.", {
  { "sendcloud_labels_created", "boolean" },
  { "sendcloud_shipment_created", "boolean" },
  { "sendcloud_no_parcels", "integer" },
  { "sendcloud_weight", "number" },
})

object("PdfDocument", "A generated PDF and its state.", {
  { "status", "string", "e.g. \"generated\", \"not_generated\"" },
  { "url", "string|null" },
  { "pending", "boolean" },
})

object("PdfStatus", "The invoice and package slip PDFs.", {
  { "invoice", "PdfDocument" },
  { "package_slip", "PdfDocument" },
})

object("CheckoutOrder", "A checkout's order. When the order is a quote, `checkout.order` holds only "
  .. "`products` (empty) and every other field is absent.", {
  { "products", "OrderProduct[]" },
  { "status?", "string|null" },
  { "discount?", "Discount|null" },
  { "invoice_id?", "string|null" },
  { "session?", "string" },
  { "metadata?", "OrderMetadata" },
  { "pdf_status?", "PdfStatus" },
  { "should_snelstart_sync?", "boolean" },
  { "show_price_tax_included?", "boolean" },
  { "tax_amounts?", "map<number>", "tax per rate: [\"21\"] = 22.56" },
  { "total_discount_amount?", "number" },
  { "total_price?", "number", "excluding tax" },
  { "total_price_tax?", "number" },
  { "total_price_with_tax?", "number" },
})

object("CheckoutPayment", "Payment of a checkout order.", {
  { "selected", "string|null", "the payment method, e.g. \"ideal\"" },
  { "payment_status", "string|null", "e.g. \"paid\", \"open\"" },
  { "methods", "any[]" },
})

object("ShipmentPrice", "The price of the chosen shipping method.", {
  { "excl_tax", "number" },
  { "incl_tax", "number" },
  { "tax", "number" },
  { "tax_class", "integer" },
})

object("ShipmentMethod", "The chosen shipping method.", {
  { "selected", "string", "the method's id" },
  { "title", "string" },
  { "price", "ShipmentPrice" },
})

object("CheckoutShipment", "Shipping of a checkout order.", {
  { "selected", "ShipmentMethod" },
})

object("CheckoutBlock", "The `checkout` block (for a quote: `{ order = { products = {} } }`).", {
  { "order", "CheckoutOrder" },
  { "payment?", "CheckoutPayment" },
  { "shipment?", "CheckoutShipment" },
})

object("QuoteOrder", "A quote's order. When the order is a checkout, `quote.order` holds only "
  .. "`products` (empty) and every other field is absent.", {
  { "products", "OrderProduct[]" },
  { "discount?", "Discount|null" },
  { "session?", "string" },
  { "show_price_tax_included?", "boolean" },
  { "tax_amounts?", "map<number>" },
  { "total_discount_amount?", "number" },
  { "total_price?", "number" },
  { "total_price_tax?", "number" },
  { "total_price_with_tax?", "number" },
})

object("QuoteBlock", "The `quote` block.", {
  { "order", "QuoteOrder" },
})

object("OrderUsers", "The customer's invoice and shipping details.", {
  { "invoice_firstname", "string|null" },
  { "invoice_lastname", "string|null" },
  { "invoice_email", "string|null" },
  { "invoice_phonenumber", "string|null" },
  { "invoice_company", "string|null" },
  { "invoice_is_company", "boolean|null" },
  { "invoice_tax_number", "string|null", "VAT number" },
  { "invoice_street", "string|null" },
  { "invoice_number", "string|null", "house number" },
  { "invoice_postcode", "string|null" },
  { "invoice_city", "string|null" },
  { "invoice_country", "string|null", "ISO 3166 code, e.g. \"NL\"" },
  { "invoice_notes", "string|null" },
  { "custom_shipping_information", "boolean|null", "true: the shipping_* fields differ from the invoice" },
  { "shipping_firstname", "string|null" },
  { "shipping_lastname", "string|null" },
  { "shipping_email", "string|null" },
  { "shipping_phonenumber", "string|null" },
  { "shipping_company", "string|null" },
  { "shipping_street", "string|null" },
  { "shipping_number", "string|null" },
  { "shipping_postcode", "string|null" },
  { "shipping_city", "string|null" },
  { "shipping_country", "string|null" },
})

object("Vies", "The EU VAT number (VIES) check of the order.", {
  { "status", "string", "e.g. \"unchecked\", \"valid\", \"invalid\"" },
  { "reverse_charge_applied", "boolean" },
})

object("Ga4Item", "A GA4 purchase item.", {
  { "item_id", "string" },
  { "item_name", "string" },
  { "price", "number", "unit price including tax" },
  { "quantity", "integer" },
})

object("Ga4Purchase", "The GA4 `purchase` event's data.", {
  { "transaction_id", "string", "the order number" },
  { "value", "number", "total including tax" },
  { "tax", "number" },
  { "shipping", "number", "including tax" },
  { "currency", "string" },
  { "items", "Ga4Item[]" },
})

object("OrderDetail", "`data` of orders/detail.", {
  { "order_id", "integer" },
  { "order_number", "string" },
  { "type", "string", "\"checkout\" or \"quote\": the block that holds the order" },
  { "checkout", "CheckoutBlock" },
  { "quote", "QuoteBlock" },
  { "users", "OrderUsers" },
  { "vendor_comment", "string|null" },
})

object("CustomerAddress", "A billing or shipping address of customer/orders/get.", {
  { "firstname", "string|null" },
  { "lastname", "string|null" },
  { "email", "string|null" },
  { "phone", "string|null" },
  { "company", "string|null" },
  { "street", "string|null" },
  { "number", "string|null" },
  { "postcode", "string|null" },
  { "city", "string|null" },
  { "country", "string|null" },
  { "tax_number?", "string|null", "billing only" },
})

object("CustomerOrderItem", "An order line of customer/orders/get.", {
  { "item_id", "string" },
  { "title", "string" },
  { "quantity", "integer" },
  { "options", "ProductOption[]" },
  { "price_excl_tax", "number" },
  { "price_incl_tax", "number" },
  { "tax_percentage", "number" },
  { "total_price_incl_tax", "number" },
})

object("CustomerOrder", "An order as its customer sees it.", {
  { "id", "integer" },
  { "order_number", "string" },
  { "order_session", "string" },
  { "type", "string", "\"checkout\" or \"quote\"" },
  { "status", "string" },
  { "status_label", "string" },
  { "payment_status", "string", "e.g. \"paid\", \"open\"" },
  { "payment_method", "string|null" },
  { "payment_methods", "string[]", "the methods the customer may pay with (empty unless can_pay)" },
  { "can_pay", "boolean" },
  { "created_at", "string", "ISO 8601" },
  { "invoice_id", "string|null" },
  { "shipping_method", "string|null" },
  { "total_amount", "number", "including tax" },
  { "total_amount_without_tax", "number" },
  { "total_tax", "number" },
  { "billing", "CustomerAddress" },
  { "shipping", "CustomerAddress" },
  { "items", "CustomerOrderItem[]" },
})

object("CustomerOrderData", "`data` of customer/orders/get.", {
  { "order", "CustomerOrder" },
})

-- The five response bodies.
object("OrdersMarkPurchaseTrackedResponse", "orders/mark-purchase-tracked's answer.", {
  { "error", "boolean" },
  { "already_tracked", "boolean", "the flag before this call: render the GA4 event only when false" },
  { "payment_status", "string|null" },
  { "purchase", "Ga4Purchase" },
})

object("OrdersGetResponse", "orders/get's answer (no `error` key).", {
  { "checkout", "CheckoutBlock" },
  { "quote", "QuoteBlock" },
  { "users", "OrderUsers" },
  { "vies", "Vies" },
})

object("OrdersSyncSnelstartOrderResponse", "orders/sync-snelstart-order's answer.", {
  { "error", "boolean" },
  { "message", "string" },
  { "data", "table", "empty" },
})

object("CustomerOrdersGetResponse", "customer/orders/get's answer.", {
  { "error", "boolean" },
  { "message", "string" },
  { "data", "CustomerOrderData" },
})

object("OrdersDetailResponse", "orders/detail's answer.", {
  { "error", "boolean" },
  { "data", "OrderDetail" },
})

-- Parses a type string: { kind = "primitive"|"object"|"array"|"map", name, of, nullable }.
function M.parse(text)
  local nullable = false
  if text:sub(-5) == "|null" then text, nullable = text:sub(1, -6), true end
  local node
  local inner = text:match("^map<(.+)>$")
  if inner then
    node = { kind = "map", of = M.parse(inner) }
  elseif text:sub(-2) == "[]" then
    node = { kind = "array", of = M.parse(text:sub(1, -3)) }
  elseif ({ string = 1, number = 1, integer = 1, boolean = 1, any = 1, table = 1 })[text] then
    node = { kind = "primitive", name = text }
  else
    assert(M.types[text], "tools/responses.lua: unknown type " .. text)
    node = { kind = "object", name = text }
  end
  node.nullable = nullable
  return node
end

-- Checks a decoded value against a type: returns true, or nil and the path
-- and the problem.  Empty tables pass as arrays, maps and empty objects
-- (lua-cjson decodes [] and {} alike).  Undocumented keys are problems.
function M.check(value, type_text, path, null)
  local node = type(type_text) == "table" and type_text or M.parse(type_text)
  path = path or "body"
  if value == null then
    if node.nullable then return true end
    return nil, path .. ": null where " .. tostring(type_text) .. " was documented"
  end
  if node.kind == "primitive" then
    local n = node.name
    if n == "any" then return true end
    if n == "integer" then
      if type(value) == "number" and value == math.floor(value) then return true end
    elseif n == "table" then
      if type(value) == "table" then return true end
    elseif type(value) == n then
      return true
    end
    return nil, path .. ": " .. type(value) .. " where " .. n .. " was documented"
  end
  if type(value) ~= "table" then return nil, path .. ": " .. type(value) .. " where a table was documented" end
  if node.kind == "array" then
    local n = 0
    for _ in pairs(value) do n = n + 1 end
    if n ~= #value then return nil, path .. ": an object where an array was documented" end
    for i, v in ipairs(value) do
      local ok, why = M.check(v, node.of, path .. "[" .. i .. "]", null)
      if not ok then return nil, why end
    end
    return true
  end
  if node.kind == "map" then
    for k, v in pairs(value) do
      local ok, why = M.check(v, node.of, path .. "[" .. tostring(k) .. "]", null)
      if not ok then return nil, why end
    end
    return true
  end
  local t = M.types[node.name]
  local known = {}
  for _, f in ipairs(t.fields) do
    known[f.name] = true
    local v = value[f.name]
    if v == nil then
      if not f.optional and next(value) ~= nil then return nil, path .. "." .. f.name .. ": missing" end
    else
      local ok, why = M.check(v, f.type, path .. "." .. f.name, null)
      if not ok then return nil, why end
    end
  end
  for k in pairs(value) do
    if not known[k] then return nil, path .. "." .. tostring(k) .. ": not documented in " .. node.name end
  end
  return true
end

return M
