-- The command line's usage errors, as a new user meets them (issue 17 item
-- 1): each names the flag or word that is wrong and what it wants, and
-- exits 2.  cli.main runs in-process; nothing here reaches a server (the
-- base URL is a closed port, and no call gets past the client's checks).
local core = require("wemasy.core")
local cli = require("wemasy.cli")
local helpers = require("support.helpers")

local CLOSED = "http://127.0.0.1:1/api"

local function run(argv, env)
  return helpers.cli(argv, env or { WEMASY_BASE_URL = CLOSED })
end

-- A usage error: exit 2, nothing on stdout, one "wemasy: ..." message.
local function usage(argv, env)
  local code, out, err = run(argv, env)
  local shown = table.concat(argv, " ")
  assert.equal(cli.EXIT.usage, code, shown .. " -> " .. err)
  assert.equal("", out, shown)
  assert.matches("^wemasy: ", err, shown)
  return (err:match("^wemasy: ([^\n]*)"))
end

describe("wemasy command line usage errors", function()
  lazy_teardown(function()
    -- A client made for the closed port may have opened a shared limiter segment.
    core._debug_unlink(CLOSED, nil)
    core._debug_unlink(CLOSED, "spec-usage-token")
  end)

  -- Every option the usage line shows with a value (`[--timeout <timeout>]`),
  -- as the user would type it, and its long name.
  local function value_options()
    local list = {}
    local help = cli.help()
    local usage_text = help:match("^Usage:(.-)\n\n")
    for typed in usage_text:gmatch("%[(%-%-?[%w-]+) [<{]") do list[#list + 1] = typed end
    assert.truthy(#list >= 10, "the usage line lists the value options: " .. usage_text)
    return list
  end

  it("a number flag given a word names the flag and what it wants", function()
    for _, flag in ipairs({ "--timeout", "--connect-timeout", "--max-retries" }) do
      local msg = usage({ flag, "x", "orders/detail", "order_number=X" })
      assert.falsy(msg:find("malformed argument", 1, true), msg)
      assert.matches("^" .. flag:gsub("%-", "%%-") .. " wants a number", msg)
      assert.truthy(msg:find("'x'", 1, true), msg)
    end
  end)

  it("a negative number is a value, refused as not positive, not an unknown option", function()
    for _, case in ipairs({
      { "--timeout", "-1", "must be a positive number" },
      { "--connect-timeout", "-2.5", "must be a positive number" },
      { "--max-retries", "-1", "must be an integer from 0 to" },
    }) do
      local msg = usage({ case[1], case[2], "orders/detail", "order_number=X" })
      assert.falsy(msg:find("unknown option", 1, true), msg)
      assert.matches("^" .. case[1]:gsub("%-", "%%-") .. " " .. case[3], msg)
    end
    -- After `--` nothing is an option, not even a negative number.
    local msg = usage({ "--timeout", "5", "--", "-1" })
    assert.truthy(msg:find("'-1'", 1, true), msg)
  end)

  it("every option that takes a value, given none, names itself and what it wants", function()
    for _, typed in ipairs(value_options()) do
      for _, argv in ipairs({ { typed }, { typed, "--raw" }, { "orders/detail", typed } }) do
        local msg = usage(argv)
        assert.matches("^%-%-[%w-]+ needs a value", msg)
        if typed:match("^%-%-") then assert.equal(typed, msg:match("^(%S+)"), msg) end
        assert.truthy(#msg > #"--x needs a value: " + 4, "says what the value is: " .. msg)
      end
    end
    -- A short alias is named by its long name too.
    assert.matches("^%-%-token needs a value", usage({ "-t" }))
    assert.matches("^%-%-base%-url needs a value", usage({ "-u" }))
  end)

  it("an empty value is no value", function()
    for _, flag in ipairs({ "--timeout", "--connect-timeout", "--max-retries", "--token", "--base-url",
                            "--ca-file", "--ca-path" }) do
      local msg = usage({ flag .. "=", "orders/detail", "order_number=X" })
      assert.matches("^" .. flag:gsub("%-", "%%-") .. " needs a value", msg)
    end
  end)

  it("help with an unknown topic is a usage error, as endpoints with one is", function()
    local msg = usage({ "help", "nope" })
    assert.truthy(msg:find("'nope'", 1, true), msg)
    msg = usage({ "endpoints", "orders/nope" })
    assert.truthy(msg:find("'orders/nope'", 1, true), msg)
    msg = usage({ "orders/nope", "--help" })
    assert.truthy(msg:find("'orders/nope'", 1, true), msg)
    -- Known topics still print help and exit 0.
    for _, argv in ipairs({ { "help" }, { "help", "orders/detail" }, { "help", "orders_detail" },
                            { "help", "endpoints" }, { "help", "repl" }, { "repl", "--help" } }) do
      local code, out = run(argv)
      assert.equal(0, code, table.concat(argv, " "))
      assert.truthy(#out > 0)
    end
  end)

  it("without a token, tells a CLI user about WEMASY_TOKEN and --token-file", function()
    local code, _, err = run({ "orders/detail", "order_number=ORD-2025-001" })
    assert.equal(cli.EXIT.unauthenticated, code, err)
    assert.matches("^wemasy unauthenticated on orders/detail: ", err)
    assert.truthy(err:find("WEMASY_TOKEN", 1, true), err)
    assert.truthy(err:find("--token-file", 1, true), err)
    assert.falsy(err:find("wemasy.new", 1, true), err)
  end)

  -- (A name with a '/' that is not in the table is another path of the API:
  -- it goes out through client:call, as the README says.)
  it("a misspelt endpoint name says which one was meant, and sends nothing", function()
    for _, case in ipairs({
      { { "orders_detial", "order_number=X" }, "orders_detail" },
      { { "endpoints", "orders/detial" }, "orders/detail" },
    }) do
      local msg = usage(case[1])
      assert.truthy(msg:find("did you mean '" .. case[2] .. "'", 1, true), msg)
    end
  end)
end)
