-- A real redis-server for the specs and bench-redis, on 127.0.0.1 only: a
-- free port, a temporary directory, no persistence, and a lifetime (it is
-- started under `timeout`, so a crashed spec cannot leave it running).
--
--   local redis = require "support.redis_server"
--   local r = redis.start()          -- r.url = "redis://127.0.0.1:PORT"
--   redis.command(r, "INFO", "commandstats")
--   redis.kill(r); redis.restart(r)  -- the same port, an empty server
--   redis.stop(r)
local socket = require "socket"

local M = {}

M.BINARY = os.getenv("WEMASY_REDIS_SERVER") or "redis-server"

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- One command in RESP; returns the reply (a string, a number, a list) or
-- nil, err.  Plain Lua on luasocket: the specs need no Redis library.
local function read_reply(conn)
  local line, err = conn:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return false end
    local data = conn:receive(n + 2)
    return data and data:sub(1, n)
  end
  if kind == "*" then
    local list = {}
    for i = 1, tonumber(rest) do list[i] = read_reply(conn) end
    return list
  end
  return nil, "bad reply: " .. line
end

function M.command(r, ...)
  local conn = socket.tcp()
  conn:settimeout(5)
  local ok, err = conn:connect("127.0.0.1", r.port)
  if not ok then return nil, err end
  local parts = { "*" .. select("#", ...) }
  for i = 1, select("#", ...) do
    local a = tostring((select(i, ...)))
    parts[#parts + 1] = "$" .. #a
    parts[#parts + 1] = a
  end
  conn:send(table.concat(parts, "\r\n") .. "\r\n")
  local reply, why = read_reply(conn)
  conn:close()
  return reply, why
end

local function launch(r)
  -- `exec` keeps the shell's pid: the one printed is the server's (under timeout).
  r.pipe = assert(io.popen(("exec sh -c 'echo $$; exec timeout -s KILL %d %s --port %d --bind 127.0.0.1 "
    .. "--dir %s --save \"\" --appendonly no --daemonize no --logfile %s/redis.log'"):format(
      r.lifetime, M.BINARY, r.port, r.dir, r.dir), "r"))
  r.pipe:read("*l") -- timeout's pid; it forwards TERM, but a crash is a KILL of the server itself
  local give_up = socket.gettime() + 10
  while M.command(r, "PING") ~= "PONG" do
    assert(socket.gettime() < give_up, "redis-server did not start on port " .. r.port)
    socket.sleep(0.02)
  end
  r.pid = tonumber(assert(M.command(r, "INFO", "server")):match("process_id:(%d+)"))
end

-- opts.lifetime: seconds before it is killed whatever happens (300).
function M.start(opts)
  local dir = io.popen("mktemp -d /tmp/wemasy-redis-XXXXXX"):read("*l")
  local r = { port = free_port(), dir = dir, lifetime = (opts or {}).lifetime or 300 }
  r.url = "redis://127.0.0.1:" .. r.port
  launch(r)
  return r
end

-- SIGKILL, as a crash: clients see their connections reset.  Closing the
-- pipe waits for `timeout`, which ends with its server.
function M.kill(r)
  if r.pid then os.execute("kill -9 " .. r.pid .. " 2>/dev/null") end
  if r.pipe then r.pipe:close() end
  r.pid, r.pipe = nil, nil
end

function M.restart(r)
  M.kill(r)
  launch(r)
end

function M.stop(r)
  M.kill(r)
  if r.dir and r.dir:match("^/tmp/wemasy%-redis%-") then os.execute("rm -rf " .. r.dir) end
end

-- calls of each command since the last CONFIG RESETSTAT: { evalsha = n, ... }
function M.commandstats(r)
  local info = assert(M.command(r, "INFO", "commandstats"))
  local calls = {}
  for name, n in info:gmatch("cmdstat_([%w|_]+):calls=(%d+)") do calls[name] = tonumber(n) end
  return calls
end

return M
