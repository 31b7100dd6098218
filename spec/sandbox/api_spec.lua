-- The sandbox itself (real nginx + ngx_lua), spoken to with luasocket only:
-- start/stop and cleanup, every endpoint with every documented status, the
-- exact Laravel messages, state, rate limiting, several workers.
--
--   spec/run build/5.4/wemasy/core.so build/jit/wemasy/core.so spec/sandbox/api_spec.lua

local cjson = require "cjson.safe"
local socket = require "socket"
local request = require("support.http").request

local sandbox = require "wemasy.sandbox"
local proc = require "wemasy.sandbox.proc"

local tokens = sandbox.tokens
local V1 = "/services/webshop/v1/"
local SESSION, EMAIL = "abc123def456ghi789", "john@example.com"

------------------------------------------------------------------ helpers

-- POST <base_url>/services/webshop/v1/<path> with a JSON body (a table, or a
-- string sent as it is).
local function api(sb, path, fields, token, headers)
   local h = { ["content-type"] = "application/json", accept = "application/json" }
   for k, v in pairs(headers or {}) do h[k:lower()] = v end
   if token then h.authorization = "Bearer " .. token end
   local body = type(fields) == "string" and fields or assert(cjson.encode(fields or {}))
   return request("POST", sb.base_url .. V1 .. path, body, h)
end

local function keys_of(t)
   local list = {}
   for k in pairs(t) do list[#list + 1] = k end
   table.sort(list)
   return list
end

local function has_rate_headers(res, limit)
   assert.equal(tostring(limit), res.headers["x-ratelimit-limit"])
   assert.is_truthy(tonumber(res.headers["x-ratelimit-remaining"]))
end

-- An answer with this status and exactly this body, counted against a quota of `limit`.
local function assert_answer(res, status, limit, body)
   assert.equal(status, res.status)
   assert.equal(body, res.body)
   has_rate_headers(res, limit)
end

local LUA = jit and "luajit" or "lua5.4"

-- Runs `code` in a new interpreter with this package.path; returns its stdout.
local function child(code)
   local cmd = "LUA_PATH=" .. proc.quote(package.path) .. " LUA_PATH_5_4=" .. proc.quote(package.path)
      .. " " .. LUA .. " -e " .. proc.quote(code) .. " 2>/dev/null"
   local f = assert(io.popen(cmd, "r"))
   local out = f:read("*a")
   f:close()
   return out
end

local function dir_exists(path)
   return proc.run("test -d " .. proc.quote(path))
end

local function eventually(seconds, fn)
   local deadline = socket.gettime() + seconds
   while not fn() do
      if socket.gettime() > deadline then return false end
      socket.sleep(0.05)
   end
   return true
end

-- The orders/detail page's response example, if the API pages are at hand.
local function page_example()
   local src = os.getenv("WEMASY_SRC") or "."
   for _, path in ipairs{ src .. "/../shared/api/orders-detail.txt", "/work/shared/api/orders-detail.txt" } do
      local text = proc.read_file(path)
      if text then
         local json = text:match("Response Example%s*(%b{})")
         if json then return json end
      end
   end
end

------------------------------------------------------------------ lifecycle

describe("wemasy.sandbox lifecycle", function()
   it("starts nginx on a loopback port and stops it without leaving anything", function()
      local base_url, sb = sandbox.start()
      assert(base_url, sb)
      assert.equal(base_url, sb.base_url)
      assert.matches("^http://127%.0%.0%.1:%d+/api$", base_url)
      assert.equal("http://127.0.0.1:" .. sb.port .. "/api", base_url)
      assert.matches("^/tmp/wemasy%-sandbox%.", sb.prefix)
      assert.is_true(proc.alive(sb.pid))
      assert.is_true(dir_exists(sb.prefix))
      assert.is_truthy(proc.read_file(sb.prefix .. "/conf/nginx.conf"))
      assert.equal(200, request("GET", "http://127.0.0.1:" .. sb.port .. "/__sandbox/state").status)

      assert.is_true(sb:stop())
      assert.is_false(proc.alive(sb.pid))
      assert.is_false(dir_exists(sb.prefix))
      assert.is_true(sb:stop()) -- idempotent
      assert.has_error(function() sb:reset() end)
      assert.is_false((pcall(request, "GET", "http://127.0.0.1:" .. sb.port .. "/__sandbox/state")))
   end)

   it("runs two sandboxes at once, on different ports, with separate state", function()
      local url1, a = sandbox.start()
      local url2, b = sandbox.start()
      assert(url1, a)
      assert(url2, b)
      finally(function() a:stop(); b:stop() end)
      assert.are_not.equal(a.port, b.port)
      assert.are_not.equal(a.prefix, b.prefix)
      assert.equal(200, api(a, "orders/mark-purchase-tracked", { website_id = "1", order_session = SESSION }).status)
      assert.is_true(a:state().tracked[2502])
      assert.is_nil(b:state().tracked[2502])
      assert.equal(1, a:state().total_requests)
      assert.equal(0, b:state().total_requests)
   end)

   it("stop_all stops every sandbox this process started", function()
      local _, a = sandbox.start()
      local _, b = sandbox.start()
      sandbox.stop_all()
      assert.is_false(proc.alive(a.pid))
      assert.is_false(proc.alive(b.pid))
      assert.is_false(dir_exists(a.prefix))
      assert.is_false(dir_exists(b.prefix))
   end)

   it("stops a sandbox whose handle is garbage-collected", function()
      local _, sb = sandbox.start()
      local pid, prefix = sb.pid, sb.prefix
      sb = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.is_true(eventually(5, function() return not proc.alive(pid) end))
      assert.is_false(dir_exists(prefix))
   end)

   it("stops at the exit of the process that started it, even after an error", function()
      for _, ending in ipairs{ "", "error('a crashed spec')" } do
         local out = child("local s = require 'wemasy.sandbox'; local _, sb = assert(s.start()); "
            .. "print(sb.pid, sb.prefix); io.stdout:flush(); " .. ending)
         local pid, prefix = out:match("^(%d+)%s+(%S+)")
         assert.is_truthy(pid, out)
         assert.is_false(proc.alive(pid))
         assert.is_false(dir_exists(prefix))
      end
   end)

   it("stops by itself when the process that started it is killed", function()
      local out = child("local s = require 'wemasy.sandbox'; local _, sb = assert(s.start{ workers = 2 }); "
         .. "print(sb.pid, sb.prefix); io.stdout:flush(); os.execute('kill -9 $PPID')")
      local pid, prefix = out:match("^(%d+)%s+(%S+)")
      assert.is_truthy(pid, out)
      assert.is_true(eventually(8, function() return not proc.alive(pid) end))
      assert.is_true(eventually(2, function() return not dir_exists(prefix) end))
   end)

   it("returns nil and nginx's error when the port is taken", function()
      local server = assert(socket.bind("127.0.0.1", 0))
      finally(function() server:close() end)
      local _, port = server:getsockname()
      local url, err = sandbox.start{ port = tonumber(port) }
      assert.is_nil(url)
      assert.matches("Address already in use", err)
   end)

   it("raises an error naming the option for wrong option values", function()
      local cases = {
         { "window", "60" }, { "window", 0 }, { "window", -1 }, { "window", 0 / 0 },
         { "limits", 5 }, { "limits", { default = 0 } }, { "limits", { default = 1.5 } },
         { "limits", { other = 1 } }, { "workers", 0 }, { "workers", 1.5 }, { "workers", "2" },
         { "port", 0 }, { "port", 70000 }, { "port", "8080" }, { "colour", 1 },
      }
      for _, c in ipairs(cases) do
         local ok, err = pcall(sandbox.start, { [c[1]] = c[2] })
         assert.is_false(ok)
         assert.is_truthy(err:find(c[1], 1, true), err)
      end
      assert.has_error(function() sandbox.start("fast") end)
   end)

   it("applies window, limits and workers, and reports them in the state", function()
      local _, sb = sandbox.start{ window = 0.5, limits = { default = 7 }, workers = 2 }
      finally(function() sb:stop() end)
      local config = sb:state().config
      assert.equal(0.5, config.window)
      assert.same({ default = 7, sync = 5 }, config.limits)
      assert.equal(2, config.workers)
      assert.matches("worker_processes 2;", proc.read_file(sb.prefix .. "/conf/nginx.conf"))
   end)

   it("has the four fixed tokens", function()
      assert.same({ "customer", "merchant", "merchant_no_finance", "other_customer" }, keys_of(tokens))
      for _, t in pairs(tokens) do assert.is_string(t) end
   end)
end)

------------------------------------------------------------------ endpoints

describe("wemasy.sandbox endpoints", function()
   local sb

   lazy_setup(function()
      local url, handle = sandbox.start()
      assert(url, handle)
      sb = handle
   end)

   lazy_teardown(function() if sb then sb:stop() end end)

   before_each(function() sb:reset() end)

   describe("orders/detail", function()
      it("returns the page's example order, numbers as written", function()
         local res = api(sb, "orders/detail", { order_number = "ORD-2025-001" }, tokens.merchant)
         assert.equal(200, res.status)
         assert.equal("application/json", res.headers["content-type"])
         has_rate_headers(res, 60)
         assert.equal("59", res.headers["x-ratelimit-remaining"])
         for _, raw in ipairs{ '"total_price":107.43802', '"total_price_with_tax":129.99551',
            '"options":[]', '"methods":[]', '"quote":{"order":{"products":[]}}',
            '"tax_amounts":{"0":0,"9":0,"21":22.56}', '"vendor_comment":null', '"quantity":"1"',
            '"sendcloud_weight":0.5', '"original_price_incl_tax":135,' } do
            assert.is_truthy(res.body:find(raw, 1, true), raw)
         end
         local data = res.json.data
         assert.is_false(res.json.error)
         assert.equal(2502, data.order_id)
         assert.equal("ORD-2025-001", data.order_number)
         assert.equal("checkout", data.type)
         assert.equal("John", data.users.invoice_firstname)
         assert.equal(cjson.null, data.users.shipping_email)
         assert.equal("NL", data.users.shipping_country)
         assert.equal("kJ9hqHhCYhCHOKHE", data.checkout.shipment.selected.selected)
      end)

      it("matches the page's response example value for value (order_number aside)", function()
         local example = page_example()
         if not example then
            pending("the API pages (shared/api) are not at hand")
            return
         end
         local res = api(sb, "orders/detail", { order_number = "ORD-2025-001" }, tokens.merchant)
         local want = assert(cjson.decode(example))
         want.data.order_number = "ORD-2025-001"
         assert.same(want, res.json)
         -- the same keys in the same order as the page, too
         local keys = {}
         for k in example:gmatch('"([%w_]+)":') do keys[#keys + 1] = k end
         local got = {}
         for k in res.body:gmatch('"([%w_]+)":') do got[#got + 1] = k end
         assert.same(keys, got)
      end)

      it("answers the other orders too, quotes with their own shape", function()
         local res = api(sb, "orders/detail", { order_number = "QUO-2025-001" }, tokens.merchant_no_finance)
         assert.equal(200, res.status)
         assert.equal("quote", res.json.data.type)
         assert.equal(2, #res.json.data.quote.order.products)
         assert.is_truthy(res.body:find('"checkout":{"order":{"products":[]}}', 1, true))
      end)

      for _, case in ipairs{
         { "is 404 for an unknown order number", "NOPE", tokens.merchant,
           404, '{"error":true,"message":"Order not found"}' },
         { "is 403 for customer tokens", "ORD-2025-001", tokens.customer,
           403, '{"error":true,"message":"This action is unauthorized."}' },
      } do
         it(case[1], function()
            assert_answer(api(sb, "orders/detail", { order_number = case[2] }, case[3]), case[4], 60, case[5])
         end)
      end

      it("is 401 without a token or with an unknown one", function()
         for _, token in ipairs{ false, "nope", "" } do
            local res = api(sb, "orders/detail", { order_number = "ORD-2025-001" }, token or nil)
            assert_answer(res, 401, 60, '{"error":true,"message":"Unauthenticated."}')
         end
      end)

      it("is 422 with Laravel's messages", function()
         local res = api(sb, "orders/detail", {}, tokens.merchant)
         assert_answer(res, 422, 60,
            '{"message":"The order number field is required.","errors":'
            .. '{"order_number":["The order number field is required."]}}')
         res = api(sb, "orders/detail", { order_number = 8 }, tokens.merchant)
         assert.equal("The order number field must be a string.", res.json.message)
         for _, empty in ipairs{ '{"order_number":""}', '{"order_number":"   "}', '{"order_number":null}' } do
            res = api(sb, "orders/detail", empty, tokens.merchant)
            assert.equal("The order number field is required.", res.json.message)
         end
      end)

      it("checks the token before validating (401 and 403 beat 422)", function()
         assert.equal(401, api(sb, "orders/detail", {}, nil).status)
         assert.equal(403, api(sb, "orders/detail", {}, tokens.other_customer).status)
      end)
   end)

   describe("orders/get", function()
      it("returns the documented top level for website + session + email", function()
         local res = api(sb, "orders/get", { website_id = "1", order_session = SESSION, email = "John@Example.COM" })
         assert.equal(200, res.status)
         has_rate_headers(res, 60)
         assert.same({ "checkout", "quote", "users", "vies" }, keys_of(res.json))
         assert.same({ "order", "payment", "shipment" }, keys_of(res.json.checkout))
         assert.same({ "reverse_charge_applied", "status" }, keys_of(res.json.vies))
         assert.equal(129.99551, res.json.checkout.order.total_price_with_tax)
         assert.is_truthy(res.body:find('"total_price":107.43802', 1, true))
         assert.equal("john@example.com", res.json.users.invoice_email)
      end)

      it("keeps websites apart: the same session on website 2 is another order", function()
         local res = api(sb, "orders/get", { website_id = "2", order_session = SESSION, email = "jane@example.org" })
         assert.equal(200, res.status)
         assert.equal("jane@example.org", res.json.users.invoice_email)
         res = api(sb, "orders/get", { website_id = "2", order_session = SESSION, email = EMAIL })
         assert.equal(404, res.status)
      end)

      it("is 404 when any of the three does not match", function()
         for _, body in ipairs{
            { website_id = "1", order_session = SESSION, email = "other@example.com" },
            { website_id = "3", order_session = SESSION, email = EMAIL },
            { website_id = "1", order_session = "nope", email = EMAIL },
         } do
            local res = api(sb, "orders/get", body)
            assert_answer(res, 404, 60, '{"error":true,"message":"Order not found","data":[]}')
         end
      end)

      it("is 422 with every message, counted in the summary", function()
         local res = api(sb, "orders/get", {})
         assert.equal(422, res.status)
         assert.equal("The website id field is required. (and 2 more errors)", res.json.message)
         assert.same({ "The order session field is required." }, res.json.errors.order_session)
         assert.same({ "The email field is required." }, res.json.errors.email)
         res = api(sb, "orders/get", { website_id = 1, order_session = SESSION, email = EMAIL })
         assert.equal('{"message":"The website id field must be a string.","errors":'
            .. '{"website_id":["The website id field must be a string."]}}', res.body)
         res = api(sb, "orders/get", { website_id = "1", order_session = 5, email = true })
         assert.equal("The order session field must be a string. (and 1 more error)", res.json.message)
      end)

      it("needs no token", function()
         local res = api(sb, "orders/get", { website_id = "1", order_session = SESSION, email = EMAIL }, "nonsense")
         assert.equal(200, res.status)
      end)
   end)

   describe("orders/mark-purchase-tracked", function()
      local function mark(extra)
         local body = { website_id = "1", order_session = SESSION }
         for k, v in pairs(extra or {}) do body[k] = v end
         return api(sb, "orders/mark-purchase-tracked", body)
      end

      it("flips already_tracked and reports the state before the call", function()
         local res = mark()
         assert.equal(200, res.status)
         has_rate_headers(res, 60)
         assert.is_false(res.json.error)
         assert.is_false(res.json.already_tracked)
         assert.equal("open", res.json.payment_status)
         local p = res.json.purchase
         assert.equal("ORD-2025-001", p.transaction_id)
         assert.equal(129.99551, p.value)
         assert.equal(22.55749, p.tax)
         assert.equal(4.99972, p.shipping)
         assert.equal("EUR", p.currency)
         assert.same({ { item_id = "TSHIRT-001", item_name = "T Shirt", price = 125.00026, quantity = 1 } }, p.items)
         assert.is_true(sb:state().tracked[2502])
         assert.is_true(mark().json.already_tracked)
         assert.is_true(mark{ mark = true }.json.already_tracked)
      end)

      it("only reads with mark = false; null means true", function()
         assert.is_false(mark{ mark = false }.json.already_tracked)
         assert.is_false(mark{ mark = "0" }.json.already_tracked)
         assert.is_nil(sb:state().tracked[2502])
         assert.is_false(api(sb, "orders/mark-purchase-tracked",
            '{"website_id":"1","order_session":"' .. SESSION .. '","mark":null}').json.already_tracked)
         assert.is_true(sb:state().tracked["2502"])
         assert.is_true(mark{ mark = false }.json.already_tracked)
      end)

      it("accepts Laravel's boolean forms and rejects the rest", function()
         for _, v in ipairs{ true, false, 0, 1, "0", "1" } do
            assert.equal(200, mark{ mark = v }.status)
         end
         for _, v in ipairs{ "true", "yes", 2, { 1 } } do
            local res = mark{ mark = v }
            assert.equal(422, res.status)
            assert.equal('{"message":"The mark field must be true or false.","errors":'
               .. '{"mark":["The mark field must be true or false."]}}', res.body)
         end
      end)

      it("is 404 for an unknown session and for a quote", function()
         local res = mark{ order_session = "nope" }
         assert_answer(res, 404, 60, '{"error":true}')
         res = api(sb, "orders/mark-purchase-tracked", { website_id = "2", order_session = "q1w2e3r4t5y6u7i8o9p0" })
         assert.equal(404, res.status)
      end)

      it("is 422 for missing or mistyped fields", function()
         local res = api(sb, "orders/mark-purchase-tracked", { mark = "maybe" })
         assert.equal(422, res.status)
         assert.equal("The website id field is required. (and 2 more errors)", res.json.message)
         assert.same({ "The mark field must be true or false." }, res.json.errors.mark)
         has_rate_headers(res, 60)
      end)
   end)

   describe("orders/sync-snelstart-order", function()
      local OK = '{"error":false,"message":"Order queued for synchronisation with SnelStart","data":[]}'

      it("queues the sync and records it in the state", function()
         local res = api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, tokens.merchant)
         assert.equal(200, res.status)
         assert.equal(OK, res.body)
         assert.equal("5", res.headers["x-ratelimit-limit"])
         assert.equal("4", res.headers["x-ratelimit-remaining"])
         assert.equal(OK, api(sb, "orders/sync-snelstart-order", { order_id = "2502" }, tokens.merchant).body)
         assert.equal(OK, api(sb, "orders/sync-snelstart-order", { order_id = 42 }, tokens.merchant).body)
         local state = sb:state()
         assert.equal(2, state.syncs[2502])
         assert.equal(2, state.syncs["2502"])
         assert.equal(1, state.syncs[42])
         assert.equal(2, #state.sync_times[2502])
         assert.is_true(math.abs(state.sync_times[2502][1] - os.time()) < 60)
      end)

      it("is 403 without the finance permission and for customers", function()
         for _, token in ipairs{ tokens.merchant_no_finance, tokens.customer, tokens.other_customer } do
            local res = api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, token)
            assert_answer(res, 403, 5, '{"error":true,"message":"This action is unauthorized."}')
         end
         assert.same({}, keys_of(sb:state().syncs))
      end)

      it("is 401 without a valid token", function()
         local res = api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, "x")
         assert_answer(res, 401, 5, '{"error":true,"message":"Unauthenticated."}')
      end)

      it("is 422 like Laravel's required|integer|exists", function()
         local function errors(body)
            local res = api(sb, "orders/sync-snelstart-order", body, tokens.merchant)
            assert.equal(422, res.status)
            has_rate_headers(res, 5)
            return res.json
         end
         local e = errors({ order_id = 999999 })
         assert.equal("The selected order id is invalid.", e.message)
         assert.same({ "The selected order id is invalid." }, e.errors.order_id)
         e = errors({})
         assert.same({ order_id = { "The order id field is required." } }, e.errors)
         for _, bad in ipairs{ '{"order_id":42.5}', '{"order_id":"abc"}', '{"order_id":true}' } do
            e = errors(bad)
            assert.equal("The order id field must be an integer. (and 1 more error)", e.message)
            assert.same({ "The order id field must be an integer.", "The selected order id is invalid." },
               e.errors.order_id)
         end
         sb:reset()
         assert.same({}, keys_of(sb:state().syncs))
      end)
   end)

   describe("customer/orders/get", function()
      it("returns the customer's own order in the documented shape", function()
         local res = api(sb, "customer/orders/get", { order_id = 2502 }, tokens.customer)
         assert.equal(200, res.status)
         has_rate_headers(res, 60)
         assert.is_false(res.json.error)
         assert.is_string(res.json.message)
         local o = res.json.data.order
         assert.same({ "billing", "can_pay", "created_at", "id", "invoice_id", "items", "order_number",
            "order_session", "payment_method", "payment_methods", "payment_status", "shipping",
            "shipping_method", "status", "status_label", "total_amount", "total_amount_without_tax",
            "total_tax", "type" }, keys_of(o))
         assert.equal(2502, o.id)
         assert.equal(SESSION, o.order_session)
         assert.equal("ORD-2025-001", o.order_number)
         assert.equal(129.99551, o.total_amount)
         assert.equal(22.55749, o.total_tax)
         assert.equal(107.43802, o.total_amount_without_tax)
         assert.is_true(o.can_pay)
         assert.equal(EMAIL, o.billing.email)
         assert.equal(1, #o.items)
         assert.is_truthy(res.body:find('"invoice_id":null', 1, true))
      end)

      it("is 404 for another customer's order and for no order", function()
         for _, id in ipairs{ 2505, 424242 } do
            local res = api(sb, "customer/orders/get", { order_id = id }, tokens.customer)
            assert.equal(404, res.status)
            assert.equal('{"error":true,"message":"Order not found","data":[]}', res.body)
         end
         assert.equal(404, api(sb, "customer/orders/get", { order_id = 2502 }, tokens.other_customer).status)
         assert.equal(200, api(sb, "customer/orders/get", { order_id = 2505 }, tokens.other_customer).status)
      end)

      it("is 403 for merchants and 401 without a token", function()
         local res = api(sb, "customer/orders/get", { order_id = 2502 }, tokens.merchant)
         assert.equal(403, res.status)
         has_rate_headers(res, 60)
         res = api(sb, "customer/orders/get", { order_id = 2502 })
         assert.equal(401, res.status)
         has_rate_headers(res, 60)
      end)

      it("is 422 for a missing or non-integer order id", function()
         local res = api(sb, "customer/orders/get", { order_id = "x" }, tokens.customer)
         assert.equal(422, res.status)
         assert.equal('{"message":"The order id field must be an integer.","errors":'
            .. '{"order_id":["The order id field must be an integer."]}}', res.body)
         res = api(sb, "customer/orders/get", {}, tokens.customer)
         assert.equal("The order id field is required.", res.json.message)
      end)
   end)

   describe("routing and input", function()
      it("is 404 for unknown paths, without rate-limit headers", function()
         local res = api(sb, "x", {})
         assert.equal(404, res.status)
         assert.equal('{"message":"The route services/webshop/v1/x could not be found."}', res.body)
         assert.equal("application/json", res.headers["content-type"])
         assert.is_nil(res.headers["x-ratelimit-limit"])
      end)

      it("is 405 for other methods than POST", function()
         local res = request("GET", sb.base_url .. V1 .. "orders/get")
         assert.equal(405, res.status)
         assert.equal('{"message":"The GET method is not supported for route services/webshop/v1/orders/get.'
            .. ' Supported methods: POST."}', res.body)
         assert.equal("POST", res.headers.allow)
         assert.equal("application/json", res.headers["content-type"])
      end)

      it("treats a body that is not a JSON object as empty input", function()
         for _, body in ipairs{ "[1,2]", "not json", '"text"', "null", "" } do
            local res = api(sb, "orders/detail", body, tokens.merchant)
            assert.equal(422, res.status)
            assert.equal("The order number field is required.", res.json.message)
         end
         local res = api(sb, "orders/detail", '{"order_number":"ORD-2025-001"}', tokens.merchant,
            { ["content-type"] = "text/plain" })
         assert.equal(422, res.status)
      end)

      it("reads input like Laravel: trimmed strings, form bodies, the query string", function()
         assert.equal(200, api(sb, "orders/detail", { order_number = "  ORD-2025-001 " }, tokens.merchant).status)
         local res = api(sb, "orders/detail", "order_number=ORD-2025-001", tokens.merchant,
            { ["content-type"] = "application/x-www-form-urlencoded" })
         assert.equal(200, res.status)
         res = request("POST", sb.base_url .. V1 .. "orders/detail?order_number=ORD-2025-001", "{}",
            { authorization = "Bearer " .. tokens.merchant, ["content-type"] = "application/json" })
         assert.equal(200, res.status)
      end)

      it("answers JSON outside the API too", function()
         local res = request("GET", "http://127.0.0.1:" .. sb.port .. "/")
         assert.equal(404, res.status)
         assert.equal("application/json", res.headers["content-type"])
      end)

      it("counts every request that reached it, whatever the status", function()
         api(sb, "orders/detail", { order_number = "ORD-2025-001" }, tokens.merchant) -- 200
         api(sb, "orders/detail", {}, tokens.merchant) -- 422
         api(sb, "orders/detail", {}) -- 401
         api(sb, "orders/sync-snelstart-order", { order_id = 1 }, tokens.customer) -- 403
         api(sb, "nope", {}) -- 404
         request("GET", sb.base_url .. V1 .. "orders/get") -- 405
         local s = sb:state()
         assert.equal(6, s.total_requests)
         assert.same({ ["orders/detail"] = 3, ["orders/sync-snelstart-order"] = 1, nope = 1, ["orders/get"] = 1 },
            s.requests)
         sb:reset()
         s = sb:state()
         assert.equal(0, s.total_requests)
         assert.same({}, s.requests)
      end)
   end)
end)

------------------------------------------------------------------ rate limiting

describe("wemasy.sandbox rate limiting", function()
   local sb

   lazy_setup(function()
      local url, handle = sandbox.start{ window = 1, limits = { default = 3, sync = 2 } }
      assert(url, handle)
      sb = handle
   end)

   lazy_teardown(function() if sb then sb:stop() end end)

   before_each(function() sb:reset() end)

   local function detail(token)
      return api(sb, "orders/detail", { order_number = "ORD-2025-001" }, token or tokens.merchant)
   end

   it("allows `limit` requests per window, then 429 with Retry-After; allows again after the window", function()
      for i = 1, 3 do
         local res = detail()
         assert.equal(200, res.status)
         assert.equal("3", res.headers["x-ratelimit-limit"])
         assert.equal(tostring(3 - i), res.headers["x-ratelimit-remaining"])
         assert.is_nil(res.headers["retry-after"])
      end
      local res = detail()
      assert.equal(429, res.status)
      assert.equal('{"error":true,"message":"Too Many Attempts."}', res.body)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("3", res.headers["x-ratelimit-limit"])
      assert.equal("0", res.headers["x-ratelimit-remaining"])
      assert.equal("1", res.headers["retry-after"])
      local reset = tonumber(res.headers["x-ratelimit-reset"])
      assert.is_true(reset >= os.time() and reset <= os.time() + 2)
      socket.sleep(1.1)
      res = detail()
      assert.equal(200, res.status)
      assert.equal("2", res.headers["x-ratelimit-remaining"])
   end)

   it("counts every status in the limiter and sends the headers on each", function()
      local statuses = {
         api(sb, "orders/detail", { order_number = "NOPE" }, tokens.merchant).status,
         api(sb, "orders/detail", {}, tokens.merchant).status,
         api(sb, "customer/orders/get", { order_id = 2502 }, tokens.merchant).status,
         api(sb, "orders/detail", {}, tokens.merchant).status,
      }
      assert.same({ 404, 422, 403, 429 }, statuses)
      local r401 = api(sb, "orders/detail", {}, "unknown-token")
      assert.equal(401, r401.status)
      assert.equal("2", r401.headers["x-ratelimit-remaining"])
      assert.equal(5, sb:state().total_requests)
   end)

   it("keeps sync-snelstart in its own limiter", function()
      for _ = 1, 3 do assert.equal(200, detail().status) end
      assert.equal(429, detail().status)
      local res = api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, tokens.merchant)
      assert.equal(200, res.status)
      assert.equal("2", res.headers["x-ratelimit-limit"])
      assert.equal("1", res.headers["x-ratelimit-remaining"])
      assert.equal(200, api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, tokens.merchant).status)
      res = api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, tokens.merchant)
      assert.equal(429, res.status)
      assert.equal("0", res.headers["x-ratelimit-remaining"])
      assert.equal(2, sb:state().syncs[2502])
   end)

   it("keys the limit by token, else by client address", function()
      for _ = 1, 3 do assert.equal(200, detail(tokens.merchant).status) end
      assert.equal(429, detail(tokens.merchant).status)
      assert.equal(200, detail(tokens.merchant_no_finance).status)
      local public = { website_id = "1", order_session = SESSION, email = EMAIL }
      for _ = 1, 3 do assert.equal(200, api(sb, "orders/get", public).status) end
      assert.equal(429, api(sb, "orders/get", public).status)
      assert.equal(200, api(sb, "orders/get", public, "any-string-is-a-key").status)
   end)

   it("starts over after reset", function()
      for _ = 1, 3 do detail() end
      assert.equal(429, detail().status)
      sb:reset()
      assert.equal("2", detail().headers["x-ratelimit-remaining"])
   end)

   it("takes fractional windows", function()
      local _, fast = sandbox.start{ window = 0.3, limits = { default = 1 } }
      finally(function() fast:stop() end)
      local body = { order_number = "ORD-2025-001" }
      assert.equal(200, api(fast, "orders/detail", body, tokens.merchant).status)
      local res = api(fast, "orders/detail", body, tokens.merchant)
      assert.equal(429, res.status)
      assert.equal("1", res.headers["retry-after"])
      socket.sleep(0.35)
      assert.equal(200, api(fast, "orders/detail", body, tokens.merchant).status)
   end)
end)

------------------------------------------------------------------ several workers

describe("wemasy.sandbox with two workers", function()
   it("keeps one set of counters and state across workers", function()
      local _, sb = sandbox.start{ workers = 2, window = 60, limits = { default = 25 } }
      assert(sb)
      finally(function() sb:stop() end)
      local seen, n = {}, 0
      for _ = 1, 200 do
         seen[sb:state().worker] = true
         n = n + 1
         if seen[0] and seen[1] then break end
      end
      assert.is_true(seen[0] and seen[1], "both workers answered")

      local codes = {}
      for _ = 1, 40 do
         local res = api(sb, "orders/detail", { order_number = "ORD-2025-001" }, tokens.merchant)
         codes[res.status] = (codes[res.status] or 0) + 1
      end
      assert.same({ [200] = 25, [429] = 15 }, codes)
      for _ = 1, 6 do
         api(sb, "orders/sync-snelstart-order", { order_id = 2502 }, tokens.merchant)
      end
      local first = api(sb, "orders/mark-purchase-tracked", { website_id = "1", order_session = SESSION })
      local second = api(sb, "orders/mark-purchase-tracked", { website_id = "1", order_session = SESSION })
      assert.is_false(first.json.already_tracked)
      assert.is_true(second.json.already_tracked)
      local s = sb:state()
      assert.equal(48, s.total_requests)
      assert.equal(40, s.requests["orders/detail"])
      assert.equal(5, s.syncs[2502])
      assert.is_true(s.tracked[2502])
      assert.is_true(n <= 200)
   end)
end)

------------------------------------------------------------------ the encoder nginx uses

describe("wemasy.sandbox.json", function()
   local json = require "wemasy.sandbox.json"

   it("keeps numbers as written and integers without a fraction", function()
      assert.equal("[107.43802,129.99551,0.1,22.56,0.5,2502,135,0,-7]",
         json.encode(json.array{ 107.43802, 129.99551, 0.1, 22.56, 0.5, 2502, 135.0, 0, -7 }))
      for _, n in ipairs{ 1 / 3, 1e300, -2.5e-8, 2 ^ 53, 2 ^ 60 + 0.0, 123456.789012345 } do
         assert.equal(n, tonumber(json.encode(n)))
      end
      assert.has_error(function() json.encode(0 / 0) end)
      assert.has_error(function() json.encode(math.huge) end)
   end)

   it("escapes strings so any JSON parser reads them back", function()
      local s = 'quote " backslash \\ slash / nl \n tab \t cr \r nul \0 bell \7 del \127 utf8 é €'
      local text = json.encode({ s = s })
      assert.equal(s, cjson.decode(text).s)
      assert.is_nil(text:find("[%z\1-\31]"))
   end)

   it("encodes [] and {} as asked, null, and keys in the given order", function()
      assert.equal("[]", json.encode(json.array()))
      assert.equal("{}", json.encode({}))
      assert.equal("[1,2]", json.encode({ 1, 2 }))
      assert.equal('{"b":null,"a":[],"c":false}',
         json.encode(json.object{ "b", json.null, "a", json.array(), "c", false }))
      assert.equal('{"0":0,"9":0,"21":1,"x":2}', json.encode({ x = 2, ["21"] = 1, ["9"] = 0, ["0"] = 0 }))
      assert.equal(cjson.null, json.null)
      local cyclic = {}
      cyclic.self = cyclic
      assert.has_error(function() json.encode(cyclic) end)
   end)

   it("decodes keeping order and [] versus {}", function()
      local text = '{"z":[],"a":{},"m":[1,"x",null,true,{"k":-1.25}],"s":"\\u00e9\\ud83d\\ude00\\n"}'
      local v = assert(json.decode(text))
      assert.equal(text:gsub("\\u00e9", "é"):gsub("\\ud83d\\ude00", "😀"), json.encode(v))
      assert.is_nil(json.decode("{"))
      assert.is_nil(json.decode('{"a":1} x'))
   end)
end)
