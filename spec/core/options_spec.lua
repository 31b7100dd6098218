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
    local opts = { rate_limit = { shared = false, groups = { sync = { limit = 2 } } } }
    wemasy.new(opts):close()
    assert.same({ rate_limit = { shared = false, groups = { sync = { limit = 2 } } } }, opts)
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

-- README states the options and their defaults for people; the core's
-- declaration (csrc/options.h, as core.options) states them for the code.
describe("README's options against the declaration (core.options)", function()
  local core = require("wemasy.core")
  local helpers = require("support.helpers")

  local function readme()
    local path = (helpers.SPEC_DIR:match("^(.*)/spec$") or ".") .. "/README.md"
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    return text
  end

  -- name -> the default column of README's "Options of `wemasy.new`" table
  local function readme_defaults()
    local section = assert(readme():match("\n### Options of `wemasy.new`\n(.-)\n###? "), "no options section")
    local listed = {}
    for names, default in section:gmatch("\n| ([^|]+) | ([^|]+) |") do
      for name in names:gmatch("`([%w_]+)`") do
        assert.is_nil(listed[name], "README lists option " .. name .. " twice")
        listed[name] = default
      end
    end
    return listed
  end

  it("lists every option with the declared default, and no other", function()
    local listed = readme_defaults()
    assert.is_true(#core.options >= 20)
    for _, o in ipairs(core.options) do
      assert.is_string(listed[o.name], "option " .. o.name .. " is not in README's table")
      assert.equal(o.default_text, listed[o.name], "README's default of " .. o.name)
      listed[o.name] = nil
    end
    assert.is_nil(next(listed), "README lists an option the core does not declare: " .. tostring(next(listed)))
  end)

  it("shows the nested defaults in the rate-limit example as declared", function()
    local block = assert(readme():match("\n```lua\n(wemasy%.new{\n  token = %.%.%.,\n  rate_limit = {.-\n)```"))
    local function shows(text, what)
      assert.truthy(block:find(text, 1, true), what .. ": README's example does not show " .. text)
    end
    for _, o in ipairs(core.options.rate_limit.fields) do
      if o.default ~= nil then shows(o.name .. " = " .. o.default_text .. ",", o.path) end
    end
    for name, g in pairs(wemasy.endpoints.groups) do
      shows(("%s = { limit = %d, window = %d }"):format(name, g.limit, g.window), "group " .. name)
    end
    shows("max_retries = " .. core.options.max_retries.default_text .. ",", "max_retries")
    shows("backoff = " .. core.options.backoff.default_text:gsub("`", "") .. ",", "backoff")
  end)

  it("takes the group quotas from the endpoint table, which is their only statement", function()
    local sync = wemasy.endpoints.groups.sync
    local saved = sync.limit
    sync.limit = saved + 2
    local ok, c = pcall(core.new, { base_url = "http://127.0.0.1:1", rate_limit = { shared = false } })
    sync.limit = saved
    assert(ok, c)
    assert.equal(saved + 2, c:rate_limit("sync").limit)
    c:close()
  end)

  it("uses the declared defaults when an option is left out", function()
    local c = wemasy.new{ rate_limit = { shared = false } }
    assert.equal(core.options.base_url.default, c.base_url)
    assert.equal(wemasy.endpoints.groups.default.limit, c:rate_limit().limit)
    assert.equal(wemasy.endpoints.groups.sync.limit, c:rate_limit("sync").limit)
    assert.equal(core.options.max_request_body.default, c._core:max_request_body())
    c:close()
  end)
end)
