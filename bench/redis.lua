-- redis.lua - one quota for every host on a token, on Redis (issue 16 item 7).
--
--   make bench-redis                        (BENCH_DURATION=20 by default)
--   lua5.4 bench/redis.lua --acquire build/bench/redis_acquire [--duration S] [--limit N] [--window W]
--
-- Needs unshare (hosts are process groups with a private /dev/shm, `unshare -m`
-- and a tmpfs: spec/support/hosts.lua) and redis-server.  Starts a sandbox
-- whose throttle allows N requests per W seconds per token (Laravel's fixed
-- window) and one redis-server on a free loopback port, then:
--
-- 1. hosts x processes on one token, each calling orders/detail as fast as its
--    limiter lets it for S seconds, max_retries = 0 (a 429 is counted, never
--    retried): each host on its own shm store (the baseline), then all on
--    Redis.  quota use = answered / (N x ceil(S / W)), what an exact sliding
--    window of W allows in S seconds (no margin).  Round trips per call from
--    INFO commandstats: the commands the clients sent (EVALSHA, EVAL, SCRIPT
--    LOAD) over the calls.
-- 2. acquire latency, one process, each acquire timed: shm, Redis, and a bare
--    PING on the same loopback as the yardstick (bench/redis_acquire.c).
-- 3. fall back and rejoin: an acquire every 2 ms while redis-server is killed
--    (SIGKILL) and, 2 s later, started again on its port.
-- 4. an interactive host (2 processes, each a call every 2.4 s: at most 4 per
--    window) beside a background host that saturates the quota, on Redis:
--    without a reserve, and with priority = "background", reserve = 4.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. here .. "/../spec/?.lua;" .. package.path
local common = require("common")
local socket = require("socket")
local hosts = require("support.hosts")
local redis = require("support.redis")

local PATH = "/services/webshop/v1/orders/detail"
local BODY = '{"order_number":"ORD-2025-001"}'

local function parse_args(argv)
  return common.parse_args(argv, { duration = tonumber(os.getenv("BENCH_DURATION")) or 20, limit = 20,
    window = 4, acquire = "build/bench/redis_acquire", n = 20000 }, "redis.lua")
end

-- The commands the clients sent since CONFIG RESETSTAT (the script's own
-- calls, ZADD and the like, are counted by Redis too: no round trips).
local function client_trips(r)
  local calls = {}
  for name, n in redis.cli(r, "INFO", "commandstats"):gmatch("cmdstat_([%w|_]+):calls=(%d+)") do
    calls[name] = tonumber(n)
  end
  return (calls.evalsha or 0) + (calls.eval or 0) + (calls["script|load"] or 0)
end

-- One row of part 1 or 4: the hosts run, the sandbox's and Redis's counts.
local function run_hosts(o, sb, r, spec)
  assert(sb:reset())
  assert(redis.cli(r, "FLUSHALL") == "OK")
  assert(redis.cli(r, "CONFIG", "RESETSTAT") == "OK")
  local run = hosts.run {
    hosts = spec.hosts, procs = spec.procs, base_url = sb.base_url, lua = common.interpreter(),
    token = require("wemasy.sandbox").tokens.merchant, path = PATH, body = BODY, duration = o.duration,
    pace = spec.pace, rate_limit = spec.rate_limit,
  }
  run.trips = client_trips(r)
  run.server = (sb:state().requests or {})["orders/detail"] or 0
  -- Workers wait for the server's window after a 429; let the next row start afresh.
  socket.sleep(o.window + 0.5)
  return run
end

local function fmt_ms(s) return s and ("%.1f"):format(s * 1000) or "-" end

local function part_hosts(o, sb, r, lines)
  local allowed = o.limit * math.ceil(o.duration / o.window)
  local groups = { default = { limit = o.limit, window = o.window } }
  local rows = {
    { hosts = 4, procs = 2, store = "shm", rate_limit = { groups = groups } },
    { hosts = 4, procs = 2, store = "redis", rate_limit = { store = r.url, groups = groups } },
    { hosts = 6, procs = 4, store = "redis", rate_limit = { store = r.url, groups = groups } },
    -- The default store_timeout (0.1 s) against a loaded machine: see the notes.
    { hosts = 6, procs = 4, store = "redis, timeout 1 s",
      rate_limit = { store = r.url, store_timeout = 1, groups = groups } },
  }
  local fmt = "%-14s %-18s %8s %5s %5s %5s %7s %9s %10s"
  lines[#lines + 1] = ("1. hosts on one token: sandbox %d per %g s, %g s, as fast as the limiter lets each process")
    :format(o.limit, o.window, o.duration)
  lines[#lines + 1] = fmt:format("hosts x procs", "store", "requests", "ok", "429", "late", "other", "quota use",
    "trips/call")
  local result = {}
  for _, spec in ipairs(rows) do
    local run = run_hosts(o, sb, r, spec)
    local other = 0
    for _, n in pairs(run.other) do other = other + n end
    local sent = #run.calls
    lines[#lines + 1] = fmt:format(("%d x %d"):format(spec.hosts, spec.procs), spec.store, run.server, run.ok,
      run.r429, run.late, other, ("%.1f %%"):format(100 * run.ok / allowed),
      spec.store ~= "shm" and ("%.2f"):format(run.trips / sent) or "-")
    for k, n in pairs(run.other) do lines[#lines + 1] = ("    other outcomes: %s x%d"):format(k, n) end
    result[#result + 1] = { spec = spec, run = run }
  end
  common.append(lines, {
    "requests: orders/detail requests the sandbox counted; ok: 200s answered within the run; 429: every 429",
    "late:     answered after the run (a process waited past the end for a slot): not in ok",
    ("quota use: ok / (N x ceil(S / W)) = ok / %d, what an exact sliding window of W allows in S seconds")
      :format(allowed),
    "trips/call: EVALSHA + EVAL + SCRIPT LOAD sent to Redis (INFO commandstats) per call sent, refused acquires",
    "          of a waiting call included",
  })
  return result
end

local function part_latency(o, r, lines)
  local out = common.capture(("%s latency %s %d"):format(common.shell_quote(o.acquire), r.url, o.n))
  local got = {}
  for label, p50, p99, max in out:gmatch("latency (%S+) n=%d+ p50=(%S+) p99=(%S+) max=(%S+)") do
    got[label] = { p50 = tonumber(p50), p99 = tonumber(p99), max = tonumber(max) }
  end
  local trips = tonumber(out:match("per_acquire=(%S+)"))
  assert(got.shm and got.redis and got.ping and trips, "redis_acquire said: " .. out)
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("2. acquire latency, one process, %d acquires each (bench/redis_acquire.c), microseconds")
    :format(o.n)
  lines[#lines + 1] = ("%-28s %8s %8s %9s"):format("", "p50", "p99", "max")
  for _, k in ipairs { { "shm", "shm store" }, { "redis", "Redis store (one EVALSHA)" },
                       { "ping", "bare PING (the yardstick)" } } do
    local g = got[k[1]]
    lines[#lines + 1] = ("%-28s %8.1f %8.1f %9.1f"):format(k[2], g.p50, g.p99, g.max)
  end
  lines[#lines + 1] = ("round trips per acquire (INFO commandstats, %d acquires): %.3f; Redis's own time in the "
    .. "script: %s us per acquire (usec_per_call)"):format(math.floor(o.n / 10), trips, out:match("server_us=(%S+)"))
  lines[#lines + 1] = "load average during the run: " .. common.capture("cut -d' ' -f1-3 /proc/loadavg")
  return got, trips
end

local function part_fallback(o, r, lines)
  local core = require("wemasy.core")
  local p = assert(io.popen(("%s fallback %s 8"):format(common.shell_quote(o.acquire), r.url)))
  assert(p:read("*l"):match("^start"))
  socket.sleep(2)
  local killed = core.now()
  redis.kill(r)
  socket.sleep(2)
  redis.restart(r)
  local back = core.now()
  local out = p:read("*a")
  p:close()
  local fell, rejoined
  for t, kind in out:gmatch("served (%S+) (%S+)") do
    t = tonumber(t)
    if kind == "shm" and not fell and t >= killed then fell = t - killed end
    if kind == "redis" and fell and not rejoined and t >= back then rejoined = t - back end
  end
  local lredis, lshm = out:match("longest redis=(%S+) shm=(%S+)")
  lines[#lines + 1] = ""
  lines[#lines + 1] = "3. fall back and rejoin: an acquire every 2 ms; redis-server SIGKILLed at t = 2 s, "
    .. "back at t = 4 s"
  lines[#lines + 1] = ("time to fall back to the shm store after the kill:   %s ms"):format(fmt_ms(fell))
  lines[#lines + 1] = ("time to rejoin Redis after it answers again:         %s ms (the breaker stays open 3 s)")
    :format(fmt_ms(rejoined))
  lines[#lines + 1] = ("longest single acquire: %s ms while Redis served, %s ms while the shm store did"):format(
    lredis or "-", lshm or "-")
  return fell, rejoined
end

local function part_priority(o, sb, r, lines)
  local groups = { default = { limit = o.limit, window = o.window } }
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("4. beside a background host (2 processes, as fast as allowed), an interactive host "
    .. "(2 processes, a call every %g s each), both on Redis"):format(2.4)
  local fmt = "%-34s %6s %8s %8s %8s %8s %5s"
  lines[#lines + 1] = fmt:format("background rate_limit", "calls", "p50 ms", "p99 ms", "max ms", "bg ok", "429")
  local worst = {}
  for _, reserve in ipairs { 0, 4 } do
    local run = run_hosts(o, sb, r, {
      hosts = 2, procs = 2,
      pace = function(host) return host == 2 and 2.4 or 0 end,
      rate_limit = function(host)
        local rl = { store = r.url, groups = groups }
        if host == 1 and reserve > 0 then rl.priority, rl.reserve = "background", reserve end
        return rl
      end,
    })
    local waits, bg = {}, 0
    for _, c in ipairs(run.calls) do
      if c.host == 2 then waits[#waits + 1] = c.took elseif c.outcome == "200" then bg = bg + 1 end
    end
    local label = reserve > 0 and ('priority = "background", reserve = ' .. reserve) or "none (interactive, reserve 0)"
    lines[#lines + 1] = fmt:format(label, #waits, fmt_ms(hosts.quantile(waits, 0.5)),
      fmt_ms(hosts.quantile(waits, 0.99)), fmt_ms(hosts.quantile(waits, 1)), bg, run.r429)
    worst[reserve] = hosts.quantile(waits, 0.99)
  end
  lines[#lines + 1] = "p50/p99/max: the interactive calls' time from the call to its answer "
    .. "(the wait for a slot included)"
  return worst
end

local function main(argv)
  local o = parse_args(argv)
  assert(hosts.available(), "bench-redis needs `unshare -m` (not as root: user namespaces) for a private /dev/shm")
  local sandbox = require("wemasy.sandbox")
  local base_url, sb = sandbox.start { window = o.window, limits = { default = o.limit, sync = 5 } }
  assert(base_url, sb)
  local r = redis.start { lifetime = 900 }
  local lines = common.date_and_machine {
    "lua:      " .. (jit and jit.version or _VERSION) .. ", " .. common.capture("redis-server --version"),
  }
  lines[#lines + 1] = common.command_line()
  lines[#lines + 1] = ""
  local ok, err = pcall(function()
    local rows = part_hosts(o, sb, r, lines)
    local lat, trips = part_latency(o, r, lines)
    local fell, rejoined = part_fallback(o, r, lines)
    local worst = part_priority(o, sb, r, lines)
    local r429 = 0
    for i = 2, 3 do r429 = r429 + rows[i].run.r429 end
    local quota = math.huge
    for i = 2, #rows do quota = math.min(quota, rows[i].run.ok / (o.limit * math.ceil(o.duration / o.window))) end
    local function goal(met, text) return (met and "met " or "MISSED ") .. text end
    common.append(lines, { "", "goals:",
      "  429s on Redis, default options (0):     " .. goal(r429 == 0, "(" .. r429 .. ")"),
      "  429s on Redis, store_timeout = 1 s (0): " .. goal(rows[4].run.r429 == 0, "(" .. rows[4].run.r429 .. ")"),
      "  quota use (>= 90 %):                    " .. goal(quota >= 0.9, ("(%.1f %% at worst)"):format(100 * quota)),
      "  acquire p99 on loopback (<= 1 ms):      " .. goal(lat.redis.p99 <= 1000,
        ("(%.0f us; shm %.1f us, PING %.0f us)"):format(lat.redis.p99, lat.shm.p99, lat.ping.p99)),
      "  round trips per acquire (1):            " .. goal(trips <= 1.001, ("(%.3f)"):format(trips)),
      "  interactive p99 beside a background job (< 1 s): "
        .. goal((worst[4] or 99) < 1, ("(%s ms; %s ms without a reserve)"):format(fmt_ms(worst[4]), fmt_ms(worst[0]))),
      ("  fall back %s ms after the kill, rejoin %s ms after Redis is back"):format(fmt_ms(fell), fmt_ms(rejoined)),
    })
  end)
  redis.stop(r)
  sb:stop()
  if not ok then error(err, 0) end
  common.write_report(lines, o.out)
end

main(arg)
