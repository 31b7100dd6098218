-- The Redis store (issue 16 item 5) in wemasy.ngx on real nginx: two
-- workers with four thread VMs each, every VM's client on one redis-server
-- (started with a password), beside a plain client in another process (Lua
-- 5.4 when built), all on one token against the sandbox.  nginx runs
-- LuaJIT: this runs on the LuaJIT pass.
if not jit then
  describe("the Redis store in wemasy.ngx", function()
    pending("nginx runs LuaJIT: this spec runs on the LuaJIT pass (build/jit/wemasy/core.so)")
  end)
  return
end

local socket = require("socket")
local cjson = require("cjson")
local core = require("wemasy.core")
local proc = require("wemasy.sandbox.proc")
local helpers = require("support.helpers")
local redis = require("support.redis")
local launch = dofile((helpers.SPEC_DIR:gsub("/spec$", "")) .. "/examples/openresty/launch.lua")

local tokens = require("wemasy.sandbox").tokens

local WORKERS, VMS = 2, 4
local LIMIT, WINDOW, SHARE = 6, 2, 0.5
local SECRET = "ngx-redis-pw-" .. math.random(1e8, 9e8)

-- The nginx side: one client (debug lines on), n calls at once from light
-- threads of one page, each followed by the limiter state of the VM that
-- answers it.  store_timeout = 1: a loaded machine must not make Redis
-- look away (a killed Redis refuses the connect at once anyway).
local NGINX_SIDE = [=[
local cjson = require("cjson")
local wngx = require("wemasy.ngx")
local M, client = {}, nil

local function get()
  client = client or wngx.new{ base_url = "@BASE@", token = "@TOKEN@", timeout = 5, max_retries = 0, debug = true,
    rate_limit = { store = "@URL@", store_timeout = 1, wait = false, fallback_share = @SHARE@,
                   groups = { default = { limit = @LIMIT@, window = @WINDOW@ } } } }
  return client
end

local function spread(n, f)
  local threads, out = {}, { outcomes = {}, stores = {}, pid = ngx.worker.pid() }
  for i = 1, n do threads[i] = ngx.thread.spawn(f, get()) end
  for i = 1, n do
    local ok, outcome, store = ngx.thread.wait(threads[i])
    if not ok then outcome, store = "raised: " .. tostring(outcome), "?" end
    out.outcomes[outcome] = (out.outcomes[outcome] or 0) + 1
    if store then out.stores[store] = (out.stores[store] or 0) + 1 end
  end
  ngx.say(cjson.encode(out))
end

local function state(c)
  local st, err = c:rate_limit()
  return st and st.store or ("error " .. tostring(err))
end

-- n calls: "ok", the server's status ("429"), or the error's kind.
function M.burst()
  spread(tonumber(ngx.var.arg_n), function(c)
    local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
    return body and "ok" or (err.status and tostring(err.status)) or err.kind, state(c)
  end)
end

-- n limiter states, no call to the API.
function M.state()
  spread(tonumber(ngx.var.arg_n), function(c) return "state", state(c) end)
end

-- n calls in one client:batch (one thread VM, its curl multi handle).
function M.batch()
  local c, calls = get(), {}
  for i = 1, tonumber(ngx.var.arg_n) do calls[i] = { "orders_detail", { order_number = "ORD-2025-001" } } end
  local out = { outcomes = {}, stores = {} }
  for _, x in ipairs(c:batch(calls, { concurrency = 4 })) do
    local k = x[1] and "ok" or (x[2].status and tostring(x[2].status)) or x[2].kind
    out.outcomes[k] = (out.outcomes[k] or 0) + 1
  end
  out.stores[state(c)] = 1
  ngx.say(cjson.encode(out))
end

-- Forgets the token's quota (Redis's keys, the host's segment).
function M.reset()
  local ok, err = get():rate_limit_reset()
  ngx.say(cjson.encode{ ok = ok, err = err and tostring(err) })
end

function M.show()
  ngx.say(tostring(get()))
end

return M
]=]

-- Pages of /r/burst until `seconds` pass, from one process: outcomes,
-- stores and the workers that answered, summed, as JSON.
local PAGES = [==[
local launch = dofile(arg[1])
local cjson = require("cjson")
local socket = require("socket")
local url, n, seconds = arg[2], arg[3], tonumber(arg[4])
local sum = { outcomes = {}, stores = {}, pids = {}, pages = {}, slowest = 0 }
local deadline = socket.gettime() + seconds
while socket.gettime() < deadline do
  local t0 = socket.gettime()
  local status, body = launch.request("GET", url .. "/r/burst?n=" .. n)
  sum.slowest = math.max(sum.slowest, socket.gettime() - t0)
  sum.pages[#sum.pages + 1] = tostring(body)
  if status ~= 200 then
    sum.outcomes["page " .. tostring(status)] = (sum.outcomes["page " .. tostring(status)] or 0) + 1
  else
    local r = cjson.decode(body)
    for k, v in pairs(r.outcomes) do sum.outcomes[k] = (sum.outcomes[k] or 0) + v end
    for k, v in pairs(r.stores) do sum.stores[k] = (sum.stores[k] or 0) + v end
    sum.pids[tostring(r.pid)] = true
  end
  socket.sleep(0.05)
end
print(cjson.encode(sum))
]==]

-- A plain client in another process on the same token and Redis.
local PLAIN = [==[
local wemasy = require("wemasy")
local socket = require("socket")
local base, token, url = arg[1], arg[2], arg[3]
local limit, window, seconds, most = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])
local c = wemasy.new{ base_url = base, token = token, max_retries = 0,
  rate_limit = { store = url, store_timeout = 1, wait = false,
                 groups = { default = { limit = limit, window = window } } } }
local counts, stores, calls = {}, {}, 0
local deadline = socket.gettime() + seconds
while socket.gettime() < deadline and calls < (most or math.huge) do
  calls = calls + 1
  local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
  local k = body and "ok" or (err.status and tostring(err.status)) or err.kind
  counts[k] = (counts[k] or 0) + 1
  stores[c:rate_limit().store] = true
  socket.sleep(0.03)
end
local out = {}
for k, v in pairs(counts) do out[#out + 1] = k .. "=" .. v end
for k in pairs(stores) do out[#out + 1] = "store=" .. k end
print(table.concat(out, " "))
c:close()
]==]

-- PLAIN on Lua 5.4 (its own build of wemasy.core) when there is one: one
-- quota across both ABIs.
local function spawn_plain(args)
  local so = launch.root .. "/build/5.4/wemasy/core.so"
  local lua, cpath = helpers.LUA, os.getenv("LUA_CPATH") or ""
  if proc.exists(so) then lua, cpath = "lua5.4", launch.root .. "/build/5.4/?.so;;" end
  local path = os.tmpname()
  proc.write_file(path, PLAIN)
  local argv = {}
  for i, a in ipairs(args) do argv[i] = proc.quote(a) end
  local pipe = assert(io.popen("exec env LUA_CPATH=" .. proc.quote(cpath) .. " " .. lua .. " " .. path .. " "
    .. table.concat(argv, " ")))
  return { pipe = pipe, script = path, lua = lua }
end

local function clients_info(r)
  local info = redis.cli(r, "INFO", "clients") .. "\n" .. redis.cli(r, "INFO", "stats")
  return tonumber(info:match("connected_clients:(%d+)")), tonumber(info:match("total_connections_received:(%d+)"))
end

describe("the Redis store in wemasy.ngx", function()
  local sb = helpers.sandbox{ window = WINDOW, limits = { default = LIMIT, sync = 5 } }
  local r = redis.per_block{ password = SECRET }
  local shop, dir
  local bodies = {} -- every page, for the password check

  lazy_setup(function()
    core._debug_unlink(sb.base_url, tokens.merchant)
    dir = assert(proc.mktemp())
    proc.write_file(dir .. "/ngx_redis.lua", (NGINX_SIDE:gsub("@([%w_]+)@", { BASE = sb.base_url,
      TOKEN = tokens.merchant, URL = r.url, SHARE = tostring(SHARE), LIMIT = tostring(LIMIT),
      WINDOW = tostring(WINDOW) })))
    local err
    shop, err = launch.start{ base_url = sb.base_url, token = tokens.merchant, workers = WORKERS, reuseport = true,
      lua_path = dir .. "/?.lua",
      replace = { { "thread_pool wemasy threads=16;", "thread_pool wemasy threads=" .. VMS .. ";" },
                  { "lua_worker_thread_vm_pool_size 16;", "lua_worker_thread_vm_pool_size " .. VMS .. ";" } },
      server = [[
        location /r/ { content_by_lua_block { require("ngx_redis")[ngx.var.uri:match("^/r/(%w+)$")]() } }
]] }
    assert(shop, err)
  end)

  lazy_teardown(function()
    if shop then shop:stop() end
    if dir then proc.remove_tree(dir) end
    if sb.base_url then core._debug_unlink(sb.base_url, tokens.merchant) end
  end)

  local function page(path)
    local status, body = launch.request("GET", shop.url .. path, nil, nil, 30)
    bodies[#bodies + 1] = tostring(body)
    assert.equal(200, status, tostring(body))
    return cjson.decode(body)
  end

  -- Pages from `procs` processes at once for `seconds`, summed.
  local function pages(procs, n, seconds)
    local kids, sum = {}, { outcomes = {}, stores = {}, pids = {} }
    for i = 1, procs do kids[i] = helpers.spawn(PAGES, { launch.dir .. "/launch.lua", shop.url, n, seconds }) end
    for i = 1, procs do
      local out = helpers.finish(kids[i])
      local ok, x = pcall(cjson.decode, out)
      assert(ok, "pages said: " .. out)
      for _, b in ipairs(x.pages) do bodies[#bodies + 1] = b end
      for k, v in pairs(x.outcomes) do sum.outcomes[k] = (sum.outcomes[k] or 0) + v end
      for k, v in pairs(x.stores) do sum.stores[k] = (sum.stores[k] or 0) + v end
      for k in pairs(x.pids) do sum.pids[k] = true end
    end
    return sum
  end

  local function count(set)
    local n = 0
    for _ in pairs(set) do n = n + 1 end
    return n
  end

  it("is one exact quota for every worker, thread VM and a plain client: 0 over the sandbox's limit", function()
    sb:reset()
    local seconds = 3
    local t0 = socket.gettime()
    local plain = spawn_plain{ sb.base_url, tokens.merchant, r.url, LIMIT, WINDOW, seconds }
    local sum = pages(2, 6, seconds)
    local out = plain.pipe:read("*a")
    plain.pipe:close()
    os.remove(plain.script)
    local took = socket.gettime() - t0
    local plain_ok = tonumber(out:match("ok=(%d+)") or 0)
    local ngx_ok = sum.outcomes.ok or 0
    local sent = sb:state().requests["orders/detail"] or 0
    local summary = cjson.encode(sum.outcomes) .. " stores " .. cjson.encode(sum.stores) .. " plain (" .. plain.lua
      .. ") " .. out:gsub("%s+$", "") .. " sandbox " .. sent .. " in " .. string.format("%.1f", took) .. " s"
    print("\n# " .. summary)
    -- Every call the sandbox saw was answered 200: none over its limit.
    assert.equal(ngx_ok + plain_ok, sent, summary)
    for k in pairs(sum.outcomes) do assert.is_true(k == "ok" or k == "rate_limited", summary) end
    assert.is_nil(out:find("429", 1, true), summary)
    assert.is_true(ngx_ok >= 1, summary)
    assert.is_true((sum.outcomes.rate_limited or 0) > 0, "the pages never exceeded the quota: " .. summary)
    -- at most LIMIT per WINDOW + margin, and at least the first window's
    assert.is_true(sent >= LIMIT and sent <= LIMIT * (math.floor(took / WINDOW) + 1), summary)
    assert.same({ redis = sum.stores.redis }, sum.stores, summary)
    assert.matches("store=redis", out, 1, true)
    assert.is_nil(out:find("store=shm", 1, true), summary)
    assert.is_true(count(sum.pids) >= 2, "only one worker answered: " .. summary)
    -- Redis's log holds no more than the quota
    local prefix = redis.prefix(sb.base_url, tokens.merchant)
    assert.is_true(tonumber(redis.cli(r, "ZCARD", prefix .. "default:log")) <= LIMIT)
  end)

  it("counts a plain client's grants for the pages", function()
    assert.is_true(page("/r/reset").ok)
    sb:reset()
    local t0 = socket.gettime()
    local plain = spawn_plain{ sb.base_url, tokens.merchant, r.url, LIMIT, WINDOW, 10, LIMIT }
    local out = plain.pipe:read("*a")
    plain.pipe:close()
    os.remove(plain.script)
    assert.equal("ok=" .. LIMIT .. " store=redis", (out:gsub("%s+$", "")))
    local x = page("/r/burst?n=4")
    assert.is_true(socket.gettime() - t0 < WINDOW, "took " .. socket.gettime() - t0 .. " s")
    assert.same({ rate_limited = 4 }, x.outcomes)
    assert.same({ redis = 4 }, x.stores)
    assert.equal(LIMIT, sb:state().requests["orders/detail"])
  end)

  it("serves client:batch from Redis, exact", function()
    assert.is_true(page("/r/reset").ok)
    sb:reset()
    local x = page("/r/batch?n=" .. (LIMIT + 3))
    assert.same({ ok = LIMIT, rate_limited = 3 }, x.outcomes)
    assert.same({ redis = 1 }, x.stores)
    assert.equal(LIMIT, sb:state().requests["orders/detail"])
    local log = shop:error_log()
    assert.matches("wemasy: orders/detail %-> 200 in [%d.]+ ms %(1 attempt, server quota %d+/%d+, default slots %d+/"
      .. LIMIT .. " %(redis%), batch%)", log)
  end)

  it("keeps one Redis connection per thread VM, not one per call", function()
    page("/r/burst?n=8")
    local held, before = clients_info(r)
    local calls = 0
    for _ = 1, 6 do
      local x = page("/r/burst?n=8")
      calls = calls + 8
      assert.same({ redis = 8 }, x.stores)
    end
    local now, after = clients_info(r)
    print(("\n# connected_clients %d then %d, total_connections_received +%d over %d calls (and their states)")
      :format(held, now, after - before, calls))
    -- the VMs' connections and redis-cli's own
    assert.is_true(now <= WORKERS * VMS + 1, "connected_clients " .. now)
    assert.is_true(now >= 2, "connected_clients " .. now)
    -- new connections: redis-cli's (one per INFO) and VMs not used before, never one per call
    assert.is_true(after - before <= 2 + WORKERS * VMS, "connections received " .. (after - before))
  end)

  it("leaves no connection of the old workers behind after nginx -s reload", function()
    local function workers()
      return tonumber(proc.capture("env -u LD_PRELOAD pgrep -c -P " .. shop.pid) or "")
    end
    page("/r/burst?n=8")
    assert(proc.signal(shop.pid, "HUP"))
    -- the old workers quit once idle; the new ones connect on their first calls
    local t0 = socket.gettime()
    local now
    repeat
      assert.is_true(socket.gettime() - t0 < 10, "connected_clients " .. tostring(now) .. ", workers "
        .. tostring(workers()))
      proc.sleep(0.1)
      local x = page("/r/burst?n=8")
      assert.same({ redis = 8 }, x.stores)
      now = clients_info(r)
    until workers() == WORKERS and now <= WORKERS * VMS + 1
  end)

  it("answers pages from the host's share while Redis is down, then rejoins", function()
    page("/r/burst?n=4") -- every VM's client connected (and its script loaded)
    sb:reset() -- the fallback knows nothing of Redis's grants: the sandbox's window starts afresh
    redis.kill(r)
    finally(function() if not r.pid then redis.restart(r) end end)
    local t0 = socket.gettime()
    local x = page("/r/burst?n=8")
    local took = socket.gettime() - t0
    -- SHARE of LIMIT for the host, every worker and VM in its shared memory
    assert.same({ ok = math.floor(LIMIT * SHARE), rate_limited = 8 - math.floor(LIMIT * SHARE) }, x.outcomes)
    assert.same({ shm = 8 }, x.stores)
    assert.is_true(took < 2, "the page took " .. took .. " s while Redis was down")
    -- more pages until both workers answered one, within the window: nothing more
    local pids = { [x.pid] = true }
    for _ = 1, 30 do
      if count(pids) == WORKERS then break end
      x = page("/r/burst?n=8")
      pids[x.pid] = true
      assert.same({ rate_limited = 8 }, x.outcomes)
      assert.same({ shm = 8 }, x.stores)
    end
    assert.equal(WORKERS, count(pids))
    assert.is_true(socket.gettime() - t0 < WINDOW, "the pages took " .. socket.gettime() - t0 .. " s")
    assert.equal(math.floor(LIMIT * SHARE), sb:state().requests["orders/detail"])
    local log = shop:error_log()
    assert.matches("wemasy: orders/detail %-> 200 in [%d.]+ ms %(1 attempt, server quota %d+/%d+, default slots %d+/"
      .. math.floor(LIMIT * SHARE) .. " %(shm%)", log)

    redis.restart(r)
    -- each VM's breaker lets it ask again within its 3 s; the states ask Redis
    local t1 = socket.gettime()
    local seen, first = {}, nil
    repeat
      assert.is_true(socket.gettime() - t1 < 10, "not rejoined: " .. cjson.encode(seen))
      proc.sleep(0.1)
      local a = page("/r/state?n=8")
      seen[tostring(a.pid)] = a.stores.redis == 8
      first = first or (a.stores.redis and socket.gettime() - t1)
      local all = count(seen) == WORKERS
      for _, v in pairs(seen) do all = all and v end
    until all
    print(("\n# a VM rejoined %.1f s, all %.1f s after Redis was back: %s"):format(first, socket.gettime() - t1,
      cjson.encode(seen)))
    sb:reset()
    x = page("/r/burst?n=8")
    assert.same({ redis = 8 }, x.stores)
    assert.same({ ok = LIMIT, rate_limited = 8 - LIMIT }, x.outcomes)
    assert.equal(LIMIT, sb:state().requests["orders/detail"])
    assert.is_true((clients_info(r)) <= WORKERS * VMS + 1)
  end)

  it("answers every page when Redis dies while pages are in flight", function()
    sb:reset()
    local kids = {}
    for i = 1, 2 do kids[i] = helpers.spawn(PAGES, { launch.dir .. "/launch.lua", shop.url, 4, 1.5 }) end
    proc.sleep(0.5)
    redis.kill(r)
    finally(function() if not r.pid then redis.restart(r) end end)
    local sum = { outcomes = {}, stores = {}, slowest = 0 }
    for i = 1, 2 do
      local x = cjson.decode(helpers.finish(kids[i]))
      sum.slowest = math.max(sum.slowest, x.slowest)
      for _, b in ipairs(x.pages) do bodies[#bodies + 1] = b end
      for k, v in pairs(x.outcomes) do sum.outcomes[k] = (sum.outcomes[k] or 0) + v end
      for k, v in pairs(x.stores) do sum.stores[k] = (sum.stores[k] or 0) + v end
    end
    redis.restart(r)
    local summary = cjson.encode(sum)
    print("\n# Redis killed under pages: " .. summary)
    -- Pages all 200 (no page error, nothing raised); the calls were answered,
    -- refused by the limiter, or (the fallback's share on top of what Redis
    -- granted in the sandbox's window: the price of fallback_share) a 429.
    for k in pairs(sum.outcomes) do assert.is_true(k == "ok" or k == "rate_limited" or k == "429", summary) end
    assert.is_true((sum.stores.redis or 0) > 0 and (sum.stores.shm or 0) > 0, summary)
    -- a page of 4 calls (and their states) waits on no dead Redis: its sockets close with it
    assert.is_true(sum.slowest < 3, summary)
  end)

  it("says which store served in the debug line, and never shows the password", function()
    local log = shop:error_log()
    assert.matches("wemasy: orders/detail %-> 200 in [%d.]+ ms %(1 attempt, server quota %d+/%d+, default slots %d+/"
      .. LIMIT .. " %(redis%)", log)
    assert.matches("wemasy: orders/detail %-> rate_limited in [%d.]+ ms %(0 attempts, default slots 0/"
      .. LIMIT .. " %(redis%)", log)
    local shown = launch.request("GET", shop.url .. "/r/show")
    bodies[#bodies + 1] = tostring(select(2, launch.request("GET", shop.url .. "/r/show")))
    assert.equal(200, shown)
    assert.is_true(#bodies > 10)
    assert.is_nil(log:find(SECRET, 1, true), "the password is in nginx's error log")
    for _, b in ipairs(bodies) do assert.is_nil(b:find(SECRET, 1, true), b) end
    assert.is_nil(redis.cli(r, "KEYS", "*"):find(tokens.merchant, 1, true))
  end)
end)
