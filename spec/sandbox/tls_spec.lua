-- The sandbox's HTTPS listener and its throw-away CA (sandbox.make_ca), seen
-- with luasec (ssl, ssl.https) and the openssl command line tool.

local cjson = require "cjson.safe"
local https = require "ssl.https"
local ltn12 = require "ltn12"
local socket = require "socket"
local ssl = require "ssl"

local sandbox = require "wemasy.sandbox"
local proc = require "wemasy.sandbox.proc"

local PATH = "/services/webshop/v1/orders/get"
local GET = '{"website_id":"1","order_session":"abc123def456ghi789","email":"john@example.com"}'

local function tmpdir()
   local dir = assert(proc.capture("mktemp -d /tmp/wemasy-tls-spec.XXXXXX"))
   return dir
end

local function remove(dir)
   if dir and dir:match("^/tmp/wemasy%-tls%-spec%.%w+$") then proc.run("rm -rf " .. proc.quote(dir)) end
end

local function sh(cmd)
   local f = assert(io.popen(cmd .. " 2>&1", "r"))
   local out = f:read("*a")
   f:close()
   return out
end

-- POST through luasec's ssl.https; params: cafile, verify.
local function post(url, body, params)
   local chunks = {}
   local req = {
      url = url, method = "POST",
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
      source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
      protocol = "any", options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
   }
   for k, v in pairs(params or {}) do req[k] = v end
   local ok, status, headers = https.request(req)
   if not ok then return nil, status end
   local text = table.concat(chunks)
   return { status = status, headers = headers, body = text, json = cjson.decode(text) }
end

-- A TLS connection to 127.0.0.1:port verified with cafile; conn, or nil, err.
local function tls_connect(port, cafile, alpn)
   local tcp = socket.tcp()
   tcp:settimeout(5)
   assert(tcp:connect("127.0.0.1", port))
   local conn = assert(ssl.wrap(tcp, {
      mode = "client", protocol = "any", cafile = cafile, verify = "peer",
      options = { "all", "no_sslv2", "no_sslv3" }, alpn = alpn,
   }))
   conn:settimeout(5)
   local ok, err = conn:dohandshake()
   if not ok then
      conn:close()
      return nil, err
   end
   return conn
end

-- openssl s_client's verdict: "Verify return code: ..." and the ALPN line.
local function s_client(port, args)
   local out = sh("openssl s_client -connect 127.0.0.1:" .. port .. " " .. args .. " </dev/null")
   return out:match("Verify return code: ([^\n]+)"), out:match("ALPN protocol: ([^\n]+)")
      or (out:find("No ALPN negotiated", 1, true) and "none")
end

describe("wemasy.sandbox.make_ca", function()
   it("makes a CA and a server certificate for 127.0.0.1 and localhost that it signed, quickly", function()
      local dir = tmpdir()
      finally(function() remove(dir) end)
      local t0 = socket.gettime()
      local files, err = sandbox.make_ca(dir)
      assert(files, err)
      assert.is_true(socket.gettime() - t0 < 5)
      assert.equal(dir .. "/ca.pem", files.ca_file)
      assert.equal(dir .. "/server.pem", files.cert_file)
      assert.equal(dir .. "/server.key", files.key_file)
      for _, path in pairs(files) do assert.is_true(proc.exists(path), path) end
      local verify = "openssl verify -CAfile " .. proc.quote(files.ca_file) .. " " .. proc.quote(files.cert_file)
      assert.matches(": OK", sh(verify))
      local text = sh("openssl x509 -noout -text -in " .. proc.quote(files.cert_file))
      assert.matches("IP Address:127%.0%.0%.1", text)
      assert.matches("DNS:localhost", text)
      assert.matches("prime256v1", text)
      assert.matches("CA:FALSE", text)
      assert.matches("CA:TRUE", sh("openssl x509 -noout -text -in " .. proc.quote(files.ca_file)))
      -- Nothing but the four files is left behind.
      assert.equal("ca.key ca.pem server.key server.pem", sh("ls " .. proc.quote(dir)):gsub("%s+", " "):gsub(" $", ""))
   end)

   it("creates the directory; nil and a message when it cannot; raises for a bad argument", function()
      local dir = tmpdir()
      finally(function() remove(dir) end)
      local files = assert(sandbox.make_ca(dir .. "/a/b"))
      assert.is_true(proc.exists(files.ca_file))
      local ok, err = sandbox.make_ca("/proc/wemasy-no-such-dir")
      assert.is_nil(ok)
      assert.matches("cannot create", err)
      assert.has_error(function() sandbox.make_ca(42) end)
   end)
end)

describe("wemasy.sandbox over HTTPS", function()
   local dir, files, sb

   setup(function()
      dir = tmpdir()
      files = assert(sandbox.make_ca(dir))
      local url, handle = sandbox.start{ tls = { cert_file = files.cert_file, key_file = files.key_file } }
      assert(url, handle)
      sb = handle
   end)

   teardown(function()
      if sb then sb:stop() end
      remove(dir)
   end)

   before_each(function() sb:reset() end)

   it("has an https URL on a second port, and keeps the plain one", function()
      assert.matches("^https://127%.0%.0%.1:%d+/api$", sb.https_url)
      assert.equal("https://127.0.0.1:" .. sb.https_port .. "/api", sb.https_url)
      assert.are_not.equal(sb.port, sb.https_port)
      assert.equal("http://127.0.0.1:" .. sb.port .. "/api", sb.base_url)
      local http = require "socket.http"
      local _, status = http.request{
         url = sb.base_url .. PATH, method = "POST", source = ltn12.source.string(GET),
         headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#GET) },
      }
      assert.equal(200, status)
   end)

   it("serves the API with the CA-signed certificate: verification with the CA passes", function()
      local res = assert(post(sb.https_url .. PATH, GET, { cafile = files.ca_file, verify = "peer" }))
      assert.equal(200, res.status)
      assert.equal(129.99551, res.json.checkout.order.total_price_with_tax)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal(1, sb:state().requests["orders/get"])
   end)

   it("fails verification without the CA", function()
      local res, err = post(sb.https_url .. PATH, GET, { verify = "peer" })
      assert.is_nil(res)
      assert.matches("certificate verify failed", err)
      res, err = post(sb.https_url .. PATH, GET, { verify = "peer", cafile = "/etc/ssl/certs/ca-certificates.crt" })
      assert.is_nil(res)
      assert.matches("certificate verify failed", err)
      assert.equal(0, sb:state().total_requests)
   end)

   it("is what the wemasy client needs for a verified HTTPS call (ca_file)", function()
      local has_client, wemasy = pcall(require, "wemasy")
      if not has_client then return pending("wemasy.core is not built: " .. tostring(wemasy)) end
      local client = wemasy.new{ base_url = sb.https_url, token = sandbox.tokens.merchant, ca_file = files.ca_file,
                                 rate_limit = { shared = false } }
      local body, err = client:orders_detail{ order_number = "ORD-2025-001" }
      assert(body, err and err.message)
      assert.equal("ORD-2025-001", body.data.order_number)
      local unverified = wemasy.new{ base_url = sb.https_url, token = sandbox.tokens.merchant,
                                     rate_limit = { shared = false } }
      body, err = unverified:orders_detail{ order_number = "ORD-2025-001" }
      assert.is_nil(body)
      assert.equal("tls", err.kind)
   end)

   it("is valid for 127.0.0.1 and localhost, not for other names (openssl s_client)", function()
      local ca = " -CAfile " .. proc.quote(files.ca_file) .. " -verify_return_error"
      assert.equal("0 (ok)", (s_client(sb.https_port, ca .. " -verify_ip 127.0.0.1")))
      assert.equal("0 (ok)", (s_client(sb.https_port, ca .. " -verify_hostname localhost -servername localhost")))
      assert.matches("hostname mismatch", (s_client(sb.https_port, ca .. " -verify_hostname example.com")))
      assert.matches("unable to get local issuer certificate", (s_client(sb.https_port, "-verify_return_error")))
   end)

   it("offers HTTP/2 by ALPN, and HTTP/1.1", function()
      local conn = assert(tls_connect(sb.https_port, files.ca_file, { "h2", "http/1.1" }))
      assert.equal("h2", conn:getalpn())
      conn:close()
      conn = assert(tls_connect(sb.https_port, files.ca_file, { "http/1.1" }))
      assert.is_not.equal("h2", conn:getalpn())
      conn:close()
   end)

   it("applies faults on HTTPS too (HTTP/1.1): resets and short bodies", function()
      local function raw(path_body)
         local conn = assert(tls_connect(sb.https_port, files.ca_file))
         assert(conn:send("POST /api" .. PATH .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            .. "Connection: close\r\nContent-Length: " .. #path_body .. "\r\n\r\n" .. path_body))
         local data, err, partial = conn:receive("*a")
         conn:close()
         return data, err, partial
      end
      sb:fault{ kind = "short_body", bytes = 40 }
      local data = assert(raw(GET))
      assert.matches("^HTTP/1%.1 200", data)
      assert.matches("Content%-Length: 40\r\n", data)
      assert.equal(20, #data:match("\r\n\r\n(.*)$"))
      sb:fault{ kind = "reset_before" }
      local got, err, partial = raw(GET)
      assert.is_nil(got)
      assert.is_string(err)
      assert.equal("", partial)
      sb:fault{ kind = "status", status = 503 }
      assert.equal(503, assert(post(sb.https_url .. PATH, GET, { cafile = files.ca_file, verify = "peer" })).status)
      assert.equal(3, sb:state().requests["orders/get"])
   end)

   it("applies faults on HTTP/2 as stream errors (curl)", function()
      if not proc.run("command -v curl >/dev/null 2>&1") then return pending("no curl command") end
      local function curl(extra)
         -- Without LD_PRELOAD: the curl command hangs at start with the ASan
         -- runtime preloaded, as make check-asan does for every process.
         local out = sh("env -u LD_PRELOAD curl -sS --max-time 5 --http2 --cacert " .. proc.quote(files.ca_file) .. " "
            .. (extra or "")
            .. " -X POST -H 'Content-Type: application/json' --data " .. proc.quote(GET)
            .. " -o /dev/null -w 'code=%{http_code} version=%{http_version}' " .. proc.quote(sb.https_url .. PATH)
            .. " 2>/dev/null; echo \" exit=$?\"")
         return out
      end
      assert.matches("code=200 version=2 exit=0", curl())
      sb:fault{ kind = "status", status = 503 }
      assert.matches("code=503 version=2 exit=0", curl())
      for _, kind in ipairs{ "reset_before", "reset_after_headers", "short_body" } do
         sb:fault{ kind = kind }
         local out = curl()
         assert.matches("exit=92", out, kind .. ": " .. out) -- HTTP/2 stream not closed cleanly
      end
      sb:fault{ kind = "trickle", seconds = 0.4, interval = 0.1 }
      assert.matches("code=200 version=2 exit=0", curl())
      sb:fault{ kind = "no_headers", seconds = 3 }
      assert.matches("exit=28", curl("--max-time 0.5")) -- the client's timeout fires first
   end)
end)

describe("wemasy.sandbox tls option", function()
   it("changes nothing without tls", function()
      local url, sb = sandbox.start()
      assert(url, sb)
      finally(function() sb:stop() end)
      assert.is_nil(sb.https_url)
      assert.is_nil(sb.https_port)
      assert.is_nil(proc.read_file(sb.prefix .. "/conf/nginx.conf"):find("ssl", 1, true))
   end)

   it("can leave HTTP/2 out", function()
      local dir = tmpdir()
      finally(function() remove(dir) end)
      local files = assert(sandbox.make_ca(dir))
      local url, sb = sandbox.start{ tls = { cert_file = files.cert_file, key_file = files.key_file, http2 = false } }
      assert(url, sb)
      finally(function() sb:stop() end)
      local conn = assert(tls_connect(sb.https_port, files.ca_file, { "h2", "http/1.1" }))
      assert.is_not.equal("h2", conn:getalpn())
      conn:close()
   end)

   it("raises an error naming the field for wrong values, and says when a file is missing", function()
      local cases = {
         { "yes", "'tls'" },
         { { key_file = "k" }, "'tls.cert_file'" },
         { { cert_file = "c", key_file = 1 }, "'tls.key_file'" },
         { { cert_file = "c", key_file = "k", http2 = "no" }, "'tls.http2'" },
         { { cert_file = "c", key_file = "k", ca = "x" }, "\"ca\"" },
      }
      for _, case in ipairs(cases) do
         local ok, err = pcall(sandbox.start, { tls = case[1] })
         assert.is_false(ok)
         assert.truthy(tostring(err):find(case[2], 1, true), tostring(err) .. " should name " .. case[2])
      end
      local url, err = sandbox.start{ tls = { cert_file = "/nonexistent/server.pem", key_file = "/nonexistent/k" } }
      assert.is_nil(url)
      assert.matches("tls%.cert_file", err)
   end)
end)
