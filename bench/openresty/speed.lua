-- What an order page costs an nginx worker: wemasy.ngx against the cosocket
-- client a shop writes without wemasy (bench/openresty/cosocket.lua), on the
-- same nginx, the same worker, the same sandbox, in one run.
--
--   make bench-openresty      (this, then latency.lua; bench/results/openresty.txt)
--   luajit bench/openresty/speed.lua [--duration S] [--rounds R] [--conns 1,16,64] [--out FILE]
--
-- One storefront nginx (the OpenResty example: 1 worker, thread_pool of 16,
-- 16 thread VMs) serves two pages that render the same order from
-- orders/detail (bench/openresty/pages.lua).  For each number of concurrent
-- pages, `wrk -t1 -cN` loads each page for S seconds, R rounds, the two
-- pages back to back in alternating order within a round.  Per run: pages/s,
-- p50 and p99 (wrk's), and the worker process's CPU per page: utime + stime
-- of /proc/<worker>/stat (every thread: the event loop and the pool's
-- threads) around the run, over the pages wrk counted; "loop" is the event
-- loop thread's part alone (/proc/<worker>/task/<worker>/stat).  The table
-- gives the median of the rounds; ratios are taken within a round (the two
-- runs a few seconds apart) and their median reported, so a burst of other
-- load on the machine hits both sides of a ratio.
local launch = dofile((debug.getinfo(1, "S").source:match("^@(.*)/bench/openresty/[^/]*$") or ".")
  .. "/examples/openresty/launch.lua")
local sandbox = require("wemasy.sandbox")
local proc = require("wemasy.sandbox.proc")

local root = launch.root

local function options(argv)
  local o = { duration = 4, rounds = 3, conns = { 1, 16, 64 }, out = root .. "/bench/results/openresty.txt",
              argv = argv, pages = { "wemasy", "cosocket" } }
  local i = 1
  while i <= #argv do
    local k, v = argv[i], argv[i + 1]
    if k == "--duration" then o.duration = assert(tonumber(v), "--duration S")
    elseif k == "--rounds" then o.rounds = assert(tonumber(v), "--rounds R")
    elseif k == "--out" then o.out = v
    elseif k == "--analysis" then -- two more pages: where wemasy.ngx's extra CPU goes
      o.pages = { "wemasy", "cosocket", "trip", "blocking" }
      i = i - 1
    elseif k == "--conns" then
      o.conns = {}
      for n in tostring(v):gmatch("%d+") do o.conns[#o.conns + 1] = tonumber(n) end
    else error("usage: speed.lua [--duration S] [--rounds R] [--conns 1,16,64] [--analysis] [--out FILE]") end
    i = i + 2
  end
  return o
end

local TICK = tonumber(proc.capture("getconf CLK_TCK")) or 100

-- utime + stime in seconds of a /proc stat file.
local function cpu_of(path)
  local stat = assert(proc.read_file(path), path)
  local fields = {}
  for f in stat:match("^%d+ %b() (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
  -- fields[1] is the state (stat's field 3): utime and stime are fields 14 and 15.
  return (tonumber(fields[12]) + tonumber(fields[13])) / TICK
end

local function worker_cpu(pid)
  return cpu_of("/proc/" .. pid .. "/stat"), cpu_of("/proc/" .. pid .. "/task/" .. pid .. "/stat")
end

-- Context switches (voluntary and not) of every thread of the worker.
local function switches(pid, tasks)
  local n = 0
  for _, tid in ipairs(tasks) do
    local status = proc.read_file("/proc/" .. pid .. "/task/" .. tid .. "/status") or ""
    for v in status:gmatch("ctxt_switches:%s*(%d+)") do n = n + tonumber(v) end
  end
  return n
end

-- wrk's "50.00%  1.23ms" -> seconds.
local function wrk_time(v, unit)
  local scale = { us = 1e-6, ms = 1e-3, s = 1, m = 60 }
  return tonumber(v) * (scale[unit] or 0 / 0)
end

local function wrk(url, conns, seconds)
  local out = proc.capture(string.format("wrk -t1 -c%d -d%ds --timeout 10s --latency %s 2>&1", conns, seconds,
    proc.quote(url))) or ""
  local r = {
    pages = tonumber(out:match("(%d+) requests in")),
    rate = tonumber(out:match("Requests/sec:%s*([%d%.]+)")),
    bad = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0,
    errors = out:match("Socket errors:([^\n]*)"),
  }
  for pct, v, unit in out:gmatch("%s(%d+)%%%s+([%d%.]+)(%a+)") do
    r["p" .. pct] = wrk_time(v, unit)
  end
  assert(r.pages and r.rate and r.p50 and r.p99, "wrk said: " .. out)
  return r
end

local function run(shop, page, conns, seconds)
  local all0, loop0 = worker_cpu(shop.worker)
  local cs0 = switches(shop.worker, shop.tasks)
  local r = wrk(shop.url .. "/bench/" .. page, conns, seconds)
  local all1, loop1 = worker_cpu(shop.worker)
  r.cpu = (all1 - all0) / r.pages
  r.loop = (loop1 - loop0) / r.pages
  r.switches = (switches(shop.worker, shop.tasks) - cs0) / r.pages
  return r
end

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return 0 / 0 end
  if #s % 2 == 1 then return s[(#s + 1) / 2] end
  return (s[#s / 2] + s[#s / 2 + 1]) / 2
end

local function field(runs, name)
  local out = {}
  for i, r in ipairs(runs) do out[i] = r[name] end
  return out
end

local LABEL = { wemasy = "wemasy.ngx", cosocket = "cosocket + cjson",
                trip = "(analysis) cosocket + an empty thread trip",
                blocking = "(analysis) plain wemasy client on the event loop" }

-- Every run of one concurrency: runs[page][round]; each round starts with
-- the next page.
local function measure(shop, conns, o)
  local runs, n = {}, #o.pages
  for _, page in ipairs(o.pages) do runs[page] = {} end
  for round = 1, o.rounds do
    for j = 0, n - 1 do
      local page = o.pages[(round - 1 + j) % n + 1]
      runs[page][round] = run(shop, page, conns, o.duration)
    end
  end
  return runs
end

local function machine()
  local cpu = (proc.read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  return string.format("%s; %s CPUs (%s); nginx %s; %s; load average %s", os.date("!%Y-%m-%d %H:%M UTC"),
    proc.capture("nproc") or "?", cpu, (proc.capture("/usr/sbin/nginx -v 2>&1") or "?"):match("[%d%.]+$") or "?",
    (proc.capture("wrk --version 2>&1") or "wrk ?"):match("^(wrk [^ ]+)") or "?",
    ((proc.read_file("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)")))
end

local function ms(s) return string.format("%.2f ms", s * 1000) end
local function us(s) return string.format("%.0f µs", s * 1e6) end

local function table_text(results, o)
  local lines = {
    "# make bench-openresty: order page throughput (bench/openresty/speed.lua)",
    "# " .. (os.getenv("BENCH_COMMAND") or "luajit bench/openresty/speed.lua " .. table.concat(o.argv, " ")),
    "# " .. machine(),
    string.format("# storefront nginx: 1 worker, thread_pool wemasy threads=16, 16 thread VMs; sandbox: 1 worker;"
      .. " wrk -t1 -cN -d%ds per run, %d rounds (medians; ratios per round, then the median)", o.duration, o.rounds),
    "# CPU/page: the worker process (all threads) utime+stime over the pages; loop: its event-loop thread alone;"
      .. " switches/page: context switches of all its threads",
    "",
    "| pages in flight | client | pages/s | p50 | p99 | CPU/page | loop | switches/page | not 200 |",
    "|---|---|---|---|---|---|---|---|---|",
  }
  local ratios = {
    "",
    "| pages in flight | pages/s wemasy/cosocket (goal >= 0.9) | p99 (goal <= 2) | CPU/page (goal <= 1.3) |",
    "|---|---|---|---|",
  }
  for _, res in ipairs(results) do
    for _, page in ipairs(o.pages) do
      local runs = res.runs[page]
      local bad = 0
      for _, r in ipairs(runs) do bad = bad + r.bad end
      lines[#lines + 1] = string.format("| %d | %s | %.0f | %s | %s | %s | %s | %.1f | %d |", res.conns,
        LABEL[page], median(field(runs, "rate")), ms(median(field(runs, "p50"))), ms(median(field(runs, "p99"))),
        us(median(field(runs, "cpu"))), us(median(field(runs, "loop"))), median(field(runs, "switches")), bad)
    end
    local rate, p99, cpu = {}, {}, {}
    for k = 1, o.rounds do
      local w, c = res.runs.wemasy[k], res.runs.cosocket[k]
      rate[k], p99[k], cpu[k] = w.rate / c.rate, w.p99 / c.p99, w.cpu / c.cpu
    end
    local function spread(list)
      local s = {}
      for i, v in ipairs(list) do s[i] = string.format("%.2f", v) end
      return string.format("**%.2f** (%s)", median(list), table.concat(s, " "))
    end
    ratios[#ratios + 1] = string.format("| %d | %s | %s | %s |", res.conns, spread(rate), spread(p99), spread(cpu))
  end
  return table.concat(lines, "\n") .. "\n" .. table.concat(ratios, "\n") .. "\n"
end

local function main(argv)
  local o = options(argv)
  local base_url, sb = assert(sandbox.start{ window = 1, limits = { default = 10000000, sync = 5 } })
  local shop, err = launch.start{
    base_url = base_url, token = sandbox.tokens.merchant, workers = 1,
    lua_path = root .. "/bench/openresty/?.lua",
    configure = "rate_limit = { groups = { default = { limit = 1024, window = 0.02 } } },",
    replace = { { 'require("storefront").configure{',
                  'require("cosocket").setup(os.getenv("WEMASY_BASE_URL"), os.getenv("WEMASY_TOKEN"))\n'
                    .. '        require("storefront").configure{' } },
    server = [[
        location = /bench/wemasy {
            content_by_lua_block { require("pages").wemasy() }
        }
        location = /bench/cosocket {
            content_by_lua_block { require("pages").cosocket() }
        }
        location = /bench/trip {
            content_by_lua_block { require("pages").trip() }
        }
        location = /bench/blocking {
            content_by_lua_block { require("pages").blocking() }
        }]],
  }
  if not shop then
    sb:stop()
    error(err)
  end
  local ok, result = pcall(function()
    local children = proc.read_file("/proc/" .. shop.pid .. "/task/" .. shop.pid .. "/children") or ""
    shop.worker = assert(tonumber(children:match("%d+")), "no nginx worker")
    for _, page in ipairs(o.pages) do wrk(shop.url .. "/bench/" .. page, 16, 1) end -- warm up
    shop.tasks = {} -- the pool's threads exist by now
    for tid in (proc.capture("ls /proc/" .. shop.worker .. "/task") or ""):gmatch("%d+") do
      shop.tasks[#shop.tasks + 1] = tid
    end
    local results = {}
    for _, conns in ipairs(o.conns) do
      results[#results + 1] = { conns = conns, runs = measure(shop, conns, o) }
    end
    return results
  end)
  local log = shop:error_log()
  shop:stop()
  sb:stop()
  require("wemasy.core")._debug_unlink(base_url, sandbox.tokens.merchant)
  if not ok then error(result) end
  local text = table_text(result, o)
  if log:find("%[error%]") or log:find("%[alert%]") then
    text = text .. "\nnginx error log (tail):\n" .. log:sub(-2000) .. "\n"
  end
  io.write(text)
  assert(proc.write_file(o.out, text))
  print("written to " .. o.out)
end

main(arg)
