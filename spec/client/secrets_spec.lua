-- The token never appears in anything wemasy hands out or writes: errors of
-- every kind (also when a server echoes the Authorization header back in its
-- body, in a JSON key 300 levels deep, in a header, percent-encoded in a
-- Location, in another case, as a header name, folded over header lines),
-- core-level messages, tostring of every object, the pretty
-- printer, hook payloads, debug log lines, batch results, the limiter's
-- segment name and quota report, and a whole process's stdout and stderr.
-- Each is dumped to one string (keys and values, however deep) and grepped.
local core = require("wemasy.core")
local wemasy = require("wemasy")
local helpers = require("support.helpers")

local TOKEN = "7|secrets-spec-Tq9XzL2vKw"
local function percent(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
local FORMS = { TOKEN, percent(TOKEN), percent(TOKEN):lower(), "secrets-spec-Tq9XzL2vKw" }

-- Everything a caller can see of a value: its tostring and every key and
-- value below it (metatables' names too), each table once.
local function dump(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "table" then
    if seen[v] then return out end
    seen[v] = true
    local ok, s = pcall(tostring, v)
    out[#out + 1] = ok and tostring(s) or "?"
    for k, x in next, v do
      dump(k, out, seen)
      dump(x, out, seen)
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then dump(rawget(mt, "__name"), out, seen) end
  else
    local ok, s = pcall(tostring, v)
    out[#out + 1] = ok and tostring(s) or "?"
  end
  return out
end

-- In any case and with whitespace anywhere inside it: the core lower-cases
-- header names, and joins a header folded over lines (obs-fold) with a space.
local function loose(text) return (text:lower():gsub("%s+", "")) end

local function assert_no_token(label, ...)
  local text = table.concat(dump({ ... }), "\n")
  local squeezed = loose(text)
  for _, form in ipairs(FORMS) do
    assert.is_nil(squeezed:find(loose(form), 1, true),
      label .. " shows the token (" .. form .. ", any case, any spacing):\n" .. text:sub(1, 2000))
  end
  return text
end

describe("the token never appears", function()
  local srv, seen_kinds

  lazy_setup(function()
    srv = helpers.start_server()
    seen_kinds = {}
  end)
  lazy_teardown(function()
    helpers.forget_tokens(srv.url)
    core._debug_unlink(srv.url, TOKEN)
    helpers.stop_server(srv)
  end)

  local function client(extra)
    local opts = { base_url = srv.url, token = TOKEN, max_retries = 0, timeout = 5,
                   rate_limit = { shared = false } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return wemasy.new(opts)
  end

  local function check_error(label, err, kind)
    assert.truthy(wemasy.is_error(err), label .. ": not an error: " .. tostring(err))
    if kind then assert.equal(kind, err.kind, label .. ": " .. tostring(err)) end
    seen_kinds[err.kind] = true
    assert_no_token(label, err, tostring(err))
    local ok_pretty, pretty = pcall(require, "wemasy.pretty")
    if ok_pretty then assert_no_token(label .. " (pretty)", pretty.format(err)) end
  end

  describe("in errors of every kind", function()
    local STATUS_KIND = { [200] = "api", [302] = "http", [400] = "http", [401] = "unauthenticated",
                          [403] = "forbidden", [404] = "not_found", [422] = "validation",
                          [429] = "rate_limited", [500] = "server", [503] = "server" }
    for status, kind in pairs(STATUS_KIND) do
      it(status .. " (" .. kind .. ") from a server that echoes the Authorization header everywhere", function()
        local c = client()
        local body, err = c:call("echoauth/" .. status, {})
        assert.is_nil(body)
        check_error("echo " .. status, err, kind)
        -- It was sent, and echoed: redacted, not absent.
        if kind ~= "http" or status == 400 then
          assert.equal("Invalid token: Bearer [REDACTED]", err.message)
        end
        assert.equal("Bearer [REDACTED]", err.headers["x-echo-authorization"])
        assert.truthy(err.headers.location:find("[REDACTED]", 1, true), err.headers.location)
        -- Folded over three lines, the core joined it as "Bearer 7|s ecrets-spe c-Tq9XzL2vKw".
        assert.equal("Bearer [REDACTED]", err.headers["x-echo-folded"])
        -- As a header name, in swapped case, which the core lower-cased.
        assert.equal("name", err.headers["x-echo-[REDACTED]"])
        if err.body then
          local deep = err.body.deep
          for _ = 1, 300 do deep = deep[1] end
          assert.equal("Bearer [REDACTED]", deep)
          assert.same({ "Bearer [REDACTED]" }, err.body.errors["Bearer [REDACTED]"])
          assert.equal("[REDACTED]", err.body.swapped)
        end
        c:close()
      end)
    end

    it("decode: a 200 whose body is the request, Authorization line included", function()
      local c = client()
      local _, err = c:call("/echo", {})
      check_error("echo", err, "decode")
      local _, big = client{ max_body = 10 }:call("/echo", {})
      check_error("too large", big, "decode")
      c:close()
    end)

    it("timeout, network (refused, reset, truncated) and tls", function()
      local c = client{ timeout = 0.3 }
      local _, err = c:call("sleep/2000", {})
      check_error("timeout", err, "timeout")
      c:close()
      for _, path in ipairs{ "/reset", "/partial" } do
        c = client()
        _, err = c:call(path, {})
        check_error(path, err, "network")
        c:close()
      end
      c = wemasy.new{ base_url = "http://127.0.0.1:1/api", token = TOKEN, rate_limit = false }
      _, err = c:call("orders/detail", { order_number = "x" })
      check_error("refused", err, "network")
      c:close()
      c = client{ base_url = srv.url:gsub("^http:", "https:") }
      _, err = c:call("/echo", {})
      check_error("tls", err, "tls")
      c:close()
    end)

    it("invalid_argument, also when the caller's own field names or paths hold the token", function()
      local c = client()
      local _, err = c:orders_detail{ order_number = 1.5 }
      check_error("bad field", err, "invalid_argument")
      _, err = c:orders_detail{ [TOKEN] = TOKEN }
      check_error("unknown field named like the token", err, "invalid_argument")
      _, err = c:call("no/such", { [TOKEN] = 0 / 0 })
      check_error("unencodable value under the token's name", err, "invalid_argument")
      _, err = c:call(TOKEN .. " x", {})
      check_error("bad path", err, "invalid_argument")
      local results = c:batch{ { "orders_detail", { [TOKEN] = 1 } }, { TOKEN .. "!", {} }, { "echoauth/404", {} } }
      for i, r in ipairs(results) do check_error("batch item " .. i, r[2]) end
      c:close()
      _, err = c:orders_detail{ order_number = "x" }
      check_error("closed", err, "invalid_argument")
    end)

    it("unauthenticated without a request, and rate_limited from the client's own limiter", function()
      local c = wemasy.new{ base_url = srv.url, max_retries = 0, rate_limit = { shared = false } }
      local _, err = c:orders_detail{ order_number = "x" }
      check_error("no token", err, "unauthenticated")
      c:close()
      c = client{ rate_limit = { shared = false, wait = false, groups = { default = { limit = 1, window = 60 } } } }
      c:call("echoauth/200", {})
      _, err = c:call("echoauth/200", {})
      check_error("own limiter", err, "rate_limited")
      assert.equal(0, err.attempts)
      assert_no_token("rate_limit report", c:rate_limit())
      c:close()
    end)

    it("covered every kind of the contract", function()
      for kind in pairs(wemasy.error_kinds) do
        assert.truthy(seen_kinds[kind], "no spec provoked kind " .. kind)
      end
    end)
  end)

  describe("in any case, with whitespace anywhere inside", function()
    local errors = require("wemasy.errors")

    local function redacted(text, secret)
      return errors.redact({ message = text, [text] = 1 }, secret or TOKEN)
    end

    it("finds the token split by spaces, tabs or line breaks at any point, in any case", function()
      local variants = {}
      for i = 1, #TOKEN - 1 do
        for _, gap in ipairs{ " ", "\t", "\r\n ", "  " } do
          variants[#variants + 1] = TOKEN:sub(1, i) .. gap .. TOKEN:sub(i + 1)
        end
      end
      variants[#variants + 1] = TOKEN:upper()
      variants[#variants + 1] = TOKEN:lower():gsub("(%w)", "%1 ", 5)
      variants[#variants + 1] = percent(TOKEN):lower()
      local p = percent(TOKEN)
      variants[#variants + 1] = p:sub(1, 3) .. " " .. p:sub(4)
      for _, v in ipairs(variants) do
        local err = redacted("x-echo-" .. v .. ";")
        assert.equal("x-echo-[REDACTED];", err.message, v)
        assert.equal(1, err["x-echo-[REDACTED];"], v)
      end
    end)

    it("leaves text without the token as it was, and treats the token's characters literally", function()
      assert.equal("Bearer 7|secrets-spec-Tq9XzL2vK", redacted("Bearer 7|secrets-spec-Tq9XzL2vK").message)
      local magic = "a%b[c]^d$e(f).g*h+i-j?k"
      assert.equal("<[REDACTED]>", redacted("<" .. magic:upper() .. ">", magic).message)
      assert.equal("a%b[c]^d$e(f).g*h+i-j?", redacted("a%b[c]^d$e(f).g*h+i-j?", magic).message)
      -- A long token (a JWT: LuaJIT's pattern matcher refuses 200 nested items), split and re-cased.
      local jwt = ("eyJhbGciOiJIUzI1NiJ9." .. string.rep("eyJzdWIiOiIxMjM0NTY3ODkwIn0", 20) .. ".sig_-x"):sub(1, 600)
      local split = jwt:sub(1, 250):upper() .. "\r\n\t" .. jwt:sub(251, 420) .. " " .. jwt:sub(421)
      assert.equal("a [REDACTED] b [REDACTED] c " .. jwt:sub(2), redacted("a " .. jwt .. " b " .. split .. " c "
        .. jwt:sub(2), jwt).message)
      -- A token of blanks matches nothing rather than everything.
      assert.equal("some text", redacted("some text", "   ").message)
    end)
  end)

  describe("in core-level messages", function()
    it("core.new never quotes the token, whatever option it was given to", function()
      local bad = {
        { token = TOKEN .. "\n" }, { token = TOKEN .. "\0" }, { token = TOKEN .. "\1" }, { token = TOKEN, bogus = 1 },
        { base_url = TOKEN }, { base_url = "ftp://" .. TOKEN }, { base_url = "http://" .. TOKEN .. ".example" },
        { user_agent = TOKEN .. "\r" }, { proxy = TOKEN .. "\n" }, { ca_file = TOKEN .. "\0" },
        { timeout = TOKEN }, { max_body = TOKEN }, { max_retries = TOKEN }, { rate_limit = TOKEN },
        { rate_limit = { wait = TOKEN } }, { backoff = { base = TOKEN } }, { insecure = TOKEN },
        { allow_http = TOKEN }, { clock = TOKEN },
      }
      for i, opts in ipairs(bad) do
        if opts.base_url == nil then opts.base_url = srv.url end
        local ok, why = pcall(core.new, opts)
        assert.is_false(ok, "case " .. i)
        assert_no_token("core.new case " .. i, why)
        ok, why = pcall(wemasy.new, opts)
        assert.is_false(ok, "case " .. i)
        assert_no_token("wemasy.new case " .. i, why)
      end
    end)

    it("core client failures: kinds and messages, single and batched", function()
      local c = core.new{ base_url = srv.url, token = TOKEN, rate_limit = false, max_retries = 0, timeout = 0.3 }
      for _, path in ipairs{ "/sleep/1000", "/reset", "/partial" } do
        assert_no_token("core " .. path, c:request(path, "{}"))
      end
      local results = helpers.core_batch(c, { { path = "/sleep/1000", body = "" }, { path = "/reset", body = "" }, 1,
                                              { path = "no slash", body = "" } }, 2)
      assert_no_token("core batch", results)
      assert_no_token("core tostring", tostring(c), c:has_token())
      c:close()
      assert_no_token("core tostring after close", tostring(c))
      c = core.new{ base_url = "http://127.0.0.1:1", token = TOKEN, rate_limit = false }
      assert_no_token("core refused", c:request("/x", "{}"))
      c:close()
    end)

    it("the shared limiter's segment name is a hash", function()
      assert_no_token("segment", core._debug_segment(srv.url, TOKEN))
      local c = client{ rate_limit = {} }
      c:call("echoauth/200", {})
      local p = io.popen("ls /dev/shm")
      local names = p:read("*a")
      p:close()
      assert.truthy(names:find(core._debug_segment(srv.url, TOKEN):sub(2), 1, true))
      assert_no_token("/dev/shm", names)
      c:close()
    end)
  end)

  describe("in objects, hooks and logs", function()
    it("tostring, the client table, the pretty printer", function()
      local c = client{ insecure = true }
      assert_no_token("client", c, tostring(c), c._core, tostring(c._core), c:has_token())
      local ok_pretty, pretty = pcall(require, "wemasy.pretty")
      if ok_pretty then assert_no_token("pretty client", pretty.format(c)) end
      c:close()
      assert_no_token("closed client", c, tostring(c))
    end)

    it("hook payloads and debug lines, for calls that fail and calls that succeed", function()
      local payloads, lines = {}, {}
      local c = client{
        hooks = { on_request = function(i) payloads[#payloads + 1] = i end,
                  on_response = function(i) payloads[#payloads + 1] = i end },
        debug = function(line) lines[#lines + 1] = line end,
      }
      c:call("echoauth/401", {})
      c:call("echoauth/200", {})
      c:call("echo", {})
      c:orders_detail{ [TOKEN] = 1 }
      c:batch{ { "echoauth/500", {} }, { "orders_detail", { order_number = TOKEN } } }
      assert.is_true(#payloads >= 10)
      assert.is_true(#lines >= 5)
      assert_no_token("hook payloads", payloads)
      assert_no_token("debug lines", lines)
      c:close()
    end)

    it("a whole process: stdout and stderr with debug = true, errors printed every way", function()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
        local wemasy = require("wemasy")
        local c = wemasy.new{ base_url = arg[1], token = arg[2], debug = true, max_retries = 1,
                              backoff = { base = 0.01, cap = 0.01 }, rate_limit = { shared = false } }
        local ok_pretty, pretty = pcall(require, "wemasy.pretty")
        for _, path in ipairs{ "echoauth/401", "echoauth/503", "echoauth/200", "echo", "reset", "sleep/10" } do
          local _, err = c:call(path, {})
          print(tostring(err), tostring(c))
          if ok_pretty then print(pretty.format(err)) io.stderr:write(pretty.format(c), "\n") end
        end
        c:close()
        error(setmetatable({}, { __tostring = function() return tostring(c) end }))
      ]])
      f:close()
      local p = io.popen(helpers.LUA .. " " .. script .. " " .. srv.url .. " '" .. TOKEN .. "' 2>&1")
      local out = p:read("*a")
      p:close()
      os.remove(script)
      assert.truthy(out:find("[REDACTED]", 1, true), out)
      assert.truthy(out:find("wemasy: echoauth/401 -> unauthenticated 401", 1, true), out)
      assert_no_token("child stdout and stderr", out)
    end)
  end)
end)
