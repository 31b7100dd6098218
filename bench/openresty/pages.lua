-- The two storefront pages of bench/openresty/speed.lua: the same order page
-- from orders/detail, once through wemasy.ngx (the storefront's client) and
-- once through bench/openresty/cosocket.lua.  Same rendering, same answer.
local cosocket = require("cosocket")
local storefront = require("storefront")

local pages = {}

local ORDER = { order_number = "ORD-2025-001" }

local function render(data)
  local order = data.checkout and data.checkout.order or {}
  local rows = {}
  for _, p in ipairs(order.products or {}) do
    rows[#rows + 1] = "<li>" .. storefront.html(p.title) .. " × " .. storefront.html(p.quantity) .. "</li>"
  end
  return storefront.page(200, "Order " .. storefront.html(data.order_number), "<ul>" .. table.concat(rows)
    .. "</ul>\n<p>Total: " .. storefront.money(order.total_price_with_tax) .. "</p>")
end

local function failed(err)
  storefront.log_error("bench page", err)
  return storefront.page(502, "Order", "<p>Not now.</p>")
end

function pages.wemasy()
  local body, err = storefront.shop:orders_detail(ORDER)
  if not body then return failed(err) end
  return render(body.data)
end

function pages.cosocket()
  local body, err = cosocket.call("orders/detail", ORDER)
  if not body then return failed(err) end
  return render(body.data)
end

-- For `speed.lua --analysis`: the cosocket page plus one empty trip to the
-- thread pool (what the hand-off alone costs), and the plain, blocking
-- client on the event loop (what wemasy and libcurl cost without it).
function pages.nothing() end

function pages.trip()
  local ok, err = ngx.run_worker_thread("wemasy", "pages", "nothing")
  while not ok and err == "no available Lua vm" do -- more pages than VMs: wait for one
    ngx.sleep(0.001)
    ok, err = ngx.run_worker_thread("wemasy", "pages", "nothing")
  end
  if not ok then return failed(err) end
  return pages.cosocket()
end

local blocking

function pages.blocking()
  -- The storefront client's own options (token included), as wemasy.ngx hands them to its thread VMs.
  blocking = blocking or require("wemasy").new(require("wemasy.methods").state(storefront.shop).opts)
  local body, err = blocking:orders_detail(ORDER)
  if not body then return failed(err) end
  return render(body.data)
end

return pages
