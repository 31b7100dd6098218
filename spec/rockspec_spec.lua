-- The rockspec is the install: every C source and Lua module of the tree
-- must be in it, or `luarocks make` ships a client that fails at require time.
local function rockspec()
  local env = {}
  local chunk = assert(loadfile("wemasy-scm-1.rockspec", "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

local function files(pattern)
  local list = {}
  local p = assert(io.popen("find lua csrc -type f | sort"))
  for line in p:lines() do
    if line:match(pattern) then list[#list + 1] = line end
  end
  p:close()
  return list
end

describe("wemasy-scm-1.rockspec", function()
  local spec = rockspec()
  local modules = spec.build.modules

  it("builds wemasy.core from every C file in csrc/", function()
    local listed = {}
    for _, src in ipairs(modules["wemasy.core"].sources) do listed[src] = true end
    for _, c in ipairs(files("%.c$")) do
      assert.is_true(listed[c] == true, c .. " is missing from the rockspec's sources")
    end
  end)

  it("installs every Lua module under lua/ by its require name", function()
    local installed = {}
    for name, file in pairs(modules) do
      if type(file) == "string" then installed[file] = name end
    end
    for _, file in ipairs(files("%.lua$")) do
      local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(name, installed[file], file .. " is not installed as " .. name)
    end
  end)

  it("declares lua-cjson, libcurl and a rockspec_format 3.0 busted test", function()
    assert.equal("3.0", spec.rockspec_format)
    assert.truthy(table.concat(spec.dependencies, " "):find("lua-cjson", 1, true))
    assert.equal("curl/curl.h", spec.external_dependencies.CURL.header)
    assert.equal("busted", spec.test.type)
  end)
end)
