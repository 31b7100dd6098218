-- make openresty-demo: the sandbox, the storefront of nginx.conf on two nginx
-- workers in front of it, and a walk through its pages.  On a terminal it then
-- keeps running until Enter, so the pages can be tried in a browser or with curl.
local launch = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/launch.lua")
local sandbox = require("wemasy.sandbox")
local proc = require("wemasy.sandbox.proc")

local base_url, sb = sandbox.start{ limits = { default = 60, sync = 5 } }
if not base_url then
  io.stderr:write(tostring(sb), "\n")
  os.exit(1)
end
local shop, err = launch.start{ base_url = base_url, token = sandbox.tokens.merchant, workers = 2 }
if not shop then
  sb:stop()
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print("sandbox API:  " .. base_url)
print("storefront:   " .. shop.url .. "  (examples/openresty/nginx.conf, 2 workers, thread_pool wemasy)")

local function show(title, method, path, body)
  local status, page, headers = launch.request(method, shop.url .. path, body)
  print(("\n== %s %s  ->  %s%s"):format(method, path, tostring(status),
    headers and headers["retry-after"] and (" (Retry-After: " .. headers["retry-after"] .. ")") or ""))
  print("   " .. title)
  local text = tostring(page):gsub("<!doctype.-<body>\n", ""):gsub("</body></html>\n?$", "")
  for line in text:gmatch("[^\n]+") do print("   | " .. line) end
end

show("a paid order's first thank-you page: the GA4 purchase event", "GET",
  "/thank-you?website_id=1&order_session=f3a9c1d27b5e4a60")
show("the same page again: no event (already tracked)", "GET", "/thank-you?website_id=1&order_session=f3a9c1d27b5e4a60")
show("an order not paid yet: no event, not marked", "GET", "/thank-you?website_id=1&order_session=abc123def456ghi789")
show("order lookup", "POST", "/order",
  launch.form{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" })
for i = 1, 6 do
  show("admin: queue a SnelStart sync (" .. i .. " of 6; the quota is 5 a minute)", "POST",
    "/admin/sync-snelstart", "order_id=2502")
end

if proc.run("test -t 0") then
  print("\nRunning. Try " .. shop.url .. "/order in a browser (order code abc123def456ghi789, john@example.com)."
    .. "\nPress Enter to stop.")
  io.read("*l")
end
shop:stop()
sb:stop()
-- The limiter's shared segment of this throw-away sandbox URL is of no further use.
require("wemasy.core")._debug_unlink(base_url, sandbox.tokens.merchant)
