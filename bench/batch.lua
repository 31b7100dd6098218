-- batch.lua - throughput of client:batch against plain C on libcurl's multi
-- interface (bench/curl_multi.c), same requests, same sandbox.
--
--   make bench-batch
--   lua5.4 bench/batch.lua [--requests N] [--rounds R] [--concurrency C] [--workers W]
--                          [--curl-multi PATH] [--out FILE]
--
-- The parent starts one sandbox (W nginx workers, limits so high nothing is
-- throttled) and runs, R rounds, each in a fresh process and in a rotating
-- order: the C program with C in flight, then client:batch(calls,
-- {concurrency = C}) on Lua 5.4 and on LuaJIT, with rate_limit = false and
-- with the in-process limiter on.  Each run first sends a small untimed
-- warm-up (connections open), then times N orders_detail calls; every call
-- must come back 200.  Reported: the median requests/s over the rounds, the
-- client process's CPU time per request, and the ratio to C.  The sandbox's
-- own ceiling is measured with the C program at 2 x C in flight and with wrk
-- (Debian package `wrk`) when it is installed.
--
-- Client mode (internal): batch.lua client <base_url> <N> <C> <off|local> <warmup>

-- This script's directory first: `require("common")` is bench/common.lua.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require("common")
local socket = require("socket")

local gettime = socket.gettime
local ORDER = { order_number = "ORD-2025-001" }
local BODY = '{"order_number":"ORD-2025-001"}'
local PATH = "/services/webshop/v1/orders/detail"

------------------------------------------------------------------------ client

-- No limiter, or the in-process one with limits no run reaches: the core
-- keeps at most 1024 send times per group (it clamps N, and the server's
-- X-RateLimit-Limit, to that), so "huge" is 1024 per millisecond, no margin.
local RATE = {
  off = false,
  raw = false,
  ["local"] = { shared = false, margin = 0, groups = { default = { limit = 1024, window = 0.001 } } },
}

-- What client:batch hands the C core (client.lua's batch), made once, outside
-- the timing: "raw" times the C core's batch alone, without the Lua layer's
-- validation, encoding, response decoding and result tables.  Diagnostic: it
-- uses the client's private core handle, whose interface may change.
local function raw_items(k)
  local t = {}
  for i = 1, k do
    t[i] = { path = PATH, body = BODY, with_auth = true, group = "default", idempotent = true }
  end
  return t
end

local function client_run(base_url, n, concurrency, mode, warmup)
  local wemasy = require("wemasy")
  local sandbox = require("wemasy.sandbox")
  local client = wemasy.new{ base_url = base_url, token = sandbox.tokens.merchant, rate_limit = RATE[mode] }
  local function calls(k)
    local t = {}
    for i = 1, k do t[i] = { "orders_detail", ORDER } end
    return t
  end
  local errors = 0
  if warmup > 0 then
    for _, r in ipairs(client:batch(calls(warmup), { concurrency = concurrency })) do
      if not r[1] then errors = errors + 1 end
    end
  end
  local list = mode == "raw" and raw_items(n) or calls(n)
  collectgarbage()
  local t0, c0 = gettime(), os.clock()
  local results
  if mode == "raw" then
    -- The core reports each result only to on_result (as core:request's values).
    results = {}
    client._core:batch(list, concurrency, nil, function(k, status, _, message)
      results[k] = { status = status, message = not status and message or nil }
    end)
  else
    results = client:batch(list, { concurrency = concurrency })
  end
  local secs, cpu = gettime() - t0, os.clock() - c0
  local ok, first_err = 0, nil
  for i = 1, n do
    local r = results[i]
    if mode == "raw" then
      if r and r.status == 200 then ok = ok + 1 else errors = errors + 1; first_err = first_err or (r and r.message) end
    elseif r and r[1] and r[3].status == 200 then ok = ok + 1
    else
      errors = errors + 1
      first_err = first_err or tostring(r and r[2])
    end
  end
  if first_err then io.stderr:write("batch.lua client: ", first_err, "\n") end
  print(string.format("requests=%d ok=%d errors=%d seconds=%.4f rps=%.1f cpu_us_per_req=%.1f",
    n, ok, errors, secs, n / secs, cpu / n * 1e6))
end

------------------------------------------------------------------------ parent

local shell_quote, dirname, median = common.shell_quote, common.dirname, common.median

-- Runs cmd, parses its "key=value ..." line; fails loudly on any error.
local function measure(cmd)
  return common.measure(cmd, common.capture, function(r)
    return r.rps ~= nil and r.errors == 0 and r.ok == r.requests
  end)
end

local function parse_args(argv)
  local repo = dirname(dirname(arg[0]))
  return common.parse_args(argv, { requests = 5000, rounds = 7, concurrency = 16, workers = 2,
    curl_multi = repo .. "/build/bench/curl_multi", build = repo .. "/build" }, "batch.lua")
end

local function machine(o)
  return common.date_and_machine{
    "libcurl:  " .. common.curl_version(),
    "lua:      " .. common.capture("lua5.4 -v") .. "; " .. common.capture("luajit -v"),
    common.command_line(),
    string.format("setup:    %d orders/detail POSTs per run, %d in flight, %d rounds (order rotated each round), "
      .. "sandbox with %d nginx workers, limits 10000000 per 60 s", o.requests, o.concurrency, o.rounds, o.workers),
  }
end

local function wrk_ceiling(base_url, token, connections)
  return (common.wrk(common.capture, base_url .. PATH, BODY, token, connections, 3))
end

local function main(argv)
  local o = parse_args(argv)
  assert(common.exists(o.curl_multi), "no " .. o.curl_multi .. ": run `make bench-batch` (it builds it)")
  local sandbox = require("wemasy.sandbox")
  local token = sandbox.tokens.merchant
  local base_url, sb = sandbox.start{ window = 60, limits = { default = 10000000, sync = 5 }, workers = o.workers }
  assert(base_url, sb)
  local lua_path = os.getenv("LUA_PATH") or ""
  local script = shell_quote(arg[0])
  local function lua_cmd(lua, cpath, mode)
    return string.format("LUA_PATH=%s LUA_CPATH=%s %s %s client %s %d %d %s %d", shell_quote(lua_path),
      shell_quote(cpath), lua, script, shell_quote(base_url), o.requests, o.concurrency, mode, 4 * o.concurrency)
  end
  local c_cmd = function(in_flight)
    return string.format("%s %s %s %d %d %d", shell_quote(o.curl_multi), shell_quote(base_url), shell_quote(token),
      o.requests, in_flight, 4 * in_flight)
  end
  local variants = {
    { name = string.format("C curl_multi, %d in flight", o.concurrency), cmd = c_cmd(o.concurrency), ref = true },
    { name = "Lua 5.4 batch, rate_limit=false", cmd = lua_cmd("lua5.4", o.build .. "/5.4/?.so;;", "off") },
    { name = "Lua 5.4 batch, limiter local", cmd = lua_cmd("lua5.4", o.build .. "/5.4/?.so;;", "local") },
    { name = "LuaJIT batch, rate_limit=false", cmd = lua_cmd("luajit", o.build .. "/jit/?.so;;", "off") },
    { name = "LuaJIT batch, limiter local", cmd = lua_cmd("luajit", o.build .. "/jit/?.so;;", "local") },
    { name = "Lua 5.4 core:batch only (diag.)", cmd = lua_cmd("lua5.4", o.build .. "/5.4/?.so;;", "raw"),
      diag = true },
    { name = "LuaJIT core:batch only (diag.)", cmd = lua_cmd("luajit", o.build .. "/jit/?.so;;", "raw"),
      diag = true },
  }
  local ceiling = { name = string.format("C curl_multi, %d in flight", 2 * o.concurrency),
    cmd = c_cmd(2 * o.concurrency) }
  local lines = machine(o)
  local ok, err = pcall(function()
    for _, v in ipairs(variants) do v.rps, v.cpu = {}, {} end
    ceiling.rps, ceiling.cpu = {}, {}
    for round = 1, o.rounds do
      for k = 0, #variants - 1 do
        local v = variants[(round - 1 + k) % #variants + 1]
        local r = measure(v.cmd)
        v.rps[#v.rps + 1], v.cpu[#v.cpu + 1] = r.rps, r.cpu_us_per_req
      end
      local r = measure(ceiling.cmd)
      ceiling.rps[#ceiling.rps + 1], ceiling.cpu[#ceiling.cpu + 1] = r.rps, r.cpu_us_per_req
      io.stderr:write(string.format("round %d/%d done\n", round, o.rounds))
    end
    ceiling.wrk = wrk_ceiling(base_url, token, 2 * o.concurrency)
  end)
  sb:stop()
  if not ok then error(err, 0) end

  local ref = median(variants[1].rps)
  local fmt = "%-36s %9s %17s %13s %9s"
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format(fmt, "client", "median/s", "min..max/s", "CPU us/req", "vs C")
  for _, v in ipairs(variants) do
    local m = median(v.rps)
    table.sort(v.rps)
    lines[#lines + 1] = string.format(fmt, v.name, string.format("%.0f", m),
      string.format("%.0f..%.0f", v.rps[1], v.rps[#v.rps]), string.format("%.1f", median(v.cpu)),
      v.ref and "1.00" or string.format("%.2f", m / ref))
  end
  table.sort(ceiling.rps)
  lines[#lines + 1] = string.format(fmt, ceiling.name .. " (ceiling)", string.format("%.0f", median(ceiling.rps)),
    string.format("%.0f..%.0f", ceiling.rps[1], ceiling.rps[#ceiling.rps]),
    string.format("%.1f", median(ceiling.cpu)), string.format("%.2f", median(ceiling.rps) / ref))
  if ceiling.wrk then
    lines[#lines + 1] = string.format(fmt, string.format("wrk -t1 -c%d, 3 s (ceiling)", 2 * o.concurrency),
      string.format("%.0f", ceiling.wrk), "", "", string.format("%.2f", ceiling.wrk / ref))
  else
    lines[#lines + 1] = "wrk: not installed (apt-get install wrk), ceiling from the C program only"
  end
  common.append(lines, { "",
    "median/s:   requests per second, median of the rounds (wall time of one batch / curl_multi run)",
    "CPU us/req: the client process's own CPU time (user + system) per request, median",
    "vs C:       median / the C program's median with the same number in flight; goal >= 0.85",
    "(diag.):    client._core:batch with the items client:batch would pass, made before timing:",
    "            the C core without the Lua layer (validation, encoding, JSON decode, result tables)",
  })
  local worst = math.huge
  for i = 2, #variants do
    if not variants[i].diag then worst = math.min(worst, median(variants[i].rps) / ref) end
  end
  lines[#lines + 1] = string.format("goal:       %s (lowest ratio %.2f)", worst >= 0.85 and "met" or "MISSED", worst)
  common.write_report(lines, o.out)
end

if arg[1] == "client" then
  client_run(arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5], tonumber(arg[6]))
else
  main(arg)
end
