-- Specs for the client-side rate limiter of wemasy.core: exactness of the
-- sliding window, learning from the server's headers, the options, and the
-- shared-memory store across clients and across OS processes.
--
-- Most specs use an injected clock and sleep (so a minute takes no time);
-- the cross-process ones use short real windows against tiny_server, which
-- counts like Laravel's throttle and reports anything over the limit.
local core = require "wemasy.core"
local h = require "support.helpers"
local shared_quota = require "support.shared_quota"

local srv = h.tiny_server()

local function limited(opts)
  opts.base_url = opts.base_url or srv.url
  return core.new(opts)
end

-- A client with a fake clock: the limiter is in-process, time moves on sleep.
local function fake_client(groups, extra)
  local t = h.fake_time()
  local opts = {
    token = h.token("fake"), clock = t.clock, sleep = t.sleep, max_retries = 0,
    rate_limit = { groups = groups, margin = 0.25 },
  }
  for k, v in pairs(extra or {}) do
    if k == "rate_limit" then
      for rk, rv in pairs(v) do opts.rate_limit[rk] = rv end
    else
      opts[k] = v
    end
  end
  return limited(opts), t
end

-- True when no `span`-long window holds more than `limit` of the times.
local function at_most(times, limit, span)
  for i = 1, #times do
    local n = 0
    for j = i, #times do
      if times[j] - times[i] < span - 1e-9 then n = n + 1 end
    end
    if n > limit then return false end
  end
  return true
end

describe("wemasy.core rate limiter", function()
  describe("options", function()
    local bad = {
      { { rate_limit = 1 }, "rate_limit" },
      { { rate_limit = "yes" }, "rate_limit" },
      { { rate_limit = { wait = 1 } }, "rate_limit.wait" },
      { { rate_limit = { shared = "no" } }, "rate_limit.shared" },
      { { rate_limit = { max_wait = -1 } }, "rate_limit.max_wait" },
      { { rate_limit = { max_wait = 0 / 0 } }, "rate_limit.max_wait" },
      { { rate_limit = { margin = "x" } }, "rate_limit.margin" },
      { { rate_limit = { groups = 5 } }, "rate_limit.groups" },
      { { rate_limit = { groups = { default = 5 } } }, "rate_limit.groups.default" },
      { { rate_limit = { groups = { default = { limit = 0 } } } }, "rate_limit.groups.default.limit" },
      { { rate_limit = { groups = { default = { limit = 1.5 } } } }, "rate_limit.groups.default.limit" },
      { { rate_limit = { groups = { sync = { limit = "5" } } } }, "rate_limit.groups.sync.limit" },
      { { rate_limit = { groups = { sync = { window = 0 } } } }, "rate_limit.groups.sync.window" },
      { { rate_limit = { groups = { sync = { windw = 1 } } } }, "rate_limit.groups.sync.windw" },
      { { rate_limit = { groups = { [string.rep("g", 32)] = {} } } }, "rate_limit.groups" },
      { { rate_limit = { waitt = true } }, "rate_limit.waitt" },
      { { max_retries = -1 }, "max_retries" },
      { { max_retries = 0.5 }, "max_retries" },
      { { max_retries = "2" }, "max_retries" },
      { { backoff = 1 }, "backoff" },
      { { backoff = { base = -1 } }, "backoff.base" },
      { { backoff = { cap = "8" } }, "backoff.cap" },
      { { backoff = { bse = 1 } }, "backoff.bse" },
      { { clock = 1 }, "clock" },
      { { sleep = "x" }, "sleep" },
      { { random = {} }, "random" },
    }
    for _, case in ipairs(bad) do
      it("names option '" .. case[2] .. "' when it is wrong", function()
        local opts = case[1]
        opts.base_url = srv.url
        local ok, err = pcall(core.new, opts)
        assert.is_false(ok)
        assert.truthy(err:find("option '" .. case[2] .. "'", 1, true), err)
      end)
    end

    it("refuses more than 16 groups", function()
      local groups = {}
      for i = 1, 17 do groups["g" .. i] = { limit = 1, window = 1 } end
      local ok, err = pcall(core.new, { base_url = srv.url, rate_limit = { groups = groups } })
      assert.is_false(ok)
      assert.matches("rate_limit.groups", err, 1, true)
    end)

    it("accepts every option with a valid value", function()
      local c = limited {
        token = h.token("opts"), max_retries = 0, backoff = { base = 0.1, cap = 1 },
        rate_limit = { wait = false, max_wait = 5, shared = false, margin = 0,
                       groups = { default = { limit = 100, window = 1 }, other = { limit = 2 } } },
        clock = os.clock, sleep = function() end, random = math.random,
      }
      assert.equal(200, (c:request("/echo", "{}")))
      local rl = c:rate_limit("other")
      assert.equal(2, rl.limit)
      c:close()
    end)

    it("uses 60 a minute for default and 5 for sync unless told otherwise", function()
      local c = limited { token = h.token("defaults") }
      assert.same({ limit = 60, remaining = 60, reset_in = 0, closed_for = 0, store = "shm" }, c:rate_limit())
      assert.same({ limit = 5, remaining = 5, reset_in = 0, closed_for = 0, store = "shm" }, c:rate_limit("sync"))
      c:close()
    end)

    it("with the default max_wait, a script that waits rides out the window of its group (sync: 5 a minute)", function()
      local t = h.fake_time()
      local c = limited { token = h.token("sync7"), clock = t.clock, sleep = t.sleep, max_retries = 0 }
      for i = 1, 7 do
        local status, kind, message = c:request("/echo", "{}", true, "sync")
        assert.equal(200, status, "call " .. i .. ": " .. tostring(kind) .. " " .. tostring(message))
      end
      local slept = 0
      for _, s in ipairs(t.sleeps) do slept = slept + s end
      assert.is_true(slept >= 60 and slept <= 60.25 + 1e-6, slept) -- the sixth waited out the window + margin
      c:close()
    end)

    it("rate_limit = false turns limiting off", function()
      local c = limited { token = h.token("off"), rate_limit = false }
      local rl, why = c:rate_limit()
      assert.is_nil(rl)
      assert.equal("rate limiting is off", why)
      for _ = 1, 3 do assert.equal(200, (c:request("/echo", "{}"))) end
      c:close()
    end)

    it("checks the group argument", function()
      local c = limited { token = h.token("grouparg") }
      assert.has_error(function() c:request("/echo", "{}", true, 5) end)
      assert.has_error(function() c:request("/echo", "{}", true, "") end)
      assert.has_error(function() c:request("/echo", "{}", true, string.rep("x", 32)) end)
      assert.has_error(function() c:request("/echo", "{}", true, "default", "yes") end)
      assert.has_error(function() c:rate_limit(42) end)
      c:close()
    end)
  end)

  describe("sliding window", function()
    it("lets N through per window, not N + 1, across a window boundary", function()
      local c, t = fake_client({ default = { limit = 3, window = 10 } }, { rate_limit = { wait = false } })
      local sent = {}
      -- three early, then probe every half second for 40 seconds
      for _ = 1, 3 do
        assert.equal(200, (c:request("/echo", "{}")))
        sent[#sent + 1] = t.now
      end
      local refused = 0
      for _ = 1, 80 do
        t.now = t.now + 0.5
        local status, kind, _, sent_flag, attempts, retry_after = c:request("/echo", "{}")
        if status then
          sent[#sent + 1] = t.now
        else
          refused = refused + 1
          assert.equal("rate_limited", kind)
          assert.is_false(sent_flag)
          assert.equal(0, attempts)
          assert.is_true(retry_after > 0 and retry_after <= 10.25)
        end
      end
      assert.is_true(at_most(sent, 3, 10.25), "more than 3 in a 10.25 s window")
      assert.is_false(at_most(sent, 2, 10.25), "the quota was not used")
      -- 40 seconds hold four windows of 10.25 s: 3 + 3 * 3 sends at most
      assert.is_true(#sent >= 12 and #sent <= 15, #sent .. " sends")
      assert.is_true(refused > 0)
      c:close()
    end)

    it("waits for the oldest send to leave the window, exactly", function()
      local c, t = fake_client({ default = { limit = 2, window = 10 } })
      local start = t.now
      local times = {}
      for _ = 1, 6 do
        assert.equal(200, (c:request("/echo", "{}")))
        times[#times + 1] = t.now - start
      end
      assert.same({ 0, 0, 10.25, 10.25, 20.5, 20.5 }, times)
      c:close()
    end)

    it("reports limit, remaining and reset_in without sending", function()
      local c, t = fake_client({ default = { limit = 3, window = 10 } })
      local before = h.get(srv.url, "/count/report")
      c:request("/c/report/echo", "{}")
      t.now = t.now + 2
      c:request("/c/report/echo", "{}")
      local rl = c:rate_limit()
      assert.same({ limit = 3, remaining = 1, reset_in = 0, closed_for = 0, store = "local" }, rl)
      c:request("/c/report/echo", "{}")
      rl = c:rate_limit("default")
      assert.equal(0, rl.remaining)
      assert.is_true(math.abs(rl.reset_in - 8.25) < 1e-6, rl.reset_in)
      assert.equal(tonumber(before) + 3, tonumber(h.get(srv.url, "/count/report")))
      c:close()
    end)

    it("keeps groups apart and gives an unknown group default's limits", function()
      local c = fake_client({ default = { limit = 2, window = 10 }, sync = { limit = 1, window = 10 } },
        { rate_limit = { wait = false } })
      assert.equal(200, (c:request("/echo", "{}", true, "sync")))
      assert.equal("rate_limited", select(2, c:request("/echo", "{}", true, "sync")))
      assert.equal(200, (c:request("/echo", "{}", true, "default")))
      assert.equal(200, (c:request("/echo", "{}")))
      assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
      -- "reports" is not configured: its own quota with default's numbers
      assert.same({ limit = 2, remaining = 2, reset_in = 0, closed_for = 0, store = "local" }, c:rate_limit("reports"))
      assert.equal(200, (c:request("/echo", "{}", true, "reports")))
      c:close()
    end)

    it("fails fast with rate_limited and retry_after when wait = false", function()
      local c, t = fake_client({ default = { limit = 1, window = 10 } }, { rate_limit = { wait = false } })
      assert.equal(200, (c:request("/echo", "{}")))
      t.now = t.now + 4
      local status, kind, msg, sent, attempts, retry_after = c:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("rate_limited", kind)
      assert.is_string(msg)
      assert.is_false(sent)
      assert.equal(0, attempts)
      assert.is_true(math.abs(retry_after - 6.25) < 1e-6, retry_after)
      assert.same({}, t.sleeps)
      c:close()
    end)

    it("fails at once when the wait would pass max_wait", function()
      local c, t = fake_client({ default = { limit = 1, window = 60 } }, { rate_limit = { max_wait = 30 } })
      assert.equal(200, (c:request("/echo", "{}")))
      local status, kind, _, _, _, retry_after = c:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("rate_limited", kind)
      assert.is_true(math.abs(retry_after - 60.25) < 1e-6)
      assert.same({}, t.sleeps) -- no sleeping first
      -- within max_wait it waits
      t.now = t.now + 40
      assert.equal(200, (c:request("/echo", "{}")))
      assert.equal(1, #t.sleeps)
      assert.is_true(math.abs(t.sleeps[1] - 20.25) < 1e-6)
      c:close()
    end)

    it("raises a clock hook's error and stays usable", function()
      local calls = 0
      local c = limited { token = h.token("clockerr"), clock = function()
        calls = calls + 1
        if calls == 1 then error("clock broke") end
        return 5
      end }
      local ok, err = pcall(c.request, c, "/echo", "{}")
      assert.is_false(ok)
      assert.matches("clock broke", err)
      assert.equal(200, (c:request("/echo", "{}")))
      local bad = limited { token = h.token("clocktype"), clock = function() return "soon" end }
      ok, err = pcall(bad.request, bad, "/echo", "{}")
      assert.is_false(ok)
      assert.matches("clock hook must return a number", err, 1, true)
      local nan = limited { token = h.token("clocknan"), clock = function() return 0 / 0 end }
      ok, err = pcall(nan.request, nan, "/echo", "{}")
      assert.is_false(ok)
      assert.matches("finite", err, 1, true)
      nan:close()
      c:close()
      bad:close()
    end)
  end)

  describe("learning from the server", function()
    it("takes N from X-RateLimit-Limit", function()
      local c = fake_client({ default = { limit = 3, window = 10 } })
      c:request("/limits/10/9", "{}")
      local rl = c:rate_limit()
      assert.equal(10, rl.limit)
      assert.equal(9, rl.remaining)
      c:close()
    end)

    it("clamps local state to X-RateLimit-Remaining", function()
      local c = fake_client({ default = { limit = 10, window = 10 } }, { rate_limit = { wait = false } })
      c:request("/limits/10/2", "{}")
      assert.equal(2, c:rate_limit().remaining)
      assert.equal(200, (c:request("/echo", "{}")))
      assert.equal(200, (c:request("/echo", "{}")))
      assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
      c:close()
    end)

    it("never lets a higher Remaining raise the local count", function()
      local c = fake_client({ default = { limit = 5, window = 10 } })
      for _ = 1, 3 do c:request("/echo", "{}") end
      c:request("/limits/5/4", "{}") -- the server saw fewer: keep ours
      assert.equal(1, c:rate_limit().remaining)
      c:close()
    end)

    it("clamps a learned limit above the ring to 1024", function()
      local c = fake_client({ default = { limit = 3, window = 10 } })
      c:request("/limits/5000/4999", "{}")
      assert.equal(1024, c:rate_limit().limit)
      c:close()
    end)

    it("closes the group for Retry-After, also as an HTTP date", function()
      local c, t = fake_client({ default = { limit = 100, window = 10 } }, { rate_limit = { wait = false } })
      local status, _, headers, attempts = c:request("/429/7", "{}")
      assert.equal(429, status)
      assert.equal("7", headers["retry-after"])
      assert.equal(1, attempts)
      local rl = c:rate_limit()
      assert.is_true(math.abs(rl.closed_for - 7) < 1e-6, rl.closed_for)
      local _, kind, _, _, _, retry_after = c:request("/echo", "{}")
      assert.equal("rate_limited", kind)
      assert.is_true(math.abs(retry_after - 7) < 1e-6)
      t.now = t.now + 7
      assert.equal(200, (c:request("/echo", "{}")))
      c:request("/429date/20", "{}")
      rl = c:rate_limit()
      assert.is_true(rl.closed_for > 17 and rl.closed_for <= 21, rl.closed_for)
      c:close()
    end)
  end)

  describe("shared memory", function()
    it("names the segment by a hash, never the token, with mode 0600", function()
      local token = h.token("name")
      local name = core._debug_segment(srv.url, token)
      assert.matches("^/wemasy%-%d+%-%x+$", name)
      assert.equal(16, #name:match("%x+$"))
      assert.falsy(name:find(token, 1, true))
      assert.not_equal(name, core._debug_segment(srv.url, token .. "x"))
      assert.not_equal(name, core._debug_segment(srv.url .. "/x", token))
      local c = limited { token = token }
      c:request("/echo", "{}")
      local p = io.popen("stat -c %a /dev/shm" .. name)
      local mode = p:read("*l")
      p:close()
      assert.equal("600", mode)
      c:close()
    end)

    it("is one quota however the base URL is spelled (scheme and host case, default port, slashes)", function()
      local token = h.token("spelling")
      local host = srv.url:gsub("^http://", "")
      local spellings = { srv.url .. "/api", "HTTP://" .. host .. "/api", srv.url .. "/api/", srv.url .. "//api" }
      local rate = { wait = false, groups = { default = { limit = 5, window = 30 } } }
      local sent = 0
      for _, url in ipairs(spellings) do
        local c = core.new { base_url = url, token = token, max_retries = 0, rate_limit = rate }
        for _ = 1, 5 do
          if c:request("/echo", "{}") then sent = sent + 1 end
        end
        c:close()
      end
      for _, url in ipairs(spellings) do core._debug_unlink(url, token) end
      assert.equal(5, sent)
      local function same(a, b) assert.equal(core._debug_segment(a, token), core._debug_segment(b, token)) end
      same("http://example.com/api", "http://EXAMPLE.com:80/api")
      same("https://example.com/api", "hTTps://example.COM:443//api//")
      same("http://[::1]:8080/api", "http://[::1]:08080/api")
      local function differ(a, b) assert.not_equal(core._debug_segment(a, token), core._debug_segment(b, token)) end
      differ("http://example.com/api", "https://example.com/api")
      differ("http://example.com/api", "http://example.com:8080/api")
      differ("http://localhost:8080/api", "http://127.0.0.1:8080/api")
      differ("http://example.com/api", "http://example.com/API")
    end)

    it("names the segment by the user: /wemasy-<uid>-<hash>", function()
      local p = io.popen("id -u")
      local uid = p:read("*l")
      p:close()
      assert.matches("^/wemasy%-" .. uid .. "%-%x+$", core._debug_segment(srv.url, h.token("uid")))
    end)

    it("rate_limit_reset forgets the token's quota: for every sharer (shared) or this client (in-process)", function()
      local token = h.token("reset")
      local groups = { default = { limit = 2, window = 30 } }
      local a = limited { token = token, max_retries = 0, rate_limit = { wait = false, groups = groups } }
      local b = limited { token = token, max_retries = 0, rate_limit = { wait = false, groups = groups } }
      assert.equal(200, (a:request("/echo", "{}")))
      assert.equal(429, (a:request("/429/20", "{}")))
      assert.is_true(b:rate_limit().closed_for > 19)
      assert.equal("rate_limited", select(2, b:request("/echo", "{}")))
      assert.is_true(b:rate_limit_reset())
      assert.same({ limit = 2, remaining = 2, reset_in = 0, closed_for = 0, store = "shm" }, a:rate_limit())
      assert.equal(200, (a:request("/echo", "{}")))
      a:close()
      b:close()
      local l = limited { token = token, max_retries = 0,
                          rate_limit = { wait = false, shared = false, groups = groups } }
      assert.equal(200, (l:request("/echo", "{}")))
      assert.equal(200, (l:request("/echo", "{}")))
      assert.equal("rate_limited", select(2, l:request("/echo", "{}")))
      assert.is_true(l:rate_limit_reset())
      assert.equal(200, (l:request("/echo", "{}")))
      l:close()
      assert.same({ nil, "client is closed" }, { l:rate_limit_reset() })
      local off = limited { rate_limit = false }
      assert.same({ nil, "rate limiting is off" }, { off:rate_limit_reset() })
      off:close()
    end)

    it("the next process of this user removes its segments that nobody holds and whose records all expired", function()
      local p = io.popen("id -u")
      local uid = p:read("*l")
      p:close()
      local function path(url, token) return "/dev/shm" .. core._debug_segment(url, token) end
      local function exists(file)
        local f = io.open(file)
        if f then f:close() end
        return f ~= nil
      end
      local short = { margin = 0, groups = { default = { limit = 5, window = 0.05 } } }
      local expired, fresh, held = h.token("swept"), h.token("fresh"), h.token("held")
      local a = limited { token = expired, rate_limit = short }
      assert.equal(200, (a:request("/echo", "{}")))
      a:close()
      local b = limited { token = fresh, rate_limit = { groups = { default = { limit = 5, window = 30 } } } }
      assert.equal(200, (b:request("/echo", "{}")))
      b:close()
      local c = limited { token = held, rate_limit = short } -- expired too, but still open
      assert.equal(200, (c:request("/echo", "{}")))
      -- Not ours to remove: another user's segment, a name of ours that is not a segment's.
      local others = { "/dev/shm/wemasy-" .. (uid == "0" and "65534" or "0") .. "-0123456789abcdef",
                       "/dev/shm/wemasy-" .. uid .. "-0123456789abcdeg" }
      for _, file in ipairs(others) do
        local f = io.open(file, "w")
        if f then f:write("x") f:close() end
      end
      if uid == "0" then os.execute("chown 65534 " .. others[1]) end
      finally(function()
        c:close()
        for _, file in ipairs(others) do os.remove(file) end
      end)
      require("socket").sleep(0.2) -- four times the window
      local sweeper = h.token("sweeper")
      local out = h.finish(h.spawn([[
        local core = require "wemasy.core"
        core.new { base_url = arg[1], token = arg[2] }:close()
        print("DONE")
      ]], { srv.url .. "/sweeper", sweeper }))
      core._debug_unlink(srv.url .. "/sweeper", sweeper)
      assert.matches("DONE", out)
      assert.is_false(exists(path(srv.url, expired)), "the expired segment nobody holds is gone")
      assert.is_true(exists(path(srv.url, fresh)), "a segment whose window still runs stays")
      assert.is_true(exists(path(srv.url, held)), "a segment a live client holds stays")
      for _, file in ipairs(others) do assert.is_true(exists(file), file .. " stays") end
    end)

    it("is one quota for every client on the same base_url and token", function()
      local token = h.token("two")
      local rate = { wait = false, groups = { default = { limit = 3, window = 30 } } }
      local a = limited { token = token, rate_limit = rate }
      local b = limited { token = token, rate_limit = rate }
      local other = limited { token = h.token("other"), rate_limit = rate }
      assert.equal(200, (a:request("/echo", "{}")))
      assert.equal(200, (b:request("/echo", "{}")))
      assert.equal(200, (a:request("/echo", "{}")))
      assert.equal("rate_limited", select(2, b:request("/echo", "{}")))
      assert.equal(0, a:rate_limit().remaining)
      assert.equal(3, other:rate_limit().remaining)
      a:close()
      b:close()
      other:close()
    end)

    it("shows a Retry-After to another client in this process", function()
      local token = h.token("ra")
      local a = limited { token = token, max_retries = 0 }
      local b = limited { token = token, rate_limit = { wait = false } }
      assert.equal(429, (a:request("/429/3", "{}")))
      local rl = b:rate_limit()
      assert.is_true(rl.closed_for > 2 and rl.closed_for <= 3, rl.closed_for)
      local status, kind, _, _, _, retry_after = b:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("rate_limited", kind)
      assert.is_true(retry_after > 2 and retry_after <= 3)
      a:close()
      b:close()
    end)

    it("shows a Retry-After from another OS process", function()
      local token = h.token("raproc")
      local child = h.spawn([[
        local core = require "wemasy.core"
        local c = core.new { base_url = arg[1], token = arg[2], max_retries = 0 }
        local status = c:request("/429/4", "{}")
        print("STATUS " .. tostring(status))
      ]], { srv.url, token })
      assert.matches("STATUS 429", h.finish(child))
      local c = limited { token = token, rate_limit = { wait = false } }
      local rl = c:rate_limit()
      assert.is_true(rl.closed_for > 2 and rl.closed_for <= 4, rl.closed_for)
      assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
      c:close()
    end)

    it("keeps in-process state apart with shared = false", function()
      local token = h.token("local")
      local rate = { wait = false, shared = false, groups = { default = { limit = 1, window = 30 } } }
      local a = limited { token = token, rate_limit = rate }
      local b = limited { token = token, rate_limit = rate }
      assert.equal(200, (a:request("/echo", "{}")))
      assert.equal(200, (b:request("/echo", "{}")))
      assert.equal("rate_limited", select(2, a:request("/echo", "{}")))
      a:close()
      b:close()
    end)

    -- OS processes that each send `per` requests through a shared limiter
    -- of `limit` per `ms` milliseconds: 0 over the server's limit; how long it took.
    local function share(processes, per, limit, ms)
      local token = h.token("procs" .. processes)
      local name = "q" .. processes .. "-" .. math.random(1, 1e6)
      local kids = {}
      local t0 = os.time()
      for i = 1, processes do
        kids[i] = h.spawn(shared_quota.CHILD, { srv.url, token, name, limit, ms, per })
      end
      shared_quota.collect(srv, name, kids, processes * per)
      return os.time() - t0
    end

    it("shares one quota between two OS processes: 0 over the limit", function()
      share(2, 6, 4, 1000)
    end)

    it("shares one quota between four OS processes: 0 over the limit", function()
      local took = share(4, 4, 4, 1000)
      -- 16 requests at 4 per 1.25 s need at least three full windows
      assert.is_true(took >= 3, "finished too early: " .. took .. " s")
    end)

    it("takes over the setup of a segment whose initialiser died", function()
      local socket = require "socket"
      local token = h.token("stalled")
      core._debug_stall_init(srv.url, token)
      local t0 = socket.gettime()
      local c = limited { token = token }
      local took = socket.gettime() - t0
      assert.is_true(took >= 0.9 and took < 3, "took " .. took)
      assert.equal(200, (c:request("/echo", "{}")))
      assert.equal(59, c:rate_limit().remaining)
      c:close()
    end)

    it("is not wedged by a process killed while holding the lock", function()
      local token = h.token("killed")
      local c = limited { token = token }
      assert.equal(200, (c:request("/echo", "{}"))) -- segment ready
      local child = h.spawn([[
        local core = require "wemasy.core"
        core._debug_hold_lock(arg[1], arg[2], 30)
      ]], { srv.url, token })
      assert.equal("LOCKED", child.pipe:read("*l"))
      h.kill(child)
      h.finish(child)
      local socket = require "socket"
      local t0 = socket.gettime()
      assert.equal(200, (c:request("/echo", "{}")))
      local other = limited { token = token }
      assert.equal(200, (other:request("/echo", "{}")))
      assert.equal(57, other:rate_limit().remaining)
      assert.is_true(socket.gettime() - t0 < 2)
      c:close()
      other:close()
    end)
  end)
end)
