-- What the specs share: our servers started and stopped (tiny, stale, odd), a
-- sandbox per describe block, the command run in-process, unique tokens (so
-- shared limiter state never leaks between tests), a fake clock, and child
-- Lua processes that load the same wemasy.core.
local core = require "wemasy.core"

local M = {}

M.SPEC_DIR = (debug.getinfo(1, "S").source:match("^@(.*)/support/[^/]*$")) or "spec"
M.LUA = os.getenv("WEMASY_TEST_LUA") or "lua5.4"

-- Runs spec/support/<name>.lua (arguments: its lifetime, 300 s, then `args`,
-- a string) and waits for its "READY <port> ..." line.  Returns the pipe
-- (closing it waits for the server) and the line's words after READY.
function M.launch(name, args)
  local pipe = assert(io.popen("exec " .. M.LUA .. " " .. M.SPEC_DIR .. "/support/" .. name .. ".lua 300 "
    .. (args or ""), "r"))
  local line = pipe:read("*l") or ""
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  assert(words[1] == "READY" and tonumber(words[2]), name .. " did not start: " .. line)
  return pipe, (table.unpack or unpack)(words, 2)
end

-- Starts spec/support/tiny_server.lua; returns { url = ..., pipe = ... }.
function M.start_server()
  local pipe, port = M.launch("tiny_server")
  return { url = "http://127.0.0.1:" .. port, pipe = pipe }
end

-- The tiny_server of the enclosing block (a describe, or the whole file):
-- started before its first test, srv.url then.  After the block it is
-- stopped and the limiter segments of M.token's tokens for it are gone.
function M.tiny_server()
  local busted = require "busted"
  local srv = {}
  busted.setup(function()
    local s = M.start_server()
    srv.url, srv.pipe = s.url, s.pipe
  end)
  busted.teardown(function()
    if not srv.url then return end
    M.forget_tokens(srv.url)
    M.stop_server(srv)
  end)
  return srv
end

-- A fresh counter name on tiny_server: "/c/<name>/<route>" counts,
-- M.count(srv, name) tells how many arrived.
local names = 0
function M.counter(tag)
  names = names + 1
  return (tag or "n") .. names .. "-" .. math.random(1, 1e6)
end

function M.count(srv, name)
  return tonumber(M.get(srv.url, "/count/" .. name))
end

-- A port on this machine that nothing listens on (right now).
function M.closed_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Starts spec/support/stale_server.lua (extra arguments: a certificate and
-- key for TLS); returns { port = ..., pid = ..., pipe = ... }.
function M.start_stale_server(args)
  local pipe, port, pid = M.launch("stale_server", args)
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

-- The sandbox of the enclosing describe block: started before its first test
-- (lazy_setup), stopped after its last (lazy_teardown).  Returns a table that
-- is the sandbox's handle once it runs (sb.base_url, sb:reset(), sb:state(),
-- ...).  opts go to sandbox.start; without them, a quota no spec reaches.
local ROOMY = { window = 60, limits = { default = 1000, sync = 100 } }
function M.sandbox(opts)
  local busted = require "busted"
  local sb = {}
  busted.lazy_setup(function()
    local url, handle = require("wemasy.sandbox").start(opts or ROOMY)
    assert(url, handle)
    setmetatable(sb, { __index = handle })
    -- The sandbox's reset forgets the quota of its tokens; this one also
    -- of the tokens M.token handed out.
    sb.reset = function(self, extra)
      local list = {}
      for _, t in ipairs(M.issued_tokens()) do list[#list + 1] = t end
      for _, t in ipairs(extra or {}) do list[#list + 1] = t end
      return handle.reset(self, list)
    end
  end)
  busted.lazy_teardown(function()
    if getmetatable(sb) then
      M.forget_sandbox(sb)
      sb:stop()
    end
  end)
  return sb
end

-- M.sandbox whose counters, tracked flags and faults are reset before each test.
function M.fresh_sandbox(opts)
  local sb = M.sandbox(opts)
  require("busted").before_each(function() sb:reset() end)
  return sb
end

-- A wemasy client of the sandbox sb (M.sandbox's handle), as the merchant
-- unless opts.token says otherwise, with an in-process limiter (no shared
-- segment left behind) unless opts.rate_limit says otherwise.  opts is the
-- caller's, filled in.
function M.sandbox_client(sb, opts)
  opts = opts or {}
  opts.base_url = sb.base_url
  if opts.token == nil then opts.token = require("wemasy.sandbox").tokens.merchant end
  if opts.rate_limit == nil then opts.rate_limit = { shared = false } end
  return require("wemasy").new(opts)
end

-- A stream that keeps what is written to it: text() gives it all.
function M.sink()
  local parts = {}
  return {
    write = function(self, ...)
      for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
      return self
    end,
    flush = function() end,
    text = function() return table.concat(parts) end,
  }
end

-- A stdin over `text`: "*a" gives the rest, "*l" one line.
function M.source(text)
  local pos = 1
  return {
    read = function(_, fmt)
      if pos > #text then return nil end
      if fmt == "*a" or fmt == "a" then
        local rest = text:sub(pos)
        pos = #text + 1
        return rest
      end
      local nl = text:find("\n", pos, true) or (#text + 1)
      local line = text:sub(pos, nl - 1)
      pos = nl + 1
      return line
    end,
  }
end

-- The `wemasy` command in-process (cli.main), on no terminal, with `env` as
-- its whole environment and `stdin` (a string) as its input.  Returns the
-- exit code, stdout and stderr.
function M.cli(argv, env, stdin)
  local out, err = M.sink(), M.sink()
  local code = require("wemasy.cli").main(argv, {
    stdout = out, stderr = err, stdin = M.source(stdin or ""),
    getenv = function(k) return (env or {})[k] end,
    isatty = function() return false end,
  })
  return code, out.text(), err.text()
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

-- This user's limiter segments in /dev/shm, as a set of names.
function M.segments()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  local found = {}
  local ls = io.popen("ls -1 /dev/shm 2>/dev/null")
  for name in ls:lines() do
    if name:match("^wemasy%-" .. uid .. "%-%x+$") then found[name] = true end
  end
  ls:close()
  return found
end

-- For the files that try many option values (each token and base_url its own
-- segment, too many to list): after the enclosing block, the segments made
-- during it are removed.
function M.remove_segments_made()
  local busted = require "busted"
  local before
  busted.setup(function() before = M.segments() end)
  busted.teardown(function()
    for name in pairs(M.segments()) do
      if not before[name] then os.remove("/dev/shm/" .. name) end
    end
  end)
end

function M.issued_tokens()
  return issued
end

-- Removes the segments of a sandbox's clients: its tokens, M.token's, none.
function M.forget_sandbox(sb)
  for _, url in ipairs{ sb.base_url, sb.https_url } do
    M.forget_tokens(url)
    for _, t in pairs(require("wemasy.sandbox").tokens) do core._debug_unlink(url, t) end
  end
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

-- A word for sh, single-quoted.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local shell_quote = M.shell_quote

-- All that the shell command prints, stdout and stderr.
function M.output(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

-- Runs `source` as a Lua script in a separate process (the same Lua as the
-- specs, the same wemasy.core through the inherited LUA_CPATH), with the
-- given arguments in `arg`.  Returns { pid = n, pipe = p } reading its stdout.
-- wrap, if given, turns the inner sh command into the one run (as
-- support.redis's spawn_host does, for a private /dev/shm).
function M.spawn(source, args, wrap)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  local argv = {}
  for i, a in ipairs(args or {}) do argv[i] = shell_quote(a) end
  -- `exec` keeps the shell's pid, so the pid printed first is the Lua's.
  local inner = "echo $$; exec " .. M.LUA .. " " .. path .. " " .. table.concat(argv, " ")
  local cmd = wrap and wrap(inner) or "exec sh -c " .. shell_quote(inner)
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
