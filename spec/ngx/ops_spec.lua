-- wemasy.ngx as a shop runs it: pages waiting on a call through nginx's
-- reloads and graceful quit, the wait for a thread VM (first come, first
-- served, bounded), and the handler defaults against a hung API.  nginx runs
-- LuaJIT: these run on the LuaJIT pass.
if not jit then
  describe("wemasy.ngx through deploys and outages", function()
    pending("nginx runs LuaJIT: these specs run on the LuaJIT pass (build/jit/wemasy/core.so)")
  end)
  return
end

local socket = require("socket")
local core = require("wemasy.core")
local cjson = require("cjson")
local proc = require("wemasy.sandbox.proc")
local helpers = require("support.helpers")
local launch = dofile((helpers.SPEC_DIR:gsub("/spec$", "")) .. "/examples/openresty/launch.lua")

local tokens = require("wemasy.sandbox").tokens

-- The nginx side: test locations that call through wemasy.ngx from several
-- light threads of one request, started `step` s apart, so their order of
-- arrival is known.
local NGINX_SIDE = [=[
local cjson = require("cjson")
local wngx = require("wemasy.ngx")
local M = {}

local function client(max_queue)
  return wngx.new{ base_url = "@BASE@", token = "@TOKEN@", timeout = 10, rate_limit = false, max_queue = max_queue }
end

-- n calls, call i arriving (i - 1) * step s after the first.  Answers the
-- order they finished in, and for each: ok, its error's kind, reason and
-- message, and how long it took.
function M.arrivals()
  local n, step = tonumber(ngx.var.arg_n), tonumber(ngx.var.arg_step)
  local c = client(tonumber(ngx.var.arg_max_queue))
  local order, results, threads = {}, {}, {}
  for i = 1, n do
    threads[i] = ngx.thread.spawn(function()
      ngx.sleep((i - 1) * step)
      ngx.update_time()
      local t0 = ngx.now()
      local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
      ngx.update_time()
      order[#order + 1] = i
      results[i] = { ok = body ~= nil, kind = err and err.kind, reason = err and err.reason,
                     sent = err and err.sent, attempts = err and err.attempts,
                     message = err and tostring(err), took = ngx.now() - t0 }
    end)
  end
  for i = 1, n do ngx.thread.wait(threads[i]) end
  ngx.say(cjson.encode{ order = order, results = results })
end

-- One call with the handler defaults (only base_url and the token given),
-- to `url`: how it ended and how long it took.
local function timed(opts, n)
  local c = wngx.new(opts)
  local out = {}
  for i = 1, n or 1 do
    ngx.update_time()
    local t0 = ngx.now()
    local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
    ngx.update_time()
    out[i] = { ok = body ~= nil, kind = err and err.kind, attempts = err and err.attempts,
               message = err and tostring(err), took = ngx.now() - t0 }
  end
  ngx.say(cjson.encode(out))
end

function M.hung()
  timed{ base_url = ngx.var.arg_url, token = "@TOKEN@", rate_limit = false }
end

-- The sandbox allows one call per 3 s: the second call would wait ~3 s for its slot.
function M.quota()
  timed({ base_url = "@BASE@", token = "@TOKEN@", rate_limit = { shared = false } }, 2)
end

return M
]=]

------------------------------------------------------------------ pages in flight

-- Pages sent at once, each on its own connection, read from one select() loop
-- so that `during(now)` can act (signal nginx) while they wait.
local function open_page(url, method, path, body)
  local host, port = url:match("^http://([^:/]+):(%d+)")
  local s = assert(socket.tcp())
  s:settimeout(5)
  assert(s:connect(host, tonumber(port)))
  s:settimeout(0)
  local req = method .. " " .. path .. " HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n"
    .. (body and ("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body .. "\r\n") or "")
    .. "\r\n" .. (body or "")
  local sent = 1
  while sent <= #req do
    local n, err, partial = s:send(req, sent)
    sent = (n or partial or sent - 1) + 1
    if err and err ~= "timeout" then break end
  end
  return { sock = s, chunks = {}, done = false }
end

-- Reads every page to its close; calls during(t) (t: seconds since start)
-- between reads.  Returns the replies (strings, "" when nginx closed with none).
local function read_pages(pages, seconds, during)
  local t0 = socket.gettime()
  while socket.gettime() - t0 < seconds do
    local open = {}
    for _, p in ipairs(pages) do if not p.done then open[#open + 1] = p.sock end end
    if #open == 0 then break end
    if during then during(socket.gettime() - t0) end
    local readable = socket.select(open, nil, 0.02)
    for _, s in ipairs(readable) do
      for _, p in ipairs(pages) do
        if p.sock == s then
          local data, err, partial = s:receive(65536)
          local got = data or partial
          if got and #got > 0 then p.chunks[#p.chunks + 1] = got end
          if err == "closed" or (err and err ~= "timeout") then p.done = true; s:close() end
        end
      end
    end
  end
  local replies = {}
  for i, p in ipairs(pages) do
    if not p.done then p.sock:close() end
    replies[i] = table.concat(p.chunks)
  end
  return replies
end

local ORDER_FORM = launch.form{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" }

local function alerts(log)
  local out = {}
  for line in log:gmatch("[^\n]+") do
    if line:find("[alert]", 1, true) or line:find("[emerg]", 1, true) then out[#out + 1] = line end
  end
  return out
end

-- One worker with `vms` thread VMs serves 16 pages on a slow API while nginx
-- reloads three times and quits: every page must get its answer.
local function reload_during_pages(sb, vms)
  core._debug_unlink(sb.base_url, tokens.merchant)
  -- timeout = 10: a page waits for a VM up to the client's timeout, and a
  -- loaded machine must not turn the queue's 1.2 s into the default's 2 s.
  local shop = assert(launch.start{ base_url = sb.base_url, token = tokens.merchant, workers = 1,
    configure = "timeout = 10,",
    replace = { { "thread_pool wemasy threads=16;", "thread_pool wemasy threads=" .. vms .. ";" },
                { "lua_worker_thread_vm_pool_size 16;", "lua_worker_thread_vm_pool_size " .. vms .. ";" } } })
  finally(function() shop:stop() end)
  -- Every orders/get takes 1.2 s: four pages go out before each of three
  -- reloads and the quit, so each page waits through at least one of them.
  sb:fault{ kind = "delay", seconds = 1.2, path = "orders/get", count = -1 }
  local pages, signals = {}, { { 0.3, "HUP" }, { 0.6, "HUP" }, { 0.9, "HUP" }, { 1.2, "QUIT" } }
  local function send4()
    for _ = 1, 4 do pages[#pages + 1] = open_page(shop.url, "POST", "/order", ORDER_FORM) end
  end
  send4()
  local replies = read_pages(pages, 20, function(t)
    local nxt = signals[1]
    if nxt and t >= nxt[1] then
      table.remove(signals, 1)
      -- After a reload the new workers take the next pages; after the quit nothing more.
      if nxt[2] == "HUP" then
        assert(proc.signal(shop.pid, "HUP"))
        proc.sleep(0.05)
        send4()
      else
        assert(proc.signal(shop.pid, "QUIT"))
      end
    end
  end)
  assert.is_true(proc.wait_gone(shop.pid, 10), "nginx did not quit")
  local log = shop:error_log()
  local dropped = {}
  for i, r in ipairs(replies) do
    if not (r:match("^HTTP/1%.1 200") and r:find("Order for John Doe", 1, true)) then
      dropped[#dropped + 1] = i .. ": " .. (r == "" and "(empty reply)" or r:sub(1, 80))
    end
  end
  assert.equal(16, #replies)
  assert.same({}, dropped, "dropped pages; error log:\n" .. log:sub(-3000))
  assert.same({}, alerts(log))
  assert.equal(16, sb:state().requests["orders/get"])
end

describe("wemasy.ngx through nginx -s reload and -s quit", function()
  local sb = helpers.fresh_sandbox{}

  after_each(function()
    if sb.base_url then
      sb:clear_faults()
      core._debug_unlink(sb.base_url, tokens.merchant)
    end
  end)

  it("answers every page that waits on a call (0 dropped, 0 [alert])", function()
    reload_during_pages(sb, 16)
  end)

  it("answers the pages waiting in the queue for a thread VM too", function()
    -- Two thread VMs: of the four pages a worker gets, two wait on a VM and
    -- two in the queue for one.
    reload_during_pages(sb, 2)
  end)
end)

-- The nginx (one worker) of the enclosing describe block, serving
-- NGINX_SIDE's functions at /t/<name> against the sandbox sb: started before
-- its first test, stopped after its last.  replace: as launch.start's.  The
-- table returned has the shop's url once it runs.
local function ops_shop(sb, replace)
  local shop, nginx, dir = {}, nil, nil

  lazy_setup(function()
    dir = assert(proc.mktemp())
    proc.write_file(dir .. "/ngx_ops.lua", (NGINX_SIDE:gsub("@([%w_]+)@", { BASE = sb.base_url,
      TOKEN = tokens.merchant })))
    local err
    nginx, err = launch.start{ base_url = sb.base_url, token = tokens.merchant, workers = 1, lua_path = dir .. "/?.lua",
      replace = replace,
      server = [[
        location /t/ {
            content_by_lua_block { require("ngx_ops")[ngx.var.uri:match("^/t/(%w+)$")]() }
        }
]] }
    assert(nginx, err)
    shop.url = nginx.url
  end)

  lazy_teardown(function()
    if nginx then nginx:stop() end
    if dir then proc.remove_tree(dir) end
  end)
  return shop
end

describe("wemasy.ngx waiting for a thread VM", function()
  local sb = helpers.sandbox{}
  -- One worker with one thread VM: the calls run strictly one after another.
  local shop = ops_shop(sb, { { "thread_pool wemasy threads=16;", "thread_pool wemasy threads=1;" },
                              { "lua_worker_thread_vm_pool_size 16;", "lua_worker_thread_vm_pool_size 1;" } })

  after_each(function()
    if sb.base_url then sb:clear_faults() end
  end)

  local function arrivals(n, step, max_queue)
    local status, body = launch.request("GET", ("%s/t/arrivals?n=%d&step=%g%s"):format(shop.url, n, step,
      max_queue and ("&max_queue=" .. max_queue) or ""), nil, nil, 30)
    assert.equal(200, status, tostring(body))
    return cjson.decode(body)
  end

  it("serves the waiters first come, first served", function()
    -- The first call holds the only VM for 0.15 s; seven more arrive 20 ms
    -- apart meanwhile.  Each waits its turn: they end in the order they came.
    sb:fault{ kind = "delay", seconds = 0.15, path = "orders/detail", count = 8 }
    local r = arrivals(8, 0.02)
    for i = 1, 8 do assert.is_true(r.results[i].ok, cjson.encode(r.results[i])) end
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, r.order)
  end)

  it("refuses a call at once when max_queue calls already wait", function()
    -- One call runs (0.6 s), two wait (max_queue = 2), the next two are refused.
    sb:fault{ kind = "delay", seconds = 0.6, path = "orders/detail", count = 3 }
    local r = arrivals(5, 0.02, 2)
    for i = 1, 3 do assert.is_true(r.results[i].ok, cjson.encode(r.results[i])) end
    for i = 4, 5 do
      local x = r.results[i]
      assert.is_false(x.ok)
      assert.equal("network", x.kind)
      assert.equal("queue_full", x.reason)
      assert.is_false(x.sent)
      assert.equal(0, x.attempts)
      assert.matches("2 calls of this nginx worker already wait for a worker-thread Lua VM (max_queue)", x.message,
        1, true)
      assert.is_true(x.took < 0.3, "a refused call took " .. x.took .. " s")
    end
    assert.same({ 4, 5, 1, 2, 3 }, r.order)
  end)
end)

describe("wemasy.ngx's handler defaults", function()
  local sb = helpers.sandbox{ window = 3, limits = { default = 1, sync = 1 } }
  local shop = ops_shop(sb)

  local function get(path)
    local status, body = launch.request("GET", shop.url .. path, nil, nil, 30)
    assert.equal(200, status, tostring(body))
    return cjson.decode(body)
  end

  it("hold a page at most ~5 s against an API that accepts and never answers", function()
    -- Listening, never accepting: the kernel completes the handshakes and
    -- takes the requests; no answer ever comes.
    local hung = assert(socket.bind("127.0.0.1", 0, 16))
    finally(function() hung:close() end)
    local _, port = hung:getsockname()
    local r = get("/t/hung?url=http://127.0.0.1:" .. port .. "/api")[1]
    assert.is_false(r.ok)
    assert.equal("timeout", r.kind, r.message)
    assert.equal(2, r.attempts) -- a read is retried once
    assert.is_true(r.took >= 3.5 and r.took <= 5.5, "the call took " .. r.took .. " s")
  end)

  it("wait at most 0.5 s for a limiter slot", function()
    local r = get("/t/quota")
    assert.is_true(r[1].ok, r[1].message)
    assert.is_false(r[2].ok)
    assert.equal("rate_limited", r[2].kind, r[2].message)
    assert.matches("max_wait (0.5 s)", r[2].message, 1, true)
    assert.is_true(r[2].took < 1, "the refused call took " .. r[2].took .. " s")
  end)

end)

describe("wemasy.ngx started from a shell with a Lua 5.4 LUA_CPATH", function()
  local sb = helpers.sandbox{}

  it("names the Lua 5.4 module that ';;' brought in, and what to do", function()
    -- `eval "$(luarocks path)"` for Lua 5.4 exports such a LUA_CPATH; nginx's
    -- ";;" in lua_package_cpath then means it, and Lua 5.4's cjson.so is found first.
    local dir = "/usr/lib/x86_64-linux-gnu/lua/5.4"
    if not proc.exists(dir .. "/cjson.so") then
      return pending("no Lua 5.4 cjson.so in " .. dir)
    end
    local shop, err = launch.start{ base_url = sb.base_url, env = { LUA_CPATH = dir .. "/?.so" } }
    if shop then shop:stop() end
    assert.is_nil(shop)
    assert.matches("wemasy.ngx: " .. dir .. "/cjson.so is not built for LuaJIT (undefined symbol lua_", err, 1, true)
    assert.matches("LUA_CPATH", err, 1, true)
    assert.matches("env -u LUA_CPATH", err, 1, true)
  end)
end)
