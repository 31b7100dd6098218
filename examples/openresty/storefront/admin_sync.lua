-- POST /admin/sync-snelstart (order_id=2502): queues the order's sync to
-- SnelStart (an Auth endpoint with its own quota, 5 a minute).
--
-- The request never waits for the limiter: the admin client has
-- rate_limit = { wait = false }, so with no slot free the answer is at once
-- 429 with Retry-After, and nothing is sent.  With a slot, the sync is
-- sent (one API round trip, on a worker thread: the event loop goes on) and
-- the answer is 202: Wemasy queues the sync on its side.  Answers are JSON
-- for the admin screen that calls this.
local cjson = require("cjson.safe")
local storefront = require("storefront")

local STATUS = { validation = 422, forbidden = 403, unauthenticated = 401, invalid_argument = 400 }

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(cjson.encode(t))
  return ngx.exit(status)
end

return function()
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return reply(405, { error = "use POST" })
  end
  local order_id = tonumber(storefront.arg("order_id") or "")
  if not order_id or order_id ~= math.floor(order_id) or order_id < 1 then
    return reply(400, { error = "order_id must be a positive integer" })
  end

  local body, err = storefront.admin:orders_sync_snelstart_order{ order_id = order_id }
  if body then
    return reply(202, { queued = true, order_id = order_id, message = body.message })
  end
  if err.kind == "rate_limited" then
    -- err.attempts == 0: the limiter refused before sending; else the API did.
    ngx.header["Retry-After"] = storefront.retry_after(err)
    return reply(429, { queued = false, error = "rate_limited", retry_after = tonumber(storefront.retry_after(err)),
                        sent = (err.attempts or 0) > 0 })
  end
  local status = STATUS[err.kind]
  if not status then storefront.log_error("sync-snelstart", err) end
  return reply(status or 502, { queued = false, error = err.kind, message = err.message, errors = err.errors })
end
