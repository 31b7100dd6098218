-- Specs for the Redis store (csrc/limiter_redis.c, issue 16): one quota for
-- every host on a token, against a real redis-server that the specs start on
-- a free loopback port (spec/support/redis.lua).  "Hosts" are processes with
-- a private /dev/shm where the machine allows it.  Windows are short and real.
local core = require "wemasy.core"
local socket = require "socket"
local h = require "support.helpers"
local redis = require "support.redis"
local shared_quota = require "support.shared_quota"

local srv = h.tiny_server()

-- Under valgrind this process is ~30 times slower: Redis's deadline must not
-- count our own slowness as Redis's.
local VALGRIND = os.getenv("WEMASY_UNDER_VALGRIND") ~= nil
local TIMEOUT = VALGRIND and 2 or nil

-- A core client on tiny_server with the Redis store of `r`.
local function client(r, token, rate, extra)
  rate = rate or {}
  rate.store = rate.store or r.url
  rate.store_timeout = rate.store_timeout or TIMEOUT
  local opts = { base_url = srv.url, token = token, max_retries = 0, rate_limit = rate }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return core.new(opts)
end

local function quota(limit, window)
  return { default = { limit = limit, window = window } }
end

-- A client of `r` on a token of its own (tag) with a quota of `limit` per
-- 30 s that does not wait, and the prefix of its keys in Redis.
local function keyed_client(r, tag, limit)
  local token = h.token(tag)
  local prefix = redis.prefix(srv.url, token)
  return client(r, token, { wait = false, groups = quota(limit, 30) }), prefix
end

-- Polls f until it is true, for at most `seconds`; the time it took.
local function within(seconds, f)
  local t0 = socket.gettime()
  while not f() do
    assert.is_true(socket.gettime() - t0 < seconds, "not within " .. seconds .. " s")
    socket.sleep(0.02)
  end
  return socket.gettime() - t0
end

describe("rate_limit.store", function()
  it("is shm by default; local and shared = false keep it in-process", function()
    local token = h.token("kinds")
    local cases = { { nil, "shm" }, { { store = "shm" }, "shm" }, { { store = "local" }, "local" },
                    { { shared = false }, "local" }, { { store = "redis://127.0.0.1:1", shared = false }, "local" } }
    for _, case in ipairs(cases) do
      local c = core.new { base_url = srv.url, token = token, rate_limit = case[1] }
      assert.equal(case[2], c:rate_limit().store)
      c:close()
    end
    h.forget_tokens(srv.url)
  end)

  it("refuses a bad store or URL by the option's name, never quoting it", function()
    local secret = "s3cr3t-pw"
    for _, case in ipairs {
      { "memcached", "must be \"shm\", \"local\" or a redis://" },
      { "rediss://:" .. secret .. "@127.0.0.1:6379", "no TLS" },
      { "redis://:" .. secret .. "@127.0.0.1:99999", "bad port" },
      { "redis://:" .. secret .. "@:6379", "no host" },
      { "redis://:" .. secret .. "@127.0.0.1:6379/x", "bad database number" },
      { "redis://" .. secret .. "@127.0.0.1:6379", "without a ':'" },
      { "redis://:%zz" .. secret .. "@127.0.0.1", "bad %-escape" },
    } do
      local ok, err = pcall(core.new, { base_url = srv.url, rate_limit = { store = case[1] } })
      assert.is_false(ok)
      assert.matches("option 'rate_limit.store'", err, 1, true)
      assert.matches(case[2], err, 1, true)
      assert.is_nil(err:find(secret, 1, true), err)
    end
  end)

  it("checks store_timeout and fallback_share", function()
    for _, case in ipairs {
      { { store_timeout = 0 }, "rate_limit.store_timeout" }, { { store_timeout = 11 }, "rate_limit.store_timeout" },
      { { fallback_share = 0 }, "rate_limit.fallback_share" },
      { { fallback_share = 1.5 }, "rate_limit.fallback_share" },
      { { fallback_share = 0 / 0 }, "rate_limit.fallback_share" }, { { store = 1 }, "rate_limit.store" },
    } do
      local ok, err = pcall(core.new, { base_url = srv.url, rate_limit = case[1] })
      assert.is_false(ok)
      assert.matches("option '" .. case[2] .. "'", err, 1, true)
    end
    assert.equal(0.1, core.options.rate_limit.fields.store_timeout.default)
    assert.equal(0.25, core.options.rate_limit.fields.fallback_share.default)
  end)
end)

describe("the Redis store", function()
  local r = redis.per_block()

  after_each(function() h.forget_tokens(srv.url) end)

  it("is one quota for every client on the token, keyed by a hash with TTLs", function()
    local token = h.token("one")
    local rate = { wait = false, groups = quota(3, 30) }
    local a, b = client(r, token, rate), client(r, token, rate)
    assert.equal(200, (a:request("/echo", "{}")))
    assert.equal(200, (b:request("/echo", "{}")))
    assert.equal(200, (a:request("/echo", "{}")))
    assert.equal("rate_limited", select(2, b:request("/echo", "{}")))
    local rl = a:rate_limit()
    assert.equal("redis", rl.store)
    assert.equal(0, rl.remaining)
    assert.is_true(rl.reset_in > 29 and rl.reset_in <= 30.25, rl.reset_in)
    local prefix = redis.prefix(srv.url, token)
    local keys = redis.cli(r, "KEYS", prefix .. "*")
    assert.matches(prefix .. "default:log", keys, 1, true)
    assert.is_nil(redis.cli(r, "KEYS", "*"):find(token, 1, true))
    local ttl = tonumber(redis.cli(r, "PTTL", prefix .. "default:log"))
    assert.is_true(ttl > 29000 and ttl <= 31250, ttl)
    a:close()
    b:close()
  end)

  it("takes one round trip per acquire, also when the server's counts agree with the log", function()
    local token = h.token("trips")
    local route = "/rl/trips-" .. math.random(1, 1e6) .. "/50/10000" -- X-RateLimit-Limit/-Remaining
    local c = client(r, token, { groups = quota(50, 10) })
    assert.equal(200, (c:request(route, "{}"))) -- connected, script loaded, N learnt
    redis.cli(r, "CONFIG", "RESETSTAT")
    for _ = 1, 10 do assert.equal(200, (c:request(route, "{}"))) end
    local stats = redis.cli(r, "INFO", "commandstats")
    assert.equal("10", stats:match("cmdstat_evalsha:calls=(%d+)"))
    assert.is_nil(stats:match("cmdstat_eval:"))
    c:close()
  end)

  it("learns for every host: a lower Remaining, then a 429's Retry-After", function()
    local token = h.token("learn")
    local a = client(r, token, { groups = quota(10, 30) })
    local b = client(r, token, { wait = false, groups = quota(10, 30) })
    assert.equal(200, (a:request("/limits/10/4", "{}")))
    assert.equal(4, b:rate_limit().remaining)
    assert.equal(429, (a:request("/429/3", "{}")))
    local rl = b:rate_limit()
    assert.is_true(rl.closed_for > 2 and rl.closed_for <= 3, rl.closed_for)
    assert.equal("rate_limited", select(2, b:request("/echo", "{}")))
    a:close()
    b:close()
  end)

  -- Hosts (processes, private /dev/shm when possible) against a server
  -- that counts like Laravel's throttle: nothing over the limit.
  it("is exact across hosts: 0 over the server's limit", function()
    local token = h.token("hosts")
    local name = "rh-" .. math.random(1, 1e6)
    local kids = {}
    local t0 = socket.gettime()
    for i = 1, 3 do
      kids[i] = redis.spawn_host(shared_quota.CHILD, { srv.url, token, name, 4, 1000, 4, r.url, 0.1 })
    end
    for _, stores in ipairs(shared_quota.collect(srv, name, kids, 12)) do
      assert.is_true(stores.redis and not stores.shm, "a host did not use Redis alone")
    end
    -- 12 at 4 per 1.1 s: at least two full windows
    assert.is_true(socket.gettime() - t0 >= 2.2)
  end)

  it("reloads its script after SCRIPT FLUSH and FUNCTION FLUSH, keeping the log", function()
    local token = h.token("flush")
    local c = client(r, token, { wait = false, groups = quota(3, 30) })
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("OK", redis.cli(r, "SCRIPT", "FLUSH"))
    assert.equal("OK", redis.cli(r, "FUNCTION", "FLUSH"))
    assert.equal(200, (c:request("/echo", "{}")))
    local rl = c:rate_limit()
    assert.equal("redis", rl.store)
    assert.equal(1, rl.remaining)
    c:close()
  end)

  it("repairs garbage in its keys, as a corrupt segment", function()
    local c, prefix = keyed_client(r, "garbage", 3)
    redis.cli(r, "SET", prefix .. "default:log", "not a log")
    redis.cli(r, "HSET", prefix .. "default:state", "last", "nan", "limit", "x", "closed", "1e300", "seq", "-3")
    assert.equal(200, (c:request("/echo", "{}")))
    local rl = c:rate_limit()
    assert.same({ 3, 2, 0, "redis" }, { rl.limit, rl.remaining, rl.closed_for, rl.store })
    -- a send time far in the future, and a state that is not a hash
    redis.cli(r, "ZADD", prefix .. "default:log", "1e12", "future")
    redis.cli(r, "SET", prefix .. "default:state", "junk")
    rl = c:rate_limit()
    assert.same({ 3, 1, "redis" }, { rl.limit, rl.remaining, rl.store }) -- counted as sent now
    for _, key in ipairs { "log", "state" } do -- what was repaired expires too
      local ttl = tonumber(redis.cli(r, "PTTL", prefix .. "default:" .. key))
      assert.is_true(ttl > 0, key .. "'s PTTL is " .. ttl)
    end
    assert.is_true(rl.reset_in == 0)
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
    c:close()
  end)

  it("stands still when Redis's clock steps back, rather than shrink the log", function()
    local c, prefix = keyed_client(r, "stepback", 2)
    assert.equal(200, (c:request("/echo", "{}")))
    -- as if TIME had read 10 s later before: the store keeps to that time
    local sec, usec = redis.cli(r, "TIME"):match("^(%d+)\n(%d+)$")
    redis.cli(r, "HSET", prefix .. "default:state", "last", string.format("%.6f", sec + usec / 1e6 + 10))
    assert.equal(200, (c:request("/echo", "{}")))
    local rl = c:rate_limit()
    assert.equal(0, rl.remaining)
    -- the first send frees a span after it, measured from the time kept: 30.25 - 10 s, not sooner
    assert.is_true(rl.reset_in > 20 and rl.reset_in <= 20.3, rl.reset_in)
    assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
    c:close()
  end)

  it("keeps a grant of a process killed while it holds one, and is not wedged", function()
    local token = h.token("killed")
    local child = redis.spawn_host([[
      local core = require "wemasy.core"
      local c = core.new { base_url = arg[1], token = arg[2], max_retries = 0,
        rate_limit = { store = arg[3], groups = { default = { limit = 2, window = 1 } } } }
      print("SENDING")
      io.stdout:flush()
      c:request("/sleep/20000", "{}")
    ]], { srv.url, token, r.url })
    assert.equal("SENDING", child.pipe:read("*l"))
    local c = client(r, token, { wait = false, groups = quota(2, 1) })
    within(3, function() return c:rate_limit().remaining == 1 end)
    h.kill(child)
    h.finish(child)
    assert.equal(200, (c:request("/echo", "{}")))
    -- the dead one's slot frees with its window
    within(3, function() return c:rate_limit().remaining == 2 end)
    c:close()
  end)

  it("gives up on a Redis slower than store_timeout, then comes back to it", function()
    local token = h.token("slow")
    local timeout = VALGRIND and 1 or 0.1
    local c = client(r, token, { store_timeout = timeout, groups = quota(8, 10) })
    assert.equal(200, (c:request("/echo", "{}")))
    local sleeper = io.popen("redis-cli -h 127.0.0.1 -p " .. r.port .. " DEBUG SLEEP "
      .. (VALGRIND and 4 or 1) .. " 2>&1")
    socket.sleep(0.2) -- the sleeper's command is in
    local t0 = socket.gettime()
    assert.equal(200, (c:request("/echo", "{}")))
    local took = socket.gettime() - t0
    assert.equal("shm", c:rate_limit().store) -- Redis still asleep
    assert.is_true(took < timeout + (VALGRIND and 1.5 or 0.4), "waited " .. took .. " s on a sleeping Redis")
    sleeper:read("*a")
    sleeper:close()
    -- one failure is not an outage: the next call asks Redis again
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("redis", c:rate_limit().store)
    c:close()
  end)

  it("falls back to the host's share when Redis dies, and rejoins when it is back", function()
    local token = h.token("outage")
    local c = client(r, token, { wait = false, groups = quota(8, 30), fallback_share = 0.25 })
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("redis", c:rate_limit().store)
    redis.kill(r)
    -- 8 * 0.25 = 2 for this host while Redis is away
    local t0 = socket.gettime()
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("rate_limited", select(2, c:request("/echo", "{}")))
    local rl = c:rate_limit()
    assert.same({ 2, 0, "shm" }, { rl.limit, rl.remaining, rl.store })
    assert.is_true(socket.gettime() - t0 < (VALGRIND and 5 or 1), "the fallback took " .. socket.gettime() - t0 .. " s")
    redis.restart(r)
    -- the log died with Redis (no persistence): 8 again once the breaker lets it ask
    local back = within(10, function() return c:rate_limit().store == "redis" end)
    assert.is_true(back < (VALGRIND and 8 or 4), "rejoined after " .. back .. " s")
    assert.equal(200, (c:request("/echo", "{}")))
    c:close()
  end)

  it("forgets the token's quota on reset, every group and nothing else", function()
    local token, other = h.token("reset"), h.token("kept")
    local c = client(r, token, { wait = false, groups = quota(2, 30) })
    local d = client(r, other, { wait = false, groups = quota(2, 30) })
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal(200, (c:request("/echo", "{}", true, "sync")))
    assert.equal(200, (d:request("/echo", "{}")))
    assert.is_true(c:_debug_limiter_reset())
    assert.equal("", redis.cli(r, "KEYS", redis.prefix(srv.url, token) .. "*"))
    assert.equal(2, c:rate_limit().remaining)
    assert.equal(1, d:rate_limit().remaining)
    c:close()
    d:close()
  end)

  it("connects anew in a child of fork(), never on the parent's socket", function()
    local token = h.token("fork")
    local c = client(r, token, { groups = quota(10, 30) })
    assert.equal(200, (c:request("/echo", "{}")))
    local function connections() return tonumber(redis.cli(r, "INFO", "clients"):match("connected_clients:(%d+)")) end
    local before = connections()
    local pid = core._debug_fork()
    if pid == 0 then
      local ok = c:request("/echo", "{}") == 200 and c:rate_limit().store == "redis"
      -- hold the connection open until the parent has counted it
      socket.sleep(VALGRIND and 2 or 0.5)
      os.exit(ok and 0 or 1, false)
    end
    within(VALGRIND and 5 or 2, function() return connections() == before + 1 end)
    assert.equal(0, core._debug_wait(pid))
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal(7, c:rate_limit().remaining) -- parent and child drew from one quota
    c:close()
  end)

  it("learns on the host while falling back, sharing out the server's count", function()
    local token = h.token("fblearn")
    local c = client(r, token, { wait = false, groups = quota(8, 30), fallback_share = 0.5 })
    redis.kill(r)
    finally(function() redis.restart(r) end)
    -- the server has 5 of 8 left; this host's half (4) less the 4 other hosts may take leaves 1
    assert.equal(200, (c:request("/limits/8/5", "{}")))
    local rl = c:rate_limit()
    assert.same({ 4, 1, "shm" }, { rl.limit, rl.remaining, rl.store })
    assert.equal(429, (c:request("/429/2", "{}")))
    rl = c:rate_limit()
    assert.is_true(rl.closed_for > 1 and rl.closed_for <= 2, rl.closed_for)
    c:close()
  end)

  it("serves client:batch from Redis", function()
    local token = h.token("batch")
    local name = "rb-" .. math.random(1, 1e6)
    local c = client(r, token, { margin = 0.1, groups = quota(3, 1) })
    local calls = {}
    for i = 1, 6 do calls[i] = { path = "/rl/" .. name .. "/3/1000", body = "{}" } end
    local results = h.core_batch(c, calls, 4)
    for i = 1, 6 do assert.equal(200, results[i].status) end
    assert.equal("6 0", h.get(srv.url, "/rlstats/" .. name))
    assert.equal("redis", c:rate_limit().store)
    c:close()
  end)
end)

describe("a Redis password", function()
  local SECRET = "pw-" .. math.random(1e8, 9e8)
  local r = redis.per_block { password = SECRET }

  after_each(function() h.forget_tokens(srv.url) end)

  it("authenticates, and a wrong one falls back without saying it", function()
    local token = h.token("auth")
    local c = client(r, token, { groups = quota(5, 10) })
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("redis", c:rate_limit().store)
    c:close()
    local wrong = "wrong-" .. SECRET
    c = client(r, token, { store = "redis://:" .. wrong .. "@127.0.0.1:" .. r.port, groups = quota(5, 10) })
    assert.equal(200, (c:request("/echo", "{}")))
    assert.equal("shm", c:rate_limit().store)
    assert.is_nil(tostring(c):find(wrong, 1, true))
    c:close()
  end)

  it("never appears in a hook, the debug line, an error or tostring", function()
    local wemasy = require "wemasy"
    local seen = {}
    local c = wemasy.new { base_url = srv.url .. "/services/webshop/v1", token = h.token("redact"), max_retries = 0,
      rate_limit = { store = r.url }, debug = function(line) seen[#seen + 1] = line end,
      hooks = { on_request = function(i) seen[#seen + 1] = i end, on_response = function(i) seen[#seen + 1] = i end } }
    local _, err = c:call("orders/detail", { order_number = "NOPE" })
    seen[#seen + 1] = err
    seen[#seen + 1] = tostring(c)
    local text = require("wemasy.pretty").format(seen)
    assert.matches("redis", text, 1, true)
    assert.is_nil(text:find(SECRET, 1, true), text)
    c:close()
  end)

  it("is taken from --redis and WEMASY_REDIS_URL by the CLI", function()
    local base = srv.url .. "/services/webshop/v1"
    local token = h.token("cli")
    local _, out, err = h.cli({ "--base-url", base, "--debug", "orders/detail", "order_number=X" },
      { WEMASY_REDIS_URL = r.url, WEMASY_TOKEN = token })
    assert.matches("(redis)", err, 1, true) -- the debug line: Redis served
    assert.is_nil((out .. err):find(SECRET, 1, true))
    assert.is_truthy(redis.cli(r, "KEYS", redis.prefix(base, token) .. "*"):find("default", 1, true))
    local code
    code, _, err = h.cli({ "--base-url", base, "--redis", "rediss://:" .. SECRET .. "@127.0.0.1:1", "rate-limit" },
      { WEMASY_TOKEN = token })
    assert.equal(2, code)
    assert.matches("--redis", err, 1, true)
    assert.matches("no TLS", err, 1, true)
    assert.is_nil(err:find(SECRET, 1, true), err)
    h.forget_tokens(base)
  end)
end)
