-- speed.lua - what one call costs the client, wemasy against hand-rolled
-- calls and against libcurl itself (`make bench`).
--
--   make bench
--   lua5.4 bench/speed.lua [--calls N] [--socket-calls N] [--batch-requests N] [--rss-calls N]
--                          [--rounds R] [--build DIR] [--out FILE]
--
-- The parent starts one sandbox (2 nginx workers, limits nothing reaches) and
-- runs every client in a fresh process, R rounds in a rotating order, all of
-- them sending the same orders/detail POST for order ORD-2025-001 (a 2020-byte
-- JSON answer):
--
--   (1) C, libcurl's easy interface, one reused handle, body discarded
--       (build/bench/speed_easy): the floor;
--   (2) LuaJIT, Debian's lua-curl (`require "curl"`) + lua-cjson: encode the
--       request, POST, status from the status line, decode the answer;
--   (3) the same with luasocket's socket.http + lua-cjson (socket.http opens
--       a connection per request: it has no keep-alive);
--   (4) wemasy: client:orders_detail{...} on Lua 5.4 and on LuaJIT, default
--       options (validation, the shared limiter with limits never reached,
--       retries, error mapping, decoded body, res.headers/rate_limit);
--   (5) client:batch with 16 in flight against a C loop on curl's multi
--       interface with 16 in flight (bench/batch.lua's client mode and
--       build/bench/curl_multi);
--   (6) 100 000 sequential wemasy calls in one process: RSS before and after.
--
-- CPU per call is the client process's own user + system time (os.clock /
-- getrusage), measured in the client around the timed calls only; the
-- server's CPU per request is read from its workers' /proc/<pid>/stat around
-- each run.  Each run first makes a few untimed calls (connection open).
-- The sandbox's headroom comes from wrk against the same URL.
--
-- Client mode (internal): speed.lua client <kind> <base_url> <calls> <warmup>
--   kind: wemasy | lcurl | socket | rss

-- This script's directory first: `require("common")` is bench/common.lua.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require("common")
local socket = require("socket")

local gettime = socket.gettime
local ORDER = { order_number = "ORD-2025-001" }
local PATH = "/services/webshop/v1/orders/detail"
-- Limits no run reaches (the core clamps a group to 1024 per window).
local RATE = { margin = 0, groups = { default = { limit = 1024, window = 0.001 } } }

------------------------------------------------------------------------ clients

-- The sandbox's merchant token: the parent passes it to each client (the
-- hand-rolled ones do not load wemasy at all).
local TOKEN = os.getenv("WEMASY_BENCH_TOKEN")

local function token()
  return TOKEN or require("wemasy.sandbox").tokens.merchant
end

-- Each maker returns call(): true when the answer was a decoded 200.
local makers = {}

function makers.wemasy(base_url)
  local wemasy = require("wemasy")
  local client = wemasy.new{ base_url = base_url, token = token(), rate_limit = RATE }
  return function()
    local body, _, res = client:orders_detail(ORDER)
    return body ~= nil and res.status == 200 and type(body.data) == "table"
  end
end

-- What a Lua user would write with Debian's lua-curl (Lua-cURL 0.3, "luacurl":
-- easy_init, setopt, perform; no getinfo, so the status comes from the
-- header callback) and lua-cjson.
function makers.lcurl(base_url)
  local curl = require("curl")
  local cjson = require("cjson")
  local e = curl.easy_init()
  local chunks, n, status = {}, 0, nil
  e:setopt(curl.OPT_URL, base_url .. PATH)
  e:setopt(curl.OPT_HTTPHEADER, { "Accept: application/json", "Content-Type: application/json", "Expect:",
    "Authorization: Bearer " .. token() })
  e:setopt(curl.OPT_NOSIGNAL, 1)
  e:setopt(curl.OPT_ACCEPT_ENCODING, "")
  e:setopt(curl.OPT_TIMEOUT, 30)
  e:setopt(curl.OPT_WRITEFUNCTION, function(s, len)
    n = n + 1
    chunks[n] = s
    return len
  end)
  e:setopt(curl.OPT_HEADERFUNCTION, function(s, len)
    if s:sub(1, 5) == "HTTP/" then status = tonumber(s:match("^HTTP/%S+ (%d%d%d)")) end
    return len
  end)
  return function()
    e:setopt(curl.OPT_POSTFIELDS, cjson.encode(ORDER))
    n, status = 0, nil
    e:perform()
    if status ~= 200 then return false end
    local body = cjson.decode(table.concat(chunks, "", 1, n))
    return type(body.data) == "table"
  end
end

function makers.socket(base_url)
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local cjson = require("cjson")
  local url, auth = base_url .. PATH, "Bearer " .. token()
  return function()
    local text, out = cjson.encode(ORDER), {}
    local _, code = http.request{
      url = url, method = "POST", source = ltn12.source.string(text), sink = ltn12.sink.table(out),
      headers = { ["content-type"] = "application/json", accept = "application/json",
                  authorization = auth, ["content-length"] = #text },
    }
    if code ~= 200 then return false end
    local body = cjson.decode(table.concat(out))
    return type(body.data) == "table"
  end
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")), tonumber(s:match("VmHWM:%s*(%d+)"))
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

local function client_run(kind, base_url, calls, warmup)
  if kind == "rss" then
    local call = makers.wemasy(base_url)
    local errors = 0
    full_gc()
    local rss0 = rss_kib()
    for _ = 1, warmup do if not call() then errors = errors + 1 end end
    full_gc()
    local rss1 = rss_kib()
    local t0 = gettime()
    for _ = 1, calls do if not call() then errors = errors + 1 end end
    local secs = gettime() - t0
    full_gc()
    local rss2, hwm = rss_kib()
    print(string.format("calls=%d errors=%d seconds=%.3f rss_start=%d rss_before=%d rss_after=%d hwm=%d",
      calls, errors, secs, rss0, rss1, rss2, hwm))
    return
  end
  local call = makers[kind](base_url)
  local errors = 0
  for _ = 1, warmup do if not call() then errors = errors + 1 end end
  full_gc()
  local ok = 0
  local t0, c0 = gettime(), os.clock()
  for _ = 1, calls do if call() then ok = ok + 1 end end
  local secs, cpu = gettime() - t0, os.clock() - c0
  print(string.format("calls=%d ok=%d errors=%d seconds=%.4f cpu_us=%.2f",
    calls, ok, errors + calls - ok, secs, cpu / calls * 1e6))
end

------------------------------------------------------------------------ parent

local shell_quote, dirname, median = common.shell_quote, common.dirname, common.median
-- Everything this script runs shows its stderr: `nginx -v` prints there, and
-- a failed client's message goes into the error.
local capture = common.capture_with_stderr

local function parse_args(argv)
  local repo = dirname(dirname(arg[0]))
  return common.parse_args(argv, { calls = 4000, socket_calls = 800, batch_requests = 5000, rss_calls = 100000,
    rounds = 11, concurrency = 16, workers = 2, build = repo .. "/build" }, "speed.lua")
end

-- CPU seconds of the sandbox's nginx workers so far (utime + stime).
local function server_cpu(pids)
  local ticks = 0
  for _, pid in ipairs(pids) do
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then
      local s = f:read("a")
      f:close()
      -- Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
      local rest = s:match("%) (.*)$")
      local fields = {}
      for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
      ticks = ticks + tonumber(fields[12]) + tonumber(fields[13])
    end
  end
  return ticks / tonumber(capture("getconf CLK_TCK"))
end

local function worker_pids(master)
  local pids = {}
  for pid in capture("pgrep -P " .. master):gmatch("%d+") do pids[#pids + 1] = pid end
  assert(#pids > 0, "no nginx workers under pid " .. master)
  return pids
end

-- Runs cmd, parses its "key=value ..." line; fails loudly on any error.
local function measure(cmd, count_key)
  return common.measure(cmd, capture, function(r) return r[count_key] ~= nil and r.errors == 0 end)
end

local function wrk(base_url, connections, seconds)
  return common.wrk(capture, base_url .. PATH, '{"order_number":"ORD-2025-001"}', token(), connections, seconds)
end

local function machine()
  local cpu = common.cpu_model(capture)
  local mem = tonumber(capture("grep -m1 MemTotal /proc/meminfo"):match("(%d+)")) or 0
  local curl = capture("curl-config --version")
  local function pkg(name) return capture("dpkg-query -W -f='${Version}' " .. name) end
  return {
    common.date_line(),
    string.format("machine:  nproc=%s, %s, %.1f GiB RAM, %s", capture("nproc"), cpu, mem / 1048576,
      capture("uname -sr")),
    "libcurl:  " .. curl .. "; nginx " .. capture("nginx -v"):gsub("^nginx version: nginx/", ""),
    "lua:      " .. capture("lua5.4 -v"):gsub("%s+Copyright.*", "") .. "; "
      .. capture("luajit -v"):gsub("%s+%-%-.*", "") .. "; lua-curl " .. pkg("lua-curl") .. ", lua-cjson "
      .. pkg("lua-cjson") .. ", lua-socket " .. pkg("lua-socket"),
    common.command_line(),
  }
end

local function main(argv)
  local o = parse_args(argv)
  local easy, multi = o.build .. "/bench/speed_easy", o.build .. "/bench/curl_multi"
  for _, p in ipairs{ easy, multi } do
    assert(io.open(p), "no " .. p .. ": run `make bench` (it builds it)"):close()
  end
  local sandbox = require("wemasy.sandbox")
  local core = require("wemasy.core")
  local base_url, sb = sandbox.start{ window = 60, limits = { default = 10000000, sync = 5 }, workers = o.workers }
  assert(base_url, sb)
  local pids = worker_pids(sb.pid)
  local lua_path = os.getenv("LUA_PATH") or ""
  local script = shell_quote(arg[0])
  local cpath54, cpathjit = o.build .. "/5.4/?.so;;", o.build .. "/jit/?.so;;"
  local function lua_cmd(lua, cpath, kind, calls, warmup)
    return string.format("WEMASY_BENCH_TOKEN=%s LUA_PATH=%s LUA_CPATH=%s %s %s client %s %s %d %d",
      shell_quote(token()), shell_quote(lua_path), shell_quote(cpath), lua, script, kind, shell_quote(base_url),
      calls, warmup)
  end
  local function batch_cmd(lua, cpath)
    return string.format("LUA_PATH=%s LUA_CPATH=%s %s %s client %s %d %d off %d", shell_quote(lua_path),
      shell_quote(cpath), lua, shell_quote(dirname(arg[0]) .. "/batch.lua"), shell_quote(base_url),
      o.batch_requests, o.concurrency, 4 * o.concurrency)
  end
  local W = 50 -- untimed calls first (connection open, code warm)
  local calls = {
    { id = "1", name = "C libcurl easy, body discarded", calls = o.calls, ref = true,
      cmd = string.format("%s %s %s %d %d", shell_quote(easy), shell_quote(base_url), shell_quote(token()),
        o.calls, W) },
    { id = "2", name = "LuaJIT lua-curl + cjson", calls = o.calls, ref2 = true,
      cmd = lua_cmd("luajit", ";;", "lcurl", o.calls, W) },
    { id = "3", name = "LuaJIT socket.http + cjson", calls = o.socket_calls,
      cmd = lua_cmd("luajit", ";;", "socket", o.socket_calls, W) },
    { id = "3", name = "Lua 5.4 socket.http + cjson", calls = o.socket_calls,
      cmd = lua_cmd("lua5.4", ";;", "socket", o.socket_calls, W) },
    { id = "4", name = "wemasy, Lua 5.4", calls = o.calls, wemasy = true,
      cmd = lua_cmd("lua5.4", cpath54, "wemasy", o.calls, W) },
    { id = "4", name = "wemasy, LuaJIT", calls = o.calls, wemasy = true, jit = true,
      cmd = lua_cmd("luajit", cpathjit, "wemasy", o.calls, W) },
  }
  local batches = {
    { id = "5", name = string.format("C curl_multi, %d in flight", o.concurrency), ref = true,
      cmd = string.format("%s %s %s %d %d %d", shell_quote(multi), shell_quote(base_url), shell_quote(token()),
        o.batch_requests, o.concurrency, 4 * o.concurrency) },
    { id = "5", name = string.format("wemasy batch, %d in flight, Lua 5.4", o.concurrency),
      cmd = batch_cmd("lua5.4", cpath54) },
    { id = "5", name = string.format("wemasy batch, %d in flight, LuaJIT", o.concurrency),
      cmd = batch_cmd("luajit", cpathjit) },
  }
  local rss = {
    { name = "wemasy, Lua 5.4", cmd = lua_cmd("lua5.4", cpath54, "rss", o.rss_calls, 100) },
    { name = "wemasy, LuaJIT", cmd = lua_cmd("luajit", cpathjit, "rss", o.rss_calls, 100) },
  }
  local headroom = {}
  local lines = machine()
  lines[#lines + 1] = string.format("setup:    sandbox with %d nginx workers on the same machine, %d rounds "
    .. "(order rotated each round); per call: %d calls per run (socket.http %d); batch: %d requests per run",
    o.workers, o.rounds, o.calls, o.socket_calls, o.batch_requests)
  local load0 = capture("cut -d' ' -f1-3 /proc/loadavg")

  local function run_one(v, count_key, requests)
    local s0 = server_cpu(pids)
    local r = measure(v.cmd, count_key)
    local s1 = server_cpu(pids)
    v.server[#v.server + 1] = (s1 - s0) / requests * 1e6
    return r
  end
  local ok, err = pcall(function()
    for _, v in ipairs(calls) do v.cpu, v.wall, v.server = {}, {}, {} end
    for _, v in ipairs(batches) do v.rps, v.cpu, v.server = {}, {}, {} end
    for round = 1, o.rounds do
      for k = 0, #calls - 1 do
        local v = calls[(round - 1 + k) % #calls + 1]
        local r = run_one(v, "calls", v.calls + W)
        v.cpu[#v.cpu + 1], v.wall[#v.wall + 1] = r.cpu_us, r.seconds / r.calls * 1e6
      end
      for k = 0, #batches - 1 do
        local v = batches[(round - 1 + k) % #batches + 1]
        local r = run_one(v, "rps", o.batch_requests + 4 * o.concurrency)
        if r.ok ~= r.requests then error("batch run failed: " .. v.cmd, 0) end
        v.rps[#v.rps + 1], v.cpu[#v.cpu + 1] = r.rps, r.cpu_us_per_req
      end
      io.stderr:write(string.format("round %d/%d done\n", round, o.rounds))
    end
    for _, v in ipairs(rss) do
      v.r = measure(v.cmd, "rss_after")
      io.stderr:write("rss: " .. v.name .. " done\n")
    end
    for _, c in ipairs{ 1, o.concurrency, 2 * o.concurrency } do
      local s0 = server_cpu(pids)
      local rps, total = wrk(base_url, c, 3)
      if not rps then break end
      headroom[#headroom + 1] = { c = c, rps = rps, server = (server_cpu(pids) - s0) / total * 1e6 }
    end
  end)
  sb:stop()
  core._debug_unlink(base_url, token()) -- the shared limiter's segment of the wemasy rows
  if not ok then error(err, 0) end

  lines[#lines + 1] = "load:     " .. load0 .. " at the start, " .. capture("cut -d' ' -f1-3 /proc/loadavg")
    .. " at the end (1, 5, 15 min; this bench alone keeps it near 1.5)"
  local function f1(x) return string.format("%.1f", x) end
  local function f2(x) return string.format("%.2f", x) end
  -- Ratios are paired by round (each round runs every client back to back),
  -- then the median is taken: a burst of other load hits both sides.
  local function ratio(xs, refs)
    local r = {}
    for i = 1, #xs do r[i] = xs[i] / refs[i] end
    return median(r)
  end
  local ref, ref2 = calls[1], calls[2]
  local fmt = "%-3s %-34s %9s %7s %7s %9s %7s %7s %10s"
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Sequential calls, one at a time (per call; CPU = the client process's user + system time)"
  lines[#lines + 1] = string.format(fmt, "", "client", "CPU us", "vs (1)", "vs (2)", "wall us", "vs (1)", "vs (2)",
    "server us")
  local worst = {}
  for _, v in ipairs(calls) do
    local c, w = median(v.cpu), median(v.wall)
    local c1, c2 = ratio(v.cpu, ref.cpu), ratio(v.cpu, ref2.cpu)
    lines[#lines + 1] = string.format(fmt, "(" .. v.id .. ")", v.name, f1(c), f2(c1), f2(c2),
      f1(w), f2(ratio(v.wall, ref.wall)), f2(ratio(v.wall, ref2.wall)), f1(median(v.server)))
    if v.wemasy then
      worst.floor = math.max(worst.floor or 0, c1)
      if v.jit then worst.lcurl = c2 end
    end
  end
  local bfmt = "%-3s %-34s %9s %15s %9s %7s %10s"
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("Concurrent: %d orders/detail POSTs per run", o.batch_requests)
  lines[#lines + 1] = string.format(bfmt, "", "client", "req/s", "min..max", "CPU us", "vs C", "server us")
  for _, v in ipairs(batches) do
    local m, vs = median(v.rps), ratio(v.rps, batches[1].rps)
    local sorted = {}
    for i, x in ipairs(v.rps) do sorted[i] = x end
    table.sort(sorted)
    lines[#lines + 1] = string.format(bfmt, "(5)", v.name, string.format("%.0f", m),
      string.format("%.0f..%.0f", sorted[1], sorted[#sorted]), f1(median(v.cpu)), f2(vs),
      f1(median(v.server)))
    if not v.ref then worst.batch = math.min(worst.batch or math.huge, vs) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("Memory: %d sequential calls in one process (RSS after 100 untimed calls, "
    .. "then after all; full GC before each reading)", o.rss_calls)
  local rfmt = "%-3s %-34s %11s %11s %11s %11s %9s"
  lines[#lines + 1] = string.format(rfmt, "", "client", "RSS start", "before", "after", "growth", "calls/s")
  for _, v in ipairs(rss) do
    local r = v.r
    local growth = r.rss_after - r.rss_before
    lines[#lines + 1] = string.format(rfmt, "(6)", v.name, r.rss_start .. " KiB", r.rss_before .. " KiB",
      r.rss_after .. " KiB", growth .. " KiB", string.format("%.0f", r.calls / r.seconds))
    worst.rss = math.max(worst.rss or -math.huge, growth)
  end
  lines[#lines + 1] = ""
  if #headroom > 0 then
    lines[#lines + 1] = "Sandbox headroom: wrk -t1 -cN -d3s against the same URL (the server alone)"
    for _, h in ipairs(headroom) do
      lines[#lines + 1] = string.format("    wrk, %2d connection%s %29s req/s   server %.1f us/req", h.c,
        h.c == 1 and " " or "s", string.format("%.0f", h.rps), h.server)
    end
  else
    lines[#lines + 1] = "Sandbox headroom: wrk not installed (apt-get install wrk)"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "CPU us:     client CPU time per call; wall us: elapsed time per call; server us: the nginx "
    .. "workers' CPU per request"
  lines[#lines + 1] = "medians:    of the rounds; vs (1), vs (2), vs C: the median of the per-round ratios"
  lines[#lines + 1] = "(1), (2):   the C floor discards the body; (2), (3) and wemasy decode it (wemasy's contract)"
  local function verdict(ok_) return ok_ and "met" or "MISSED" end
  lines[#lines + 1] = string.format("goals:      client CPU <= 1.25 x (1): %s (%.2f); wemasy LuaJIT <= 1.0 x (2): %s "
    .. "(%.2f);", verdict(worst.floor <= 1.25), worst.floor, verdict(worst.lcurl <= 1.0), worst.lcurl)
  lines[#lines + 1] = string.format("            batch >= 0.85 x C multi: %s (%.2f); RSS growth < 1 MiB: %s (%d KiB)",
    verdict(worst.batch >= 0.85), worst.batch, verdict(worst.rss < 1024), worst.rss)
  common.write_report(lines, o.out)
end

if arg[1] == "client" then
  client_run(arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5]))
else
  main(arg)
end
