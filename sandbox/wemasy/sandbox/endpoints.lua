-- What the sandbox does for each endpoint: who may call it (beyond the
-- table's Auth/Public), validation rules beyond the fields' types, and the
-- handler.  Path, auth, limiter group and field rules come from the client's
-- own table (wemasy.endpoints): each endpoint is described once.  A handler
-- gets the validated input and the caller's identity (nil on public
-- endpoints) and returns status, body.
local api = require "wemasy.endpoints"

local json = require "wemasy.sandbox.json"
local seed = require "wemasy.sandbox.seed"
local store = require "wemasy.sandbox.store"
local validate = require "wemasy.sandbox.validate"
local views = require "wemasy.sandbox.views"

local A, O = json.array, json.object

local behaviour = {}

local function not_found(with_data)
   if with_data then
      return 404, O{ "error", true, "message", "Order not found", "data", A() }
   end
   return 404, O{ "error", true, "message", "Order not found" }
end

local function is_merchant(who) return who.role == "merchant" end
local function is_customer(who) return who.role == "customer" end

behaviour["orders/mark-purchase-tracked"] = {
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

behaviour["orders/get"] = {
   handler = function(input)
      local order = seed.order_by_session(input.website_id, input.order_session)
      if not order or order.email:lower() ~= input.email:lower() then
         return not_found(true)
      end
      return 200, views.public_order(order)
   end,
}

behaviour["orders/sync-snelstart-order"] = {
   authorize = function(who) return is_merchant(who) and who.finance end,
   extra_rules = {
      order_id = { validate.exists(function(v)
         if v == true or v == false then return false end
         local id = validate.to_integer(v)
         return id ~= nil and seed.order_by_id(id) ~= nil
      end) },
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

behaviour["customer/orders/get"] = {
   authorize = is_customer,
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

behaviour["orders/detail"] = {
   authorize = is_merchant,
   handler = function(input)
      local order = seed.order_by_number(input.order_number)
      if not order then return not_found(false) end
      return 200, views.detail(order)
   end,
}

-- Laravel rules from the field descriptions: required or nullable, the type,
-- then the endpoint's own extra rules.
local function rules_of(ep, extra)
   local rules = {}
   for _, f in ipairs(ep.fields) do
      local list = {}
      if f.required then list[#list + 1] = "required" elseif f.nullable then list[#list + 1] = "nullable" end
      list[#list + 1] = f.type
      for _, rule in ipairs(extra and extra[f.name] or {}) do list[#list + 1] = rule end
      rules[#rules + 1] = { f.name, list }
   end
   return rules
end

local endpoints = {}
for _, ep in ipairs(api) do
   local b = assert(behaviour[ep.path], "the sandbox has no handler for " .. ep.path)
   endpoints[ep.path] = {
      limiter = ep.group,
      auth = ep.auth,
      authorize = b.authorize,
      rules = rules_of(ep, b.extra_rules),
      handler = b.handler,
   }
end

return endpoints
