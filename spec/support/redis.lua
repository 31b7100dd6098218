-- A real redis-server for the Redis store's specs, on 127.0.0.1 only.
--
--   local redis = require "support.redis"
--   local r = redis.start{ password = "..." }   -- r.port, r.url, r.dir
--   redis.cli(r, "KEYS", "*")                    -- redis-cli's output
--   redis.kill(r); redis.restart(r)              -- the same port and dir again
--   redis.stop(r)                                -- and its directory is gone
--
-- Each server runs in a temporary directory, saves nothing, and lives at
-- most `lifetime` seconds (default 120, under `timeout -s KILL`), so a spec
-- that dies can never leave one running.  DEBUG is enabled (for DEBUG SLEEP).
local socket = require "socket"
local h = require "support.helpers"

local M = {}

local q, run = h.shell_quote, h.output

-- redis-cli's output (trailing newline removed); the password, if any, by
-- the environment (not in the process list).
function M.cli(r, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = q(a) end
  local auth = r.password and ("REDISCLI_AUTH=" .. q(r.password) .. " ") or ""
  return (run(auth .. "redis-cli -h 127.0.0.1 -p " .. r.port .. " " .. table.concat(args, " "))
    :gsub("\n$", ""))
end

local function launch(r)
  local cmd = string.format("timeout -s KILL %d redis-server --port %d --bind 127.0.0.1 --dir %s"
    .. " --save '' --appendonly no --enable-debug-command local --logfile %s/redis.log%s",
    r.lifetime, r.port, q(r.dir), q(r.dir),
    r.password and (" --requirepass " .. q(r.password)) or "")
  os.execute("(" .. cmd .. ") >/dev/null 2>&1 &")
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    if M.cli(r, "PING") == "PONG" then
      r.pid = tonumber(M.cli(r, "INFO", "server"):match("process_id:(%d+)"))
      return r
    end
    socket.sleep(0.02)
  end
  error("redis-server did not start on port " .. r.port .. ": " .. run("cat " .. q(r.dir) .. "/redis.log"))
end

function M.start(opts)
  opts = opts or {}
  assert(run("command -v redis-server >/dev/null && command -v redis-cli >/dev/null && echo yes") == "yes\n",
    "redis-server is not installed: make deps")
  local dir = run("mktemp -d /tmp/wemasy-redis.XXXXXX"):gsub("%s+$", "")
  local r = { port = h.closed_port(), dir = dir, password = opts.password, lifetime = opts.lifetime or 120 }
  launch(r)
  r.url = "redis://" .. (r.password and (":" .. r.password .. "@") or "") .. "127.0.0.1:" .. r.port
  return r
end

-- SIGKILL, and wait until the port is closed.
function M.kill(r)
  if r.pid then os.execute("kill -9 " .. r.pid .. " 2>/dev/null") end
  r.pid = nil
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    local s = socket.tcp()
    s:settimeout(0.2)
    local ok = s:connect("127.0.0.1", r.port)
    s:close()
    if not ok then return end
    socket.sleep(0.02)
  end
end

function M.restart(r)
  M.kill(r)
  return launch(r)
end

function M.stop(r)
  M.kill(r)
  os.execute("rm -rf " .. q(r.dir))
end

-- A Redis per describe block: started in setup, stopped in teardown.
function M.per_block(opts)
  local busted = require "busted"
  local r = {}
  busted.setup(function()
    for k, v in pairs(M.start(opts)) do r[k] = v end
  end)
  busted.teardown(function()
    if r.dir then M.stop(r) end
  end)
  return r
end

-- The key prefix of (base_url, token): the shared segment's hash.
function M.prefix(base_url, token)
  return "wemasy:{" .. require("wemasy.core")._debug_quota_key(base_url, token) .. "}:"
end

-- Whether this machine lets a process have a /dev/shm of its own (root, or
-- user namespaces): then "hosts" are processes with private /dev/shm.
local private_shm
function M.private_shm()
  if private_shm == nil then
    private_shm = os.execute("unshare -m sh -c 'mount -t tmpfs tmpfs /dev/shm' >/dev/null 2>&1") == true
      or os.execute("unshare -m sh -c 'mount -t tmpfs tmpfs /dev/shm' >/dev/null 2>&1") == 0
  end
  return private_shm
end

-- h.spawn, but as another host: with a private, empty /dev/shm when it can.
local function in_private_shm(inner)
  return "exec unshare -m sh -c " .. q("mount -t tmpfs tmpfs /dev/shm && " .. inner)
end

function M.spawn_host(source, args)
  return h.spawn(source, args, M.private_shm() and in_private_shm or nil)
end

return M
