-- Every endpoint wemasy wraps, described once.  The client's methods, request
-- validation, the limiter group, retry safety, the sandbox's routes, the CLI's
-- `endpoints` listing and the docs are all driven by this table: adding an
-- endpoint is adding one entry here, nothing else.
--
--   path        the part after /services/webshop/v1/
--   auth        true: needs a Bearer token (the pages' "Auth"); false: "Public"
--   group       rate-limiter group: "default" (60 a minute) or "sync" (5 a minute)
--   idempotent  safe to send twice: a retry after an ambiguous failure cannot change
--               anything on the server (reads; mark-purchase-tracked is not: a
--               second mark turns `already_tracked` true and a storefront would
--               then skip the GA4 purchase event)
--   fields      request body, in the order the API page lists them:
--               name, type ("string" | "integer" | "boolean"), required,
--               nullable (JSON null allowed), example
--   statuses    the HTTP statuses the page documents
--   response    the name of its response type (the shapes: tools/responses.lua)
local endpoints = {
  {
    path = "orders/mark-purchase-tracked",
    summary = "Mark an order's purchase as tracked (returns the GA4 purchase data)",
    auth = false, group = "default", idempotent = false,
    fields = {
      { name = "website_id", type = "string", required = true, example = "1" },
      { name = "order_session", type = "string", required = true, example = "abc123def456ghi789" },
      { name = "mark", type = "boolean", nullable = true, example = true },
    },
    statuses = { 200, 404, 422, 429 },
    response = "OrdersMarkPurchaseTrackedResponse",
  },
  {
    path = "orders/get",
    summary = "Get an order by website, order session and e-mail address",
    auth = false, group = "default", idempotent = true,
    fields = {
      { name = "website_id", type = "string", required = true, example = "1" },
      { name = "order_session", type = "string", required = true, example = "abc123def456ghi789" },
      { name = "email", type = "string", required = true, example = "john@example.com" },
    },
    statuses = { 200, 404, 422, 429 },
    response = "OrdersGetResponse",
  },
  {
    path = "orders/sync-snelstart-order",
    summary = "Sync an order to the financial provider (SnelStart); 5 requests a minute",
    auth = true, group = "sync", idempotent = false,
    fields = {
      { name = "order_id", type = "integer", required = true, example = 42 },
    },
    statuses = { 200, 401, 403, 422, 429 },
    response = "OrdersSyncSnelstartOrderResponse",
  },
  {
    path = "customer/orders/get",
    summary = "Get one order of the authenticated customer (404 for another customer's order)",
    auth = true, group = "default", idempotent = true,
    fields = {
      { name = "order_id", type = "integer", required = true, example = 2502 },
    },
    statuses = { 200, 401, 404, 422, 429 },
    response = "CustomerOrdersGetResponse",
  },
  {
    path = "orders/detail",
    summary = "Get full order details: products, prices, taxes, shipping, payment, customer",
    auth = true, group = "default", idempotent = true,
    fields = {
      { name = "order_number", type = "string", required = true, example = "ORD-2025-001" },
    },
    statuses = { 200, 401, 403, 404, 422, 429 },
    response = "OrdersDetailResponse",
  },
}

-- Rate-limiter groups: the server's quota per token (Laravel throttle), stated
-- only here.  The core's limiter starts from these (csrc/options.c reads this
-- table) and learns from X-RateLimit-Limit; `rate_limit.groups` in wemasy.new
-- overrides them per field.
endpoints.groups = {
  default = { limit = 60, window = 60 },
  sync = { limit = 5, window = 60 },
}

-- Derived once: method names and lookups, so no caller recomputes them.
for _, ep in ipairs(endpoints) do
  ep.method = ep.path:gsub("[/-]", "_")
  ep.field = {}
  for _, f in ipairs(ep.fields) do ep.field[f.name] = f end
  endpoints[ep.path] = ep
end

return endpoints
