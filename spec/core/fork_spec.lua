-- fork(): a process whose client made calls forks (a cron wrapper, a
-- pre-forking server, luaposix).  The child's first call forgets the
-- connections it inherited without touching them (no TLS close_notify, no
-- shutdown: they are the parent's) and connects anew; parent and child then
-- call concurrently and each gets its own answers.  The limiter's shared
-- segment stays shared.  A real fork() (core._debug_fork, test only) in a
-- child Lua process, against spec/support/stale_server.lua (every answer
-- tagged with its request's id and the number of its connection), over
-- plain HTTP and TLS.
local core = require "wemasy.core"
local h = require "support.helpers"

local CALLS = 200
local LIMIT = 1000 -- the script's limiter group: never reached, so every slot taken shows

-- arg: url, ca_file or "-", token, calls, scenario ("calls": both call;
-- "close": the child only closes the client, then collects it).
-- Prints one line per process: "<who> <key>=<value> ...".
local SCRIPT = [==[
local core = require "wemasy.core"
local url, ca, token, n, scenario = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local LIMIT = 1000 -- as the spec's
local c = core.new { base_url = url, token = token, max_retries = 0, timeout = 2,
  ca_file = ca ~= "-" and ca or nil,
  rate_limit = { shared = true, groups = { default = { limit = LIMIT, window = 60 } } } }
local taken = 0

local function call(id)
  taken = taken + 1
  local status, body, headers, attempts = c:request("/id/" .. id, "{}")
  return status == 200 and body == '{"id":"' .. id .. '"}' and attempts == 1, headers and headers["x-conn"]
end

local function batch(tag, k)
  local items = {}
  for i = 1, k do items[i] = { path = "/id/" .. tag .. "-" .. i, body = "{}" } end
  taken = taken + k
  local wrong = 0
  c:batch(items, k, nil, function(i, status, body, _, attempts)
    if status ~= 200 or body ~= '{"id":"' .. tag .. "-" .. i .. '"}' or attempts ~= 1 then wrong = wrong + 1 end
  end)
  return wrong
end

-- Before the fork: kept-alive connections on the client's own handle and in its batch pool.
local ok, conn = call("warm")
assert(ok and conn, "warm-up call failed")
assert(batch("warmb", 2) == 0, "warm-up batch failed")
local pid = core._debug_fork()
assert(pid >= 0, "fork failed")
local me = pid == 0 and "child" or "parent"

local wrong, on_parent_conn, others = 0, 0, 0
if me == "parent" or scenario == "calls" then
  for i = 1, n do
    local good, cn = call(me .. i)
    if not good then wrong = wrong + 1 end
    if cn == conn then on_parent_conn = on_parent_conn + 1 else others = others + 1 end
    if i % 25 == 0 then wrong = wrong + batch(me .. i, 4) end
    if wrong >= 10 then break end -- mixed up already: no need to wait out every timeout
  end
end

if me == "child" then
  -- The script ends as scripts do: the client closed, then collected.
  if scenario == "calls" then c:close() end
  c = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
  io.write(("child wrong=%d on_parent_conn=%d taken=%d\n"):format(wrong, on_parent_conn, taken))
  io.stdout:flush()
  os.exit(0)
end

local status = core._debug_wait(pid)
-- The child is gone, with whatever it did to its copy of the connection:
-- the parent's connection still serves it, first time.
local after_ok, after_conn = call("after")
local rl = c:rate_limit()
io.write(("parent wrong=%d others=%d child_status=%s after_ok=%s same_conn=%s taken=%d remaining=%d\n"):format(
  wrong, others, tostring(status), tostring(after_ok), tostring(after_conn == conn), taken, rl.remaining))
c:close()
]==]

-- Runs SCRIPT; returns its two lines as tables of key -> value.
local function run(url, ca_file, scenario)
  local token = h.token("fork")
  local child = h.spawn(SCRIPT, { url, ca_file or "-", token, CALLS, scenario })
  local out = h.finish(child)
  core._debug_unlink(url, token)
  local lines = {}
  for who, rest in out:gmatch("(%a+) ([^\n]*)") do
    local t = {}
    for k, v in rest:gmatch("([%w_]+)=(%S+)") do t[k] = v end
    lines[who] = t
  end
  assert(lines.parent and lines.child, "the script did not finish: " .. out)
  return lines.parent, lines.child, out
end

-- What every scenario leaves the parent: its child ended well, every answer
-- the parent got was its own, and it still calls on the connection it had.
local function assert_parent_unharmed(parent, out)
  assert.equal("0", parent.child_status, out)
  assert.equal("0", parent.wrong, out)
  assert.equal("true", parent.after_ok, out)
  assert.equal("true", parent.same_conn, out)
end

local function describe_over(name, tls)
  describe("fork() over " .. name, function()
    local srv, url, ca, dir

    setup(function()
      local args
      if tls then
        local sandbox = require "wemasy.sandbox"
        local proc = require "wemasy.sandbox.proc"
        dir = assert(proc.capture("mktemp -d /tmp/wemasy-fork-tls.XXXXXX"))
        ca = assert(sandbox.make_ca(dir))
        args = ca.cert_file .. " " .. ca.key_file
      end
      srv = h.start_stale_server(args)
      url = (tls and "https" or "http") .. "://127.0.0.1:" .. srv.port
    end)

    teardown(function()
      if srv then h.stop_stale_server(srv, url, ca and ca.ca_file) end
      if dir and dir:match("^/tmp/wemasy%-fork%-tls%.%w+$") then os.execute("rm -rf '" .. dir .. "'") end
    end)

    it("parent and child call concurrently, every answer their own; the limiter stays shared", function()
      local parent, child, out = run(url, ca and ca.ca_file, "calls")
      assert_parent_unharmed(parent, out)
      assert.equal("0", child.wrong, out)
      -- the child connected anew, the parent kept its connection throughout
      assert.equal("0", child.on_parent_conn, out)
      assert.equal("0", parent.others, out)
      -- one quota: the parent sees every slot the child took (the 3 before the fork once)
      assert.equal(LIMIT - (tonumber(parent.taken) + tonumber(child.taken) - 3), tonumber(parent.remaining), out)
    end)

    it("a child that only closes its inherited client leaves the parent's connection alone", function()
      local parent, _, out = run(url, ca and ca.ca_file, "close")
      assert_parent_unharmed(parent, out)
    end)
  end)
end

describe_over("plain HTTP", false)
describe_over("TLS", true)
