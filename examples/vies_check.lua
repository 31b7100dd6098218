-- Check the VIES (EU VAT number) status of a list of orders, and flag those
-- where reverse charge (0% VAT) was applied without a valid VAT number: the
-- invoices a tax inspector would ask about.
--
--   lua5.4 examples/vies_check.lua --sandbox examples/data/vies-orders.csv
--   lua5.4 examples/vies_check.lua orders.csv     -- Public endpoint: no token needed
--   make example-vies
--
-- Input: a CSV file with a header and the columns order_number, website_id,
-- order_session and email: what orders/get (Public) needs to find an order.
-- The API has no endpoint that lists orders, so the list comes from the shop
-- (its order export has these columns).  order_number is only for the report.
--
-- Exit code: 0 when every order was checked and none is flagged, 3 when some
-- order is flagged, 1 when a lookup failed.  All sandbox orders are
-- "unchecked" without reverse charge, so the demo flags none.
local argparse = require("argparse")
local wemasy = require("wemasy")
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local support = require("support")

local parser = argparse("vies_check", "Check the VIES status of a list of orders.")
parser:argument("orders", "CSV with order_number, website_id, order_session, email.")
parser:flag("--sandbox", "Run against a local sandbox.")
local args = parser:parse()

local client, sb = support.client(args.sandbox and {} or nil,
  args.sandbox and { rate_limit = { shared = false } } or nil, true)

local rows = support.read_csv(args.orders)
local calls = {}
for i, row in ipairs(rows) do
  for _, column in ipairs({ "website_id", "order_session", "email" }) do
    if not row[column] or row[column] == "" then
      support.die(string.format("%s line %d: column %s is empty", args.orders, i + 1, column))
    end
  end
  calls[i] = { "orders_get", { website_id = row.website_id, order_session = row.order_session, email = row.email } }
end

local results = client:batch(calls, { concurrency = 4 })

local function text(v) return (v == nil or v == wemasy.null) and "-" or tostring(v) end

print(string.format("%-14s %-8s %-16s %-12s %-8s %s", "order", "country", "VAT number", "VIES", "reverse", "check"))
local counts, flagged, failed = {}, 0, 0
for i, r in ipairs(results) do
  local body, err = r[1], r[2]
  local label = rows[i].order_number or ("line " .. (i + 1))
  if not body then
    failed = failed + 1
    print(string.format("%-14s %s", label, tostring(err)))
  else
    local vies, users = body.vies or {}, body.users or {}
    local status = text(vies.status)
    counts[status] = (counts[status] or 0) + 1
    local note = "ok"
    if vies.reverse_charge_applied == true and status ~= "valid" then
      note, flagged = "ATTENTION: reverse charge without a valid VAT number", flagged + 1
    end
    print(string.format("%-14s %-8s %-16s %-12s %-8s %s", label, text(users.invoice_country),
      text(users.invoice_tax_number), status, vies.reverse_charge_applied and "yes" or "no", note))
  end
end

local summary = {}
for status, n in pairs(counts) do summary[#summary + 1] = status .. " " .. n end
table.sort(summary)
print(string.format("\n%d orders: %s; %d flagged, %d failed", #rows, table.concat(summary, ", "), flagged, failed))
client:close()
if sb then sb:stop() end
os.exit(failed > 0 and 1 or (flagged > 0 and 3 or 0), true)
