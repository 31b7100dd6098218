-- rate_limit.priority and rate_limit.reserve (issue 16 item 4): a background
-- client never takes the last `reserve` slots of a window, so a cron job that
-- saturates the quota still leaves the storefront a slot at once.  Exact with
-- the injected clock (the in-process store), then in real time on the shared
-- store: a background process saturating a quota beside an interactive caller.
local core = require "wemasy.core"
local h = require "support.helpers"
local socket = require "socket"

local function fake_client(rate, t)
  rate.groups = rate.groups or { default = { limit = 5, window = 10 } }
  rate.margin = 0
  return core.new { base_url = "http://127.0.0.1:1", max_retries = 0, clock = t.clock, sleep = t.sleep,
                    rate_limit = rate }
end

describe("rate_limit.priority and rate_limit.reserve", function()
  it("are declared with their defaults and checked", function()
    local f = core.options.rate_limit.fields
    assert.equal("interactive", f.priority.default)
    assert.same({ "interactive", "background" }, f.priority.choices)
    assert.equal(0, f.reserve.default)
    for _, case in ipairs {
      { { priority = "cron" }, "rate_limit.priority" },
      { { priority = 1 }, "rate_limit.priority" },
      { { reserve = -1 }, "rate_limit.reserve" },
      { { reserve = 1.5 }, "rate_limit.reserve" },
      { { reserve = 1024 }, "rate_limit.reserve" },
    } do
      local ok, err = pcall(core.new, { base_url = "http://127.0.0.1:1", rate_limit = case[1] })
      assert.is_false(ok)
      assert.matches("option '" .. case[2] .. "'", err, 1, true)
    end
  end)

  it("a background client leaves the last K slots of each window free (injected clock)", function()
    local t = h.fake_time()
    local c = fake_client({ priority = "background", reserve = 2 }, t)
    local rl = c:rate_limit()
    assert.same({ 5, 3, 0 }, { rl.limit, rl.remaining, rl.reset_in })
    local started = t.now
    -- No server listens: each call takes a slot, then fails to connect.
    for _ = 1, 3 do c:request("/x", "") end
    assert.equal(0, c:rate_limit().remaining)
    assert.equal(10, c:rate_limit().reset_in)
    assert.equal(started, t.now, "the first three slots were free at once")
    c:request("/x", "")
    assert.equal(started + 10, t.now, "the fourth waited for the first to leave the window")
    c:close()
  end)

  it("an interactive client, and a reserve of 0, use every slot", function()
    for _, rate in ipairs { { reserve = 2 }, { priority = "interactive", reserve = 2 },
                            { priority = "background" } } do
      local t = h.fake_time()
      local c = fake_client(rate, t)
      assert.equal(5, c:rate_limit().remaining)
      for _ = 1, 5 do c:request("/x", "") end
      assert.equal(1000, t.now)
      c:close()
    end
  end)

  it("a reserve of N or more still lets a background client send one per window", function()
    local t = h.fake_time()
    local c = fake_client({ priority = "background", reserve = 9,
                            groups = { default = { limit = 5, window = 10 }, sync = { limit = 2, window = 10 } } }, t)
    assert.equal(1, c:rate_limit().remaining)
    assert.equal(1, c:rate_limit("sync").remaining)
    assert.equal(1, c:rate_limit("other").remaining, "a group added on first use has the reserve too")
    c:request("/x", "")
    c:request("/x", "")
    assert.equal(1010, t.now)
    c:close()
  end)

  describe("on the shared store, in real time", function()
    local srv = h.tiny_server()

    -- The cron job: calls as fast as its limiter lets it until arg[5] (a
    -- socket.gettime()), then prints its count of 200s and of anything else.
    local BACKGROUND = [[
      local core = require "wemasy.core"
      local socket = require "socket"
      local c = core.new { base_url = arg[1], token = arg[2], max_retries = 0,
        rate_limit = { priority = "background", reserve = tonumber(arg[4]),
                       groups = { default = { limit = 6, window = 2 } } } }
      local ok, other = 0, 0
      print("READY")
      io.stdout:flush()
      while socket.gettime() < tonumber(arg[5]) do
        if c:request(arg[3], "") == 200 then ok = ok + 1 else other = other + 1 end
      end
      print("OK " .. ok .. " OTHER " .. other)
      c:close()
    ]]

    it("an interactive caller beside a background job that saturates the quota waits < 1 s", function()
      local token, name = h.token("prio"), h.counter("prio")
      -- The server: 6 per 2 s, Laravel's fixed window; the clients: 6 per 2.25 s sliding.
      local path = "/rl/" .. name .. "/6/2000"
      local stop = socket.gettime() + 6
      local job = h.spawn(BACKGROUND, { srv.url, token, path, 3, stop })
      assert.equal("READY", job.pipe:read("*l"))
      socket.sleep(1) -- the job has filled its share of the window
      local c = core.new { base_url = srv.url, token = token, max_retries = 0,
        rate_limit = { groups = { default = { limit = 6, window = 2 } } } }
      local waits = {}
      -- One call every 0.8 s: at most 3 (the reserve) in any 2.25 s.
      while socket.gettime() < stop - 1 do
        local t0 = socket.gettime()
        assert.equal(200, (c:request(path, "")))
        waits[#waits + 1] = socket.gettime() - t0
        socket.sleep(math.max(0, t0 + 0.8 - socket.gettime()))
      end
      c:close()
      local ok, other = h.finish(job):match("OK (%d+) OTHER (%d+)")
      table.sort(waits)
      assert.is_true(#waits >= 4, #waits)
      assert.is_true(waits[#waits] < 1, "the interactive caller's longest wait: " .. waits[#waits] .. " s")
      -- Saturated: about 3 per window over 6 s (2.7 windows of 2.25 s); nothing over the limit.
      assert.equal("0", other)
      assert.is_true(tonumber(ok) >= 6, "the background job sent only " .. ok)
      local passed, over = h.get(srv.url, "/rlstats/" .. name):match("^(%d+) (%d+)$")
      assert.equal("0", over, "requests over the server's limit")
      assert.equal(tonumber(ok) + #waits, tonumber(passed))
    end)
  end)
end)
