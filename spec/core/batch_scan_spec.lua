-- client:batch's scans must grow with the batch, not with its square: each
-- wake-up used to re-read every item (start_ready from item 1, next_start
-- over all of them), which cost a 20,000-call batch about 15 us per call.
-- The core counts the queued items its scans look at (_debug_batch_visits).
local core = require "wemasy.core"
local h = require "support.helpers"

local srv = h.tiny_server()

local function client(opts)
  opts = opts or {}
  opts.base_url = srv.url
  opts.token = h.token("scan")
  if opts.rate_limit == nil then opts.rate_limit = false end
  return core.new(opts)
end

local function items(n, path)
  local t = {}
  for i = 1, n do t[i] = { path = path or "/echo", body = '{"i":' .. i .. '}' } end
  return t
end

describe("wemasy.core batch scans", function()
  it("look at each queued item a bounded number of times", function()
    local c = client()
    local visits = {}
    for _, n in ipairs{ 500, 2000 } do
      local results = h.core_batch(c, items(n), 16)
      for i = 1, n do assert.equal(200, results[i].status) end
      visits[n] = c:_debug_batch_visits()
      -- Each start is one look, plus one per wake-up at most for the item
      -- that finds every slot busy.
      assert.is_true(visits[n] <= 3 * n, ("%d items, %d visits"):format(n, visits[n]))
    end
    -- Four times the items, about four times the looks (quadratic would be 16).
    assert.is_true(visits[2000] <= 5 * visits[500], ("%d then %d"):format(visits[500], visits[2000]))
    c:close()
  end)

  it("stay bounded when items go back to the queue for retries", function()
    -- The fake clock stands still while transfers run, so every backoff
    -- outlasts many wake-ups: a scan of the waiting items would show here.
    local t = h.fake_time()
    -- breaker = false: a hundred 503s would open it, and the retries are the point.
    local c = client { max_retries = 1, clock = t.clock, sleep = t.sleep, backoff = { base = 0.001, cap = 0.001 },
                       breaker = false }
    local list = items(400)
    for i = 1, 400, 4 do list[i] = { path = "/status/503", body = "{}", idempotent = true } end
    local results = h.core_batch(c, list, 16)
    for i = 1, 400 do
      if i % 4 == 1 then
        assert.equal(503, results[i].status)
        assert.equal(2, results[i].attempts)
      else
        assert.equal(200, results[i].status)
      end
    end
    assert.is_true(c:_debug_batch_visits() <= 3 * 500, tostring(c:_debug_batch_visits()))
    c:close()
  end)

  it("keep a throttled batch on its schedule: 10 a second, no extra wait", function()
    local t = h.fake_time()
    local c = client {
      clock = t.clock, sleep = t.sleep,
      rate_limit = { shared = false, margin = 0, groups = { default = { limit = 10, window = 1 } } },
    }
    local results = h.core_batch(c, items(60), 8)
    for i = 1, 60 do assert.equal(200, results[i].status) end
    -- 10 a second from t = 1000: the last ten start at 1005, nothing waits longer.
    assert.is_true(t.now >= 1005 and t.now < 1006, tostring(t.now))
    -- Only the head of the group's queue asks the limiter; the others wait unseen.
    assert.is_true(c:_debug_batch_visits() <= 4 * 60, tostring(c:_debug_batch_visits()))
    c:close()
  end)
end)
