-- Ctrl-C cancels (issue 12, item 9): real SIGINTs sent to real child
-- processes (`lua script.lua`, bin/wemasy, its REPL) while a call waits for a
-- limiter slot, sleeps before a retry, is in a slow transfer or runs a batch.
-- Each checks that the child ends promptly, how it ends, and that the server
-- counted no request after the signal (tiny_server's /c/NAME counters).
local core = require "wemasy.core"
local socket = require "socket"
local h = require "support.helpers"

local LUA = h.LUA
-- The issue asks for 0.2 s; the bound is generous so a loaded machine does
-- not fail it, and the measured values are printed (see `latencies`).
local BOUND = 0.5
-- How long a child may take before the spec gives up on it (today's code
-- runs each wait to its end: 5 to 60 s).
local GIVE_UP = 4

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- "" when the file is gone, also between the open and the read (a /proc
-- entry of a process that exits just then reads as an error).
local function read_file(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text or ""
end

-- Runs `command` (a shell command line, exec'd so that the pid printed is
-- its own) with stderr to a file and stdin from `stdin` (a file) or
-- /dev/null.  The shell around it prints "EXIT <status>" when it ends.
local function start(command, stdin)
  local err = os.tmpname()
  local inner = "echo $$; exec " .. command .. " <" .. quote(stdin or "/dev/null") .. " 2>" .. quote(err)
  local pipe = assert(io.popen("sh -c " .. quote(inner) .. "; echo \"EXIT $?\"", "r"))
  return { pid = assert(tonumber(pipe:read("*l"))), pipe = pipe, err = err }
end

-- A Lua script in a child of the spec's Lua, with `arg`.
local function start_script(source, args, stdin)
  local path = os.tmpname()
  write_file(path, source)
  local argv = {}
  for i, a in ipairs(args or {}) do argv[i] = quote(a) end
  local child = start(LUA .. " " .. quote(path) .. " " .. table.concat(argv, " "), stdin)
  child.script = path
  return child
end

local function alive(child)
  local stat = read_file("/proc/" .. child.pid .. "/stat")
  return stat ~= "" and not stat:match("^%d+ %b() Z")
end

-- Seconds until the child is gone, or nil after `limit` (then it is killed).
local function wait_gone(child, since, limit)
  while alive(child) do
    if core.now() - since > limit then
      os.execute("kill -9 " .. child.pid .. " 2>/dev/null")
      return nil
    end
    socket.sleep(0.002)
  end
  return core.now() - since
end

-- Everything the child printed, its stderr and its exit status.
local function finish(child)
  local out = child.pipe:read("*a")
  child.pipe:close()
  local err = read_file(child.err)
  os.remove(child.err)
  if child.script then os.remove(child.script) end
  local status = tonumber(out:match("EXIT (%d+)\n$"))
  return out:gsub("EXIT %d+\n$", ""), err, status
end

local latencies = {}

-- SIGINT now; returns the seconds until the child was gone (nil: it was not
-- within GIVE_UP).
local function interrupt(child, what)
  local t0 = core.now()
  os.execute("kill -INT " .. child.pid)
  local took = wait_gone(child, t0, GIVE_UP)
  latencies[#latencies + 1] = string.format("%s: %s", what, took and string.format("%.3f s", took) or "did not end")
  return took
end

local srv

local function count(name)
  return tonumber(h.get(srv.url, "/count/" .. name))
end

-- Waits until the server has counted n requests under `name`.
local function await_count(name, n, limit)
  local t0 = core.now()
  while count(name) < n do
    assert(core.now() - t0 < (limit or 10), "the server never counted " .. n .. " requests for " .. name)
    socket.sleep(0.01)
  end
end

local function await_line(child, want)
  local line = child.pipe:read("*l")
  assert(line == want, "the child said " .. tostring(line) .. " instead of " .. want)
end

-- SIGINT to a child that must end within BOUND, with exit `status` and
-- before it prints NOT INTERRUPTED; then the server has counted `sent`
-- requests under `n` (looked at 0.1 s later when `settle`: a transfer cut
-- off might still arrive).  Returns the child's stderr.
local function assert_interrupted(c, what, status, n, sent, settle)
  local took = interrupt(c, what)
  local out, err, got = finish(c)
  assert.is_not_nil(took, "the call went on after SIGINT (" .. what .. ")")
  assert.is_true(took < BOUND, "took " .. took .. " s")
  assert.equal(status, got)
  assert.not_matches("NOT INTERRUPTED", out)
  if settle then socket.sleep(0.1) end
  assert.equal(sent, count(n))
  return err
end

local unique = 0
local function name(tag)
  unique = unique + 1
  return string.format("%s-%d-%d", tag, os.time(), unique)
end

-- A host's own SIGINT handler, in a Lua C module built for this Lua: it
-- counts the signals it got and notes when the last one came (CLOCK_MONOTONIC,
-- the clock of core.now()).  Also sets SIG_IGN or SIG_DFL on request.
local SIGFLAG_C = [[
#include <signal.h>
#include <string.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>

static volatile sig_atomic_t hits;
static volatile double last;

static void on_sigint(int sig)
{
    struct timespec ts;

    (void)sig;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    last = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    hits++;
}

static int set(lua_State *L)
{
    const char *how = luaL_checkstring(L, 1);
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = strcmp(how, "count") == 0 ? on_sigint
                  : strcmp(how, "ignore") == 0 ? SIG_IGN : SIG_DFL;
    lua_pushboolean(L, sigaction(SIGINT, &sa, NULL) == 0);
    return 1;
}

static int state(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)hits);
    lua_pushnumber(L, (lua_Number)last);
    return 2;
}

int luaopen_sigflag(lua_State *L);
int luaopen_sigflag(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, set);
    lua_setfield(L, -2, "set");
    lua_pushcfunction(L, state);
    lua_setfield(L, -2, "state");
    return 1;
}
]]

local sigflag_dir

local function build_sigflag()
  sigflag_dir = os.tmpname()
  os.remove(sigflag_dir)
  assert(os.execute("mkdir " .. quote(sigflag_dir)))
  write_file(sigflag_dir .. "/sigflag.c", SIGFLAG_C)
  local inc = LUA == "luajit" and "/usr/include/luajit-2.1" or "/usr/include/lua5.4"
  local ok = os.execute("cc -shared -fPIC -O1 -I" .. inc .. " -o " .. quote(sigflag_dir .. "/sigflag.so") .. " "
    .. quote(sigflag_dir .. "/sigflag.c"))
  assert(ok == true or ok == 0, "could not build the sigflag helper")
end

-- The preamble of child scripts: arg[1] is the server's URL, arg[2] a name
-- for its counters, arg[3] the sigflag directory.
local PRELUDE = [[
local url, name = arg[1], arg[2]
package.cpath = arg[3] .. "/?.so;" .. package.cpath
local wemasy = require "wemasy"
local core = require "wemasy.core"
local function say(s) io.stdout:write(s, "\n") io.stdout:flush() end
]]

local function child(body, tag)
  local n = name(tag)
  return start_script(PRELUDE .. body, { srv.url, n, sigflag_dir }), n
end

-- A child whose host has its own SIGINT disposition (sigflag.set(mode)).
local function host_child(mode, body, tag)
  return child('local sigflag = require "sigflag"\nassert(sigflag.set("' .. mode .. '"))\n' .. body, tag)
end

-- Waits until the child is in its call (it says CALLING, its request has
-- arrived), then sends SIGINT; returns when it was sent.
local function interrupt_call(c, n)
  await_line(c, "CALLING")
  await_count(n, 1)
  local t0 = core.now()
  os.execute("kill -INT " .. c.pid)
  return t0
end

-- The first line of a Lua error on stderr (lua.c and luajit.c add a traceback).
local function first_line(err)
  return err:match("^[^\n]*")
end

describe("Ctrl-C", function()
  setup(function()
    srv = h.start_server()
    build_sigflag()
  end)

  teardown(function()
    -- bin/wemasy's client (no token) keeps the default shared limiter.
    core._debug_unlink(srv.url, nil)
    h.stop_server(srv)
    if sigflag_dir then os.execute("rm -rf " .. quote(sigflag_dir)) end
    io.stdout:write("# cancel latencies (SIGINT sent -> process gone; bound ", BOUND, " s) on ", LUA, ":\n")
    for _, l in ipairs(latencies) do io.stdout:write("#   ", l, "\n") end
  end)

  -- Each script blocks in a call (`ready` says when: a line it prints, or the
  -- server's count of its requests), gets SIGINT there and must die of Lua's
  -- "interrupted!" at once, with `sent` requests counted (`settle`: looked at
  -- a moment later, for a transfer cut off).
  describe("in a script (lua script.lua)", function()
    for _, case in ipairs{
      { "ends a wait for a rate-limit slot, and the call never goes out", "slot", [[
local client = wemasy.new{ base_url = url, max_retries = 0,
  rate_limit = { shared = false, max_wait = 120, groups = { default = { limit = 1, window = 60 } } } }
assert(client:call("c/" .. name .. "/status/200", {}))
say("WAITING")
client:call("c/" .. name .. "/status/200", {})
say("NOT INTERRUPTED")
]], ready = "WAITING", pause = 0.2, what = "limiter wait", sent = 1 }, -- the pause: well inside the 60 s wait
      { "ends a retry delay (503 with Retry-After on a read), and the retry never goes out", "retry", [[
local client = core.new{ base_url = url, rate_limit = false, max_retries = 2 }
client:request("/c/" .. name .. "/503/20", "{}", false, nil, true)
say("NOT INTERRUPTED")
]], ready = 1, pause = 0.2, what = "retry delay", sent = 1 }, -- the 503 is back, the 20 s delay is running
      { "ends a slow transfer, and it is not retried", "transfer", [[
local client = core.new{ base_url = url, rate_limit = false, max_retries = 2 }
client:request("/c/" .. name .. "/sleep/5000", "{}", false, nil, true)
say("NOT INTERRUPTED")
]], ready = 1, what = "transfer", sent = 1, settle = true },
      { "ends a batch: the transfers in flight abort, no further item starts", "batch", [[
local client = wemasy.new{ base_url = url, rate_limit = false, max_retries = 0 }
local calls = {}
for i = 1, 6 do calls[i] = { "c/" .. name .. "/sleep/5000", {} } end
client:batch(calls, { concurrency = 2 })
say("NOT INTERRUPTED")
]], ready = 2, what = "batch", sent = 2, settle = true },
      { "ends a batch whose items wait for limiter slots", "batchwait", [[
local client = wemasy.new{ base_url = url, max_retries = 0,
  rate_limit = { shared = false, max_wait = 120, groups = { default = { limit = 1, window = 60 } } } }
local calls = {}
for i = 1, 4 do calls[i] = { "c/" .. name .. "/status/200", {} } end
client:batch(calls)
say("NOT INTERRUPTED")
]], ready = 1, pause = 0.2, what = "batch limiter wait", sent = 1 },
    } do
      it(case[1], function()
        local c, n = child(case[3], case[2])
        if type(case.ready) == "string" then await_line(c, case.ready) else await_count(n, case.ready) end
        if case.pause then socket.sleep(case.pause) end
        local err = assert_interrupted(c, case.what, 1, n, case.sent, case.settle)
        assert.matches("interrupted!$", first_line(err))
      end)
    end
  end)

  describe("with a handler of the host's", function()
    it("hands the signal on once; the call returns network/interrupted with an honest sent", function()
      local c, n = host_child("count", [[
local client = wemasy.new{ base_url = url, rate_limit = false, max_retries = 2 }
say("CALLING")
local t0 = core.now()
local body, err = client:call("c/" .. name .. "/sleep/5000", {})
local hits = sigflag.state()
say(string.format("%s %s %s %s %d %.3f", tostring(body), err.kind, tostring(err.reason), tostring(err.sent),
  hits, core.now() - t0))
-- Still the host's handler: a second SIGINT reaches it at once.
say("AGAIN")
local t1 = core.now()
while sigflag.state() < 2 and core.now() - t1 < 3 do end
say("HITS " .. sigflag.state())
]], "host")
      local t0 = interrupt_call(c, n)
      local line = c.pipe:read("*l")
      latencies[#latencies + 1] = string.format("host handler, call returned: %.3f s", core.now() - t0)
      await_line(c, "AGAIN")
      os.execute("kill -INT " .. c.pid)
      local out, err, status = finish(c)
      local body, kind, reason, sent, hits, took = line:match("^(%S+) (%S+) (%S+) (%S+) (%d+) (%S+)$")
      assert.equal("nil", body, line .. err)
      assert.equal("network", kind)
      assert.equal("interrupted", reason)
      assert.equal("true", sent) -- the request was out when the signal came
      assert.equal("1", hits)
      assert.is_true(tonumber(took) < 5, line)
      assert.matches("HITS 2", out)
      assert.equal(0, status, err)
      socket.sleep(0.1)
      assert.equal(1, count(n))
    end)

    it("reports the batch items it never sent with sent = false", function()
      local c, n = host_child("count", [[
local client = wemasy.new{ base_url = url, rate_limit = false, max_retries = 0 }
local calls = {}
for i = 1, 5 do calls[i] = { "c/" .. name .. "/sleep/5000", {} } end
local results = client:batch(calls, { concurrency = 2 })
for i = 1, 5 do
  local err = results[i][2]
  say(string.format("%d %s %s %s", i, err.kind, tostring(err.reason), tostring(err.sent)))
end
say("HITS " .. sigflag.state())
]], "hostbatch")
      await_count(n, 2)
      os.execute("kill -INT " .. c.pid)
      local out, err, status = finish(c)
      assert.equal(0, status, err)
      for i = 1, 5 do
        local sent = i <= 2 and "true" or "false"
        assert.matches("\n?" .. i .. " network interrupted " .. sent .. "\n", out)
      end
      assert.matches("HITS 1\n", out)
      assert.equal(2, count(n))
    end)

    it("is restored by the last call out, not by a call nested in another's hook", function()
      -- A's clock hook makes a whole call on client B while A is in progress;
      -- B's end must leave wemasy's handler in place for A's slow transfer.
      local c, n = host_child("count", [[
local b = core.new{ base_url = url, rate_limit = false, max_retries = 0 }
local nested = 0
local a = core.new{ base_url = url, max_retries = 0, clock = function()
  nested = nested + 1
  assert(b:request("/status/200", "{}") == 200)
  return 1000
end }
say("CALLING")
local status, kind, _, sent = a:request("/c/" .. name .. "/sleep/5000", "{}")
say(string.format("%s %s %s NESTED %d HITS %d", tostring(status), tostring(kind), tostring(sent), nested,
  sigflag.state()))
]], "nested")
      local t0 = interrupt_call(c, n)
      local out, err, status = finish(c)
      latencies[#latencies + 1] = string.format("nested calls, call returned: %.3f s", core.now() - t0)
      assert.equal(0, status, err)
      local nested = tonumber(out:match("NESTED (%d+)"))
      assert.matches("^nil interrupted true NESTED %d+ HITS 1\n", out)
      assert.is_true(nested >= 1)
    end)

    it("leaves SIGINT ignored when the host ignores it", function()
      local c, n = host_child("ignore", [[
local client = core.new{ base_url = url, rate_limit = false, max_retries = 0 }
say("CALLING")
say("STATUS " .. tostring(client:request("/c/" .. name .. "/sleep/700", "{}")))
]], "ignored")
      interrupt_call(c, n)
      local out, err, status = finish(c)
      assert.matches("STATUS 200", out)
      assert.equal(0, status, err)
    end)

    it("lets SIG_DFL end the process as Ctrl-C would", function()
      local c, n = host_child("default", [[
local client = core.new{ base_url = url, rate_limit = false, max_retries = 2 }
client:request("/c/" .. name .. "/sleep/5000", "{}", false, nil, true)
say("NOT INTERRUPTED")
]], "default")
      await_count(n, 1)
      assert_interrupted(c, "SIG_DFL", 128 + 2, n, 1, true) -- killed by SIGINT, as the shell reports it
    end)

    it("is not touched by a client made with interruptible = false (what wemasy.ngx makes)", function()
      local c, n = host_child("count", [[
local client = core.new{ base_url = url, rate_limit = false, max_retries = 0, interruptible = false }
say("CALLING")
local status = client:request("/c/" .. name .. "/sleep/1000", "{}")
local hits, last = sigflag.state()
say(string.format("STATUS %s HITS %d EARLY %.3f", tostring(status), hits, core.now() - last))
]], "notwatching")
      interrupt_call(c, n)
      local out, err, status = finish(c)
      assert.equal(0, status, err)
      local got, hits, early = out:match("STATUS (%S+) HITS (%d+) EARLY (%S+)")
      assert.equal("200", got, out)
      assert.equal("1", hits)
      -- The host's handler ran when the signal came, not when the call ended.
      assert.is_true(tonumber(early) > 0.3, out)
    end)
  end)

  describe("the command line", function()
    it("exits 130 with one line on stderr and sends nothing more", function()
      local n = name("cli")
      local c = start(LUA .. " bin/wemasy --base-url " .. quote(srv.url) .. " c/" .. n .. "/sleep/5000")
      await_count(n, 1)
      assert.equal("wemasy: interrupted\n", assert_interrupted(c, "CLI", 130, n, 1, true))
    end)

    it("REPL: each Ctrl-C during a call comes back to the prompt", function()
      local n = name("repl")
      local input = os.tmpname()
      write_file(input, table.concat({
        'client:call("c/' .. n .. '/sleep/5000")',
        '"after one"',
        'client:call("c/' .. n .. '/sleep/5000")',
        '"after two"',
        "",
      }, "\n"))
      local c = start(LUA .. " bin/wemasy repl --base-url " .. quote(srv.url), input)
      await_count(n, 1)
      local t0 = core.now()
      os.execute("kill -INT " .. c.pid)
      await_count(n, 2)
      latencies[#latencies + 1] = string.format("REPL, to the next call: %.3f s", core.now() - t0)
      local took = interrupt(c, "REPL, second Ctrl-C, to the end of input")
      local out, err, status = finish(c)
      os.remove(input)
      assert.is_not_nil(took, "the REPL did not end")
      assert.equal(0, status, err)
      assert.matches('wemasy> interrupted!\nwemasy> "after one"\nwemasy> interrupted!\nwemasy> "after two"\n', out)
      socket.sleep(0.1)
      assert.equal(2, count(n))
    end)
  end)
end)
