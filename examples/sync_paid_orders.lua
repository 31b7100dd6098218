-- Sync every paid order of a day to SnelStart, within the API's 5 a minute,
-- with a progress bar and a state file, so an interrupted run resumes where it
-- stopped.
--
--   lua5.4 examples/sync_paid_orders.lua --sandbox examples/data/orders-of-the-day.txt
--   WEMASY_TOKEN=... lua5.4 examples/sync_paid_orders.lua --state sync-2025-03-04.state orders.txt
--   make example-sync          -- the sandbox demo: stops after 2 orders, then resumes
--
-- Where "the orders of a day" come from: the Wemasy API has no endpoint that
-- lists orders, so this script reads the day's order numbers from a file, one
-- per line (export them from the shop's order list or database).  For each it
-- asks orders/detail whether it is a paid checkout, and syncs those with
-- orders/sync-snelstart-order.  Quotes and unpaid orders are skipped.
--
-- Rate limit: the sync endpoint allows 5 requests a minute per token.  The
-- client's limiter (group "sync") waits for a free slot before each sync, so a
-- run of 100 orders takes about 20 minutes and never gets a 429; the bar says
-- when it is waiting.  Other scripts on the same token and host share that
-- quota.  With --sandbox the window is 5 seconds and the sync quota 1, so
-- the three paid seed orders show the wait within seconds.
--
-- The state file gets one line per order that is done (synced, or skipped as
-- unpaid), written and flushed at once.  A rerun skips those.  An order
-- whose sync was sent when the run died but not yet written down is synced
-- again on the rerun (the API queues syncs; SnelStart gets it twice at most).
local argparse = require("argparse")
local wemasy = require("wemasy")
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local support = require("support")

local parser = argparse("sync_paid_orders", "Sync the paid orders of a day to SnelStart (5 a minute).")
parser:argument("orders", "File with the day's order numbers, one per line.")
parser:option("--state", "State file: orders already done are skipped.", "sync-state.tsv")
parser:flag("--sandbox", "Run against a local sandbox (short window: 1 sync per 5 s).")
parser:option("--stop-after", "Stop after N orders, as if interrupted (to try resuming).", nil, tonumber)
local args = parser:parse()

local client, sb
if args.sandbox then
  client, sb = support.client({ window = 5, limits = { sync = 1 } }, {
    rate_limit = { shared = false, groups = { sync = { limit = 1, window = 5 }, default = { window = 5 } } } })
  io.stderr:write("sandbox: sync quota 1 per 5 s here (the real API: 5 per minute)\n")
else
  -- A sync slot can be a minute away: wait for it rather than fail.
  client = support.client(nil, { rate_limit = { max_wait = 120 } })
end

-- The state file: order_number <TAB> outcome <TAB> order_id <TAB> time.
local done = {}
local f = io.open(args.state, "r")
if f then
  for line in f:lines() do
    local number, outcome = line:match("^([^\t]+)\t([^\t]+)\t")
    if number then done[number] = outcome end
  end
  f:close()
end
local state, why = io.open(args.state, "a")
if not state then support.die("cannot write the state file: " .. tostring(why)) end

local function record(number, outcome, order_id)
  state:write(string.format("%s\t%s\t%s\t%s\n", number, outcome, tostring(order_id or ""),
    os.date("!%Y-%m-%dT%H:%M:%SZ")))
  state:flush()
end

local orders = support.read_list(args.orders)
local bar = support.progress(#orders)
local counts = { synced = 0, skipped = 0, resumed = 0, failed = 0 }
local processed, stopped = 0, nil

-- What orders/detail says: the order id when it is a paid checkout, else nil and why not.
local function paid_order(number)
  local detail, err = client:orders_detail{ order_number = number }
  if not detail then return nil, nil, err end
  local d = detail.data
  if d.type ~= "checkout" then return nil, d.type end
  local status = d.checkout.payment and d.checkout.payment.payment_status
  if status ~= "paid" then return nil, "payment " .. (status == wemasy.null and "unknown" or tostring(status)) end
  return d.order_id
end

for i, number in ipairs(orders) do
  if done[number] then
    counts.resumed = counts.resumed + 1
    bar.update(i, number .. " already " .. done[number] .. " (state file)")
  elseif args.stop_after and processed >= args.stop_after then
    stopped = "stopped after " .. args.stop_after .. " orders (--stop-after): rerun to resume"
    break
  else
    processed = processed + 1
    local order_id, not_paid, err = paid_order(number)
    if err then
      bar.update(i, number .. ": " .. tostring(err))
      if err.kind ~= "not_found" then stopped = tostring(err); break end
      counts.failed = counts.failed + 1
    elseif not order_id then
      record(number, "skipped", nil)
      counts.skipped = counts.skipped + 1
      bar.update(i, number .. " skipped (" .. not_paid .. ")")
    else
      local slots = client:rate_limit("sync")
      if slots and slots.remaining == 0 then
        bar.update(i - 1, string.format("waiting %.1f s for a sync slot", slots.reset_in))
      end
      local _, serr = client:orders_sync_snelstart_order{ order_id = order_id }
      if serr then
        bar.update(i, number .. ": " .. tostring(serr))
        -- 422 (SnelStart refused this order) is about the order; anything else stops the run.
        if serr.kind ~= "validation" then stopped = tostring(serr); break end
        counts.failed = counts.failed + 1
      else
        record(number, "synced", order_id)
        counts.synced = counts.synced + 1
        bar.update(i, string.format("%s synced (order %d)", number, order_id))
      end
    end
  end
end
bar.finish()
state:close()

print(string.format("synced %d, skipped %d (not paid), already done %d, failed %d; state in %s",
  counts.synced, counts.skipped, counts.resumed, counts.failed, args.state))
client:close()
if sb then sb:stop() end
if stopped then
  io.stderr:write(stopped, "\n")
  os.exit(3, true)
end
os.exit(counts.failed > 0 and 1 or 0, true)
