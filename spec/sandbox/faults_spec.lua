-- Fault injection in the sandbox (sb:fault, sb:clear_faults, state().faults),
-- seen from raw TCP with luasocket so that every byte that arrives, and how
-- the connection ends, is visible.
--
-- How a connection ended, as read_all() reports it ("close" or "reset"):
-- luasocket's receive("*a") returns the data on an orderly close (FIN) after
-- some data, but nil, "closed" both on a close before any data and on a reset
-- (it reports ECONNRESET as "closed" too). Then one more send tells them
-- apart: after a FIN the socket can still send (the peer answers with a
-- reset later), after a reset it cannot (EPIPE).

local cjson = require "cjson.safe"
local socket = require "socket"
local request = require("support.http").request

local sandbox = require "wemasy.sandbox"
local proc = require "wemasy.sandbox.proc"

local tokens = sandbox.tokens
local V1 = "/api/services/webshop/v1/"

local DETAIL = { order_number = "ORD-2025-001" }
local GET = { website_id = "1", order_session = "abc123def456ghi789", email = "john@example.com" }

------------------------------------------------------------------ helpers

-- Opens a connection and sends one POST to an endpoint path. `opts`:
-- token, body (a table or a string), keep (no "Connection: close").
local function send(sb, path, opts)
   opts = opts or {}
   local body = type(opts.body) == "string" and opts.body or assert(cjson.encode(opts.body or {}))
   local c = socket.tcp()
   c:settimeout(5)
   assert(c:connect("127.0.0.1", sb.port))
   local lines = {
      "POST " .. V1 .. path .. " HTTP/1.1",
      "Host: 127.0.0.1:" .. sb.port,
      "Content-Type: application/json",
      "Accept: application/json",
      "Content-Length: " .. #body,
   }
   if opts.token then lines[#lines + 1] = "Authorization: Bearer " .. opts.token end
   if not opts.keep then lines[#lines + 1] = "Connection: close" end
   assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
   return c, socket.gettime()
end

-- Splits raw response bytes: status, headers (lower-case names), body.
local function parse(data)
   local head, body = data:match("^(.-)\r\n\r\n(.*)$")
   if not head then return { raw = data } end
   local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
   local headers = {}
   for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
   return { raw = data, status = status, headers = headers, body = body, json = cjson.decode(body) }
end

-- Reads until the connection ends. { data, ended = "close"|"reset"|"timeout", seconds, res }
local function read_all(c, timeout, since)
   c:settimeout(timeout or 5)
   local t0 = since or socket.gettime()
   local data, err, partial = c:receive("*a")
   local r = { data = data or partial or "", seconds = socket.gettime() - t0 }
   if data then
      r.ended = "close"
   elseif err == "timeout" then
      r.ended = "timeout"
   elseif err == "closed" then
      r.ended = c:send("x") and "close" or "reset"
   else
      r.ended = err
   end
   c:close()
   r.res = parse(r.data)
   return r
end

local function call(sb, path, opts)
   local c, t0 = send(sb, path, opts)
   return read_all(c, opts and opts.timeout, t0)
end

local function detail(sb, opts)
   opts = opts or {}
   opts.token = opts.token or tokens.merchant
   opts.body = opts.body or DETAIL
   return call(sb, "orders/detail", opts)
end

-- A control request with a body, through socket.http: the status and the decoded answer.
local function control(sb, method, name, body)
   local res = request(method, "http://127.0.0.1:" .. sb.port .. "/__sandbox/" .. name, body,
      { ["content-type"] = "application/json" })
   return res.status, res.json
end

local function worker_pids(master)
   local list = {}
   -- Without LD_PRELOAD: procps deadlocks at start with the ASan runtime
   -- preloaded, as make check-asan does for every process the specs start.
   local p = assert(io.popen("env -u LD_PRELOAD ps -o pid= --ppid " .. math.floor(master)))
   for line in p:lines() do list[#list + 1] = tonumber(line) end
   p:close()
   return list
end

local function peak_rss_kb(pid)
   local status = proc.read_file("/proc/" .. pid .. "/status") or ""
   return tonumber(status:match("VmHWM:%s*(%d+)"))
end

------------------------------------------------------------------ specs

describe("wemasy.sandbox faults", function()
   local sb

   setup(function()
      local url, handle = sandbox.start{ limits = { default = 1000 } }
      assert(url, handle)
      sb = handle
   end)

   teardown(function()
      if sb then sb:stop() end
   end)

   before_each(function()
      sb:reset()
   end)

   -- orders/detail under a fault that answers `bytes` (its Content-Length):
   -- a 200 that ends in an orderly close.
   local function sized(kind, bytes)
      sb:fault{ kind = kind, bytes = bytes }
      local r = detail(sb)
      assert.equal("close", r.ended)
      assert.equal(200, r.res.status)
      assert.equal(tostring(bytes), r.res.headers["content-length"])
      return r
   end

   describe("responses", function()
      it("status: answers the status with Laravel's server error body and rate-limit headers, once", function()
         local f = sb:fault{ kind = "status", status = 503, path = "orders/detail" }
         assert.equal("status", f.kind)
         assert.equal(1, f.count)
         assert.is_number(f.id)
         local r = detail(sb)
         assert.equal("close", r.ended)
         assert.equal(503, r.res.status)
         assert.same({ message = "Server Error" }, r.res.json)
         assert.equal("application/json", r.res.headers["content-type"])
         assert.equal("1000", r.res.headers["x-ratelimit-limit"])
         assert.equal("1000", r.res.headers["x-ratelimit-remaining"])
         assert.equal(200, detail(sb).res.status)
      end)

      it("status: takes a raw body, a content type and Retry-After", function()
         sb:fault{ kind = "status", status = 502, body = "<html>Bad Gateway</html>", content_type = "text/html",
            retry_after = 3 }
         local r = detail(sb)
         assert.equal(502, r.res.status)
         assert.equal("<html>Bad Gateway</html>", r.res.body)
         assert.equal("text/html", r.res.headers["content-type"])
         assert.equal("3", r.res.headers["retry-after"])
      end)

      it("rate_limited: 429 as if the quota were exhausted, without using it", function()
         sb:fault{ kind = "rate_limited", retry_after = 7, path = "orders/get" }
         local r = call(sb, "orders/get", { body = GET })
         assert.equal(429, r.res.status)
         assert.same({ error = true, message = "Too Many Attempts." }, r.res.json)
         assert.equal("7", r.res.headers["retry-after"])
         assert.equal("0", r.res.headers["x-ratelimit-remaining"])
         assert.equal("1000", r.res.headers["x-ratelimit-limit"])
         assert.is_truthy(tonumber(r.res.headers["x-ratelimit-reset"]))
         local ok = call(sb, "orders/get", { body = GET })
         assert.equal(200, ok.res.status)
         assert.equal("999", ok.res.headers["x-ratelimit-remaining"])
         sb:fault{ kind = "rate_limited" }
         assert.equal("1", call(sb, "orders/get", { body = GET }).res.headers["retry-after"])
      end)

      -- 200s that are no JSON: the header that says what they are, the body exactly.
      for _, case in ipairs{
         { "malformed_json: 200 application/json with a cut-off document", "malformed_json",
           "content-type", "application/json", '{"error":false,"data":{' },
         { "html: 200 text/html maintenance page", "html",
           "content-type", "text/html", "<html><body>Maintenance</body></html>" },
         { "empty_200: 200 with an empty body", "empty_200", "content-length", "0", "" },
      } do
         it(case[1], function()
            sb:fault{ kind = case[2] }
            local r = detail(sb)
            assert.equal(200, r.res.status)
            assert.equal(case[4], r.res.headers[case[3]])
            assert.equal(case[5], r.res.body)
            assert.is_nil(r.res.json)
         end)
      end

      it("redirect: 302 with the Location as given", function()
         sb:fault{ kind = "redirect" }
         local r = detail(sb)
         assert.equal(302, r.res.status)
         assert.equal("/api/elsewhere", r.res.headers["location"])
         sb:fault{ kind = "redirect", location = "https://example.invalid/login" }
         assert.equal("https://example.invalid/login", detail(sb).res.headers["location"])
      end)

      it("big_body: the given number of bytes of valid JSON, with Content-Length", function()
         local r = sized("big_body", 300000)
         assert.equal(300000, #r.res.body)
         assert.is_false(r.res.json.error)
         sb:fault{ kind = "big_body", bytes = 5 }
         assert.equal("{   }", detail(sb).res.body)
      end)

      it("big_body: 50 MB by default, streamed without holding it in the worker's memory", function()
         local url, big = sandbox.start{ workers = 1 }
         assert(url, big)
         finally(function() big:stop() end)
         local worker = assert(worker_pids(big.pid)[1])
         local before = assert(peak_rss_kb(worker))
         big:fault{ kind = "big_body" }
         local c = send(big, "orders/get", { body = GET })
         c:settimeout(10)
         local head = c:receive("*l")
         assert.equal("HTTP/1.1 200 OK", head)
         local length
         repeat
            local line = assert(c:receive("*l"))
            length = length or tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)"))
         until line == ""
         assert.equal(50 * 1024 * 1024, length)
         local got = 0
         while got < length do
            local data, err, partial = c:receive(math.min(1024 * 1024, length - got))
            data = data or partial
            assert(err == nil or #data > 0, err)
            got = got + #data
         end
         c:close()
         assert.equal(length, got)
         local after = assert(peak_rss_kb(worker))
         assert.is_true(after - before < 20 * 1024, "worker's peak RSS grew by " .. (after - before) .. " kB")
      end)
   end)

   describe("connections", function()
      it("reset_before: a TCP reset and not one byte", function()
         sb:fault{ kind = "reset_before" }
         local r = detail(sb)
         assert.equal("reset", r.ended)
         assert.equal("", r.data)
         assert.equal(200, detail(sb).res.status)
      end)

      it("reset_after_headers: status line and headers promising more, then a reset", function()
         sb:fault{ kind = "reset_after_headers", count = 2 }
         local r = detail(sb)
         assert.equal("reset", r.ended)
         assert.equal(200, r.res.status)
         assert.equal("2048", r.res.headers["content-length"])
         assert.equal("", r.res.body)
         -- Headers that arrived before the reset are still there for a client that reads late.
         local c = send(sb, "orders/detail", { token = tokens.merchant, body = DETAIL })
         socket.sleep(0.3)
         local late = read_all(c)
         assert.equal("reset", late.ended)
         assert.equal(200, late.res.status)
      end)

      it("short_body: Content-Length N, N/2 bytes, then an orderly close", function()
         local r = sized("short_body", 100)
         assert.equal(50, #r.res.body)
         assert.equal('{"error":false,', r.res.body:sub(1, 15))
         sb:fault{ kind = "short_body" }
         local d = detail(sb)
         assert.equal("64", d.res.headers["content-length"])
         assert.equal(32, #d.res.body)
         assert.equal("close", d.ended)
      end)

      it("short_body: a large one is cut at half too", function()
         assert.equal(500000, #sized("short_body", 1000001).res.body)
      end)

      it("no_headers: nothing at all for `seconds`, then a close; a client timeout fires first", function()
         sb:fault{ kind = "no_headers", seconds = 1, count = 2 }
         local c = send(sb, "orders/detail", { token = tokens.merchant, body = DETAIL })
         local timed_out = read_all(c, 0.3)
         assert.equal("timeout", timed_out.ended)
         assert.equal("", timed_out.data)
         local r = detail(sb)
         assert.equal("close", r.ended)
         assert.equal("", r.data)
         assert.is_true(r.seconds >= 0.9, "closed after " .. r.seconds .. " s")
         assert.is_true(r.seconds < 3)
      end)

      it("trickle: headers at once, then the body a few bytes at a time over `seconds`", function()
         sb:fault{ kind = "trickle", seconds = 1, interval = 0.2 }
         local c, t0 = send(sb, "orders/detail", { token = tokens.merchant, body = DETAIL })
         local head = {}
         repeat
            local line = assert(c:receive("*l"))
            head[#head + 1] = line
         until line == ""
         local res = parse(table.concat(head, "\r\n") .. "\r\n")
         assert.equal(200, res.status)
         assert.is_true(socket.gettime() - t0 < 0.5)
         local length = assert(tonumber(res.headers["content-length"]))
         local body, arrivals = "", 0
         c:settimeout(0.05)
         while #body < length and socket.gettime() - t0 < 5 do
            local data, err, partial = c:receive(length - #body)
            data = data or partial
            if #data > 0 then
               arrivals = arrivals + 1
               body = body .. data
            end
            assert(err == nil or err == "timeout", err)
         end
         c:close()
         local took = socket.gettime() - t0
         assert.equal(length, #body)
         assert.is_true(arrivals >= 4, arrivals .. " arrivals")
         assert.is_true(took >= 0.8 and took < 3, "took " .. took)
         assert.is_false(cjson.decode(body).error)
      end)

      it("delay: waits without blocking other requests, then answers as usual", function()
         local url, one = sandbox.start{ workers = 1, limits = { default = 2 } }
         assert(url, one)
         finally(function() one:stop() end)
         one:fault{ kind = "delay", seconds = 1, path = "orders/detail" }
         local slow, t0 = send(one, "orders/detail", { token = tokens.merchant, body = DETAIL })
         socket.sleep(0.1)
         local quick = call(one, "orders/get", { body = GET })
         assert.equal(200, quick.res.status)
         assert.is_true(quick.seconds < 0.5, "the other request took " .. quick.seconds .. " s")
         local r = read_all(slow, 5, t0)
         assert.equal(200, r.res.status)
         assert.equal("ORD-2025-001", r.res.json.data.order_number)
         assert.is_true(r.seconds >= 0.95, "the delayed request took " .. r.seconds .. " s")
         -- It went through the throttle afterwards: it used the token's quota.
         assert.equal("1", r.res.headers["x-ratelimit-remaining"])
      end)
   end)

   describe("queue", function()
      it("applies to the path asked for, or to any endpoint with *", function()
         sb:fault{ kind = "status", status = 500, path = "orders/get" }
         assert.equal(200, detail(sb).res.status)
         assert.equal(500, call(sb, "orders/get", { body = GET }).res.status)
         sb:fault{ kind = "status", status = 504, path = "*" }
         assert.equal(504, call(sb, "customer/orders/get", { token = tokens.customer, body = { order_id = 2502 } })
            .res.status)
         assert.equal(200, call(sb, "orders/get", { body = GET }).res.status)
      end)

      it("leaves unknown routes and wrong methods alone", function()
         sb:fault{ kind = "status", status = 500 }
         assert.equal(404, call(sb, "orders/nope").res.status)
         local c = socket.tcp()
         c:settimeout(5)
         assert(c:connect("127.0.0.1", sb.port))
         c:send("GET " .. V1 .. "orders/detail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
         assert.equal(405, read_all(c).res.status)
         assert.equal(1, #sb:state().faults)
         assert.equal(500, detail(sb).res.status)
      end)

      it("applies faults in the order queued, each for its count", function()
         sb:fault{ kind = "status", status = 502, count = 2 }
         sb:fault{ kind = "status", status = 504 }
         sb:fault{ kind = "html", path = "orders/get" }
         local seen = {}
         for i = 1, 4 do seen[i] = detail(sb).res.status end
         assert.same({ 502, 502, 504, 200 }, seen)
         assert.equal("text/html", call(sb, "orders/get", { body = GET }).res.headers["content-type"])
      end)

      it("count -1 applies until cleared", function()
         sb:fault{ kind = "status", status = 503, count = -1 }
         for _ = 1, 5 do assert.equal(503, detail(sb).res.status) end
         assert.equal(-1, sb:state().faults[1].count)
         assert.is_true(sb:clear_faults())
         assert.equal(200, detail(sb).res.status)
      end)

      it("shows the pending faults in the state, with what is left; reset clears them", function()
         assert.same({}, sb:state().faults)
         local a = sb:fault{ kind = "status", status = 502, count = 3, path = "orders/detail" }
         local b = sb:fault{ kind = "trickle", seconds = 1 }
         local faults = sb:state().faults
         assert.equal(2, #faults)
         assert.same({ id = a.id, kind = "status", path = "orders/detail", count = 3, status = 502 }, faults[1])
         assert.same({ id = b.id, kind = "trickle", path = "*", count = 1, seconds = 1, interval = 0.2 }, faults[2])
         detail(sb)
         assert.equal(2, sb:state().faults[1].count)
         sb:reset()
         assert.same({}, sb:state().faults)
      end)

      it("does not count against the rate limit, but every request is counted in the state", function()
         local url, small = sandbox.start{ limits = { default = 2 } }
         assert(url, small)
         finally(function() small:stop() end)
         small:fault{ kind = "status", status = 500, count = 2 }
         small:fault{ kind = "reset_before" }
         small:fault{ kind = "rate_limited" }
         local seen = {}
         for i = 1, 7 do
            local r = detail(small)
            seen[i] = r.res.status or r.ended
         end
         assert.same({ 500, 500, "reset", 429, 200, 200, 429 }, seen)
         local state = small:state()
         assert.equal(7, state.requests["orders/detail"])
         assert.equal(7, state.total_requests)
      end)

      it("is one queue for all workers", function()
         local url, many = sandbox.start{ workers = 4 }
         assert(url, many)
         finally(function() many:stop() end)
         many:fault{ kind = "status", status = 500, count = 10 }
         local failures = 0
         for _ = 1, 30 do
            local r = detail(many)
            if r.res.status == 500 then failures = failures + 1 end
         end
         assert.equal(10, failures)
         assert.same({}, many:state().faults)
         assert.equal(30, many:state().total_requests)
      end)

      it("lets stop end quickly while a fault holds a connection", function()
         local url, held = sandbox.start()
         assert(url, held)
         held:fault{ kind = "no_headers", seconds = 30 }
         local c = send(held, "orders/get", { body = GET })
         socket.sleep(0.2)
         local t0 = socket.gettime()
         assert.is_true(held:stop())
         assert.is_true(socket.gettime() - t0 < 3, "stop took " .. (socket.gettime() - t0) .. " s")
         c:close()
      end)
   end)

   describe("options", function()
      it("raises an error naming the field for wrong values", function()
         local cases = {
            { {}, "'kind'" },
            { { kind = 5 }, "'kind'" },
            { { kind = "explode" }, "'kind' must be one of" },
            { { kind = "status", status = "500" }, "'status'" },
            { { kind = "status", status = 99 }, "'status'" },
            { { kind = "status", body = {} }, "'body'" },
            { { kind = "status", count = "2" }, "'count'" },
            { { kind = "status", count = 0 }, "'count'" },
            { { kind = "status", count = 1.5 }, "'count'" },
            { { kind = "status", path = "orders/nope" }, "'path'" },
            { { kind = "status", path = 1 }, "'path'" },
            { { kind = "delay", seconds = "1" }, "'seconds'" },
            { { kind = "delay", seconds = -1 }, "'seconds'" },
            { { kind = "trickle", interval = 0 }, "'interval'" },
            { { kind = "big_body", bytes = 1 }, "'bytes'" },
            { { kind = "rate_limited", retry_after = 1.5 }, "'retry_after'" },
            { { kind = "redirect", location = "a\r\nb" }, "'location'" },
            { { kind = "html", seconds = 1 }, "'seconds' does not apply to kind 'html'" },
            { { kind = "html", colour = "red" }, "\"colour\" is not known" },
         }
         for _, case in ipairs(cases) do
            local ok, err = pcall(sb.fault, sb, case[1])
            assert.is_false(ok)
            assert.truthy(tostring(err):find(case[2], 1, true), tostring(err) .. " should name " .. case[2])
         end
         assert.has_error(function() sb:fault("status") end)
         assert.same({}, sb:state().faults)
      end)

      it("answers 422 to a bad fault posted directly, 405 to other methods", function()
         local status, body = control(sb, "POST", "faults", '{"kind":"status","status":"x"}')
         assert.equal(422, status)
         assert.truthy(body.message:find("'status'", 1, true))
         assert.equal(422, (control(sb, "POST", "faults", "[1,2]")))
         assert.equal(405, (control(sb, "PUT", "faults", "{}")))
         status, body = control(sb, "POST", "faults", '{"kind":"empty_200","count":2}')
         assert.equal(200, status)
         assert.equal(2, body.fault.count)
         status, body = control(sb, "GET", "faults")
         assert.equal(200, status)
         assert.equal(1, #body.faults)
         assert.equal(200, (control(sb, "DELETE", "faults")))
         assert.same({}, sb:state().faults)
      end)
   end)
end)
