-- The `wemasy` command.  Most specs run cli.main in-process with string
-- streams against one sandbox; a few run bin/wemasy as a process, for the
-- exit status and --sandbox.
local wemasy = require("wemasy")
local core = require("wemasy.core")
local cli = require("wemasy.cli")
local json = require("wemasy.json")
local sandbox = require("wemasy.sandbox")
local helpers = require("support.helpers")

local tokens = sandbox.tokens
local LUA = os.getenv("WEMASY_TEST_LUA") or "lua5.4"

local sink, source = helpers.sink, helpers.source

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("wemasy command line", function()
  local base_url, sb
  local used_urls = {}

  -- cli.main with captured streams; env is the whole environment it sees.
  local run = helpers.cli

  local function merchant_env()
    return { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = tokens.merchant }
  end

  -- bin/wemasy as a process: exit status, stdout, stderr.  (LuaJIT's
  -- popen:close() does not return the status: the shell prints it.)
  local function process(args, env_prefix)
    local errfile = os.tmpname()
    local p = assert(io.popen("(" .. (env_prefix or "") .. " " .. LUA .. " bin/wemasy " .. args .. " 2>" .. errfile
      .. "); echo \"exit=$?\""))
    local text = p:read("*a")
    p:close()
    local out, status = text:match("^(.-)exit=(%d+)\n$")
    status = tonumber(status)
    local f = io.open(errfile)
    local err = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(errfile)
    return status, out, err
  end

  lazy_setup(function()
    base_url, sb = sandbox.start{ window = 60, limits = { default = 1000, sync = 100 } }
    assert(base_url, sb)
    used_urls[#used_urls + 1] = base_url
  end)

  lazy_teardown(function()
    -- The CLI's limiter is shared (as a user's would be): remove the segments it made.
    for _, url in ipairs(used_urls) do
      for _, t in pairs(tokens) do core._debug_unlink(url, t) end
      core._debug_unlink(url, "spec-unknown-token")
      core._debug_unlink(url, nil)
    end
    if sb then sb:stop() end
  end)

  before_each(function() sb:reset() end)

  describe("calling an endpoint", function()
    it("prints the response indented and exits 0", function()
      local code, out, err = run({ "orders/detail", "order_number=ORD-2025-001" }, merchant_env())
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.matches('^{\n  data = {\n', out)
      assert.truthy(out:find('order_number = "ORD-2025-001"', 1, true))
      assert.truthy(out:find("order_id = 2502,", 1, true))
      assert.truthy(out:find("status = null", 1, true))
      assert.truthy(out:find("total_price_with_tax = 129.99551", 1, true))
      assert.falsy(out:find("\27", 1, true)) -- not a terminal: no colour
    end)

    it("takes the method name as well as the path", function()
      local code, out = run({ "orders_detail", "order_number=ORD-2025-001" }, merchant_env())
      assert.equal(0, code)
      assert.truthy(out:find("ORD-2025-001", 1, true))
    end)

    it("--raw prints the body as one line of JSON", function()
      local code, out = run({ "--raw", "orders/detail", "order_number=ORD-2025-001" }, merchant_env())
      assert.equal(0, code)
      assert.equal(1, select(2, out:gsub("\n", "")))
      local body = assert(json.decode(out))
      assert.equal(2502, body.data.order_id)
      assert.equal(129.99551, body.data.checkout.order.total_price_with_tax)
      assert.equal(json.null, body.data.checkout.order.status)
    end)

    it("--color always colours, NO_COLOR is honoured in auto", function()
      local _, out = run({ "--color", "always", "orders/detail", "order_number=ORD-2025-001" }, merchant_env())
      assert.truthy(out:find("\27[", 1, true))
      local env = merchant_env()
      env.NO_COLOR = "1"
      local out2 = sink()
      cli.main({ "orders/detail", "order_number=ORD-2025-001" }, { stdout = out2, stderr = sink(),
        stdin = source(""), getenv = function(k) return env[k] end, isatty = function() return true end })
      assert.falsy(out2.text():find("\27", 1, true))
      local out3 = sink()
      cli.main({ "orders/detail", "order_number=ORD-2025-001" }, { stdout = out3, stderr = sink(),
        stdin = source(""), getenv = function(k) return merchant_env()[k] end, isatty = function() return true end })
      assert.truthy(out3.text():find("\27[", 1, true))
    end)

    it("reads the body from --json, --json @file, '-' and --json - (stdin)", function()
      local code, out = run({ "orders/detail", "--json", '{"order_number":"ORD-2025-001"}', "--raw" }, merchant_env())
      assert.equal(0, code)
      assert.equal(2502, json.decode(out).data.order_id)

      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write('{"order_id": 2502}')
      f:close()
      local env = { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = tokens.customer }
      code, out = run({ "customer/orders/get", "--json", "@" .. file, "--raw" }, env)
      os.remove(file)
      assert.equal(0, code)
      assert.equal("ORD-2025-001", json.decode(out).data.order.order_number)

      code, out = run({ "customer/orders/get", "-", "--raw" }, env, '{"order_id": 2502}\n')
      assert.equal(0, code)
      assert.equal(2502, json.decode(out).data.order.id)

      code, out = run({ "customer/orders/get", "--json", "-", "--raw" }, env, '{"order_id": 2502}')
      assert.equal(0, code)
      assert.equal(2502, json.decode(out).data.order.id)
    end)

    it("lets field=value win over --json", function()
      local code = run({ "orders/detail", "--json", '{"order_number":"NOPE"}', "order_number=ORD-2025-001" },
        merchant_env())
      assert.equal(0, code)
    end)

    it("types field=value by the endpoint table: strings stay strings, integers parse", function()
      local get = wemasy.endpoints["orders/get"]
      local body = assert(cli.body(get, nil, { "website_id=1", "order_session=007", "email=a@b.c" }))
      assert.equal("1", body.website_id)
      assert.equal("007", body.order_session)
      local sync = wemasy.endpoints["orders/sync-snelstart-order"]
      body = assert(cli.body(sync, nil, { "order_id=2502" }))
      assert.equal(2502, body.order_id)
      if math.type then assert.equal("integer", math.type(body.order_id)) end
      assert.equal("abc", assert(cli.body(sync, nil, { "order_id=abc" })).order_id)
      local mark = wemasy.endpoints["orders/mark-purchase-tracked"]
      assert.is_false(assert(cli.body(mark, nil, { "mark=false" })).mark)
      assert.is_true(assert(cli.body(mark, nil, { "mark=true" })).mark)
      assert.equal(json.null, assert(cli.body(mark, nil, { "mark=null" })).mark)
      -- Unknown endpoints: JSON scalars as such, the rest strings; := for raw JSON.
      body = assert(cli.body(nil, nil, { "a=1", "b=1.5", "c=true", "d=null", "e=x=y", "f:=[1,2]", "g=" }))
      assert.equal(1, body.a)
      assert.equal(1.5, body.b)
      assert.is_true(body.c)
      assert.equal(json.null, body.d)
      assert.equal("x=y", body.e)
      assert.same({ 1, 2 }, body.f)
      assert.equal("", body.g)
    end)

    it("sends website_id=1 as the string \"1\" (the API's type)", function()
      local code, out = run({ "orders/get", "website_id=1", "order_session=abc123def456ghi789",
        "email=john@example.com", "--raw" }, { WEMASY_BASE_URL = base_url })
      assert.equal(0, code)
      assert.equal("unchecked", json.decode(out).vies.status)
    end)

    it("sends other paths with a '/' through client:call", function()
      local code, _, err = run({ "orders/no-such-endpoint", "x=1" }, merchant_env())
      assert.equal(cli.EXIT.not_found, code)
      assert.matches("^wemasy not_found 404 on orders/no%-such%-endpoint", err)
      assert.equal(1, sb:state().requests["orders/no-such-endpoint"])
    end)

    it("takes the token and base URL from flags over the environment", function()
      local code = run({ "--base-url", base_url, "--token", tokens.merchant, "orders/detail",
        "order_number=ORD-2025-001" }, { WEMASY_BASE_URL = "http://127.0.0.1:1/api", WEMASY_TOKEN = "wrong" })
      assert.equal(0, code)
    end)

    it("passes wemasy.new's options from flags, and names a bad one as its flag", function()
      local code, _, err = run({ "--timeout", "-1", "orders/detail", "order_number=X" }, merchant_env())
      assert.equal(cli.EXIT.usage, code)
      assert.matches("^wemasy: .*%-1", err)
      code, _, err = run({ "--timeout=-1", "orders/detail", "order_number=X" }, merchant_env())
      assert.equal(cli.EXIT.usage, code)
      assert.matches("%-%-timeout must be a positive number", err)
      code = run({ "--timeout", "5", "--connect-timeout", "2", "--max-retries", "0", "orders/detail",
        "order_number=ORD-2025-001" }, merchant_env())
      assert.equal(0, code)
    end)
  end)

  describe("exit codes", function()
    it("has one fixed code per error kind, all different, and 0 for success", function()
      local seen = {}
      for kind in pairs(wemasy.error_kinds) do
        local code = cli.EXIT[kind]
        assert.is_number(code, "no exit code for " .. kind)
        assert.is_nil(seen[code], "exit code " .. tostring(code) .. " used twice")
        seen[code] = kind
      end
      assert.equal(0, cli.EXIT.ok)
      assert.equal(1, cli.EXIT.failure)
      assert.equal(2, cli.EXIT.usage)
    end)

    it("matches the table in README.md", function()
      local f = assert(io.open("README.md"))
      local readme = f:read("*a")
      f:close()
      for _, row in ipairs(cli.EXIT_CODES) do
        local pattern = "\n| " .. row[2] .. " | `" .. row[1] .. "` |"
        assert.truthy(readme:find(pattern, 1, true), "README lacks the exit code row " .. pattern)
      end
    end)

    local function exits(kind, argv, env)
      local code, _, err = run(argv, env)
      assert.equal(cli.EXIT[kind], code, err)
      return err
    end

    it("invalid_argument, unauthenticated, forbidden, not_found, validation", function()
      local err = exits("invalid_argument", { "orders/sync-snelstart-order", "order_id=abc" }, merchant_env())
      assert.matches("^wemasy invalid_argument on orders/sync%-snelstart%-order: field 'order_id' must be an integer",
        err)
      assert.truthy(err:find("\n  order_id: field 'order_id' must be an integer (got string)\n", 1, true))
      exits("invalid_argument", { "orders/detail", "order_number=X", "colour=red" }, merchant_env())
      exits("unauthenticated", { "orders/detail", "order_number=ORD-2025-001" }, { WEMASY_BASE_URL = base_url })
      exits("unauthenticated", { "orders/detail", "order_number=ORD-2025-001" },
        { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = "spec-unknown-token" })
      exits("forbidden", { "orders/detail", "order_number=ORD-2025-001" },
        { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = tokens.customer })
      exits("not_found", { "orders/detail", "order_number=NOPE" }, merchant_env())
      err = exits("validation", { "orders/sync-snelstart-order", "order_id=999999" }, merchant_env())
      assert.truthy(err:find("order_id: The selected order id is invalid.", 1, true))
      used_urls[#used_urls + 1] = "http://127.0.0.1:1/api"
    end)

    it("rate_limited when the quota is spent and --no-wait is given", function()
      local small_url, small = sandbox.start{ window = 60, limits = { default = 1 } }
      assert(small_url, small)
      finally(function() small:stop() end)
      used_urls[#used_urls + 1] = small_url
      local env = { WEMASY_BASE_URL = small_url, WEMASY_TOKEN = tokens.merchant }
      assert.equal(0, (run({ "--no-wait", "orders/detail", "order_number=ORD-2025-001" }, env)))
      local code, _, err = run({ "--no-wait", "orders/detail", "order_number=ORD-2025-001" }, env)
      assert.equal(cli.EXIT.rate_limited, code)
      assert.matches("^wemasy rate_limited", err)
    end)

    it("network when nothing listens", function()
      local code, _, err = run({ "--max-retries", "0", "--connect-timeout", "2", "orders/get", "website_id=1",
        "order_session=x", "email=a@b.c" }, { WEMASY_BASE_URL = "http://127.0.0.1:1/api" })
      assert.equal(cli.EXIT.network, code, err)
    end)

    it("usage for a bad command line", function()
      for _, argv in ipairs({
        {}, { "--no-such-flag" }, { "bogus" }, { "orders/detail", "order_number" },
        { "orders/detail", "--json", "{not json" }, { "orders/detail", "--json", "[1,2]" },
        { "orders/detail", "--json", "@/no/such/file" }, { "--color", "red", "endpoints" },
        { "--as", "customer", "orders/detail" }, { "endpoints", "no/such" },
        { "--sandbox", "--token", "x", "orders/detail" },
      }) do
        local code, out, err = run(argv, merchant_env())
        assert.equal(cli.EXIT.usage, code, table.concat(argv, " ") .. ": " .. err)
        assert.equal("", out)
        assert.matches("^wemasy: ", err)
      end
    end)

    it("comes out of bin/wemasy as the process's exit status", function()
      local env = "WEMASY_BASE_URL=" .. shell_quote(base_url) .. " WEMASY_TOKEN=" .. shell_quote(tokens.merchant)
      local status, out = process("orders/detail order_number=ORD-2025-001 --raw", env)
      assert.equal(0, status)
      assert.equal(2502, json.decode(out).data.order_id)
      status = process("orders/detail order_number=NOPE", env)
      assert.equal(cli.EXIT.not_found, status)
      status = process("--nope", env)
      assert.equal(cli.EXIT.usage, status)
    end)
  end)

  describe("--sandbox", function()
    it("starts its own sandbox, uses the merchant token (or --as), and stops it", function()
      local status, out, err = process("--sandbox orders/detail order_number=ORD-2025-001 --raw")
      assert.equal(0, status, err)
      assert.equal("ORD-2025-001", json.decode(out).data.order_number)
      status, out = process("--sandbox --as customer customer/orders/get order_id=2502 --raw")
      assert.equal(0, status)
      assert.equal("open", json.decode(out).data.order.payment_status)
      status = process("--sandbox --as other_customer customer/orders/get order_id=2502")
      assert.equal(cli.EXIT.not_found, status)
      status = process("--sandbox --as merchant_no_finance orders/sync-snelstart-order order_id=2502")
      assert.equal(cli.EXIT.forbidden, status)
    end)
  end)

  describe("help, endpoints, rate-limit, version", function()
    it("--help lists the commands, every endpoint and every exit code", function()
      local code, out = run({ "--help" }, merchant_env())
      assert.equal(0, code)
      assert.matches("^Usage: wemasy", out)
      for _, ep in ipairs(wemasy.endpoints) do assert.truthy(out:find(ep.path, 1, true), ep.path) end
      for _, c in ipairs({ "endpoints", "rate-limit", "repl", "--sandbox", "--raw", "--json", "WEMASY_TOKEN" }) do
        assert.truthy(out:find(c, 1, true), c)
      end
      for _, row in ipairs(cli.EXIT_CODES) do
        assert.truthy(out:find(string.format("%2d  %s", row[2], row[1]), 1, true), row[1])
      end
      local code2, out2 = run({ "help" }, {})
      assert.equal(0, code2)
      assert.equal(out, out2)
    end)

    it("--help with an endpoint, and help PATH, show that endpoint's fields", function()
      local code, out = run({ "orders/get", "--help" }, {})
      assert.equal(0, code)
      assert.matches("^orders/get  %-  ", out)
      assert.truthy(out:find("email            string     yes", 1, true))
      local _, out2 = run({ "help", "orders_get" }, {})
      assert.equal(out, out2)
    end)

    it("endpoints: every endpoint's fields, required or not, types, auth and limiter group", function()
      local code, out = run({ "endpoints" }, {})
      assert.equal(0, code)
      for _, ep in ipairs(wemasy.endpoints) do
        local block = out:match("\n?(" .. ep.path:gsub("%-", "%%-") .. "  %-  .-)\n\n") or out:match(
          "(" .. ep.path:gsub("%-", "%%-") .. "  %-  .*)$")
        assert.is_string(block, ep.path)
        assert.truthy(block:find(ep.auth and "auth: Auth (token)" or "auth: Public", 1, true), ep.path)
        assert.truthy(block:find("limiter group: " .. ep.group .. " (", 1, true), ep.path)
        assert.truthy(block:find("client:" .. ep.method, 1, true))
        for _, f in ipairs(ep.fields) do
          local t = f.type .. (f.nullable and "|null" or "")
          assert.matches(f.name .. " +" .. t:gsub("|", "%%|") .. " +" .. (f.required and "yes" or "no"), block)
        end
      end
      assert.truthy(out:find("sync (5 per 60 s)", 1, true))
    end)

    it("endpoints PATH shows one; --raw gives JSON", function()
      local code, out = run({ "endpoints", "orders/detail" }, {})
      assert.equal(0, code)
      assert.matches("^orders/detail  %-  ", out)
      assert.falsy(out:find("orders/get", 1, true))
      code, out = run({ "endpoints", "--raw" }, {})
      assert.equal(0, code)
      local list = json.decode(out)
      assert.equal(#wemasy.endpoints, #list)
      assert.equal("orders/mark-purchase-tracked", list[1].path)
      assert.equal("mark", list[1].fields[3].name)
      assert.is_true(list[1].fields[3].nullable)
      assert.equal("sync", list[3].group)
    end)

    it("rate-limit shows each group's quota, shared with the other processes on the token", function()
      -- A token no other spec here uses, so the shared quota is this spec's alone.
      local env = { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = tokens.other_customer }
      assert.equal(0, (run({ "customer/orders/get", "order_id=2504" }, env)))
      local code, out = run({ "rate-limit" }, env)
      assert.equal(0, code)
      assert.matches("^group +limit +remaining +reset_in +closed_for\n", out)
      assert.matches("\ndefault +1000 +999 ", out) -- learned from the call above, in another client
      assert.matches("\nsync +5 +5 ", out)
      assert.equal(0, sb:state().total_requests - 1) -- rate-limit sent nothing
      code, out = run({ "rate-limit", "--raw" }, env)
      assert.equal(0, code)
      local states = json.decode(out)
      assert.equal(999, states.default.remaining)
      assert.equal(5, states.sync.limit)
    end)

    it("rate-limit --reset forgets the token's quota on this host, then shows it", function()
      local env = { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = tokens.other_customer }
      assert.equal(0, (run({ "customer/orders/get", "order_id=2504" }, env)))
      local code, out = run({ "rate-limit" }, env)
      assert.equal(0, code)
      assert.matches("\ndefault +1000 +99%d ", out) -- this spec's call and the one before
      code, out = run({ "rate-limit", "--reset" }, env)
      assert.equal(0, code)
      assert.matches("\ndefault +60 +60 ", out) -- the send and the learned limit forgotten
      assert.equal(1, sb:state().total_requests) -- the reset sent nothing
      local usage, _, err = run({ "endpoints", "--reset" }, env)
      assert.equal(cli.EXIT.usage, usage)
      assert.matches("%-%-reset only applies to rate%-limit", err)
    end)

    it("--version", function()
      local code, out = run({ "--version" }, {})
      assert.equal(0, code)
      assert.equal("wemasy " .. wemasy._VERSION .. " (" .. _VERSION .. ")\n", out)
    end)
  end)

  describe("repl", function()
    it("evaluates lines with a client ready and prints results readably", function()
      local input = table.concat({
        'client:orders_detail{ order_number = "ORD-2025-001" }.data.users.invoice_firstname',
        "x = client:rate_limit('sync')",
        "x.limit",
        "for i = 1, 2 do",
        "  print(i * 10)",
        "end",
        'client:orders_detail{ order_number = "NOPE" }',
        "wemasy.null",
        "error('boom')",
        "client",
        "",
      }, "\n")
      local code, out, err = run({ "repl" }, merchant_env(), input)
      assert.equal(0, code, err)
      assert.truthy(out:find('wemasy> "John"\n', 1, true))
      assert.matches("wemasy> %d+\n", out) -- x.limit
      assert.truthy(out:find("10\n20\n", 1, true))
      assert.truthy(out:find("nil\nwemasy not_found 404 on orders/detail: Order not found\n", 1, true))
      assert.truthy(out:find("wemasy> null\n", 1, true))
      assert.truthy(out:find("boom", 1, true))
      assert.truthy(out:find("wemasy client (" .. base_url .. ") with token", 1, true))
      assert.falsy(out:find(tokens.merchant, 1, true))
    end)

    it("wemasy.repl{} runs on given streams; repl.setup prepares `lua -i`", function()
      local out = sink()
      local ok = wemasy.repl{ base_url = base_url, token = tokens.merchant, input = source("1 + 1\n"),
        output = out, color = false, options = { rate_limit = { shared = false } } }
      assert.is_true(ok)
      assert.truthy(out.text():find("wemasy> 2\n", 1, true))
      -- setup() in a child `lua -i`-like process: globals and a pretty print.
      local script = [[
        require("wemasy.repl").setup{ sandbox = true }
        print(client:orders_detail{ order_number = "ORD-2025-001" }.data.vies)
        print({ a = wemasy.null })
        sandbox:stop()
      ]]
      local p = assert(io.popen(LUA .. " -e " .. shell_quote(script) .. " 2>&1"))
      local text = p:read("*a")
      p:close()
      assert.truthy(text:find("wemasy client (http://127.0.0.1:", 1, true), text)
      assert.truthy(text:find("{ a = null }", 1, true), text)
    end)
  end)

  describe("the token", function()
    it("is never printed: help, debug lines, errors, parse errors, REPL", function()
      local secret = tokens.merchant
      local env = merchant_env()
      local outputs = {}
      local function collect(argv, e, stdin)
        local _, out, err = run(argv, e or env, stdin)
        outputs[#outputs + 1] = out .. err
      end
      collect({ "--help" })
      collect({ "--help", "--token", secret })
      collect({ "-d", "orders/detail", "order_number=ORD-2025-001" })
      collect({ "-d", "--token", secret, "orders/detail", "order_number=NOPE" })
      collect({ "-d", "--token=" .. secret, "orders/sync-snelstart-order", "order_id=1.5" })
      collect({ "--timeout", secret, "orders/detail" })   -- argparse quotes the bad value
      collect({ "--tokn=" .. secret })
      collect({ "-t" .. secret, "orders/detail", "order_number=" .. secret })
      collect({ "rate-limit", "--raw" })
      collect({ "repl" }, env, "client\nprint(client)\nclient:orders_detail{ order_number = 'NOPE' }\n")
      collect({ "orders/no-such", "echo=" .. secret })
      local all = table.concat(outputs, "\n")
      assert.truthy(all:find("orders/detail -> 200", 1, true)) -- the debug line was there
      assert.falsy(all:find(secret, 1, true))
      assert.falsy(all:find("wemasy-sandbox-merchant-finance-token", 1, true))
    end)
  end)

  -- --token's value is in /proc/<pid>/cmdline for every local user to read;
  -- --token-file (or WEMASY_TOKEN) keeps it out of the process list.
  describe("--token-file", function()
    local files = {}
    after_each(function()
      for _, f in ipairs(files) do os.remove(f) end
      files = {}
    end)

    local function token_file(text, mode)
      local path = os.tmpname()
      files[#files + 1] = path
      local f = assert(io.open(path, "wb"))
      f:write(text)
      f:close()
      assert(os.execute("chmod " .. (mode or "600") .. " " .. path))
      return path
    end

    local function url_only() return { WEMASY_BASE_URL = base_url } end
    local DETAIL = { "orders/detail", "order_number=ORD-2025-001" }
    local function argv(...)
      local list = { ... }
      for _, a in ipairs(DETAIL) do list[#list + 1] = a end
      return list
    end

    it("reads the token from a file, less one trailing newline, and from stdin with '-'", function()
      for _, text in ipairs{ tokens.merchant, tokens.merchant .. "\n", tokens.merchant .. "\r\n" } do
        local code, out, err = run(argv("--token-file", token_file(text)), url_only())
        assert.equal(0, code, err)
        assert.equal("", err) -- mode 600: no warning
        assert.truthy(out:find("ORD-2025-001", 1, true))
      end
      local code, _, err = run(argv("--token-file", "-"), url_only(), tokens.merchant .. "\n")
      assert.equal(0, code, err)
      -- The flag wins over WEMASY_TOKEN.
      code = run(argv("--token-file", token_file(tokens.merchant)),
        { WEMASY_BASE_URL = base_url, WEMASY_TOKEN = "spec-unknown-token" })
      assert.equal(0, code)
      -- Only one newline goes: a second one is part of the token, which the core refuses.
      code, _, err = run(argv("--token-file", token_file(tokens.merchant .. "\n\n")), url_only())
      assert.equal(cli.EXIT.usage, code)
      assert.matches("^wemasy: %-%-token%-file must not contain", err)
    end)

    it("refuses an empty or unreadable file, and --token or --sandbox with it, naming the flag", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local cases = {
        { argv("--token-file", token_file("")), "empty" },
        { argv("--token-file", token_file("\n")), "empty" },
        { argv("--token-file", "/no/such/token/file"), "No such file or directory" },
        { argv("--token-file", dir), "cannot read it" },
        { argv("--token-file", token_file(tokens.merchant), "--token", tokens.merchant), "--token and --token-file" },
        { { "--sandbox", "--token-file", token_file(tokens.merchant), "orders/detail" }, "--sandbox" },
        { { "--token-file", "-", "orders/detail", "-" }, "stdin can be read once" },
        { { "--token-file", "-", "--json", "-", "orders/detail" }, "stdin can be read once" },
      }
      for _, case in ipairs(cases) do
        local before = sb:state().total_requests
        local code, out, err = run(case[1], url_only(), tokens.merchant)
        assert.equal(cli.EXIT.usage, code, table.concat(case[1], " ") .. ": " .. err)
        assert.equal("", out)
        assert.matches("^wemasy: .*%-%-token%-file", err)
        assert.truthy(err:find(case[2], 1, true), err)
        assert.equal(before, sb:state().total_requests)
      end
      os.remove(dir)
      -- Reading endpoints needs no token, so a bad file does not stop it.
      assert.equal(0, (run({ "--token-file", "/no/such/token/file", "endpoints" }, url_only())))
    end)

    it("warns about a file that group or others may read, and still uses it", function()
      for _, mode in ipairs{ "644", "640", "604" } do
        local path = token_file(tokens.merchant .. "\n", mode)
        local code, _, err = run(argv("--token-file", path), url_only())
        assert.equal(0, code, err)
        assert.equal("wemasy: warning: --token-file " .. path .. " may be read by other users (mode " .. mode
          .. "): chmod 600 it\n", err)
      end
    end)

    it("never prints the file's token, also in messages read before the call", function()
      local path = token_file(tokens.merchant .. "\n")
      local outputs = {}
      for _, args in ipairs{
        { "--token-file", path, "-d", "orders/detail", tokens.merchant },   -- a bad field=value quotes it
        { "--token-file", path, "orders/detail", "order_number=" .. tokens.merchant:upper() },
        { "--token-file", path, "orders/no-such", "echo=" .. tokens.merchant },
        { "--token-file", path, "repl" },
      } do
        local _, out, err = run(args, url_only(), "print(client)\n")
        outputs[#outputs + 1] = out .. err
      end
      local all = table.concat(outputs, "\n")
      assert.truthy(all:find("[REDACTED]", 1, true), all)
      assert.falsy(all:lower():find(tokens.merchant:lower(), 1, true), all)
    end)

    it("is in --help, with the advice to keep the token out of the command line", function()
      local _, out = run({ "--help" })
      local words = out:gsub("%s+", " ")
      assert.truthy(words:find("--token-file <path>", 1, true), out)
      assert.truthy(words:find("process list (/proc/PID/cmdline): prefer $WEMASY_TOKEN or --token-file", 1, true), out)
      assert.truthy(words:find("Pass the token in WEMASY_TOKEN or --token-file", 1, true), out)
    end)
  end)
end)
