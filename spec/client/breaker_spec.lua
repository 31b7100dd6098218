-- The circuit breaker (issue 14 item 3): after `failures` failed tries in a
-- row (timeout, network error, 5xx) calls fail at once, as network /
-- circuit_open, sent = false, for `cooldown` seconds; then one probe goes.
-- Against spec/support/down_server.lua, which refuses, hangs or answers 503.
local wemasy = require("wemasy")
local core = require("wemasy.core")
local h = require("support.helpers")

local DEFAULT_FAILURES = core.options.breaker.fields.failures.default
local DEFAULT_COOLDOWN = core.options.breaker.fields.cooldown.default

local down = {}

setup(function()
  local pipe, ctl = h.launch("down_server")
  local api = assert((pipe:read("*l") or ""):match("^API (%d+)$"), "down_server gave no API port")
  down.pipe, down.ctl, down.url = pipe, "http://127.0.0.1:" .. ctl, "http://127.0.0.1:" .. api
end)

teardown(function()
  h.forget_tokens(down.url)
  h.stop_server({ url = down.ctl, pipe = down.pipe })
end)

local function mode(m) h.get(down.ctl, "/mode/" .. m) end
local function count() return tonumber(h.get(down.ctl, "/count")) end

-- A client of the down server, on a token of its own (so a breaker of its own
-- in the shared segment); opts override.
local function client(opts)
  local o = { base_url = down.url, token = h.token("brk"), timeout = 0.3, max_retries = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return wemasy.new(o)
end

local function call(c) return c:call("orders/detail", { order_number = "ORD-2025-001" }) end

local function assert_open(err, cooldown)
  assert.equal("network", err.kind, tostring(err))
  assert.equal("circuit_open", err.reason, tostring(err))
  assert.is_false(err.sent)
  assert.equal(0, err.attempts)
  assert.is_true(err.retry_after > 0 and err.retry_after <= cooldown, tostring(err.retry_after))
  assert.is_nil(err.status)
end

-- Two failed calls in a row and the third is refused: a breaker of
-- failures = 2 opens, for `cooldown` seconds.
local function assert_opens_after_two(c, cooldown)
  assert.equal("server", select(2, call(c)).kind)
  assert.equal("server", select(2, call(c)).kind)
  assert_open(select(2, call(c)), cooldown)
end

-- A client of the down server answering 503, on a fake clock `t`, whose
-- breaker opens after 2 failures for 10 s.
local function fake_clock_client()
  mode("503")
  local t = h.fake_time()
  return client({ clock = t.clock, sleep = t.sleep, breaker = { failures = 2, cooldown = 10 } }), t
end

describe("the circuit breaker", function()
  -- Without it: 1000 calls x 3 tries x the timeout (900 s hung, here).
  for _, m in ipairs{ "hang", "refuse", "503" } do
    it("spares a script 1000 calls against a dead API (" .. m .. "), with the defaults", function()
      mode(m)
      local before = count()
      local c = client({ max_retries = 2, backoff = { base = 0.01, cap = 0.01 } })
      local started = core.now()
      local first_err
      local open = 0
      for i = 1, 1000 do
        local body, err = call(c)
        assert.is_nil(body)
        if err.reason == "circuit_open" then
          assert_open(err, DEFAULT_COOLDOWN)
          open = open + 1
        elseif i == 1 then
          first_err = err
        end
      end
      local took = core.now() - started
      c:close()
      assert.equal(m == "hang" and "timeout" or m == "503" and "server" or "network", first_err.kind)
      assert.equal(3, first_err.attempts)
      -- Call 1 tries 3 times, call 2 twice and opens it: no retry after that.
      assert.equal(998, open)
      if m ~= "refuse" then assert.equal(DEFAULT_FAILURES, count() - before) end
      assert.is_true(took < 10, ("1000 calls took %.1f s"):format(took))
    end)
  end

  it("also without a limiter (rate_limit = false: the client keeps it)", function()
    mode("503")
    local c = client({ rate_limit = false, breaker = { failures = 2 } })
    local before = count()
    assert_opens_after_two(c, DEFAULT_COOLDOWN)
    assert.equal(2, count() - before)
    c:close()
  end)

  it("counts only failures: 4xx answers and successes reset the run", function()
    local c = fake_clock_client()
    assert.equal("server", select(2, call(c)).kind)
    mode("ok")
    assert.truthy(call(c))
    mode("503")
    assert_opens_after_two(c, 10) -- the 503 before the success does not count
    c:close()
  end)

  it("closes again when the probe succeeds", function()
    local c, t = fake_clock_client()
    call(c)
    call(c)
    local _, err = call(c)
    assert_open(err, 10)
    assert.equal(10, err.retry_after) -- the clock stood still: the whole cool-down
    assert.truthy(tostring(err):find("the next probe in 10 s", 1, true), tostring(err))
    mode("ok")
    t.now = t.now + 9.5
    assert_open(select(2, call(c)), 0.5)
    t.now = t.now + 0.5
    local before = count()
    assert.truthy(call(c)) -- the probe
    assert.truthy(call(c))
    assert.equal(2, count() - before)
    mode("503")
    assert_opens_after_two(c, 10) -- closed, and counting from 0
    c:close()
  end)

  it("opens again for a whole cool-down when the probe fails", function()
    local c, t = fake_clock_client()
    call(c)
    call(c)
    t.now = t.now + 10
    local before = count()
    local _, err = call(c) -- the probe
    assert.equal("server", err.kind)
    assert.equal(1, err.attempts)
    _, err = call(c)
    assert_open(err, 10)
    assert.equal(10, err.retry_after)
    assert.equal(1, count() - before)
    c:close()
  end)

  it("does not retry a call whose try opened it, and refuses a retry once it is open", function()
    mode("503")
    local t = h.fake_time()
    local c = client({ clock = t.clock, sleep = t.sleep, max_retries = 5, breaker = { failures = 2 } })
    local before = count()
    local _, err = call(c) -- orders/detail is idempotent: retried on 503
    assert.equal("server", err.kind)
    assert.equal(2, err.attempts)
    assert.equal(2, count() - before)
    c:close()
  end)

  it("is one breaker for every process on the host and token", function()
    mode("503")
    local token = h.token("brk-shared")
    local c = client({ token = token, breaker = { failures = 2, cooldown = 30 } })
    call(c)
    call(c)
    local before = count()
    local child = h.spawn([[
      local wemasy = require("wemasy")
      local c = wemasy.new{ base_url = arg[1], token = arg[2], timeout = 0.3, max_retries = 0 }
      local _, err = c:call("orders/detail", { order_number = "ORD-2025-001" })
      print(err.kind, err.reason, err.attempts, tostring(err.sent), err.retry_after > 20)
    ]], { down.url, token })
    assert.equal("network\tcircuit_open\t0\tfalse\ttrue\n", h.finish(child))
    assert.equal(0, count() - before)
    c:close()
  end)

  it("lets exactly one probe through across processes", function()
    mode("503")
    local token = h.token("brk-probe")
    local c = client({ token = token, breaker = { failures = 1, cooldown = 0.5 } })
    call(c)
    assert_open(select(2, call(c)), 0.5)
    mode("hang")
    local before = count()
    -- Four processes call at one moment, after the cool-down: one probes
    -- (and hangs until its timeout), the others are refused meanwhile.
    local at = core.now() + 1.5
    local children = {}
    for i = 1, 4 do
      children[i] = h.spawn([[
        local core = require("wemasy.core")
        local wemasy = require("wemasy")
        local c = wemasy.new{ base_url = arg[1], token = arg[2], timeout = 2, max_retries = 0,
                              breaker = { failures = 1, cooldown = 0.5 } }
        local at = tonumber(arg[3])
        while core.now() < at do require("socket").sleep(0.005) end
        local _, err = c:call("orders/detail", { order_number = "ORD-2025-001" })
        print(err.kind .. " " .. tostring(err.reason) .. " " .. err.attempts)
      ]], { down.url, token, string.format("%.6f", at) })
    end
    local got = {}
    for i = 1, 4 do
      local line = h.finish(children[i]):gsub("\n$", "")
      got[line] = (got[line] or 0) + 1
    end
    assert.same({ ["timeout nil 1"] = 1, ["network circuit_open 0"] = 3 }, got)
    assert.equal(1, count() - before)
    c:close()
  end)

  it("fails the rest of a batch at once", function()
    mode("503")
    local before = count()
    local c = client({ breaker = { failures = 3, cooldown = 30 } })
    local calls = {}
    for i = 1, 40 do calls[i] = { "orders_detail", { order_number = "ORD-" .. i } } end
    local results = c:batch(calls, { concurrency = 4 })
    local sent = count() - before
    -- 3 open it; at most 3 more were in flight by then.
    assert.is_true(sent >= 3 and sent <= 6, "sent " .. sent)
    local open = 0
    for _, r in ipairs(results) do
      local err = r[2]
      if err.reason == "circuit_open" then
        assert_open(err, 30)
        open = open + 1
      else
        assert.equal("server", err.kind)
      end
    end
    assert.equal(40 - sent, open)
    c:close()
  end)

  it("is off with breaker = false", function()
    mode("503")
    local before = count()
    local c = client({ breaker = false })
    for _ = 1, 10 do assert.equal("server", select(2, call(c)).kind) end
    assert.equal(10, count() - before)
    c:close()
  end)

  it("is reported to the hooks and in the debug line", function()
    mode("503")
    local lines, infos = {}, {}
    local c = client({ breaker = { failures = 1 }, debug = function(l) lines[#lines + 1] = l end,
                       hooks = { on_response = function(i) infos[#infos + 1] = i end } })
    call(c)
    call(c)
    local info = infos[2]
    assert.equal("network", info.kind)
    assert.equal("circuit_open", info.reason)
    assert.equal(0, info.attempts)
    assert.is_true(info.retry_after > 0)
    assert.matches("^wemasy: orders/detail %-> network circuit_open in [%d.]+ ms %(0 attempts, .*retry after", lines[2])
    c:close()
  end)

  it("checks its options, naming them", function()
    for _, bad in ipairs{ { breaker = "on" }, { breaker = { failures = 0 } }, { breaker = { failures = 1.5 } },
                          { breaker = { cooldown = 0 } }, { breaker = { cooldown = "10" } },
                          { breaker = { failurs = 3 } } } do
      local ok, err = pcall(wemasy.new, bad)
      assert.is_false(ok)
      assert.matches("wemasy.new: .*'breaker", err)
    end
  end)
end)

-- The breaker's fields in the shared segment are anyone's to write (another
-- process, another version, a crash mid-update): each use checks them first.
describe("the shared breaker's state as another process left it", function()
  local function set(token, phase, failures, open_in, probe_in)
    core._debug_set_breaker(down.url, token, phase, failures, open_in, probe_in)
  end

  it("takes an unknown phase as closed, and a run of failures past any bound at the bound", function()
    mode("503")
    for _, garbage in ipairs{ { 7, 0 }, { 4294967295, 4294967295 }, { 0, 4294967295 } } do
      local token = h.token("brk-garbage")
      local c = client({ token = token, breaker = { failures = 2 } })
      set(token, garbage[1], garbage[2], 0, 0)
      local before = count()
      local _, err = call(c)
      -- Closed, or at most a run at its bound: never an open breaker out of nowhere.
      assert.equal("server", err.kind, tostring(err))
      c:close()
      assert.equal(1, count() - before)
    end
  end)

  it("takes a time out of range (NaN, ages ahead) as now: the next try probes", function()
    mode("ok")
    for _, t in ipairs{ 0 / 0, 1e12, -1e12, math.huge } do
      local token = h.token("brk-time")
      local c = client({ token = token })
      set(token, 1, 5, t, t) -- open until t
      assert.truthy(call(c), "open until now + " .. tostring(t))
      c:close()
      token = h.token("brk-time")
      c = client({ token = token })
      set(token, 2, 5, t, t) -- half open, a probe out until t
      assert.truthy(call(c), "probe out until now + " .. tostring(t))
      c:close()
    end
  end)

  it("keeps a valid open state as it is", function()
    mode("ok")
    local token = h.token("brk-valid")
    local c = client({ token = token })
    set(token, 1, 5, 20, 0)
    local _, err = call(c)
    assert_open(err, 20)
    assert.is_true(err.retry_after > 19, tostring(err.retry_after))
    c:close()
  end)
end)
