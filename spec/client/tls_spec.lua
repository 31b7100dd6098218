-- Transport rules, through wemasy.new against the sandbox:
--
--   * TLS: the sandbox's HTTPS listener with a certificate from a CA made
--     here (openssl CLI, sandbox.make_ca).  Verification is on by default and
--     an unknown CA is err.kind "tls", sent nothing and retried never;
--     ca_file makes it pass; insecure = true is the only way around it.
--   * Refused before connecting (nothing reaches the sandbox): CR, LF, NUL
--     (any control byte) in a header value, a base_url that is not http(s),
--     plain http:// to a host that is not this machine without allow_http.
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local proc = require("wemasy.sandbox.proc")

local DETAIL = { order_number = "ORD-2025-001" }

local function tmpdir()
  return assert(proc.capture("mktemp -d /tmp/wemasy-tls-rules.XXXXXX"))
end

local function remove(dir)
  if dir and dir:match("^/tmp/wemasy%-tls%-rules%.%w+$") then proc.run("rm -rf " .. proc.quote(dir)) end
end

describe("TLS and transport rules", function()
  local sb, ca, other_ca, dir, other_dir

  local function total()
    return sb:state().total_requests
  end

  local function client(opts)
    opts = opts or {}
    if opts.base_url == nil then opts.base_url = sb.https_url end
    opts.token = sandbox.tokens.merchant
    opts.timeout, opts.connect_timeout = 5, 5
    opts.rate_limit = { shared = false }
    return wemasy.new(opts)
  end

  lazy_setup(function()
    dir, other_dir = tmpdir(), tmpdir()
    ca = assert(sandbox.make_ca(dir))
    other_ca = assert(sandbox.make_ca(other_dir))
    local url
    url, sb = sandbox.start{ limits = { default = 100000 }, tls = { cert_file = ca.cert_file, key_file = ca.key_file } }
    assert(url, sb)
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
    remove(dir)
    remove(other_dir)
  end)

  before_each(function() sb:reset() end)

  describe("TLS", function()
    it("verifies by default: a CA the system does not know is kind tls, not sent, not retried", function()
      local c = client()
      local body, err = c:orders_detail(DETAIL)
      assert.is_nil(body)
      assert.equal("tls", err.kind, tostring(err))
      assert.equal(1, err.attempts)
      assert.is_false(err.sent)
      assert.equal("orders/detail", err.endpoint)
      assert.equal(0, total())
      c:close()
    end)

    it("passes with ca_file, on one kept-alive connection", function()
      local c = client{ ca_file = ca.ca_file }
      for _ = 1, 3 do
        local body, err, res = c:orders_detail(DETAIL)
        assert.is_nil(err, err and tostring(err))
        assert.equal(2502, body.data.order_id)
        assert.equal(200, res.status)
      end
      assert.equal(3, total())
      assert.not_matches("INSECURE", tostring(c))
      c:close()
    end)

    -- A client trusting other CAs than the server's: tls, and nothing reached it.
    local function assert_untrusted(opts)
      local c = client(opts)
      local _, err = c:orders_detail(DETAIL)
      assert.equal("tls", err.kind)
      assert.equal(0, total())
      c:close()
    end

    it("fails with another CA's ca_file", function()
      assert_untrusted{ ca_file = other_ca.ca_file }
    end)

    it("fails with a ca_path that holds no CA of the server's", function()
      assert_untrusted{ ca_path = other_dir }
    end)

    it("fails when the server presents its CA's own certificate for another name", function()
      -- The CA certificate names no 127.0.0.1: a valid chain, the wrong host.
      local url, sb2 = sandbox.start{ tls = { cert_file = ca.ca_file, key_file = ca.ca_key_file } }
      assert(url, sb2)
      finally(function() sb2:stop() end)
      local c = client{ base_url = sb2.https_url, ca_file = ca.ca_file }
      local _, err = c:orders_detail(DETAIL)
      assert.equal("tls", err.kind, tostring(err))
      c:close()
    end)

    it("insecure = true is the only way around verification, and says so", function()
      local c = client{ insecure = true }
      local body, err = c:orders_detail(DETAIL)
      assert.is_nil(err, err and tostring(err))
      assert.equal(2502, body.data.order_id)
      assert.matches("%[INSECURE: TLS verification disabled%]", tostring(c))
      c:close()
      -- insecure = false is the default, not a way around it.
      c = client{ insecure = false }
      local _, err2 = c:orders_detail(DETAIL)
      assert.equal("tls", err2.kind)
      c:close()
    end)

    it("an https client talking to the plain port fails as tls, not sent", function()
      local c = client{ base_url = sb.base_url:gsub("^http:", "https:"), ca_file = ca.ca_file }
      local _, err = c:orders_detail(DETAIL)
      assert.equal("tls", err.kind, tostring(err))
      assert.is_false(err.sent)
      c:close()
    end)

    it("a fault over HTTP/2 is a network error, retried on a read, and the next call is correct", function()
      local c = client{ ca_file = ca.ca_file, max_retries = 2, backoff = { base = 0.01, cap = 0.02 } }
      sb:fault{ kind = "reset_before", path = "orders/detail", count = -1 }
      local _, err = c:orders_detail(DETAIL)
      assert.equal("network", err.kind, tostring(err))
      assert.equal(3, err.attempts)
      assert.equal(3, sb:state().requests["orders/detail"])
      sb:clear_faults()
      local body, err2 = c:orders_detail{ order_number = "ORD-2025-002" }
      assert.is_nil(err2, err2 and tostring(err2))
      assert.equal(2503, body.data.order_id)
      c:close()
    end)
  end)

  describe("refused before connecting", function()
    local function refused(opts, option)
      local ok, why = pcall(wemasy.new, opts)
      assert.is_false(ok, "accepted: " .. option)
      assert.is_string(why)
      assert.truthy(why:find("wemasy.new: option '" .. option .. "'", 1, true), why)
      return why
    end

    it("CR, LF, NUL or any control byte in a header value", function()
      for _, bad in ipairs{ "a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b", "a\1b", "a\tb", "a\127b" } do
        refused({ base_url = sb.base_url, token = bad }, "token")
        refused({ base_url = sb.base_url, user_agent = bad }, "user_agent")
      end
      for _, bad in ipairs{ "a\r\nb", "a\0b" } do
        for _, option in ipairs{ "base_url", "proxy", "ca_file", "ca_path" } do
          local opts = { base_url = sb.base_url }
          opts[option] = option == "base_url" and sb.base_url .. bad or bad
          refused(opts, option)
        end
      end
      assert.equal(0, total())
    end)

    it("a control byte in a path never reaches the wire", function()
      local c = client{ base_url = sb.base_url }
      for _, bad in ipairs{ "orders/detail\r\nX: 1", "orders/detail\0", "orders/ detail" } do
        local _, err = c:call(bad, DETAIL)
        assert.equal("invalid_argument", err.kind)
      end
      local core_client = require("wemasy.core").new{ base_url = sb.base_url, rate_limit = false }
      for _, bad in ipairs{ "/api\r\nX: 1", "/a\0b", "/a b" } do
        assert.has_error(function() core_client:request(bad, "{}") end)
      end
      core_client:close()
      c:close()
      assert.equal(0, total())
    end)

    it("a base_url that is not http(s)", function()
      for _, bad in ipairs{ "ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1", "127.0.0.1:8080",
                            "//127.0.0.1/api", "https:/127.0.0.1", "http://", "https://", "scp://host",
                            "javascript:alert(1)", "dict://127.0.0.1:11211/" } do
        refused({ base_url = bad }, "base_url")
      end
    end)

    it("plain http:// to a host that is not this machine, unless allow_http = true", function()
      -- User info and fragments that dress a host up as loopback are refused by name, allow_http or not.
      for url, part in pairs{ ["http://127.0.0.1@example.com"] = "user info", ["http://example.com#@127.0.0.1"] =
                              "a fragment", ["http://127.0.0.1:80@example.com"] = "user info" } do
        local why = refused({ base_url = url, allow_http = true }, "base_url")
        assert.truthy(why:find("must not have " .. part, 1, true), why)
      end
      for _, url in ipairs{ "http://api.wemasy.nl/api", "http://192.0.2.1/api", "http://127.0.0.1.example.com",
                            "http://[::2]/", "http://10.0.0.1:8080",
                            "http://0x7f.0.0.1", "http://localhost.example.com" } do
        local why = refused({ base_url = url }, "base_url")
        assert.truthy(why:find("allow_http", 1, true), why)
        assert.is_nil(why:find(url, 1, true), "the message quotes the URL: " .. why)
        local c = wemasy.new{ base_url = url, allow_http = true, rate_limit = false } -- no shm segment left
        assert.equal(url:gsub("/+$", ""), c.base_url)
        c:close()
      end
      -- It really is the only thing that changed: the call goes out (and fails to connect).
      local c = wemasy.new{ base_url = "http://192.0.2.1:9/api", allow_http = true, connect_timeout = 0.2,
                            token = "tls-spec-token",
                            max_retries = 0, rate_limit = false }
      local _, err = c:call("orders/detail", DETAIL)
      assert.truthy(err.kind == "timeout" or err.kind == "network", tostring(err))
      c:close()
    end)

    it("loopback http:// needs no allow_http; https:// never does", function()
      for _, url in ipairs{ "http://127.0.0.1:9/api", "http://127.1.2.3", "http://localhost:8080/api",
                            "HTTP://LOCALHOST", "http://[::1]:9/api", "https://api.wemasy.nl/api",
                            "https://192.0.2.1" } do
        wemasy.new{ base_url = url, rate_limit = false }:close()
      end
      refused({ base_url = sb.base_url, allow_http = "yes" }, "allow_http")
      refused({ base_url = sb.base_url, allow_http = 1 }, "allow_http")
    end)
  end)
end)
