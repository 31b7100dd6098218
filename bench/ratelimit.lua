-- ratelimit.lua - does the client-side limiter, shared between OS processes,
-- use a token's whole quota without a single 429?
--
--   make bench-ratelimit                      (BENCH_DURATION=30 by default)
--   lua5.4 bench/ratelimit.lua [--duration S] [--procs P] [--limit N] [--window W]
--
-- The parent starts a sandbox whose throttle allows N requests per W seconds
-- per token (Laravel's fixed window, starting at the window's first request),
-- then runs P worker processes of this same script on ONE token, started at
-- the same instant, each calling orders_detail as fast as its client lets it
-- for S seconds with max_retries = 0 (a 429 is counted, never retried).
-- Two rows: rate_limit.shared = true (one quota in shared memory for all
-- processes) and shared = false (each process limits itself alone).
--
-- Ground truth: the sandbox's own request counter, and the server's windows,
-- counted from the responses: the first request of a server window is the
-- one answered with X-RateLimit-Remaining = N - 1 (exactly one per window).
-- quota use = successes / (N x server windows started).
--
-- Worker mode (internal): ratelimit.lua worker <base_url> <shared 0|1> <S> <N> <W> <outfile>

-- This script's directory first: `require("common")` is bench/common.lua.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require("common")
local socket = require("socket")

local gettime = socket.gettime
local ORDER = { order_number = "ORD-2025-001" }

local function sleep_until(t)
  local d = t - gettime()
  if d > 0 then socket.sleep(d) end
end

------------------------------------------------------------------------ worker

local function worker(base_url, shared, duration, limit, window, outfile)
  local wemasy = require("wemasy")
  local sandbox = require("wemasy.sandbox")
  local client = wemasy.new{
    base_url = base_url, token = sandbox.tokens.merchant, max_retries = 0,
    rate_limit = { shared = shared, groups = { default = { limit = limit, window = window } } },
  }
  -- Ready (client and shared segment set up); wait for the common start.
  local ready = assert(io.open(outfile .. ".ready", "w"))
  ready:close()
  local line = io.read("l") or ""
  local t0 = assert(tonumber(line:match("^go (%S+)")), "worker: expected 'go <epoch>' on stdin")
  local deadline = t0 + duration
  sleep_until(t0)

  local c = { late = 0, ok = 0, r429 = 0, refused = 0, other = 0, window_starts = 0, first = -1, last = -1 }
  local kinds = {}
  local trace = os.getenv("BENCH_TRACE") and assert(io.open(outfile .. ".trace", "w"))
  while true do
    local now = gettime()
    if now >= deadline then break end
    -- Stop rather than sleep for a slot that frees only after the deadline.
    local rl = client:rate_limit("default")
    local free_in = math.max(rl.reset_in or 0, rl.closed_for or 0)
    if (rl.remaining == 0 or (rl.closed_for or 0) > 0) and now + free_in >= deadline then break end
    local sent = gettime() - t0
    local body, err, res = client:orders_detail(ORDER)
    local done = gettime() - t0
    if c.first < 0 then c.first = done end
    c.last = done
    if done > duration then
      -- Another process took the slot this one was told was free, and the
      -- client waited past the deadline: outside the measured interval.
      c.late = c.late + 1
    elseif body then
      c.ok = c.ok + 1
      local r = res.rate_limit
      if r and r.limit and r.remaining == r.limit - 1 then c.window_starts = c.window_starts + 1 end
      if trace then trace:write(string.format("%.4f %.4f 200 %s\n", sent, done, tostring(r and r.remaining))) end
    elseif err.status == 429 then
      c.r429 = c.r429 + 1
      if trace then trace:write(string.format("%.4f %.4f 429 -\n", sent, done)) end
    elseif err.kind == "rate_limited" then
      c.refused = c.refused + 1 -- the client's own refusal: nothing was sent
    else
      c.other = c.other + 1
      kinds[err.kind] = (kinds[err.kind] or 0) + 1
    end
  end
  client:close()
  if trace then trace:close() end
  local out = assert(io.open(outfile, "w"))
  for _, k in ipairs{ "late", "ok", "r429", "refused", "other", "window_starts", "first", "last" } do
    out:write(k, " ", tostring(c[k]), "\n")
  end
  for k, n in pairs(kinds) do out:write("kind:", k, " ", n, "\n") end
  out:close()
end

------------------------------------------------------------------------ parent

local shell_quote, capture = common.shell_quote, common.capture

local function read_result(path)
  local r = { kinds = {} }
  for line in io.lines(path) do
    local k, v = line:match("^(%S+) (%S+)$")
    local kind = k and k:match("^kind:(.+)$")
    if kind then r.kinds[kind] = tonumber(v) elseif k then r[k] = tonumber(v) end
  end
  return r
end

local function run_row(o, sb, shared, tmpdir)
  local core = require("wemasy.core")
  local token = require("wemasy.sandbox").tokens.merchant
  core._debug_unlink(sb.base_url, token) -- no quota left over from an earlier run
  assert(sb:reset())
  local lua = common.interpreter()
  local children, files = {}, {}
  for i = 1, o.procs do
    files[i] = string.format("%s/%s-%d", tmpdir, shared and "shared" or "local", i)
    local cmd = table.concat({ shell_quote(lua), shell_quote(arg[0]), "worker", shell_quote(sb.base_url),
      shared and "1" or "0", o.duration, o.limit, o.window, shell_quote(files[i]) }, " ")
    children[i] = assert(io.popen(cmd, "w"))
  end
  local give_up = gettime() + 20
  for i = 1, o.procs do
    while not io.open(files[i] .. ".ready") do
      assert(gettime() < give_up, "worker " .. i .. " did not get ready")
      socket.sleep(0.01)
    end
  end
  local t0 = gettime() + 0.2
  for i = 1, o.procs do
    children[i]:write(string.format("go %.6f\n", t0))
    children[i]:flush()
  end
  for i = 1, o.procs do children[i]:close() end
  local state = sb:state()
  core._debug_unlink(sb.base_url, token)
  local segment = core._debug_segment(sb.base_url, token)
  local left = io.open("/dev/shm" .. segment)
  if left then left:close() end

  local row = { mode = shared and "shared = true" or "shared = false (baseline)", ok = 0, r429 = 0,
    refused = 0, other = 0, late = 0, windows = 0, last = 0, kinds = {}, segment = segment,
    left = left ~= nil }
  for i = 1, o.procs do
    local r = read_result(files[i])
    for _, k in ipairs{ "late", "ok", "r429", "refused", "other" } do row[k] = row[k] + r[k] end
    row.windows = row.windows + r.window_starts
    row.last = math.max(row.last, r.last)
    for k, n in pairs(r.kinds) do row.kinds[k] = (row.kinds[k] or 0) + n end
    os.remove(files[i]); os.remove(files[i] .. ".ready")
    local trace = os.getenv("BENCH_TRACE")
    if trace then
      os.rename(files[i] .. ".trace", string.format("%s-%s-%d", trace, shared and "shared" or "local", i))
    end
  end
  row.server_requests = state.requests and state.requests["orders/detail"] or 0
  row.sent = row.ok + row.r429 + row.other + row.late
  row.quota = row.windows > 0 and row.ok / (o.limit * row.windows) or 0
  row.ideal = row.ok / (o.limit * math.ceil(o.duration / o.window))
  return row
end

local function machine()
  local ok, core = pcall(require, "wemasy.core")
  return common.date_and_machine{
    "libcurl:  " .. common.curl_version()
      .. (ok and core.curl_version and (" (loaded " .. tostring(core.curl_version) .. ")") or ""),
    "lua:      " .. (jit and jit.version or _VERSION),
  }
end

local function parse_args(argv)
  return common.parse_args(argv, { duration = tonumber(os.getenv("BENCH_DURATION")) or 30, procs = 4, limit = 20,
    window = 5 }, "ratelimit.lua")
end

local function main(argv)
  local o = parse_args(argv)
  local sandbox = require("wemasy.sandbox")
  local base_url, sb = sandbox.start{ window = o.window, limits = { default = o.limit, sync = 5 } }
  assert(base_url, sb)
  local tmpdir = capture("mktemp -d /tmp/wemasy-bench-XXXXXX")
  assert(tmpdir ~= "", "mktemp failed")
  local rows = {}
  local ok, err = pcall(function()
    rows[1] = run_row(o, sb, true, tmpdir)
    rows[2] = run_row(o, sb, false, tmpdir)
  end)
  sb:stop()
  os.remove(tmpdir)
  if not ok then error(err, 0) end

  local lines = machine()
  lines[#lines + 1] = common.command_line()
  lines[#lines + 1] = string.format("setup:    sandbox limit %d per %g s (fixed window from the first request), "
    .. "%d processes on one token, %g s each, max_retries = 0, client groups.default = {limit = %d, window = %g}",
    o.limit, o.window, o.procs, o.duration, o.limit, o.window)
  lines[#lines + 1] = ""
  local fmt = "%-26s %8s %9s %5s %5s %5s %7s %5s %7s %9s %8s"
  lines[#lines + 1] = string.format(fmt, "rate_limit", "requests", "(workers)", "ok", "429", "late", "refused",
    "other", "windows", "quota use", "vs ideal")
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format(fmt, r.mode, r.server_requests, r.sent, r.ok, r.r429, r.late, r.refused,
      r.other, r.windows, string.format("%.1f %%", 100 * r.quota), string.format("%.1f %%", 100 * r.ideal))
    for k, n in pairs(r.kinds) do lines[#lines + 1] = string.format("    other errors: %s x%d", k, n) end
  end
  common.append(lines, { "",
    "requests:  orders/detail requests counted by the sandbox; (workers): the same as the workers saw them",
    "ok, 429:   answers to requests that completed within the S seconds",
    "late:      sent after S seconds (a process waited for a slot another one took); not counted in ok/windows",
    "refused:   calls the client itself refused (rate_limited, nothing sent)",
    "windows:   server windows started within S (responses with X-RateLimit-Remaining = N - 1)",
    "quota use: ok / (N x windows); goal: 0 x 429 and >= 95 % with shared = true",
    string.format("vs ideal:  ok / (N x ceil(S / W)) = ok / %d: windows back to back from t = 0",
      o.limit * math.ceil(o.duration / o.window)),
  })
  local shared = rows[1]
  lines[#lines + 1] = string.format("shm:       segment %s of the run %s", shared.segment,
    (shared.left or rows[2].left) and "STILL PRESENT after _debug_unlink" or "removed (absent from /dev/shm)")
  lines[#lines + 1] = string.format("goals:     429s %s, quota use %s (shared = true)",
    shared.r429 == 0 and "met (0)" or ("MISSED (" .. shared.r429 .. ")"),
    shared.quota >= 0.95 and string.format("met (%.1f %%)", 100 * shared.quota)
      or string.format("MISSED (%.1f %%)", 100 * shared.quota))
  common.write_report(lines, o.out)
end

if arg[1] == "worker" then
  worker(arg[2], arg[3] == "1", tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), arg[7])
else
  main(arg)
end
