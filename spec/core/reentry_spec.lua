-- A call in progress runs Lua: the clock, sleep and random hooks, and a
-- batch's progress callback.  That Lua may use the very client the call is
-- running on.  Before these specs: close() from a hook freed the handle whose
-- response the call then read (heap use after free), a request from a hook
-- overwrote the outer call's response with its own (a wrong answer for the
-- outer call), close() from a progress callback crashed the batch (NULL
-- pool), and a batch from a progress callback aborted the outer batch's
-- transfers, which then waited forever.
local core = require("wemasy.core")
local wemasy = require("wemasy")
local helpers = require("support.helpers")

describe("re-entry from hooks and progress callbacks", function()
  local srv

  lazy_setup(function() srv = helpers.start_server() end)
  lazy_teardown(function() helpers.stop_server(srv) end)

  -- A core client whose clock hook runs `on_tick(n)` on the n-th reading.
  local function hooked(on_tick, extra)
    local n = 0
    local opts = { base_url = srv.url, rate_limit = { shared = false }, max_retries = 0,
                   clock = function()
                     n = n + 1
                     on_tick(n)
                     return 1000 + n
                   end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return core.new(opts)
  end

  local function sleeps(n)
    local items = {}
    for i = 1, n do items[i] = { path = "/sleep/" .. (10 * i), body = "" } end
    return items
  end

  it("close() from the clock hook: the call returns its own response, then the client is closed", function()
    local c
    c = hooked(function(n) if n == 2 then c:close() end end)
    local status, body, headers, attempts = c:request("/headers", "{}")
    assert.equal(200, status)
    assert.equal("{}", body)
    assert.equal("a, b", headers["x-multi"])
    assert.equal(1, attempts)
    assert.matches("%[closed%]", tostring(c))
    local s, kind, msg = c:request("/echo", "")
    assert.is_nil(s)
    assert.equal("closed", kind)
    assert.equal("client is closed", msg)
    assert.is_true(c:close())
  end)

  it("close() from the sleep hook between retries sends nothing more", function()
    local c
    c = core.new{ base_url = srv.url, rate_limit = false, max_retries = 3, backoff = { base = 0.01, cap = 0.01 },
                  random = function() return 1 end, sleep = function() c:close() end }
    local before = tonumber(helpers.get(srv.url, "/count/reentry-sleep"))
    local s, kind, _, _, attempts = c:request("/c/reentry-sleep/status/503", "", true, nil, true)
    assert.is_nil(s)
    assert.equal("closed", kind)
    assert.equal(1, attempts)
    assert.equal(before + 1, tonumber(helpers.get(srv.url, "/count/reentry-sleep")))
  end)

  it("a request from a hook of a request on the same client raises, and the client stays usable", function()
    local c, inner
    c = hooked(function(n)
      if n == 2 then inner = { pcall(c.request, c, "/big/100000", "") } end
    end)
    local status, body = c:request("/headers", "{}")
    assert.equal(200, status)
    assert.equal("{}", body) -- its own body, not the inner call's
    assert.is_false(inner[1])
    assert.is_string(inner[2])
    assert.matches("hook of a request in progress", inner[2])
    status, body = c:request("/big/10", "")
    assert.equal(200, status)
    assert.equal(("x"):rep(10), body)
    c:close()
  end)

  it("a hook that raises leaves the client usable", function()
    local c = hooked(function(n) if n == 2 then error("hook failed") end end)
    local ok, why = pcall(c.request, c, "/echo", "")
    assert.is_false(ok)
    assert.matches("hook failed", why)
    assert.equal(200, (c:request("/headers", "")))
    c:close()
  end)

  it("close() from a batch's progress callback: started calls finish, the rest are closed", function()
    local c = core.new{ base_url = srv.url, rate_limit = false }
    local results = helpers.core_batch(c, sleeps(12), 2, function(done) if done == 1 then c:close() end end)
    assert.equal(12, #results)
    local ok, closed = 0, 0
    for _, r in ipairs(results) do
      if r.status == 200 then ok = ok + 1 elseif r.kind == "closed" then closed = closed + 1 end
    end
    assert.is_true(ok >= 2)
    assert.equal(12, ok + closed)
    assert.is_true(closed > 0)
    assert.matches("%[closed%]", tostring(c))
    assert.equal("closed", helpers.core_batch(c, { { path = "/echo", body = "" } })[1].kind)
  end)

  it("a batch from a batch's progress callback raises; the outer batch and the client stay usable", function()
    local c = core.new{ base_url = srv.url, rate_limit = false }
    local inner
    local results = helpers.core_batch(c, sleeps(6), 2, function(done)
      if done == 1 then inner = { pcall(helpers.core_batch, c, { { path = "/echo", body = "" } }) } end
    end)
    assert.is_false(inner[1])
    assert.matches("progress callback or a hook of a batch in progress", inner[2])
    for i = 1, 6 do assert.equal(200, results[i].status) end
    assert.equal(200, helpers.core_batch(c, { { path = "/headers", body = "" } })[1].status)
    c:close()
  end)

  it("a plain request from a batch's progress callback works", function()
    local c = core.new{ base_url = srv.url, rate_limit = false }
    local bodies = {}
    local results = helpers.core_batch(c, sleeps(4), 2, function()
      local _, body = c:request("/big/3", "")
      bodies[#bodies + 1] = body
    end)
    assert.equal(4, #bodies)
    for i = 1, 4 do
      assert.equal(200, results[i].status)
      assert.equal("slept", results[i].body)
      assert.equal("xxx", bodies[i])
    end
    c:close()
  end)

  it("the wemasy client: close() from the batch progress callback", function()
    local sb_url = srv.url .. "/c/reentry-lua"
    local c = wemasy.new{ base_url = sb_url, rate_limit = false, max_retries = 0 }
    local calls = {}
    for i = 1, 10 do calls[i] = { "no/such-endpoint", { i = i } } end
    local results = c:batch(calls, { concurrency = 2, progress = function(done)
      if done == 2 then c:close() end
    end })
    assert.equal(10, #results)
    for _, r in ipairs(results) do
      assert.truthy(r[2])
      assert.truthy(wemasy.is_error(r[2]))
    end
    assert.equal("invalid_argument", results[10][2].kind)
  end)
end)
