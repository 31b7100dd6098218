-- Random Lua values into every public function of wemasy and wemasy.core
-- (fuzz/lua_driver.lua), in child processes so that a crash is seen as one:
-- a child that dies (segfault, abort, a sanitizer's report), hangs, or
-- reports a finding fails this spec with its seed and the command that
-- replays it call by call.
--
-- Calls per run of this file (per Lua): 2 children x 250 000; under ASan
-- 2 x 100 000; under valgrind 1 x 3 000 (the child runs under valgrind too).
-- WEMASY_FUZZ_CALLS (per child) and WEMASY_FUZZ_SEED override; the seed is
-- otherwise new every run, and always printed.
local helpers = require("support.helpers")

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local valgrind = os.getenv("WEMASY_UNDER_VALGRIND") ~= nil
local asan = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil
local CHILDREN = valgrind and 1 or 2
local CALLS = tonumber(os.getenv("WEMASY_FUZZ_CALLS") or "") or (valgrind and 3000 or asan and 100000 or 250000)
local SEED = tonumber(os.getenv("WEMASY_FUZZ_SEED") or "") or (os.time() % 1000000) * 10
local LIMIT = 300 -- seconds a child may take before it counts as hung (they take under 60)
local DRIVER = helpers.SPEC_DIR .. "/../fuzz/lua_driver.lua"
local WRAPPER = valgrind and ("valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "
  .. "--show-leak-kinds=definite --suppressions=" .. helpers.SPEC_DIR .. "/valgrind.supp ") or ""

-- What the driver found, pinned so that it stays fixed.
describe("fuzz findings", function()
  local wemasy = require("wemasy")
  local raising = { __eq = function() error("metamethod ran") end, __concat = function() error("metamethod ran") end,
                    __tostring = function() error("metamethod ran") end }
  -- getmetatable(v) returns this table; comparing it runs its own __eq.
  local sneaky = setmetatable({}, raising)

  it("is_error does not run the __eq of a value's metatable", function()
    assert.is_false(wemasy.is_error(setmetatable({}, sneaky)))
  end)

  it("a method with a wrong self raises its own message, not a metamethod's", function()
    local c = wemasy.new{ base_url = "http://127.0.0.1:1", rate_limit = false }
    local ok, why = pcall(c.orders_detail, setmetatable({}, sneaky), {})
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'orders_detail'", why)
    c:close()
  end)

  it("a clock hook that stands still while the sleep hook sleeps raises instead of spinning forever", function()
    local core = require("wemasy.core")
    local c = core.new{ base_url = "http://127.0.0.1:1", clock = function() return 5 end, sleep = function() end,
                        max_retries = 0,
                        rate_limit = { shared = false, groups = { default = { limit = 1, window = 1 } } } }
    c:request("/x", "")
    local ok, why = pcall(c.request, c, "/x", "")
    assert.is_false(ok)
    assert.matches("the clock hook stood still while the sleep hook slept", why)
    ok, why = pcall(c.batch, c, { { path = "/x", body = "" }, { path = "/x", body = "" } }, nil, nil, function() end)
    assert.is_false(ok)
    assert.matches("the clock hook stood still", why)
    c:close()
  end)

  it("tostring of an error whose fields were replaced never raises", function()
    local c = wemasy.new{ base_url = "http://127.0.0.1:1", rate_limit = false }
    local _, err = c:call("no such path", {})
    c:close()
    err.kind, err.status, err.endpoint = setmetatable({}, raising), {}, print
    err.message = setmetatable({}, raising)
    assert.equal("wemasy ?: ", tostring(err))
    err.kind, err.status, err.endpoint, err.message = "server", 503, "orders/detail", "a\r\nb"
    assert.equal("wemasy server 503 on orders/detail: a b", tostring(err))
  end)
end)

describe("fuzzing every public function", function()
  it(string.format("%d x %d calls with random values: no crash, no hang, no finding", CHILDREN, CALLS), function()
    local runs = {}
    for i = 1, CHILDREN do
      local seed = SEED + i
      local command = string.format("%s %s --seed %d --calls %d", helpers.LUA, DRIVER, seed, CALLS)
      local p = assert(io.popen("timeout -s KILL " .. LIMIT .. " " .. WRAPPER .. command .. " 2>&1; echo \"EXIT $?\"",
        "r"))
      runs[i] = { seed = seed, pipe = p, command = command }
    end
    local failures = {}
    local total = 0
    for _, run in ipairs(runs) do
      local out = run.pipe:read("*a")
      run.pipe:close()
      local code = tonumber(out:match("EXIT (%d+)%s*$"))
      local calls = tonumber(out:match("FUZZ OK seed=%d+ calls=(%d+)"))
      if code == 0 and calls == CALLS then
        total = total + calls
      else
        local why = code == 137 and "hung (killed after " .. LIMIT .. " s)"
          or code and code > 128 and "crashed (signal " .. (code - 128) .. ")"
          or "exited with " .. tostring(code)
        failures[#failures + 1] = string.format("seed %d %s; replay with\n  LUA_PATH=%s LUA_CPATH=%s %s --trace\n%s",
          run.seed, why, shell_quote(os.getenv("LUA_PATH") or package.path),
          shell_quote(os.getenv("LUA_CPATH") or package.cpath), run.command, out:sub(-3000))
      end
    end
    io.stderr:write(string.format("fuzz: seeds %d..%d, %d calls%s\n", SEED + 1, SEED + CHILDREN, total,
      #failures > 0 and ", " .. #failures .. " failed" or ""))
    assert(#failures == 0, table.concat(failures, "\n\n"))
    assert.equal(CHILDREN * CALLS, total)
  end)
end)
