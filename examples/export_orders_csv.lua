-- Export order details to CSV: one row per order, for the bookkeeper or a
-- spreadsheet.
--
--   lua5.4 examples/export_orders_csv.lua --sandbox examples/data/orders-of-the-day.txt
--   WEMASY_TOKEN=... lua5.4 examples/export_orders_csv.lua -o orders.csv orders.txt
--   make example-export
--
-- The orders come from a file of order numbers, one per line: the API has no
-- endpoint that lists orders (export the numbers from the shop's order list).
-- Details are fetched with orders/detail through client:batch, four at a
-- time, within the API's 60 requests a minute (the limiter waits when a
-- longer list needs it).  Amounts are rounded to cents; the order's own
-- numbers keep their full precision in the API's answer.  An order that
-- cannot be fetched is reported on stderr and left out; the exit code is 1
-- then.
local argparse = require("argparse")
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local support = require("support")

local parser = argparse("export_orders_csv", "Export order details to CSV.")
parser:argument("orders", "File with order numbers, one per line.")
parser:option("-o --output", "CSV file to write (default: stdout).")
parser:flag("--sandbox", "Run against a local sandbox.")
local args = parser:parse()

local client, sb = support.client(args.sandbox and {} or nil, args.sandbox and { rate_limit = { shared = false } })

local COLUMNS = {
  "order_number", "order_id", "type", "status", "payment_status", "payment_method", "customer", "company",
  "email", "country", "vat_number", "products", "discount_code", "total_excl_tax", "tax", "total_incl_tax",
  "invoice_id",
}

local function null_to_nil(v)
  if v == require("wemasy").null then return nil end
  return v
end

local function row_of(d)
  local block = d[d.type] or {}
  local order = block.order or {}
  local payment = block.payment or {}
  local u = d.users or {}
  local products = 0
  for _, p in ipairs(order.products or {}) do products = products + (tonumber(p.quantity) or 1) end
  local discount = null_to_nil(order.discount)
  local name = table.concat({ null_to_nil(u.invoice_firstname) or "", null_to_nil(u.invoice_lastname) or "" }, " ")
  return {
    d.order_number, string.format("%d", d.order_id), d.type, null_to_nil(order.status),
    null_to_nil(payment.payment_status), null_to_nil(payment.selected), (name:gsub("^%s+", ""):gsub("%s+$", "")),
    null_to_nil(u.invoice_company), null_to_nil(u.invoice_email), null_to_nil(u.invoice_country),
    null_to_nil(u.invoice_tax_number), products, discount and null_to_nil(discount.discount_code),
    support.money(order.total_price), support.money(order.total_price_tax), support.money(order.total_price_with_tax),
    null_to_nil(order.invoice_id),
  }
end

local numbers = support.read_list(args.orders)
local calls = {}
for i, number in ipairs(numbers) do calls[i] = { "orders_detail", { order_number = number } } end

local bar = support.progress(#calls)
local results = client:batch(calls, { concurrency = 4, progress = function(done, total)
  bar.update(done, done == total and "fetched" or "fetching order details")
end })
bar.finish()

local out = io.stdout
if args.output then
  local why
  out, why = io.open(args.output, "wb")
  if not out then support.die(tostring(why)) end
end
out:write(support.csv_line(COLUMNS))
local written, failed = 0, 0
for i, r in ipairs(results) do
  local body, err = r[1], r[2]
  if body then
    out:write(support.csv_line(row_of(body.data)))
    written = written + 1
  else
    io.stderr:write(numbers[i], ": ", tostring(err), "\n")
    failed = failed + 1
  end
end
if out ~= io.stdout then out:close() end
io.stderr:write(string.format("%d orders exported%s, %d failed\n", written,
  args.output and (" to " .. args.output) or "", failed))
client:close()
if sb then sb:stop() end
os.exit(failed > 0 and 1 or 0, true)
