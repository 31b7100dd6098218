-- Shared by the limiter, retry and batch specs: a tiny_server per spec file,
-- unique tokens (so shared limiter state never leaks between tests), a fake
-- clock, and child Lua processes that load the same wemasy.core.
local core = require "wemasy.core"

local M = {}

M.SPEC_DIR = (debug.getinfo(1, "S").source:match("^@(.*)/support/[^/]*$")) or "spec"
M.LUA = os.getenv("WEMASY_TEST_LUA") or "lua5.4"

-- Starts spec/support/tiny_server.lua; returns { url = ..., pipe = ... }.
function M.start_server()
  local pipe = assert(io.popen("exec " .. M.LUA .. " " .. M.SPEC_DIR
    .. "/support/tiny_server.lua 300", "r"))
  local line = pipe:read("*l") or ""
  local port = assert(line:match("^READY (%d+)$"), "tiny_server did not start: " .. line)
  return { url = "http://127.0.0.1:" .. port, pipe = pipe }
end

-- Starts spec/support/stale_server.lua (extra arguments: a certificate and
-- key for TLS); returns { port = ..., pid = ..., pipe = ... }.
function M.start_stale_server(args)
  local pipe = assert(io.popen("exec " .. M.LUA .. " " .. M.SPEC_DIR .. "/support/stale_server.lua 300 "
    .. (args or ""), "r"))
  local line = pipe:read("*l") or ""
  local port, pid = line:match("^READY (%d+) (%d+)$")
  assert(port, "stale_server did not start: " .. line)
  return { port = port, pid = pid, pipe = pipe }
end

-- Asks it to quit (over TLS with ca_file), and kills it if it does not answer.
function M.stop_stale_server(srv, url, ca_file)
  local c = core.new { base_url = url, rate_limit = false, max_retries = 0, timeout = 3, ca_file = ca_file }
  if not c:request("/quit", "") then
    os.execute("kill -9 " .. srv.pid .. " 2>/dev/null")
  end
  c:close()
  srv.pipe:close()
end

-- A plain client with no limiter and no retries, for talking to the server.
function M.plain(url)
  return core.new { base_url = url, rate_limit = false, max_retries = 0 }
end

function M.get(url, path)
  local c = M.plain(url)
  local status, body = c:request(path, "")
  c:close()
  assert(status == 200, "GET " .. path .. " failed: " .. tostring(body))
  return body
end

function M.stop_server(srv)
  if srv then
    local c = M.plain(srv.url)
    c:request("/quit", "")
    c:close()
    srv.pipe:close()
  end
end

-- Tokens handed out by M.token, so M.forget_tokens can remove their segments.
local issued = {}

function M.token(tag)
  local t = string.format("spec-%s-%d-%06d", tag or "t", os.time(), math.random(0, 999999))
  issued[#issued + 1] = t
  return t
end

-- Removes the shared segments of every token handed out for `url`.
function M.forget_tokens(url)
  for _, t in ipairs(issued) do
    core._debug_unlink(url, t)
  end
  core._debug_unlink(url, nil)
end

-- A clock that only moves when slept on; records every sleep.
function M.fake_time(start)
  local t = { now = start or 1000, sleeps = {} }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.sleeps[#t.sleeps + 1] = s
    t.now = t.now + s
  end
  return t
end

-- core:batch(items, concurrency, progress, on_result) reports each result
-- only to on_result, as the values core:request returns; this collects them
-- into one table per item, in input order, for the specs that look at them
-- together: { status, body, headers, attempts, retry_after, limit, remaining }
-- or { kind, message, sent, attempts, retry_after }.
function M.core_batch(c, items, concurrency, progress)
  local results = {}
  c:batch(items, concurrency, progress, function(k, status, ...)
    local r
    if status then
      local body, headers, attempts, retry_after, limit, remaining = ...
      r = { status = status, body = body, headers = headers, attempts = attempts, retry_after = retry_after,
            limit = limit, remaining = remaining }
    else
      local kind, message, sent, attempts, retry_after = ...
      r = { kind = kind, message = message, sent = sent, attempts = attempts, retry_after = retry_after }
    end
    results[k] = r
  end)
  return results
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs `source` as a Lua script in a separate process (the same Lua as the
-- specs, the same wemasy.core through the inherited LUA_CPATH), with the
-- given arguments in `arg`.  Returns { pid = n, pipe = p } reading its stdout.
function M.spawn(source, args)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  local argv = {}
  for i, a in ipairs(args or {}) do argv[i] = shell_quote(a) end
  -- `exec` keeps the shell's pid, so the pid printed first is the Lua's.
  local cmd = "exec sh -c " .. shell_quote("echo $$; exec " .. M.LUA .. " " .. path .. " "
    .. table.concat(argv, " "))
  local pipe = assert(io.popen(cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  return { pid = pid, pipe = pipe, script = path }
end

-- Reads everything the child prints and waits for it to end.
function M.finish(child)
  local out = child.pipe:read("*a")
  child.pipe:close()
  os.remove(child.script)
  return out
end

function M.kill(child)
  os.execute("kill -9 " .. child.pid .. " 2>/dev/null")
end

return M
