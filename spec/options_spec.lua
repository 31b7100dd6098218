-- wemasy.new's options: checked in one place (the C core), reported as
-- wemasy.new's, naming the option and the type, never the value.
local wemasy = require("wemasy")

local function new_error(opts)
  local ok, err = pcall(function() local c = wemasy.new(opts); return c end)
  assert.is_false(ok, "wemasy.new accepted a bad option")
  return err
end

describe("wemasy.new options", function()
  it("raises for an unknown option, naming it, at the caller", function()
    local err = new_error{ tokne = "x" }
    assert.matches("wemasy.new: unknown option 'tokne'", err, 1, true)
    assert.matches("options_spec.lua", err, 1, true)
  end)

  it("raises for a wrong type, naming option and type but not the value", function()
    assert.matches("wemasy.new: option 'timeout' must be .* %(got string%)", new_error{ timeout = "30" })
    local err = new_error{ token = "abc\r\nX-Evil: 1" }
    assert.matches("option 'token'", err)
    assert.is_nil(err:find("abc", 1, true))
  end)

  it("checks numbers, URLs and nested rate-limit options", function()
    for _, opts in ipairs{
      { timeout = 0 }, { timeout = -1 }, { timeout = 0 / 0 }, { timeout = math.huge },
      { max_body = 1.5 }, { max_body = 0 }, { base_url = "ftp://x" }, { base_url = "http://a b" },
      { base_url = "api.wemasy.nl" }, { max_retries = -1 }, { rate_limit = "on" },
      { rate_limit = { wait = "yes" } }, { rate_limit = { groups = { sync = { limit = 0 } } } },
      { rate_limit = { groups = { sync = { window = -1 } } } }, { rate_limit = { max_wiat = 1 } },
    } do
      local err = new_error(opts)
      local name = next(opts)
      assert.matches("wemasy.new: ", err, 1, true)
      assert.truthy(err:find(name, 1, true), err)
    end
  end)

  it("names nested options by their path", function()
    assert.matches("rate_limit.groups.sync.limit",
      new_error{ rate_limit = { groups = { sync = { limit = "5" } } } }, 1, true)
  end)

  it("raises for options that are not a table", function()
    local ok, err = pcall(wemasy.new, "x")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'wemasy.new' (table expected, got string)", err, 1, true)
  end)

  it("does not change the caller's table", function()
    local opts = { rate_limit = { groups = { sync = { limit = 2 } } } }
    wemasy.new(opts)
    assert.same({ rate_limit = { groups = { sync = { limit = 2 } } } }, opts)
  end)

  it("takes group limits from the endpoint table, overridable per field", function()
    local c = wemasy.new{ rate_limit = { shared = false, groups = { sync = { limit = 2 } } } }
    assert.same(5 - 3, c:rate_limit("sync").limit)
    assert.equal(wemasy.endpoints.groups.sync.limit, 5)
    assert.equal(60, c:rate_limit("default").limit)
    assert.equal(60, c:rate_limit().remaining)
  end)

  it("turns limiting off with rate_limit = false", function()
    local c = wemasy.new{ rate_limit = false }
    local state, err = c:rate_limit("default")
    assert.is_nil(state)
    assert.equal("invalid_argument", err.kind)
  end)
end)
