-- How long other requests on an nginx worker wait while an API call takes
-- 500 ms: wemasy.ngx (the call runs on a thread pool) beside the same page
-- calling the plain, blocking client on the worker's event loop.
--
--   make bench-openresty        (after speed.lua's table in bench/results/openresty.txt)
--
-- One sandbox, every orders/get delayed 0.5 s by a fault; the OpenResty
-- example with one worker.  For each row, 1 or 4 curl processes POST the order
-- page back to back for SECONDS, so that many API calls are always in flight, while
-- a probe GETs /health on the same worker every 10 ms, each on a new
-- connection, and records how long it took.
local launch = dofile((debug.getinfo(1, "S").source:match("^@(.*)/bench/openresty/[^/]*$") or ".")
  .. "/examples/openresty/launch.lua")
local sandbox = require("wemasy.sandbox")
local proc = require("wemasy.sandbox.proc")
local socket = require("socket")

local SECONDS, DELAY, EVERY = 6, 0.5, 0.010
local root = launch.root

local function percentile(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local i = math.max(1, math.min(#sorted, math.ceil(p / 100 * #sorted)))
  return sorted[i]
end

-- One probe: connect, GET /health, read the whole answer.  Seconds, or nil.
local function probe(port)
  local t0 = socket.gettime()
  local c = socket.tcp()
  c:settimeout(10)
  if not c:connect("127.0.0.1", port) then c:close() return nil end
  c:send("GET /health HTTP/1.0\r\nHost: shop.example\r\n\r\n")
  local answer = c:receive("*a")
  c:close()
  if not answer or not answer:find("^HTTP/1%.%d 200") then return nil end
  return socket.gettime() - t0
end

-- Starts `load` curl processes, each POSTing url again and again on one
-- keep-alive connection (no process start per page to steal CPU from the
-- worker); returns their pids and the files they write "@@status seconds" to.
local function start_load(url, load, seconds, dir)
  local files, pids = {}, {}
  local form = "website_id=1&order_session=abc123def456ghi789&email=john%40example.com"
  local urls = string.rep(" " .. proc.quote(url), math.ceil(seconds / DELAY) + 2)
  for i = 1, load do
    files[i] = dir .. "/load" .. i .. ".txt"
    pids[i] = tonumber(proc.capture("curl -s -m 30 -w '\\n@@%{http_code} %{time_total}\\n' -d "
      .. proc.quote(form) .. urls .. " >" .. proc.quote(files[i]) .. " 2>&1 & echo $!"))
  end
  return pids, files
end

local function read_load(files)
  local pages, statuses = {}, {}
  for _, f in ipairs(files) do
    for code, t in (proc.read_file(f) or ""):gmatch("@@(%d+) ([%d%.]+)") do
      statuses[code] = (statuses[code] or 0) + 1
      if code == "200" then pages[#pages + 1] = tonumber(t) end
    end
  end
  table.sort(pages)
  return pages, statuses
end

local function row(name, path, load, shop, dir)
  local pids, files = start_load(shop.url .. path, load, SECONDS, dir)
  proc.sleep(0.6) -- the first API calls are in flight
  local times, lost = {}, 0
  local deadline = socket.gettime() + SECONDS - 1.2
  while socket.gettime() < deadline do
    local t = probe(shop.port)
    if t then times[#times + 1] = t else lost = lost + 1 end
    socket.sleep(EVERY)
  end
  for _, pid in ipairs(pids) do proc.signal(pid, "TERM") end
  proc.sleep(1.5) -- a blocked worker finishes the page it is on
  local pages, statuses = read_load(files)
  table.sort(times)
  local other = 0
  for code, n in pairs(statuses) do if code ~= "200" then other = other + n end end
  return { name = name, load = load, probes = #times, lost = lost, p50 = percentile(times, 50) * 1000,
           p99 = percentile(times, 99) * 1000, max = (times[#times] or 0 / 0) * 1000,
           pages = #pages, page_p50 = percentile(pages, 50) * 1000, other = other }
end

local function machine()
  local cpu = (proc.read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  return string.format("%s; %s CPUs (%s); nginx %s; %s", os.date("!%Y-%m-%d %H:%M UTC"),
    proc.capture("nproc") or "?", cpu, (proc.capture("/usr/sbin/nginx -v 2>&1") or "?"):match("[%d%.]+$") or "?",
    (proc.capture("curl --version") or "curl ?"):match("^(curl [^ ]+)") or "?")
end

local function main()
  local base_url, sb = assert(sandbox.start{ window = 60, limits = { default = 100000, sync = 5 } })
  local dir = assert(proc.mktemp())
  local shop, err = launch.start{
    base_url = base_url, workers = 1, lua_path = root .. "/bench/openresty/?.lua",
    configure = "rate_limit = { groups = { default = { limit = 1000, window = 1 } } },",
    server = [[
        location = /blocking/order {
            content_by_lua_block { require("blocking").order() }
        }]],
  }
  if not shop then
    sb:stop()
    error(err)
  end
  local ok, result = pcall(function()
    sb:fault{ kind = "delay", seconds = DELAY, path = "orders/get", count = -1 }
    local rows = {
      row("wemasy.ngx (worker thread)", "/order", 1, shop, dir),
      row("plain client on the event loop", "/blocking/order", 1, shop, dir),
      row("wemasy.ngx (worker thread)", "/order", 4, shop, dir),
      row("plain client on the event loop", "/blocking/order", 4, shop, dir),
    }
    return rows
  end)
  shop:stop()
  sb:stop()
  proc.remove_tree(dir)
  require("wemasy.core")._debug_unlink(base_url, nil) -- the limiter segment of this throw-away URL
  if not ok then error(result) end

  local lines = {
    "# make bench-openresty (bench/openresty/latency.lua)",
    "# " .. machine(),
    string.format("# nginx 1 worker; every orders/get delayed %.1f s by the sandbox; 1 or 4 curl POST /order loops"
      .. " (API calls in flight) for %d s; a probe GETs /health on the same worker every %d ms (new connection"
      .. " each)", DELAY, SECONDS, EVERY * 1000),
    "",
    "| order page calls the API through | calls in flight | probe p50 | probe p99 | probe max | probes"
      .. " | order pages (p50) |",
    "|---|---|---|---|---|---|---|",
  }
  for _, r in ipairs(result) do
    lines[#lines + 1] = string.format("| %s | %d | %.1f ms | %.1f ms | %.1f ms | %d%s | %d (%.0f ms)%s |",
      r.name, r.load, r.p50, r.p99, r.max, r.probes, r.lost > 0 and (" (+" .. r.lost .. " failed)") or "",
      r.pages, r.page_p50, r.other > 0 and (" +" .. r.other .. " not 200") or "")
  end
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  -- `--append FILE` (make bench-openresty): after speed.lua's table in FILE.
  local out, before = root .. "/bench/results/openresty.txt", ""
  if arg[1] == "--append" then
    out = assert(arg[2], "--append FILE")
    before = (proc.read_file(out) or "") .. "\n"
  end
  proc.run("mkdir -p " .. proc.quote(root .. "/bench/results"))
  assert(proc.write_file(out, before .. text))
  print("written to " .. out)
end

main()
