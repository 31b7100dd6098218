-- Specs for the C core (wemasy.core), talking to a real local HTTP server
-- (spec/support/tiny_server.lua, started once for the whole file).
--
--   spec/run build/5.4/wemasy/core.so build/jit/wemasy/core.so spec/core/core_spec.lua
local core = require "wemasy.core"
local socket = require "socket"
local helpers = require "support.helpers"

local TOKEN = "sekrit-TOKEN-4f1d9c"

local server_pipe, base_url

local function quit_server(pipe, opts)
  opts.rate_limit = false
  local c = core.new(opts)
  c:request("/quit", "")
  c:close()
  pipe:close()
end

local function start_server()
  local port
  server_pipe, port = helpers.launch("tiny_server")
  base_url = "http://127.0.0.1:" .. port
end

local function stop_server()
  if server_pipe then
    quit_server(server_pipe, { base_url = base_url })
    server_pipe = nil
  end
end

local function shell_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function client(opts)
  opts = opts or {}
  opts.base_url = opts.base_url or base_url
  return core.new(opts)
end

local function request_headers(echo_body)
  return (echo_body:match("^(.-)\r\n\r\n"))
end

describe("wemasy.core", function()
  helpers.remove_segments_made() -- clients on many tokens and URLs, with every option value
  setup(start_server)
  teardown(stop_server)

  describe("module", function()
    it("exposes version, curl version and features", function()
      assert.equal("0.1.0", core._VERSION)
      assert.is_string(core.curl_version)
      assert.matches("^%d+%.%d+%.%d+", core.curl_version)
      assert.is_table(core.features)
      assert.is_boolean(core.features.http2)
      -- now(): seconds on a monotonic clock, never going back.
      local t0 = core.now()
      require("socket").sleep(0.05)
      local t1 = core.now()
      assert.is_true(t1 - t0 >= 0.049 and t1 - t0 < 5, ("now() moved %s s over a 50 ms sleep"):format(t1 - t0))
      assert.is_true(core.features.ssl == false or type(core.features.ssl) == "string")
    end)

    it("can be required twice", function()
      package.loaded["wemasy.core"] = nil
      local again = require "wemasy.core"
      assert.equal(core._VERSION, again._VERSION)
      local c = again.new { base_url = base_url }
      assert.equal(200, (c:request("/echo", "{}")))
      c:close()
      package.loaded["wemasy.core"] = core
    end)
  end)

  describe("responses", function()
    local c
    before_each(function() c = client { token = TOKEN } end)
    after_each(function() c:close() end)

    it("returns status, body and headers of a 200", function()
      local status, body, headers = c:request("/echo", '{"a":1}')
      assert.equal(200, status)
      assert.is_true(math.type == nil or math.type(status) == "integer")
      assert.matches("^POST /echo HTTP/1%.1\r\n", body)
      assert.equal('{"a":1}', body:match("\r\n\r\n(.*)$"))
      assert.equal("application/json", headers["content-type"])
      assert.equal(tostring(#body), headers["content-length"])
    end)

    it("lower-cases names, trims values and joins repeated headers", function()
      local status, _, h = c:request("/headers", "{}")
      assert.equal(200, status)
      assert.equal("a, b", h["x-multi"])
      assert.equal("padded value", h["x-trim"])
      assert.equal("V", h["x-upper-case"])
      assert.equal("", h["x-empty"])
      assert.is_nil(h["X-Multi"])
    end)

    it("keeps only the final response's headers after a 100 Continue", function()
      local status, body, h = c:request("/continue", "{}")
      assert.equal(200, status)
      assert.equal("{}", body)
      assert.equal("yes", h["x-final"])
      assert.is_nil(h["x-leak"])
    end)

    it("joins a folded header line to its value", function()
      local status, _, h = c:request("/fold", "{}")
      assert.equal(200, status)
      assert.equal("first second", h["x-fold"])
      assert.equal("ok", h["x-after"])
    end)

    for _, code in ipairs { 401, 404, 422, 500 } do
      it("returns HTTP " .. code .. " as a status, not an error", function()
        local status, body, h = c:request("/status/" .. code, "{}")
        assert.equal(code, status)
        assert.equal('{"status":' .. code .. '}', body)
        assert.is_table(h)
      end)
    end

    it("does not follow a 302", function()
      local status, body, h = c:request("/status/302", "{}")
      assert.equal(302, status)
      assert.equal('{"status":302}', body)
      assert.equal("/echo", h.location)
    end)

    for _, case in ipairs {
      { "returns bodies with NUL bytes intact", "/nul", "a\0b\0\0c" },
      { "decodes gzip bodies", "/gzip/5000", string.rep("\0", 5000) },
    } do
      it(case[1], function()
        local status, body = c:request(case[2], "{}")
        assert.equal(200, status)
        assert.equal(case[3], body)
      end)
    end

    it("sends request bodies with NUL bytes intact", function()
      local sent = "{\0\"x\":\0}"
      local _, body = c:request("/echo", sent)
      assert.equal(sent, body:match("\r\n\r\n(.*)$"))
      assert.matches("\r\nContent%-Length: 8\r\n", body)
    end)

    it("sends a 10 MB body and gets it back (max_request_body raised for it)", function()
      local big = string.rep("0123456789", 1024 * 1024)
      local roomy = client{ max_request_body = 16 * 1024 * 1024 }
      local status, body = roomy:request("/echo", big)
      roomy:close()
      assert.equal(200, status)
      assert.equal(#big, #body:match("\r\n\r\n(.*)$"))
      assert.is_true(body:sub(-#big) == big)
    end)

    it("accepts an empty body", function()
      local status, body = c:request("/echo", "")
      assert.equal(200, status)
      assert.matches("\r\nContent%-Length: 0\r\n", body)
    end)

    it("reuses one connection for consecutive requests", function()
      local _, first = c:request("/conn", "{}")
      local _, second = c:request("/conn", "{}")
      local _, third = c:request("/conn", "{}")
      local id1 = first:match("^(%d+)")
      assert.equal(id1, second:match("^(%d+)"))
      assert.equal(id1, third:match("^(%d+)"))
      -- another client gets a connection of its own
      local other = client()
      local _, fourth = other:request("/conn", "{}")
      other:close()
      assert.not_equal(id1, fourth:match("^(%d+)"))
    end)
  end)

  describe("request headers", function()
    it("sends Authorization only with a token and with_auth", function()
      local c = client { token = TOKEN }
      local _, body = c:request("/echo", "{}")
      assert.matches("\r\nAuthorization: Bearer " .. TOKEN .. "\r\n",
        request_headers(body) .. "\r\n", 1, true)
      _, body = c:request("/echo", "{}", true)
      assert.truthy(request_headers(body):find("Authorization: Bearer " .. TOKEN, 1, true))
      _, body = c:request("/echo", "{}", false)
      assert.falsy(request_headers(body):lower():find("authorization", 1, true))
      c:close()

      local anon = client()
      _, body = anon:request("/echo", "{}", true)
      assert.falsy(request_headers(body):lower():find("authorization", 1, true))
      anon:close()
    end)

    it("sends JSON headers, a user agent and never Expect", function()
      local c = client()
      local _, body = c:request("/echo", string.rep("x", 2 * 1024 * 1024))
      local head = request_headers(body)
      assert.truthy(head:find("\r\nAccept: application/json\r\n", 1, true))
      assert.truthy(head:find("\r\nContent-Type: application/json\r\n", 1, true))
      assert.truthy(head:find("\r\nUser-Agent: wemasy-lua/" .. core._VERSION
        .. " libcurl/" .. core.curl_version .. "\r\n", 1, true))
      assert.falsy(head:lower():find("\r\nexpect:", 1, true))
      c:close()
    end)

    it("uses a custom user agent", function()
      local c = client { user_agent = "shop-sync/2.0" }
      local _, body = c:request("/echo", "{}")
      assert.truthy(request_headers(body):find("\r\nUser-Agent: shop-sync/2.0\r\n", 1, true))
      c:close()
    end)

    it("strips one trailing slash from base_url", function()
      local c = client { base_url = base_url .. "/" }
      local _, body = c:request("/echo", "{}")
      assert.matches("^POST /echo HTTP", body)
      c:close()
    end)
  end)

  describe("failures", function()
    -- c:request(path) fails: no status, `kind`, and `sent` says whether a
    -- byte of it went out.  Returns the message.
    local function assert_fails(c, path, kind, sent)
      local status, got, msg, was_sent = c:request(path, "{}")
      assert.is_nil(status)
      assert.equal(kind, got)
      assert.equal(sent, was_sent)
      return msg
    end

    -- The next request on c is clean: a whole answer of its own.
    local function assert_recovers(c)
      local status, body, h = c:request("/nul", "{}")
      assert.equal(200, status)
      assert.equal("a\0b\0\0c", body)
      assert.equal("6", h["content-length"])
    end

    it("reports a refused connection as network, not sent", function()
      local c = client { base_url = "http://127.0.0.1:" .. helpers.closed_port() }
      assert.is_string(assert_fails(c, "/echo", "network", false))
      c:close()
    end)

    it("reports an unresolvable host as network, not sent", function()
      local c = client { base_url = "http://nonexistent.invalid", token = TOKEN,
                         connect_timeout = 5, allow_http = true }
      local msg = assert_fails(c, "/echo", "network", false)
      assert.falsy(msg:find(TOKEN, 1, true))
      c:close()
    end)

    it("times out within about a second, and the client still works", function()
      local c = client { timeout = 0.3 }
      local t0 = socket.gettime()
      local msg = assert_fails(c, "/sleep/3000", "timeout", true)
      local elapsed = socket.gettime() - t0
      assert.is_string(msg)
      assert.is_true(elapsed >= 0.25 and elapsed < 1.0, "took " .. elapsed .. " s")
      local s2, body = c:request("/echo", "after")
      assert.equal(200, s2)
      assert.equal("after", body:match("\r\n\r\n(.*)$"))
      c:close()
    end)

    it("aborts a body over max_body, and the next request is clean", function()
      local c = client { max_body = 1000 }
      assert.matches("max_body", assert_fails(c, "/big/5000", "too_large", true))
      assert_recovers(c)
      -- exactly max_body is still fine
      local status, body = c:request("/big/1000", "{}")
      assert.equal(200, status)
      assert.equal(1000, #body)
      c:close()
    end)

    it("applies max_body to the decoded size of a gzip body", function()
      local c = client { max_body = 1000 }
      assert_fails(c, "/gzip/100000", "too_large", true)
      assert.equal(200, (c:request("/conn", "{}")))
      c:close()
    end)

    it("reports oversized response headers as too_large", function()
      local c = client()
      assert.matches("headers", assert_fails(c, "/hugeheaders", "too_large", true))
      local s2, _, h = c:request("/headers", "{}")
      assert.equal(200, s2)
      assert.is_nil(h["x-pad"])
      c:close()
    end)

    it("reports a reset mid-response as network, and recovers", function()
      local c = client()
      assert_fails(c, "/reset", "network", true)
      assert_recovers(c)
      c:close()
    end)

    it("reports a truncated body as network, and recovers", function()
      local c = client()
      assert_fails(c, "/partial", "network", true)
      assert.equal(200, (c:request("/nul", "{}")))
      c:close()
    end)

    it("reports https to a plain-http port as tls, not sent", function()
      local c = client { base_url = base_url:gsub("^http:", "https:") }
      assert.is_string(assert_fails(c, "/echo", "tls", false))
      c:close()
    end)

    it("reports a missing CA file as tls", function()
      local c = client { base_url = base_url:gsub("^http:", "https:"),
                         ca_file = "/nonexistent/ca.pem" }
      assert_fails(c, "/echo", "tls", false)
      c:close()
    end)
  end)

  describe("https", function()
    local have_tls = pcall(require, "ssl") and shell_ok("command -v openssl >/dev/null 2>&1")
    local dir, cert, pipe, port, url

    -- A throw-away self-signed certificate, valid for 127.0.0.1 only.
    local function make_cert()
      dir = os.tmpname()
      os.remove(dir)
      assert(shell_ok("mkdir -m 700 " .. dir))
      cert = dir .. "/cert.pem"
      assert(shell_ok("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=wemasy-test"
        .. " -addext subjectAltName=IP:127.0.0.1 -keyout " .. dir .. "/key.pem -out " .. cert
        .. " >/dev/null 2>&1"), "openssl could not make a certificate")
    end

    setup(function()
      if not have_tls then return end
      make_cert()
      pipe, port = helpers.launch("tiny_server", cert .. " " .. dir .. "/key.pem")
      url = "https://127.0.0.1:" .. port
    end)

    teardown(function()
      if not have_tls then return end
      quit_server(pipe, { base_url = url, ca_file = cert })
      os.remove(cert)
      os.remove(dir .. "/key.pem")
      os.remove(dir)
    end)

    local function tls_it(name, fn)
      if have_tls then
        it(name, fn)
      else
        pending(name .. " (needs luasec and openssl)")
      end
    end

    tls_it("talks to a server whose certificate is in ca_file, keeping the connection", function()
      local c = client { base_url = url, ca_file = cert, token = TOKEN }
      local status, body = c:request("/echo", "{\"tls\":true}")
      assert.equal(200, status)
      assert.equal("{\"tls\":true}", body:match("\r\n\r\n(.*)$"))
      assert.truthy(body:find("Authorization: Bearer " .. TOKEN, 1, true))
      local _, a = c:request("/conn", "{}")
      local _, b = c:request("/conn", "{}")
      assert.equal(a:match("^%d+"), b:match("^%d+"))
      c:close()
    end)

    tls_it("rejects an unknown certificate as tls, not sent", function()
      local c = client { base_url = url, token = TOKEN }
      local status, kind, msg, sent = c:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("tls", kind)
      assert.is_false(sent)
      assert.is_string(msg)
      assert.falsy(msg:find(TOKEN, 1, true))
      c:close()
    end)

    tls_it("rejects a certificate for another host name as tls", function()
      local c = client { base_url = "https://localhost:" .. port, ca_file = cert }
      local status, kind, _, sent = c:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("tls", kind)
      assert.is_false(sent)
      c:close()
    end)

    tls_it("skips verification with insecure = true", function()
      local c = client { base_url = "https://localhost:" .. port, insecure = true }
      assert.equal(200, (c:request("/echo", "{}")))
      assert.matches("INSECURE", tostring(c))
      c:close()
    end)
  end)

  describe("options", function()
    it("accepts every option with a valid value", function()
      local c = client {
        token = TOKEN, timeout = 2.5, connect_timeout = 1, ca_file = "/etc/ssl/certs/ca-certificates.crt",
        ca_path = "/etc/ssl/certs", insecure = false, proxy = "", max_body = 4096,
        user_agent = "x/1",
      }
      assert.equal(200, (c:request("/echo", "{}")))
      c:close()
    end)

    it("accepts integral floats for max_body and tiny timeouts", function()
      client({ max_body = 1e6, timeout = 0.0001, connect_timeout = 1e-9 }):close()
    end)

    local wrong_types = {
      base_url = { 1, true, {}, print },
      token = { 1, true, {}, print },
      timeout = { "1", true, {}, print },
      connect_timeout = { "1", false, {}, print },
      ca_file = { 1, true, {}, print },
      ca_path = { 1, true, {}, print },
      insecure = { 1, "true", {}, print },
      proxy = { 1, true, {}, print },
      max_body = { "1", true, {}, print },
      user_agent = { 1, true, {}, print },
    }
    for name, values in pairs(wrong_types) do
      it("names option '" .. name .. "' when its type is wrong", function()
        for _, v in ipairs(values) do
          local opts = { base_url = base_url, [name] = v }
          local ok, err = pcall(core.new, opts)
          assert.is_false(ok)
          assert.matches("wemasy.core.new: option '" .. name .. "' ", err, 1, true)
          assert.matches("(got " .. type(v) .. ")", err, 1, true)
        end
      end)
    end

    local out_of_range = {
      timeout = { 0, -1, 0 / 0, math.huge, 1e10 },
      connect_timeout = { 0, -0.5, -math.huge },
      max_body = { 0, -1, 1.5, 2 ^ 60, 0 / 0, math.huge },
      token = { "" },
      ca_file = { "" },
      user_agent = { "" },
    }
    for name, values in pairs(out_of_range) do
      it("names option '" .. name .. "' when its value is out of range", function()
        for _, v in ipairs(values) do
          local ok, err = pcall(core.new, { base_url = base_url, [name] = v })
          assert.is_false(ok, name .. "=" .. tostring(v))
          assert.matches("option '" .. name .. "'", err, 1, true)
        end
      end)
    end

    it("refuses CR, LF and NUL in every string option, naming it", function()
      for _, name in ipairs { "base_url", "token", "ca_file", "ca_path", "proxy", "user_agent" } do
        for _, bad in ipairs { "x\r", "x\ny", "x\0y", "\r\nX-Injected: 1" } do
          local value = name == "base_url" and base_url .. bad or bad
          local ok, err = pcall(core.new, { base_url = base_url, [name] = value })
          assert.is_false(ok)
          assert.matches("option '" .. name .. "' must not contain CR, LF or NUL", err, 1, true)
        end
      end
    end)

    it("never quotes the token in an error", function()
      local ok, err = pcall(core.new, { base_url = base_url, token = TOKEN .. "\n" })
      assert.is_false(ok)
      assert.falsy(err:find(TOKEN, 1, true))
    end)

    it("refuses an unknown option, naming it", function()
      local ok, err = pcall(core.new, { base_url = base_url, timeuot = 3 })
      assert.is_false(ok)
      assert.equal("wemasy.core.new: unknown option 'timeuot'", err)
      ok, err = pcall(core.new, { base_url = base_url, [1] = "x" })
      assert.is_false(ok)
      assert.matches("option names must be strings", err, 1, true)
    end)

    it("requires an http(s) base_url", function()
      for _, url in ipairs { "ftp://x", "file:///etc/passwd", "127.0.0.1:80", "http://",
                             "https://", "", "http:// x", "gopher://x" } do
        local ok, err = pcall(core.new, { base_url = url })
        assert.is_false(ok, url)
        assert.matches("option 'base_url'", err, 1, true)
      end
      local ok, err = pcall(core.new, {})
      assert.is_false(ok)
      assert.matches("option 'base_url'", err, 1, true)
      assert.has_no.errors(function()
        core.new({ base_url = "HTTPS://example.com/api/" }):close()
      end)
    end)

    it("wants a table", function()
      -- not tail calls: LuaJIT would lose the function's name
      local function new(v) local c = core.new(v); return c end
      for _, v in ipairs { "x", 1, true, print, io.stdout } do
        local ok, err = pcall(new, v)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w.]*new' %(table expected, got [^)]+%)", err)
      end
      local ok, err = pcall(new, nil)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*new' %(table expected, got nil%)", err)
    end)

    it("does not run metamethods of the options table", function()
      local opts = setmetatable({ base_url = base_url }, {
        __index = function() error("metamethod ran") end,
      })
      assert.has_no.errors(function() core.new(opts):close() end)
    end)
  end)

  describe("lifecycle", function()
    it("has_token tells whether a token is set", function()
      local with, without = client { token = TOKEN }, client()
      assert.is_true(with:has_token())
      assert.is_false(without:has_token())
      with:close()
      without:close()
      assert.is_false(with:has_token())
    end)

    it("close is idempotent and request after close fails cleanly", function()
      local c = client { token = TOKEN }
      assert.equal(200, (c:request("/echo", "{}")))
      assert.is_true(c:close())
      assert.is_true(c:close())
      local status, kind, msg, sent = c:request("/echo", "{}")
      assert.is_nil(status)
      assert.equal("closed", kind)
      assert.equal("client is closed", msg)
      assert.is_false(sent)
      assert.is_true(c:close())
    end)

    it("still checks arguments after close", function()
      local c = client()
      c:close()
      assert.has_error(function() c:request(nil, "{}") end)
    end)

    it("is collected with or without close", function()
      for _ = 1, 20 do
        local c = client { token = TOKEN }
        c:request("/conn", "{}")
      end
      collectgarbage()
      collectgarbage()
      local c = client()
      c:close()
      c = nil -- luacheck: ignore
      collectgarbage()
    end)

    if _VERSION == "Lua 5.4" then
      it("closes a to-be-closed variable", function()
        local chunk = assert(load([[
          local core, url = ...
          local keep
          do
            local c <close> = core.new { base_url = url }
            keep = c
          end
          return keep
        ]]))
        local c = chunk(core, base_url)
        assert.matches("%[closed%]", tostring(c))
      end)
    end

    it("tostring shows the URL and state, never the token", function()
      local c = client { token = TOKEN }
      local s = tostring(c)
      assert.equal("wemasy.core client (" .. base_url .. ")", s)
      c:close()
      assert.equal("wemasy.core client (" .. base_url .. ") [closed]", tostring(c))
      local insecure = client { token = TOKEN, insecure = true }
      s = tostring(insecure)
      assert.truthy(s:find("[INSECURE: TLS verification disabled]", 1, true))
      assert.falsy(s:find(TOKEN, 1, true))
      insecure:close()
      assert.falsy(tostring(insecure):find(TOKEN, 1, true))
    end)

    it("uses the wemasy.core.client metatable with methods in __index", function()
      local c = client()
      local mt = getmetatable(c)
      assert.equal(mt, debug.getregistry()["wemasy.core.client"])
      assert.is_function(mt.__index.request)
      assert.is_function(mt.__index.has_token)
      assert.is_function(mt.__index.close)
      assert.is_function(mt.__gc)
      c:close()
    end)
  end)

  describe("bad input", function()
    local huge = string.rep("a", 10 * 1024 * 1024)
    local bad_values = {
      nil, 0, -1, 1.5, 0 / 0, math.huge, "", huge, "/x\0y", {}, { {} }, { path = "/" },
      print, io.stdout, true, false, coroutine.create(function() end),
    }
    local N = 17 -- #bad_values is unreliable with a nil in it

    local function clean(ok, ...)
      -- either a Lua error with a string message, or a value / nil,err return
      if not ok then
        assert.is_string((...))
      end
      return ok
    end

    it("new never crashes", function()
      for i = 1, N do
        clean(pcall(core.new, bad_values[i]))
        for _, name in ipairs { "base_url", "token", "timeout", "connect_timeout", "ca_file",
                                "ca_path", "insecure", "proxy", "max_body", "user_agent" } do
          local ok, c = pcall(core.new, { base_url = base_url, [name] = bad_values[i] })
          if ok then c:close() else assert.is_string(c) end
        end
      end
      -- a 10 MB token is accepted, and stays out of tostring
      local c = client { token = huge }
      assert.is_true(c:has_token())
      assert.is_true(#tostring(c) < 200)
      c:close()
    end)

    it("request never crashes", function()
      local c = client { token = TOKEN }
      for i = 1, N do
        clean(pcall(c.request, c, bad_values[i], "{}"))
        clean(pcall(c.request, c, "/echo", bad_values[i]))
        clean(pcall(c.request, c, "/echo", "{}", bad_values[i]))
        clean(pcall(c.request, bad_values[i], "/echo", "{}"))
      end
      -- a 10 MB path is not a usable URL: an error return, not a crash
      local status, kind = c:request("/" .. huge, "{}")
      if status == nil then
        assert.is_string(kind)
      end
      assert.equal(200, (c:request("/echo", "{}")))
      c:close()
    end)

    it("raises argument errors for wrong request arguments", function()
      local c = client()
      local cases = {
        { { nil, "{}" }, "bad argument #1 to 'request' %(string expected, got nil%)" },
        { { 42, "{}" }, "bad argument #1 to 'request' %(string expected, got number%)" },
        { { "/echo", 42 }, "bad argument #2 to 'request' %(string expected, got number%)" },
        { { "/echo", {} }, "bad argument #2 to 'request' %(string expected, got table%)" },
        { { "/echo", "{}", "yes" }, "bad argument #3 to 'request' %(boolean expected, got string%)" },
        { { "echo", "{}" }, "bad argument #1 to 'request' %(path must start with '/'%)" },
        { { "", "{}" }, "bad argument #1 to 'request'" },
      }
      for _, case in ipairs(cases) do
        local args = case[1]
        local ok, err = pcall(function()
          local r = c:request(args[1], args[2], args[3]) -- not a tail call (LuaJIT)
          return r
        end)
        assert.is_false(ok)
        assert.matches(case[2], err)
      end
      for _, path in ipairs { "/a b", "/a\r\nX-Injected: 1", "/a\nb", "/a\0b", "/a\tb" } do
        local ok, err = pcall(function() local r = c:request(path, "{}"); return r end)
        assert.is_false(ok)
        assert.matches("path must not contain spaces or control characters", err, 1, true)
      end
      c:close()
    end)

    it("methods refuse a wrong self", function()
      local c = client()
      for _, method in ipairs { "request", "has_token", "close" } do
        for _, self in ipairs { io.stdout, {}, 1, "x" } do
          local ok, err = pcall(c[method], self, "/echo", "{}")
          assert.is_false(ok)
          assert.matches("wemasy.core.client expected", err, 1, true)
        end
      end
      local mt = getmetatable(c)
      assert.is_false(pcall(mt.__tostring, io.stdout))
      assert.is_false(pcall(mt.__gc, {}))
      c:close()
    end)
  end)
end)
