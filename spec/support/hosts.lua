-- Several "hosts" on one machine, for the multi-host specs and bench-redis:
-- each host is a process group in a mount namespace of its own with a
-- private tmpfs on /dev/shm (`unshare -m`; `-r -m` when not root), so its shm limiter is
-- its own, as on a separate machine; M processes per host (host_worker.lua)
-- call one server on one token from the same instant.  The tmpfs goes with
-- its namespace: the real /dev/shm is left as found.
--
--   local hosts = require "support.hosts"
--   local run = hosts.run { hosts = 4, procs = 2, base_url = url, token = t, path = "/rl/x/20/3000",
--                           duration = 10, rate_limit = { store = redis_url } }
--   run.ok (200s within the run), run.r429 (every 429), run.late (200s after it), run.other[outcome],
--   run.calls[i] = { host, proc, sent, took, outcome }
--
-- rate_limit and pace may also be functions (host, proc) -> value, to mix
-- interactive and background processes.
local socket = require "socket"

local M = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A Lua table constructor for plain data (strings, numbers, booleans, tables).
local function literal(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = "[" .. literal(k) .. "]=" .. literal(x)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then
    return ("%q"):format(v)
  end
  return tostring(v)
end
M.literal = literal

local function value(v, host, proc)
  if type(v) == "function" then return v(host, proc) end
  return v
end

local function here()
  return (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "spec/support"
end

-- A new mount namespace; a user that is not root gets a user namespace too
-- (`-r`), in which it may mount a tmpfs (where unprivileged ones are allowed).
local function unshare()
  local id = io.popen("id -u"):read("*l")
  return id == "0" and "unshare -m" or "unshare -r -m"
end

-- Whether this machine can give a process group its own /dev/shm.
function M.available()
  local r = os.execute(unshare() .. " sh -c 'mount -t tmpfs -o size=1m tmpfs /dev/shm' 2>/dev/null")
  return r == true or r == 0 -- Lua 5.4, LuaJIT
end

local function parse(path, host, proc, run)
  local f = io.open(path)
  assert(f, ("host %d process %d wrote no results"):format(host, proc))
  local ended = false
  for line in f:lines() do
    if line == "END" then
      ended = true
    else
      local sent, took, outcome = line:match("^(%S+) (%S+) (%S+)$")
      local call = { host = host, proc = proc, sent = tonumber(sent), took = tonumber(took), outcome = outcome }
      run.calls[#run.calls + 1] = call
      if outcome == "429" then
        run.r429 = run.r429 + 1 -- whenever it came
      elseif call.sent + call.took > run.duration then
        run.late = run.late + 1 -- answered after the run: not counted below
      elseif outcome == "200" then
        run.ok = run.ok + 1
      else
        run.other[outcome] = (run.other[outcome] or 0) + 1
      end
    end
  end
  f:close()
  assert(ended, ("host %d process %d did not finish"):format(host, proc))
end

function M.run(o)
  local lua = o.lua or os.getenv("WEMASY_TEST_LUA") or "lua5.4"
  local worker = here() .. "/host_worker.lua"
  local dir = io.popen("mktemp -d /tmp/wemasy-hosts-XXXXXX"):read("*l")
  local start = socket.gettime() + (o.lead or 1)
  local pipes = {}
  for host = 1, o.hosts do
    local lines = { "set -e" }
    if o.isolate ~= false then
      lines[#lines + 1] = "mount -t tmpfs -o size=16m,mode=1777 tmpfs /dev/shm"
    end
    for proc = 1, o.procs do
      local argv = { lua, worker, o.base_url, o.token or "", o.path, o.body or "", ("%.6f"):format(start),
        o.duration, value(o.pace, host, proc) or 0, literal(value(o.rate_limit, host, proc) or {}),
        ("%s/%d-%d"):format(dir, host, proc) }
      for i, a in ipairs(argv) do argv[i] = shell_quote(a) end
      lines[#lines + 1] = table.concat(argv, " ") .. " &"
    end
    lines[#lines + 1] = "wait"
    local script = ("%s/host-%d.sh"):format(dir, host)
    local f = assert(io.open(script, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    pipes[host] = assert(io.popen((o.isolate ~= false and unshare() .. " sh " or "sh ") .. shell_quote(script), "r"))
  end
  local run = { duration = o.duration, calls = {}, ok = 0, r429 = 0, late = 0, other = {} }
  for host = 1, o.hosts do pipes[host]:close() end
  local ok, err = pcall(function()
    for host = 1, o.hosts do
      for proc = 1, o.procs do parse(("%s/%d-%d"):format(dir, host, proc), host, proc, run) end
    end
  end)
  os.execute("rm -rf " .. shell_quote(dir))
  if not ok then error(err, 0) end
  return run
end

-- The q-quantile (0..1) of a list of numbers.
function M.quantile(list, q)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return nil end
  return s[math.max(1, math.ceil(q * #s))]
end

return M
