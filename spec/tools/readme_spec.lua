-- README.md's Lua, run against the sandbox, so that what a new user copies
-- works and what the README claims holds (issue 17, item 6).
--
-- Every ```lua block runs as a chunk of its own (its line numbers are the
-- README's) in an environment that has
--   wemasy       require("wemasy"), whose new() talks to the sandbox unless
--                its base_url is on this machine; os.getenv("WEMASY_TOKEN")
--                is the sandbox's merchant token
--   client       a merchant client, as the Use section makes it
-- and the standard globals; any other global a block reads fails the spec.
-- HTML comments next to a block (invisible on GitHub) say more:
--   <!-- readme-spec: given session, customer_client -->   (right above the fence)
--       names the block takes from the reader's own code: stubs, below
--   <!-- readme-spec: skip REASON -->                       (right above the fence)
--   <!-- readme-spec: then LUA -->                          (right below the fence)
--       Lua appended to the block, its locals in scope: asserts of its claims
-- The prose claims "`EXPR` raises `MESSAGE`" are checked too.
local wemasy = require("wemasy")
local core = require("wemasy.core")
local sandbox = require("wemasy.sandbox")
local helpers = require("support.helpers")

local README = (helpers.SPEC_DIR:match("^(.*)/spec$") or ".") .. "/README.md"

local DIRECTIVE = "^<!%-%- readme%-spec: (.-) %-%->$"

local function read_lines(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  local lines = {}
  for line in (text:gsub("\r\n", "\n") .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines, text
end

local function add_directive(block, text, where)
  local word, rest = text:match("^(%a+)%s*(.*)$")
  if where == "above" and word == "given" then
    for name in rest:gmatch("[%a_][%w_]*") do block.given[name] = true end
  elseif where == "above" and word == "skip" then
    block.skip = rest ~= "" and rest or "no reason given"
  elseif where == "below" and word == "then" then
    block.checks[#block.checks + 1] = rest
  else
    error(("README.md: a readme-spec comment %s a block must be %s (got %q)"):format(where,
      where == "above" and "'given NAMES' or 'skip REASON'" or "'then LUA'", text))
  end
end

-- Every ```lua block: its first code line, code, given names, skip reason, checks.
local function lua_blocks(lines)
  local blocks, i = {}, 1
  while i <= #lines do
    if lines[i]:match("^```lua%s*$") then
      local block = { line = i + 1, code = {}, given = {}, checks = {} }
      local j = i - 1
      while j >= 1 and lines[j]:match(DIRECTIVE) do
        add_directive(block, lines[j]:match(DIRECTIVE), "above")
        j = j - 1
      end
      i = i + 1
      while i <= #lines and not lines[i]:match("^```") do
        block.code[#block.code + 1] = lines[i]
        i = i + 1
      end
      local k = i + 1
      while k <= #lines and lines[k]:match(DIRECTIVE) do
        add_directive(block, lines[k]:match(DIRECTIVE), "below")
        k = k + 1
      end
      blocks[#blocks + 1] = block
    end
    i = i + 1
  end
  return blocks
end

-- What the README's examples take from the reader's program.
local function recorder()
  local calls = {}
  return setmetatable({ calls = calls }, { __index = function(_, method)
    return function(_, ...) calls[#calls + 1] = { method, ... } end
  end })
end

local function stubs(made)
  local rendered = {}
  return {
    session = "abc123def456ghi789",
    email = "john@example.com",
    customer_client = made.customer,
    render_ga4_purchase = function(purchase) rendered[#rendered + 1] = purchase end,
    rendered = rendered,
    in_flight = recorder(), latency = recorder(), quota_left = recorder(),
    log = { info = function() end },
  }
end

local STANDARD = {}
for _, name in ipairs{ "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
                       "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type",
                       "xpcall", "unpack", "string", "table", "math", "coroutine", "utf8", "_VERSION" } do
  STANDARD[name] = true
end

describe("README.md", function()
  local lines, text = read_lines(README)
  local blocks = lua_blocks(lines)
  local sb = helpers.sandbox()
  local segments = {} -- { base_url, token } of every client made: their limiter segments go at the end

  lazy_teardown(function()
    for _, s in ipairs(segments) do core._debug_unlink(s[1], s[2]) end
  end)

  -- wemasy as a block sees it: new() reaches the sandbox.
  local function sandboxed()
    local w = setmetatable({}, { __index = wemasy })
    function w.new(opts)
      local copy = {}
      for k, v in pairs(opts or {}) do copy[k] = v end
      if type(copy.base_url) ~= "string" or not copy.base_url:find("^http://127%.0%.0%.1[:/]") then
        copy.base_url = sb.base_url
      end
      segments[#segments + 1] = { copy.base_url, copy.token }
      return wemasy.new(copy)
    end
    return w
  end

  -- A fresh environment for one block: output captured, unknown globals refused.
  local function environment(block)
    local w = sandboxed()
    local out = {}
    local made = {
      client = w.new{ token = sandbox.tokens.merchant, rate_limit = { shared = false } },
      customer = w.new{ token = sandbox.tokens.customer, rate_limit = { shared = false } },
    }
    local given = stubs(made)
    local env = {
      wemasy = w,
      client = made.client,
      print = function(...)
        local parts = {}
        for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
        out[#out + 1] = table.concat(parts, "\t")
      end,
      io = setmetatable({ write = function(...) out[#out + 1] = table.concat({ ... }) end }, { __index = io }),
      os = setmetatable({ getenv = function(name)
        if name == "WEMASY_TOKEN" then return sandbox.tokens.merchant end
        return os.getenv(name)
      end }, { __index = os }),
      require = function(name)
        if name == "wemasy" then return w end
        return require(name)
      end,
    }
    return setmetatable(env, { __index = function(_, name)
      if STANDARD[name] then return _G[name] end
      if block.given[name] then
        assert(given[name] ~= nil, "readme-spec: no stub for given '" .. name .. "' in spec/tools/readme_spec.lua")
        return given[name]
      end
      error("reads the global '" .. tostring(name) .. "', which it does not define: define it, or name it in"
        .. " a <!-- readme-spec: given ... --> comment above the block", 2)
    end }), given
  end

  it("has Lua blocks to run", function()
    assert.is_true(#blocks >= 6, #blocks .. " blocks")
  end)

  for _, block in ipairs(blocks) do
    local name = ("the block at README.md:%d"):format(block.line)
    if block.skip then
      pending(name .. " (not run: " .. block.skip .. ")")
    else
      it(name .. " runs against the sandbox" .. (#block.checks > 0 and " and its claims hold" or ""), function()
        sb:reset()
        local env = environment(block)
        -- Blank lines first, so that errors name README.md's own lines.
        local source = string.rep("\n", block.line - 1) .. table.concat(block.code, "\n")
          .. "\n" .. table.concat(block.checks, "\n")
        local chunk, why = load(source, "@README.md", "t", env)
        assert(chunk, why)
        local ok, err = pcall(chunk)
        assert(ok, tostring(err))
      end)
    end
  end

  it("means what it says when it says '`EXPR` raises `MESSAGE`'", function()
    local prose = text:gsub("```.-```", ""):gsub("%s*\n%s*", " ")
    local n = 0
    for expr, message in prose:gmatch("`([^`]+)` raises `([^`]+)`") do
      n = n + 1
      local chunk = assert(load("return " .. expr, "=README.md", "t", environment{ given = {} }))
      local ok, err = pcall(chunk)
      assert.is_false(ok, expr .. " did not raise")
      assert.truthy(tostring(err):find(message, 1, true),
        expr .. " raised\n  " .. tostring(err) .. "\nnot\n  " .. message)
    end
    assert.is_true(n >= 2, "found " .. n .. " claims")
  end)
end)
