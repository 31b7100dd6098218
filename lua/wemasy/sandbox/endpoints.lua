-- The five API endpoints: for each, its rate limiter, who may call it, its
-- validation rules and its handler. Keyed by the path under
-- /api/services/webshop/v1/. A handler gets the validated input and the
-- caller's identity (nil on public endpoints) and returns status, body.

local json = require "wemasy.sandbox.json"
local seed = require "wemasy.sandbox.seed"
local store = require "wemasy.sandbox.store"
local validate = require "wemasy.sandbox.validate"
local views = require "wemasy.sandbox.views"

local A, O = json.array, json.object

local endpoints = {}

local function not_found(with_data)
   if with_data then
      return 404, O{ "error", true, "message", "Order not found", "data", A() }
   end
   return 404, O{ "error", true, "message", "Order not found" }
end

local function is_merchant(who) return who.role == "merchant" end
local function is_customer(who) return who.role == "customer" end

endpoints["orders/mark-purchase-tracked"] = {
   limiter = "default",
   auth = false,
   rules = {
      { "website_id", { "required", "string" } },
      { "order_session", { "required", "string" } },
      { "mark", { "nullable", "boolean" } },
   },
   handler = function(input)
      local order = seed.order_by_session(input.website_id, input.order_session)
      if not order or order.type ~= "checkout" then
         return 404, O{ "error", true }
      end
      -- mark absent or null means true; false only reads the flag.
      local mark = validate.to_boolean(input.mark)
      local before
      if mark == false then
         before = store.is_tracked(order.id)
      else
         before = store.mark_tracked(order.id)
      end
      return 200, views.purchase(order, before)
   end,
}

endpoints["orders/get"] = {
   limiter = "default",
   auth = false,
   rules = {
      { "website_id", { "required", "string" } },
      { "order_session", { "required", "string" } },
      { "email", { "required", "string" } },
   },
   handler = function(input)
      local order = seed.order_by_session(input.website_id, input.order_session)
      if not order or order.email:lower() ~= input.email:lower() then
         return not_found(true)
      end
      return 200, views.public_order(order)
   end,
}

endpoints["orders/sync-snelstart-order"] = {
   limiter = "sync",
   auth = true,
   authorize = function(who) return is_merchant(who) and who.finance end,
   rules = {
      { "order_id", { "required", "integer", validate.exists(function(v)
         if v == true or v == false then return false end
         local id = validate.to_integer(v)
         return id ~= nil and seed.order_by_id(id) ~= nil
      end) } },
   },
   handler = function(input)
      store.record_sync(validate.to_integer(input.order_id))
      return 200, O{
         "error", false,
         "message", "Order queued for synchronisation with SnelStart",
         "data", A(),
      }
   end,
}

endpoints["customer/orders/get"] = {
   limiter = "default",
   auth = true,
   authorize = is_customer,
   rules = {
      { "order_id", { "required", "integer" } },
   },
   handler = function(input, who)
      local order = seed.order_by_id(validate.to_integer(input.order_id))
      if not order or order.customer_id ~= who.customer_id then
         return not_found(true)
      end
      return 200, O{
         "error", false,
         "message", "Order retrieved successfully",
         "data", O{ "order", views.customer_order(order) },
      }
   end,
}

endpoints["orders/detail"] = {
   limiter = "default",
   auth = true,
   authorize = is_merchant,
   rules = {
      { "order_number", { "required", "string" } },
   },
   handler = function(input)
      local order = seed.order_by_number(input.order_number)
      if not order then return not_found(false) end
      return 200, views.detail(order)
   end,
}

return endpoints
