-- wemasy.ngx and the OpenResty example on real nginx against the sandbox:
-- the example's pages end to end, wemasy.ngx's answers beside the plain
-- client's, its errors when misused, and several workers on one quota.
-- nginx runs LuaJIT whatever runs busted; the nginx specs run on the LuaJIT
-- pass (on Lua 5.4 only the "outside nginx" part runs).
local sandbox = require("wemasy.sandbox")
local proc = require("wemasy.sandbox.proc")

describe("wemasy.ngx outside nginx", function()
  it("says where it runs instead of failing later", function()
    local ok, err = pcall(require("wemasy.ngx").new, { token = "spec-token-outside" })
    assert.is_false(ok)
    assert.matches("wemasy.ngx.new: runs inside nginx", err, 1, true)
    assert.matches('use require("wemasy").new there', err, 1, true)
    assert.matches(jit and "plain LuaJIT" or _VERSION, err, 1, true)
    assert.not_matches("spec-token-outside", err, 1, true)
  end)

  it("names a Lua 5.4 build of wemasy.core and the LuaJIT one to use", function()
    local msg = require("wemasy.ngx")._load_failure("error loading module 'wemasy.core' from file "
      .. "'/x/build/5.4/wemasy/core.so':\n\t/x/build/5.4/wemasy/core.so: undefined symbol: lua_newuserdatauv")
    assert.matches("/x/build/5.4/wemasy/core.so is not built for LuaJIT (undefined symbol lua_newuserdatauv)",
      msg, 1, true)
    assert.matches("build/jit/?.so", msg, 1, true)
  end)
end)

if not jit then
  describe("wemasy.ngx in nginx", function()
    pending("nginx runs LuaJIT: these specs run on the LuaJIT pass (build/jit/wemasy/core.so)")
  end)
  return
end

local core = require("wemasy.core")
local cjson = require("cjson")
local helpers = require("support.helpers")
local launch = dofile((helpers.SPEC_DIR:gsub("/spec$", "")) .. "/examples/openresty/launch.lua")

local tokens = sandbox.tokens
local SECRET = "spec-ngx-secret-token-4711"
local LIMITED = "spec-ngx-limited-token-0815" -- its own limiter segment, closed by a 429

-- The nginx side of these specs: a module the test locations call.  It
-- builds a wemasy.ngx client and a plain client with the same options and
-- answers with both results, made comparable (no metatables, no dates).
local NGINX_SIDE = [=[
local cjson = require("cjson")
local wemasy = require("wemasy")
local wngx = require("wemasy.ngx")
cjson.encode_sparse_array(true)

local BASE = "@BASE@"
local TOKENS = { merchant = "@merchant@", no_finance = "@no_finance@", customer = "@customer@", secret = "@secret@",
                 limited = "@limited@" }

local M = {}
local pairs_cache = {}

local function pair(name, extra)
  if pairs_cache[name] then return pairs_cache[name] end
  local opts = { base_url = BASE, token = TOKENS[name], timeout = 10 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local p = { proxy = wngx.new(opts), plain = wemasy.new(opts) }
  pairs_cache[name] = p
  return p
end

local function canon_err(e)
  if e == nil then return nil end
  return { kind = e.kind, status = e.status, message = e.message, endpoint = e.endpoint, errors = e.errors,
           retry_after = e.retry_after, attempts = e.attempts, sent = e.sent, reason = e.reason, body = e.body,
           is_error = wemasy.is_error(e), str = tostring(e), has_headers = e.headers ~= nil,
           limit = e.rate_limit and e.rate_limit.limit or nil }
end

local function canon_res(r)
  if r == nil then return nil end
  local names = {}
  for k in pairs(r.headers or {}) do names[#names + 1] = k end
  table.sort(names)
  return { status = r.status, attempts = r.attempts, limit = r.rate_limit and r.rate_limit.limit,
           header_names = table.concat(names, ","), kinds = type(r.headers) .. type(r.rate_limit) }
end

local function counted(...) return select("#", ...), ... end

local function canon(n, body, err, res)
  if type(body) == "table" and type(body.reset_in) == "number" then -- a rate_limit() state, read twice
    body.reset_in = math.floor(body.reset_in * 10 + 0.5) / 10
  end
  return { n = n, body = body, err = canon_err(err), res = canon_res(res) }
end

local function fn() end
local cyclic = {}
cyclic.self = cyclic
local SESSION, EMAIL = "abc123def456ghi789", "john@example.com"

-- name, client pair, function(c) -> the call's results
M.cases = {
  { "detail", "merchant", function(c) return c:orders_detail{ order_number = "ORD-2025-001" } end },
  { "detail not found", "merchant", function(c) return c:orders_detail{ order_number = "NO-SUCH" } end },
  { "detail forbidden", "customer", function(c) return c:orders_detail{ order_number = "ORD-2025-001" } end },
  { "detail unauthenticated", "secret", function(c) return c:orders_detail{ order_number = "ORD-2025-001" } end },
  { "detail bad value", "merchant", function(c) return c:orders_detail{ order_number = 42.5 } end },
  { "detail unknown field", "merchant", function(c) return c:orders_detail{ order_number = "X", bogus = 1 } end },
  { "detail function value", "merchant", function(c) return c:orders_detail{ order_number = fn } end },
  { "detail cyclic value", "merchant", function(c) return c:orders_detail{ order_number = "X", extra = cyclic } end },
  { "mark read", "merchant", function(c)
    return c:orders_mark_purchase_tracked{ website_id = 1, order_session = SESSION, mark = false } end },
  { "get", "merchant", function(c)
    return c:orders_get{ website_id = "1", order_session = SESSION, email = EMAIL } end },
  { "get missing fields", "merchant", function(c) return c:orders_get{ website_id = "1" } end },
  { "customer", "customer", function(c) return c:customer_orders_get{ order_id = 2502 } end },
  { "customer without token", "anonymous", function(c) return c:customer_orders_get{ order_id = 2502 } end },
  { "sync forbidden", "no_finance", function(c) return c:orders_sync_snelstart_order{ order_id = 42 } end },
  { "call", "merchant", function(c) return c:call("orders/detail", { order_number = "ORD-2025-001" }) end },
  { "call full path", "merchant", function(c)
    return c:call("/services/webshop/v1/orders/detail", { order_number = "ORD-2025-001" }) end },
  { "call bad path", "merchant", function(c) return c:call("../etc", {}) end },
  { "call method name", "merchant", function(c) return c:call("orders_detail", { order_number = "ORD-2025-001" }) end },
  { "call typo", "merchant", function(c) return c:call("orders_detial", { order_number = "ORD-2025-001" }) end },
  { "call unknown", "merchant", function(c) return c:call("orders/unknown", { a = { 1, 2 } }) end },
  { "call function value", "merchant", function(c) return c:call("orders/unknown", { a = fn }) end },
  { "rate_limit", "merchant", function(c) return c:rate_limit("sync") end },
  { "rate_limit_reset", "customer", function(c) return c:rate_limit_reset() end },
}

-- pcall'd on both: the raised messages must be the same.
M.raises = {
  { "dot call", function(c) return c.orders_detail({ order_number = "X" }) end },
  { "body not a table", function(c) return c:orders_detail("ORD-2025-001") end },
  { "body a function", function(c) return c:orders_detail(fn) end },
  { "call path not a string", function(c) return c:call(5, {}) end },
  { "batch calls not a table", function(c) return c:batch("x") end },
  { "batch unknown option", function(c) return c:batch({}, { bogus = 1 }) end },
  { "batch bad concurrency", function(c) return c:batch({}, { concurrency = 0 }) end },
  { "batch with a hole", function(c)
    return c:batch({ [1] = { "orders_detail", {} }, [3] = { "orders_get", {} } }) end },
  { "rate_limit group not a string", function(c) return c:rate_limit(5) end },
  { "rate_limit unknown group", function(c) return c:rate_limit("nope") end },
}

function M.compare()
  local out = {}
  for _, case in ipairs(M.cases) do
    local p = pair(case[2])
    local a = canon(counted(case[3](p.proxy)))
    local b = canon(counted(case[3](p.plain)))
    out[#out + 1] = { name = case[1], proxy = a, plain = b }
  end
  for _, case in ipairs(M.raises) do
    local p = pair("merchant")
    local ok1, e1 = pcall(case[2], p.proxy)
    local ok2, e2 = pcall(case[2], p.plain)
    out[#out + 1] = { name = case[1], proxy = { ok1, tostring(e1) }, plain = { ok2, tostring(e2) } }
  end
  local p = pair("merchant")
  local calls = {
    { "orders_detail", { order_number = "ORD-2025-001" } },
    { "orders/get", { website_id = 1, order_session = SESSION, email = EMAIL } },
    { "orders_detail", { order_number = 42 } },
    { "orders_detail", { order_number = fn } },
    "not a table",
    { "orders_nope", {} },
  }
  local function batch(c)
    local r = {}
    for i, x in ipairs(c:batch(calls, { concurrency = 2 })) do r[i] = canon(3, x[1], x[2], x[3]) end
    return r
  end
  out[#out + 1] = { name = "batch", proxy = batch(p.proxy), plain = batch(p.plain) }
  out[#out + 1] = { name = "has_token", proxy = { p.proxy:has_token(), pair("anonymous").proxy:has_token() },
                    plain = { p.plain:has_token(), pair("anonymous").plain:has_token() } }
  -- Closed clients answer alike, without sending.
  local closed = { proxy = wngx.new{ base_url = BASE, token = TOKENS.merchant },
                   plain = wemasy.new{ base_url = BASE, token = TOKENS.merchant } }
  for _, c in pairs(closed) do c:close() end
  local function after_close(c)
    local r = { canon(2, c:orders_detail{ order_number = "ORD-2025-001" }),
                canon(2, c:orders_detail{ order_number = 42 }), canon(2, c:rate_limit()) }
    local first = c:batch(calls)[1]
    r[4] = canon(3, first[1], first[2], first[3])
    r[5] = tostring(c):match("^(.-%[closed%])")
    r[6] = c:has_token()
    return r
  end
  out[#out + 1] = { name = "closed", proxy = after_close(closed.proxy), plain = after_close(closed.plain) }
  -- The same text, and which thread pool the calls run on.
  local text, named = tostring(p.proxy):gsub(" on thread pool 'wemasy'$", "")
  out[#out + 1] = { name = "tostring", proxy = { text, named }, plain = { tostring(p.plain), 1 } }
  ngx.say(cjson.encode(out))
end

-- A server's 429 with Retry-After closes the limiter group for every caller
-- on the token: the error says which group and for how long (the thread VM's
-- limiter state comes back with the answer), and the calls after it are
-- refused unsent, through wemasy.ngx as through the plain client.
function M.limited()
  local p = pair("limited", { max_retries = 0, rate_limit = { wait = false } })
  local function seen(_, e)
    return { kind = e.kind, status = e.status, group = e.group, closed_for = e.closed_for, sent = e.sent,
             retry_after = e.retry_after, is_error = wemasy.is_error(e), str = tostring(e) }
  end
  local detail = { order_number = "ORD-2025-001" }
  ngx.say(cjson.encode{ first = seen(p.proxy:orders_detail(detail)), again = seen(p.proxy:orders_detail(detail)),
                        plain = seen(p.plain:orders_detail(detail)) })
end

-- wemasy.null both ways: as an argument (mark = null means mark) and in results.
function M.null()
  local c = pair("merchant").proxy
  local body = assert(c:orders_detail{ order_number = "ORD-2025-001" })
  local marked = assert(c:orders_mark_purchase_tracked{ website_id = "1", order_session = "b7c8d9e0f1a2b3c4d5e6",
                                                        mark = wemasy.null })
  ngx.say(cjson.encode{ status_is_null = body.data.checkout.order.status == wemasy.null,
                        vendor_comment_is_null = body.data.vendor_comment == wemasy.null,
                        null_type = type(body.data.vendor_comment), marked_before = marked.already_tracked })
end

local function options_error(f, o)
  local ok, e = pcall(f, o)
  return ok and "no error" or tostring(e)
end

function M.options()
  local bad = {
    { timeout = "30" }, { bogus = 1 }, { rate_limit = { shared = "yes" } }, { rate_limit = { wait = 1 } },
    { rate_limit = { groups = { default = { limit = -1 } } } }, { token = "a\nb" }, { base_url = "ftp://x" },
    { max_retries = -1 }, { backoff = { base = "x" } }, { connect_timeout = 0 }, { clock = 5 },
  }
  local out = {}
  for i, o in ipairs(bad) do
    out[i] = { plain = options_error(wemasy.new, o), proxy = options_error(wngx.new, o) }
  end
  out.clock = options_error(wngx.new, { base_url = BASE, clock = function() return 0 end })
  out.nested = options_error(wngx.new, { base_url = BASE, rate_limit = { groups = { default = { limit = fn } } } })
  out.pool = options_error(wngx.new, { base_url = BASE, thread_pool = 7 })
  out.not_table = options_error(wngx.new, "x")
  ngx.say(cjson.encode(out))
end

function M.token()
  local c = pair("secret").proxy
  local _, err = c:orders_detail{ order_number = "ORD-2025-001" }
  local _, err2 = c:call("orders/unknown", { a = fn })
  local ok3, err3 = pcall(c.batch, c, {}, { bogus = true })
  local results = c:batch({ { "orders_detail", { order_number = "ORD-2025-001" } } })
  ngx.say(cjson.encode{ tostring(err), canon_err(err), tostring(err2), ok3, tostring(err3),
                        canon_err(results[1][2]), tostring(c) })
end

-- Sequential calls of one request land on the same thread VM (the pool hands
-- back the VM freed last): its counters before and after 20 calls of new options.
function M.stats()
  local _, before = ngx.run_worker_thread("wemasy", "wemasy.ngx.thread", "stats")
  local c = wngx.new{ base_url = BASE, token = TOKENS.merchant, timeout = 9.25 }
  for _ = 1, 20 do assert(c:orders_detail{ order_number = "ORD-2025-001" }) end
  local ok, after = ngx.run_worker_thread("wemasy", "wemasy.ngx.thread", "stats")
  local d = {}
  for k, v in pairs(after) do d[k] = v - before[k] end
  ngx.say(cjson.encode{ ok = ok, delta = d })
end

-- A body over max_request_body is refused before it crosses to a thread VM
-- (copying it there is the cost the bound avoids), as the plain client does.
function M.toolarge()
  local opts = { base_url = BASE, token = TOKENS.merchant, timeout = 10, max_request_body = 1000 }
  local p = { proxy = wngx.new(opts), plain = wemasy.new(opts) }
  local big = string.rep("a", 1001)
  local function calls(c)
    local r = c:batch{ { "orders_detail", { order_number = big } }, { "orders/unknown", { a = big } } }
    return { canon(2, c:orders_detail{ order_number = big }), canon(2, c:call("orders/unknown", { a = big })),
             canon(3, r[1][1], r[1][2], r[1][3]), canon(3, r[2][1], r[2][2], r[2][3]) }
  end
  local _, before = ngx.run_worker_thread("wemasy", "wemasy.ngx.thread", "stats")
  local proxy = calls(p.proxy)
  local ok, after = ngx.run_worker_thread("wemasy", "wemasy.ngx.thread", "stats")
  ngx.say(cjson.encode{ ok = ok, crossed = after.calls - before.calls, proxy = proxy, plain = calls(p.plain) })
end

-- debug = true: one line per call on stderr (nginx's error log), written in
-- the worker, refused calls included.
function M.debug()
  local c = wngx.new{ base_url = BASE, token = TOKENS.merchant, timeout = 10, debug = true }
  local body = c:orders_detail{ order_number = "ORD-2025-001" }
  local _, err = c:orders_detail{ order_number = "ORD-2025-001", debug_spec_bogus = 1 }
  ngx.say(cjson.encode{ ok = body ~= nil, refused = err and err.kind })
end

function M.nopool()
  local c = wngx.new{ base_url = BASE, token = TOKENS.merchant, thread_pool = "nosuchpool" }
  local ok, err = pcall(c.orders_detail, c, { order_number = "ORD-2025-001" })
  ngx.say(cjson.encode{ ok = ok, err = tostring(err) })
end

-- A call from a phase that cannot run it: the error is kept for /t/phase.
function M.in_phase(name)
  local c = pair("merchant").proxy
  local ok, err = pcall(c.orders_detail, c, { order_number = "ORD-2025-001" })
  ngx.shared.spec:set(name, cjson.encode{ ok = ok, err = tostring(err), phase = ngx.get_phase() })
end

function M.phase(name)
  name = name or ngx.var.arg_name
  for _ = 1, 100 do
    local v = ngx.shared.spec:get(name)
    if v then return ngx.say(v) end
    ngx.sleep(0.02)
  end
  ngx.say("{}")
end

function M.timer()
  ngx.shared.spec:delete("timer")
  assert(ngx.timer.at(0, function()
    local c = pair("merchant").proxy
    local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
    ngx.shared.spec:set("timer", cjson.encode{ ok = body ~= nil, err = err and tostring(err),
                                               phase = ngx.get_phase() })
  end))
  return M.phase("timer")
end

-- More calls at once than the worker has thread VMs: the ones that find no
-- VM wait for one (ngx.sleep), none fails.
function M.busy()
  local c = pair("merchant").proxy
  local threads = {}
  for i = 1, 40 do
    threads[i] = ngx.thread.spawn(function()
      local body, err = c:orders_detail{ order_number = "ORD-2025-001" }
      return body ~= nil, err and tostring(err)
    end)
  end
  local ok, failures = 0, {}
  for i = 1, 40 do
    local _, good, err = ngx.thread.wait(threads[i])
    if good then ok = ok + 1 else failures[#failures + 1] = err end
  end
  ngx.say(cjson.encode{ ok = ok, failures = failures })
end

return M
]=]

local SPEC_LOCATIONS = [[
        location /t/ {
            content_by_lua_block { require("ngx_spec")[ngx.var.uri:match("^/t/(%w+)$")]() }
        }
        location = /log {
            content_by_lua_block { ngx.say("logged") }
            log_by_lua_block { require("ngx_spec").in_phase("log") }
        }
        location = /header-filter {
            content_by_lua_block { ngx.say("filtered") }
            header_filter_by_lua_block { require("ngx_spec").in_phase("header_filter") }
        }
]]

local function get_json(url)
  local status, body = launch.request("GET", url)
  assert.equal(200, status, tostring(body))
  return cjson.decode(body)
end

describe("the OpenResty example against the sandbox", function()
  local sb = helpers.fresh_sandbox{ window = 60, limits = { default = 5000, sync = 3 } }
  local shop, dir

  lazy_setup(function()
    dir = assert(proc.mktemp())
    local values = { BASE = sb.base_url, merchant = tokens.merchant, no_finance = tokens.merchant_no_finance,
                     customer = tokens.customer, secret = SECRET, limited = LIMITED }
    proc.write_file(dir .. "/ngx_spec.lua", (NGINX_SIDE:gsub("@([%w_]+)@", values)))
    for _, t in ipairs{ tokens.merchant, tokens.merchant_no_finance, tokens.customer, SECRET, LIMITED } do
      core._debug_unlink(sb.base_url, t)
    end
    local err
    shop, err = launch.start{
      base_url = sb.base_url, token = tokens.merchant, workers = 2,
      lua_path = dir .. "/?.lua", http = "    lua_shared_dict spec 1m;", server = SPEC_LOCATIONS,
    }
    assert(shop, err)
  end)

  lazy_teardown(function()
    if shop then shop:stop() end
    if dir then proc.remove_tree(dir) end
    if sb.base_url then
      for _, t in ipairs{ tokens.merchant, tokens.merchant_no_finance, tokens.customer, SECRET, LIMITED } do
        core._debug_unlink(sb.base_url, t)
      end
      core._debug_unlink(sb.base_url, nil)
    end
  end)

  describe("the thank-you page", function()
    local function visit(session)
      return launch.request("GET", shop.url .. "/thank-you?website_id=1&order_session=" .. session)
    end

    it("pushes the GA4 purchase event for a paid order, once", function()
      local status, page = visit("f3a9c1d27b5e4a60")
      assert.equal(200, status)
      local push = page:match("window%.dataLayer%.push%((%b{})%);\n</script>")
      assert.is_string(push, page)
      local event = cjson.decode(push)
      assert.equal("purchase", event.event)
      assert.same({ transaction_id = "ORD-2024-042", value = 34.9, tax = 6.05703, shipping = 5, currency = "EUR",
                    items = { { item_id = "MUG-CLASSIC", item_name = "Coffee Mug", price = 14.95, quantity = 2 } } },
                  event.ecommerce)
      assert.matches("dataLayer.push({ ecommerce: null })", page, 1, true)
      assert.is_true(sb:state().tracked[42])
      -- The next visit (a reload, a second tab) renders the page without the event.
      status, page = visit("f3a9c1d27b5e4a60")
      assert.equal(200, status)
      assert.matches("ORD-2024-042", page, 1, true)
      assert.not_matches("dataLayer", page, 1, true)
      assert.equal(3, sb:state().requests["orders/mark-purchase-tracked"]) -- read + mark, then read
    end)

    it("does not track (nor mark) an order that is not paid yet", function()
      local status, page = visit("abc123def456ghi789")
      assert.equal(200, status)
      assert.matches("ORD-2025-001", page, 1, true)
      assert.matches("waiting for your payment", page, 1, true)
      assert.not_matches("dataLayer", page, 1, true)
      assert.is_nil(sb:state().tracked[2502])
    end)

    it("answers 404 for an unknown order and 400 for an incomplete link", function()
      assert.equal(404, (visit("no-such-session")))
      assert.equal(400, (launch.request("GET", shop.url .. "/thank-you?website_id=1")))
    end)
  end)

  describe("the order lookup page", function()
    local function lookup(fields)
      return launch.request("POST", shop.url .. "/order", launch.form(fields))
    end

    it("renders the order found by website, order session and e-mail", function()
      local status, page = lookup{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" }
      assert.equal(200, status)
      assert.matches("Order for John Doe (john@example.com)", page, 1, true)
      assert.matches("<td>T Shirt</td><td>1</td><td>€ 125.00</td>", page, 1, true)
      assert.matches("€ 130.00", page, 1, true)
      assert.equal(1, sb:state().requests["orders/get"])
    end)

    it("gives one answer for every mismatch, and shows the form on GET", function()
      local status, page = lookup{ website_id = 1, order_session = "abc123def456ghi789", email = "jane@example.org" }
      assert.equal(404, status)
      assert.matches("No order matches these details", page, 1, true)
      status, page = launch.request("GET", shop.url .. "/order")
      assert.equal(200, status)
      assert.matches("<form method=\"post\"", page, 1, true)
    end)

    it("escapes what the API returns", function()
      local status, page = lookup{ website_id = 3, order_session = "m1n2b3v4c5x6z7l8k9j0", email = "john@example.com" }
      assert.equal(200, status)
      assert.matches("Quote for", page, 1, true)
      assert.not_matches("<script", page, 1, true)
    end)
  end)

  describe("the sync-snelstart admin hook", function()
    local function sync(order_id)
      local t0 = proc.now()
      local status, body, headers = launch.request("POST", shop.url .. "/admin/sync-snelstart",
        "order_id=" .. order_id)
      return status, body and cjson.decode(body), headers, proc.now() - t0
    end

    it("queues syncs, then answers 429 at once when the limiter has no slot", function()
      -- The sandbox's sync quota here is 3 a window; the client learns it from
      -- the first answer.  An order the API does not know is a 422 (it counts).
      local status, answer = sync(999999)
      assert.equal(422, status)
      assert.is_false(answer.queued)
      assert.equal(400, (sync("abc")))
      assert.equal(405, (launch.request("GET", shop.url .. "/admin/sync-snelstart")))
      local statuses, slowest = {}, 0
      for i = 1, 4 do
        local headers, took
        status, answer, headers, took = sync(2502)
        statuses[i] = status
        if status == 429 then
          slowest = math.max(slowest, took)
          assert.is_false(answer.queued)
          assert.is_false(answer.sent)
          assert.is_true(tonumber(headers["retry-after"]) >= 1)
        else
          assert.is_true(answer.queued)
        end
      end
      assert.same({ 202, 202, 429, 429 }, statuses)
      -- Nothing beyond the quota was sent: the server saw no 429.
      assert.equal(3, sb:state().requests["orders/sync-snelstart-order"])
      assert.equal(2, sb:state().syncs[2502])
      assert.is_true(slowest < 0.5, "a 429 took " .. slowest .. " s")
    end)
  end)

  describe("wemasy.ngx", function()
    it("returns what the plain client returns, method for method", function()
      -- sb:reset() (before each test) forgot the client-side quota: one sync
      -- (a 422, an order the API does not know) teaches the example's
      -- clients the sync limit again, which the rate_limit case reads.
      assert.equal(422, (launch.request("POST", shop.url .. "/admin/sync-snelstart", "order_id=999999")))
      local results = get_json(shop.url .. "/t/compare")
      assert.is_true(#results > 30)
      for _, r in ipairs(results) do
        assert.same(r.plain, r.proxy, r.name)
      end
      local by = {}
      for _, r in ipairs(results) do by[r.name] = r end
      -- The comparisons compared something.
      assert.equal(200, by.detail.proxy.res.status)
      assert.is_true(by["detail not found"].proxy.err.is_error)
      assert.equal("wemasy not_found 404 on orders/detail: Order not found", by["detail not found"].proxy.err.str)
      assert.equal("invalid_argument", by["detail function value"].proxy.err.kind)
      assert.equal("invalid_argument", by["detail cyclic value"].proxy.err.kind)
      assert.equal("unauthenticated", by["customer without token"].proxy.err.kind)
      assert.equal("forbidden", by["sync forbidden"].proxy.err.kind)
      assert.equal(3, by.rate_limit.proxy.body.limit) -- learnt from the sandbox, shared with the example's clients
      local batch = by.batch.proxy
      assert.equal(6, #batch)
      assert.equal(200, batch[1].res.status)
      assert.equal(200, batch[2].res.status)
      assert.equal("not_found", batch[3].err.kind) -- 42 is sent as "42"
      for i = 4, 6 do assert.equal("invalid_argument", batch[i].err.kind) end
      assert.matches("did you mean 'orders_get'", batch[6].err.message) -- a typo, not a 404
      assert.is_false(by.closed.proxy[6]) -- has_token() after close()
      assert.matches("calls%[2%] is nil", by["batch with a hole"].proxy[2])
      assert.equal(2502, by["call method name"].proxy.body.data.order_id)
      assert.matches("did you mean 'orders_detail'", by["call typo"].proxy.err.message)
    end)

    it("says which limiter group a server's 429 closed and for how long, as the plain client does", function()
      sb:fault{ kind = "rate_limited", retry_after = 30, path = "orders/detail" }
      local r = get_json(shop.url .. "/t/limited")
      assert.equal("rate_limited", r.first.kind)
      assert.equal(429, r.first.status)
      assert.equal(30, r.first.retry_after)
      assert.equal("default", r.first.group)
      assert.is_true(r.first.closed_for > 25 and r.first.closed_for <= 30, r.first.closed_for)
      assert.is_true(r.first.is_error)
      assert.matches("; retry in 30 s; the server's Retry%-After closed group 'default' for every caller on this"
        .. " token$", r.first.str)
      for _, e in ipairs{ r.again, r.plain } do
        assert.equal("rate_limited", e.kind)
        assert.is_false(e.sent)
        assert.equal("default", e.group)
        assert.is_true(e.closed_for > 25 and e.closed_for <= 30, e.closed_for)
      end
      assert.equal(1, sb:state().requests["orders/detail"])
    end)

    it("carries wemasy.null both ways", function()
      local r = get_json(shop.url .. "/t/null")
      assert.is_true(r.status_is_null)
      assert.is_true(r.vendor_comment_is_null)
      assert.equal("userdata", r.null_type)
      assert.is_false(r.marked_before)
      assert.is_true(sb:state().tracked[2503]) -- mark = null counts as mark
    end)

    it("checks options exactly as wemasy.new does, and refuses what cannot cross", function()
      local r = get_json(shop.url .. "/t/options")
      for i, pair in ipairs(r) do
        assert.matches("^wemasy%.new: ", pair.plain, nil, "case " .. i)
        assert.equal(pair.plain, pair.proxy, "case " .. i)
      end
      assert.equal("wemasy.ngx.new: option 'clock' cannot be used here: it holds a function, and only plain data"
        .. " crosses to the worker threads", r.clock)
      -- wemasy.new's own checks come first.
      assert.equal("wemasy.new: option 'rate_limit.groups.default.limit' must be an integer (got function)", r.nested)
      assert.matches("option 'thread_pool' must be the name of a thread_pool", r.pool, 1, true)
      assert.equal("bad argument #1 to 'wemasy.ngx.new' (table expected, got string)", r.not_table)
    end)

    it("never lets the token out in an error", function()
      local status, body = launch.request("GET", shop.url .. "/t/token")
      assert.equal(200, status)
      assert.matches("unauthenticated 401", body, 1, true)
      assert.not_matches(SECRET, body, 1, true)
      assert.not_matches(SECRET, shop:error_log(), 1, true)
    end)

    it("keeps one client per options in each thread VM: the token crosses once", function()
      local r = get_json(shop.url .. "/t/stats")
      assert.is_true(r.ok)
      assert.same({ clients = 1, created = 1, misses = 1, evicted = 0, calls = 20 }, r.delta)
    end)

    it("waits for a free thread VM when more calls run than the pool has", function()
      sb:fault{ kind = "delay", seconds = 0.2, path = "orders/detail", count = 40 }
      local r = get_json(shop.url .. "/t/busy")
      sb:clear_faults()
      assert.equal(40, r.ok, cjson.encode(r.failures))
    end)

    it("runs from an ngx.timer callback", function()
      local r = get_json(shop.url .. "/t/timer")
      assert.is_true(r.ok, tostring(r.err))
      assert.equal("timer", r.phase)
    end)

    it("says which phases it cannot run in", function()
      for _, phase in ipairs{ "log", "header_filter" } do
        local path = phase == "log" and "/log" or "/header-filter"
        assert.equal(200, (launch.request("GET", shop.url .. path)))
        local r = get_json(shop.url .. "/t/phase?name=" .. phase)
        assert.is_false(r.ok)
        assert.equal("wemasy.ngx: client:orders_detail cannot run in the " .. phase .. " phase:"
          .. " ngx.run_worker_thread works only in rewrite_by_lua*, access_by_lua*, content_by_lua*"
          .. " and ngx.timer callbacks", r.err)
      end
    end)

    it("refuses a body over max_request_body before it crosses, as the plain client does", function()
      local before = sb:state().total_requests
      local r = get_json(shop.url .. "/t/toolarge")
      assert.is_true(r.ok)
      assert.same(r.plain, r.proxy)
      for _, x in ipairs(r.proxy) do
        assert.equal("invalid_argument", x.err.kind)
        assert.matches("max_request_body", x.err.message, 1, true)
      end
      assert.equal(0, r.crossed)
      assert.equal(before, sb:state().total_requests)
    end)

    it("writes debug lines for sent and refused calls, with the limiter's state", function()
      local r = get_json(shop.url .. "/t/debug")
      assert.is_true(r.ok)
      assert.equal("invalid_argument", r.refused)
      local log = shop:error_log()
      assert.matches("wemasy: orders/detail %-> 200 in [%d.]+ ms %(1 attempt, server quota %d+/%d+, default slots", log)
      assert.matches("wemasy: orders/detail %-> invalid_argument in [%d.]+ ms %(0 attempts, default slots", log)
    end)

    it("says how to declare a missing thread pool", function()
      local r = get_json(shop.url .. "/t/nopool")
      assert.is_false(r.ok)
      assert.matches("wemasy.ngx: no thread pool 'nosuchpool' in nginx.conf: add `thread_pool nosuchpool"
        .. " threads=16;` to the main context", r.err, 1, true)
    end)
  end)
end)

describe("the OpenResty example misconfigured", function()
  local sb = helpers.sandbox{}

  it("will not start with the Lua 5.4 build of wemasy.core, and says why", function()
    local root = launch.root
    local shop, err = launch.start{ base_url = sb.base_url, cpath = root .. "/build/5.4" }
    if shop then shop:stop() end
    assert.is_nil(shop)
    assert.matches("wemasy.ngx: " .. root .. "/build/5.4/wemasy/core.so is not built for LuaJIT"
      .. " (undefined symbol lua_newuserdatauv)", err, 1, true)
  end)

  it("fails the first call, not the start, without the thread_pool directive", function()
    local shop = assert(launch.start{ base_url = sb.base_url,
      replace = { { "thread_pool wemasy threads=16;", "" } } })
    finally(function() shop:stop() end)
    local status = launch.request("GET", shop.url .. "/thank-you?website_id=1&order_session=f3a9c1d27b5e4a60")
    assert.equal(500, status)
    assert.matches("no thread pool 'wemasy' in nginx.conf", shop:error_log(), 1, true)
  end)
end)

-- A worker process of the hammer below: POSTs /order until `seconds` pass,
-- prints "<status>=<count> ..." and the worker pids that answered.
local HAMMER = [==[
local launch = dofile(arg[1])
local url, seconds = arg[2], tonumber(arg[3])
local socket = require("socket")
local counts, pids = {}, {}
local deadline = socket.gettime() + seconds
local form = launch.form{ website_id = 1, order_session = "abc123def456ghi789", email = "john@example.com" }
while socket.gettime() < deadline do
  local status, _, headers = launch.request("POST", url .. "/order", form)
  status = tostring(status)
  counts[status] = (counts[status] or 0) + 1
  if headers and headers["x-worker"] then pids[headers["x-worker"]] = true end
end
local out = {}
for k, v in pairs(counts) do out[#out + 1] = k .. "=" .. v end
for pid in pairs(pids) do out[#out + 1] = "pid=" .. pid end
print(table.concat(out, " "))
]==]

describe("four nginx workers hammering one token through the example", function()
  local WINDOW, LIMIT = 1, 8
  local sb = helpers.sandbox{ window = WINDOW, limits = { default = LIMIT, sync = 5 } }
  local shop

  lazy_setup(function()
    core._debug_unlink(sb.base_url, tokens.merchant)
    local err
    shop, err = launch.start{
      base_url = sb.base_url, token = tokens.merchant, workers = 4, reuseport = true,
      configure = ("rate_limit = { groups = { default = { limit = %d, window = %d } } },"):format(LIMIT, WINDOW),
      server = "        add_header X-Worker $pid always;",
    }
    assert(shop, err)
  end)

  lazy_teardown(function()
    if shop then shop:stop() end
    if sb.base_url then core._debug_unlink(sb.base_url, tokens.merchant) end
  end)

  it("gets no 429 from the sandbox: every request that reached it succeeded", function()
    sb:reset()
    local seconds, children = 3, {}
    for i = 1, 12 do
      children[i] = helpers.spawn(HAMMER, { launch.dir .. "/launch.lua", shop.url, seconds })
    end
    local counts, pids = {}, {}
    for _, child in ipairs(children) do
      local out = helpers.finish(child)
      for k, v in out:gmatch("(%d+)=(%d+)") do counts[k] = (counts[k] or 0) + tonumber(v) end
      for pid in out:gmatch("pid=(%d+)") do pids[pid] = true end
    end
    local state = sb:state()
    local served = 0
    for _ in pairs(pids) do served = served + 1 end
    local summary = cjson.encode(counts) .. " sandbox=" .. tostring(state.requests["orders/get"])
    -- Pages are 200 (the API answered) or 503 (the limiter had no slot within
    -- max_wait: nothing sent); the sandbox saw exactly the 200s, so none of
    -- its answers was a 429.
    for status in pairs(counts) do assert.is_true(status == "200" or status == "503", summary) end
    assert.equal(counts["200"], state.requests["orders/get"], summary)
    assert.is_true((counts["503"] or 0) > 0, "the hammer never exceeded the quota: " .. summary)
    assert.is_true(counts["200"] >= LIMIT * seconds * 0.7, summary)
    assert.is_true(counts["200"] <= LIMIT * (seconds / WINDOW + 1), summary)
    assert.is_true(served >= 2, "only " .. served .. " worker(s) answered")
  end)
end)
