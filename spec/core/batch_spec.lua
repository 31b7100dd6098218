-- Specs for client:batch of wemasy.core: many calls at once on one curl
-- multi handle, each through the limiter and the retry policy, results in
-- input order, one bad item never sinking the others.
local core = require "wemasy.core"
local h = require "support.helpers"
local socket = require "socket"

local batch = h.core_batch

local srv = h.tiny_server()

local function counter() return h.counter("b") end
local function count(name) return h.count(srv, name) end

local function client(opts)
  opts = opts or {}
  opts.base_url = opts.base_url or srv.url
  opts.token = opts.token or h.token("batch")
  if opts.rate_limit == nil then
    opts.rate_limit = { shared = false, groups = { default = { limit = 1000, window = 1 } } }
  end
  return core.new(opts)
end

local function echo(i, extra)
  local item = { path = "/echo", body = '{"i":' .. i .. '}' }
  for k, v in pairs(extra or {}) do item[k] = v end
  return item
end

local function echoed(result)
  return result.body and result.body:match("\r\n\r\n(.*)$")
end

describe("wemasy.core batch", function()
  it("returns results in input order, whatever order they finish in", function()
    local c = client()
    local items = {}
    for i = 1, 12 do
      -- later items answer sooner
      items[i] = { path = i % 2 == 0 and "/sleep/" .. (13 - i) * 15 or "/echo", body = '{"i":' .. i .. '}' }
    end
    local results = batch(c, items, 12)
    assert.equal(12, #results)
    for i = 1, 12 do
      assert.equal(200, results[i].status)
      assert.equal(1, results[i].attempts)
      assert.is_table(results[i].headers)
      if i % 2 == 1 then
        assert.equal('{"i":' .. i .. '}', echoed(results[i]))
      else
        assert.equal("slept", results[i].body)
      end
    end
    c:close()
  end)

  it("keeps at most `concurrency` transfers in flight", function()
    local c = client()
    h.get(srv.url, "/concstats") -- reset the server's high-water mark
    local items = {}
    for i = 1, 10 do items[i] = { path = "/conc/120", body = "{}" } end
    local t0 = socket.gettime()
    local results = batch(c, items, 3)
    local took = socket.gettime() - t0
    for i = 1, 10 do assert.equal(200, results[i].status) end
    assert.equal(3, tonumber(h.get(srv.url, "/concstats")))
    -- 10 items, 3 at a time, 120 ms each: at least 4 rounds
    assert.is_true(took >= 0.45, "took " .. took)
    -- the default is 8
    items = {}
    for i = 1, 12 do items[i] = { path = "/conc/150", body = "{}" } end
    batch(c, items)
    assert.equal(8, tonumber(h.get(srv.url, "/concstats")))
    c:close()
  end)

  it("respects the limiter: 0 over the server's limit, quota used", function()
    local name = counter()
    local c = client { rate_limit = { shared = false, margin = 0.05,
                                      groups = { default = { limit = 3, window = 0.4 } } } }
    local items = {}
    for i = 1, 9 do items[i] = { path = "/rlq/" .. name .. "/3/400", body = "{}" } end
    local t0 = socket.gettime()
    local results = batch(c, items, 8)
    local took = socket.gettime() - t0
    for i = 1, 9 do assert.equal(200, results[i].status, "item " .. i) end
    local passed, over = h.get(srv.url, "/rlstats/" .. name):match("^(%d+) (%d+)$")
    assert.equal(9, tonumber(passed))
    assert.equal(0, tonumber(over))
    -- three windows of 0.45 s: the last three start after 0.9 s
    assert.is_true(took >= 0.85 and took < 3, "took " .. took)
    c:close()
  end)

  it("shares the limiter with client:request and fails fast when wait = false", function()
    local c = client { rate_limit = { shared = false, wait = false,
                                      groups = { default = { limit = 2, window = 30 } } } }
    assert.equal(200, (c:request("/echo", "{}")))
    local results = batch(c, { echo(1), echo(2), echo(3) }, 1)
    assert.equal(200, results[1].status)
    for i = 2, 3 do
      assert.equal("rate_limited", results[i].kind)
      assert.is_false(results[i].sent)
      assert.equal(0, results[i].attempts)
      assert.is_true(results[i].retry_after > 29 and results[i].retry_after <= 30.25)
    end
    c:close()
  end)

  it("fails an item at once when its wait would pass max_wait", function()
    local c = client { rate_limit = { shared = false, max_wait = 0.5,
                                      groups = { default = { limit = 1, window = 10 } } } }
    local t0 = socket.gettime()
    local results = batch(c, { echo(1), echo(2) }, 2)
    assert.is_true(socket.gettime() - t0 < 1)
    assert.equal(200, results[1].status)
    assert.equal("rate_limited", results[2].kind)
    c:close()
  end)

  it("does not let one bad item sink the others", function()
    local c = client()
    local items = {
      echo(1),
      { path = "/a b", body = "{}" },
      "not a table",
      { path = "/status/500", body = "{}" },
      { path = "/echo" }, -- no body
      { path = 42, body = "{}" },
      { path = "/echo", body = "{}", with_auth = "yes" },
      { path = "/echo", body = "{}", group = "" },
      { path = "/echo", body = "{}", idempotent = 1 },
      { path = "/reset", body = "{}" },
      echo(11),
    }
    local results = batch(c, items, 4)
    assert.equal(#items, #results)
    assert.equal('{"i":1}', echoed(results[1]))
    assert.equal('{"i":11}', echoed(results[11]))
    for _, i in ipairs { 2, 3, 5, 6, 7, 8, 9 } do
      assert.equal("invalid_argument", results[i].kind, "item " .. i)
      assert.is_string(results[i].message)
      assert.is_false(results[i].sent)
      assert.equal(0, results[i].attempts)
    end
    assert.matches("spaces", results[2].message)
    assert.equal(500, results[4].status)
    assert.equal('{"status":500}', results[4].body)
    assert.equal("network", results[10].kind)
    assert.is_true(results[10].sent)
    assert.equal(1, results[10].attempts)
    c:close()
  end)

  it("retries per the policy, requeuing with backoff while others go on", function()
    local c = client { backoff = { base = 0.02, cap = 0.05 } }
    local retried, once = counter(), counter()
    local results = batch(c, {
      { path = "/c/" .. retried .. "/status/503", body = "{}", idempotent = true },
      { path = "/c/" .. once .. "/status/503", body = "{}" },
      echo(3),
    }, 2)
    assert.equal(503, results[1].status)
    assert.equal(3, results[1].attempts)
    assert.equal(3, count(retried))
    assert.equal(503, results[2].status)
    assert.equal(1, results[2].attempts)
    assert.equal(1, count(once))
    assert.equal(200, results[3].status)
    c:close()
  end)

  it("calls progress with (done, total) after each item", function()
    local c = client()
    local seen = {}
    local items = { echo(1), { path = "/bad path", body = "" }, echo(3), echo(4) }
    local results = batch(c, items, 2, function(done, total)
      seen[#seen + 1] = done .. "/" .. total
    end)
    assert.same({ "1/4", "2/4", "3/4", "4/4" }, seen)
    assert.equal(4, #results)
    c:close()
  end)

  -- c:batch of one quick and five slow items, whose progress or on_result
  -- raises; pcall's results.
  local function raising_batch(c, progress, on_result)
    local items = {}
    for i = 1, 6 do items[i] = { path = "/sleep/" .. (i == 1 and 10 or 300), body = "{}" } end
    -- core:batch reports only through on_result: a no-op one when the spec
    -- raises from progress.
    return pcall(c.batch, c, items, 6, progress, on_result or function() end)
  end

  it("cleans up when progress raises, and the client stays usable", function()
    local c = client()
    local ok, err = raising_batch(c, function() error("stop here") end)
    assert.is_false(ok)
    assert.matches("stop here", err)
    -- the next calls see their own responses, not the aborted ones
    local status, body = c:request("/echo", "own")
    assert.equal(200, status)
    assert.equal("own", body:match("\r\n\r\n(.*)$"))
    local results = batch(c, { echo(1), echo(2) })
    assert.equal('{"i":1}', echoed(results[1]))
    assert.equal('{"i":2}', echoed(results[2]))
    -- a table error value is re-raised as is
    local boom = {}
    ok, err = pcall(batch, c, { echo(1) }, 1, function() error(boom) end)
    assert.is_false(ok)
    assert.equal(boom, err)
    c:close()
  end)

  it("hands each result to on_result the moment its transfer ends", function()
    local c = client()
    local items = { { path = "/sleep/400", body = "{}" }, echo(2), { path = "/bad path", body = "" }, echo(4) }
    local calls, t0 = {}, socket.gettime()
    -- on_result gets what c:request would return, after the item's index.
    local returned = select("#", c:batch(items, 4, nil, function(k, status, a, b, attempts, retry_after)
      local r = status and { status = status, body = a, headers = b, attempts = attempts }
        or { kind = a, message = b, sent = attempts, attempts = retry_after }
      calls[#calls + 1] = { k = k, at = socket.gettime() - t0, r = r }
    end))
    local took = socket.gettime() - t0
    assert.equal(0, returned) -- nothing kept: on_result had every result
    local seen = {}
    for _, call in ipairs(calls) do seen[call.k] = call end
    assert.equal(4, #calls)
    assert.equal("invalid_argument", seen[3].r.kind) -- refused before anything started
    assert.is_false(seen[3].r.sent)
    assert.is_string(seen[3].r.message)
    assert.is_table(seen[2].r.headers)
    assert.equal(1, seen[2].r.attempts)
    assert.equal('{"i":2}', echoed(seen[2].r))
    assert.equal('{"i":4}', echoed(seen[4].r))
    assert.equal(200, seen[1].r.status)
    -- The quick ones came while the slow one was still in flight.
    assert.is_true(took >= 0.39, "the slow item took " .. took)
    assert.is_true(seen[2].at < 0.3 and seen[4].at < 0.3, ("quick results at %.3f and %.3f s"):format(seen[2].at,
      seen[4].at))
    assert.equal(1, calls[#calls].k)
    assert.has_error(function() c:batch({ echo(1) }, 1, nil, "not a function") end)
    assert.has_error(function() c:batch({ echo(1) }, 1) end) -- on_result is where results go
    c:close()
  end)

  it("cleans up when on_result raises, and the client stays usable", function()
    local c = client()
    local ok, err = raising_batch(c, nil, function() error("stop in on_result") end)
    assert.is_false(ok)
    assert.matches("stop in on_result", err)
    local status, body = c:request("/echo", "own")
    assert.equal(200, status)
    assert.equal("own", body:match("\r\n\r\n(.*)$"))
    c:close()
  end)

  it("anchors bodies even if progress edits the items", function()
    local c = client()
    local items = {}
    for i = 1, 6 do items[i] = { path = "/echo", body = string.rep(tostring(i), 100000) } end
    local results = batch(c, items, 3, function()
      for i = 1, #items do items[i] = nil end
      collectgarbage()
    end)
    for i = 1, 6 do
      assert.equal(string.rep(tostring(i), 100000), echoed(results[i]))
    end
    c:close()
  end)

  it("keeps connections alive across batches", function()
    local c = client()
    local a = batch(c, { { path = "/conn", body = "{}" } }, 1)
    local b = batch(c, { { path = "/conn", body = "{}" } }, 1)
    assert.equal(a[1].body:match("^%d+"), b[1].body:match("^%d+"))
    c:close()
  end)

  it("sends Authorization as with_auth says, like request", function()
    local token = h.token("auth")
    local c = client { token = token }
    local r = batch(c, { echo(1), echo(2, { with_auth = false }) })
    assert.truthy(r[1].body:find("Authorization: Bearer " .. token, 1, true))
    assert.falsy(r[2].body:find("Authorization", 1, true))
    c:close()
  end)

  it("handles empty lists, closed clients and bad arguments", function()
    local c = client()
    assert.same({}, batch(c, {}))
    for _, n in ipairs { 0, 65, 1.5, "4" } do
      assert.has_error(function() batch(c, { echo(1) }, n) end)
    end
    assert.has_error(function() batch(c, "x") end)
    assert.has_error(function() batch(c, {}, 1, "not a function") end)
    c:close()
    local r = batch(c, { echo(1), { path = "bad", body = "" } })
    assert.equal("closed", r[1].kind)
    assert.equal("invalid_argument", r[2].kind)
  end)

  it("uses the injected clock and sleep while nothing is in flight", function()
    local t = h.fake_time()
    local c = client { clock = t.clock, sleep = t.sleep,
                       rate_limit = { margin = 0, groups = { default = { limit = 2, window = 10 } } } }
    local results = batch(c, { echo(1), echo(2), echo(3), echo(4), echo(5) }, 5)
    for i = 1, 5 do assert.equal(200, results[i].status) end
    -- two per 10 s: two waits of 10 s, taken by sleeping with nothing in flight
    local slept = 0
    for _, s in ipairs(t.sleeps) do slept = slept + s end
    assert.is_true(math.abs(slept - 20) < 1e-6, "slept " .. slept)
    c:close()
  end)
end)
