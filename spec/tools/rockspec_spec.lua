-- The rockspecs are the install: every C source and Lua module of the tree
-- must be in one of them, or `luarocks make` ships a client that fails at
-- require time.  wemasy-scm-1.rockspec is the client (csrc/ and lua/: C core,
-- runtime library, nginx, developer tools); wemasy-sandbox-scm-1.rockspec is
-- the sandbox (sandbox/), which production installs leave out.  luarocks'
-- builtin backend copies all of lua/ whatever the rockspec lists, so lua/
-- must hold the main rock's modules and nothing else.  .ci/check-rock (make
-- rock) installs both for real; here, the main rock's files alone are laid
-- out as luarocks installs them, to see what wemasy says without the sandbox.
local LUA = os.getenv("WEMASY_TEST_LUA") or "lua5.4"
local CPATH = os.getenv("WEMASY_TEST_CPATH") or "build/5.4/?.so"
local ABI = CPATH:match("([^/]+)/%?%.so$")

local function rockspec(file)
  local env = {}
  local chunk = assert(loadfile(file, "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

local function lines_of(command)
  local list = {}
  local p = assert(io.popen(command))
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

local function tree_files(pattern)
  local list = {}
  for _, line in ipairs(lines_of("find lua sandbox csrc -type f | sort")) do
    if line:match(pattern) then list[#list + 1] = line end
  end
  return list
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- file -> require name of every Lua module a rockspec installs (builtin's
-- build.modules, or install.lua).
local function lua_modules(spec)
  local installed = {}
  for _, list in ipairs({ spec.build.modules or {}, spec.build.install.lua or {} }) do
    for name, file in pairs(list) do
      if type(file) == "string" then installed[file] = name end
    end
  end
  return installed
end

local MAIN = rockspec("wemasy-scm-1.rockspec")
local SANDBOX = rockspec("wemasy-sandbox-scm-1.rockspec")

describe("wemasy-scm-1.rockspec", function()
  local modules = MAIN.build.modules

  it("builds wemasy.core from every C file in csrc/, and from files that exist", function()
    local listed = {}
    for _, src in ipairs(modules["wemasy.core"].sources) do
      listed[src] = true
      assert.is_true(exists(src), src .. " is in the rockspec's sources but not in the tree")
    end
    for _, c in ipairs(tree_files("%.c$")) do
      assert.is_true(listed[c] == true, c .. " is missing from the rockspec's sources")
    end
  end)

  it("installs lua/, all of it and only it, and leaves the sandbox out", function()
    local installed = lua_modules(MAIN)
    for _, file in ipairs(tree_files("^lua/")) do
      assert.is_string(installed[file], file .. ": luarocks copies all of lua/, so it belongs in this rockspec")
    end
    for file, name in pairs(installed) do
      assert.truthy(file:match("^lua/"), name .. " is not under lua/")
      assert.falsy(name:match("^wemasy%.sandbox"), name .. " belongs to wemasy-sandbox-scm-1.rockspec")
    end
    assert.equal("builtin", MAIN.build.type)
    assert.same({ wemasy = "bin/wemasy" }, MAIN.build.install.bin)
  end)

  it("declares lua-cjson, libcurl and a rockspec_format 3.0 busted test", function()
    assert.equal("3.0", MAIN.rockspec_format)
    assert.truthy(table.concat(MAIN.dependencies, " "):find("lua-cjson", 1, true))
    assert.equal("curl/curl.h", MAIN.external_dependencies.CURL.header)
    assert.equal("busted", MAIN.test.type)
  end)

  it("builds the release: never defines WEMASY_TESTS (csrc/tests.h), which this tree's build does", function()
    for _, define in ipairs(modules["wemasy.core"].defines) do
      assert.falsy(define:find("WEMASY_TESTS", 1, true), define)
    end
    assert.is_function(require("wemasy.core")._debug_unlink, "the specs run on the test build")
  end)
end)

describe("wemasy-sandbox-scm-1.rockspec", function()
  it("installs sandbox/ and bin/wemasy-sandbox, and depends on wemasy", function()
    for file, name in pairs(lua_modules(SANDBOX)) do
      assert.truthy(file:match("^sandbox/wemasy/sandbox/"), name .. " is not part of the sandbox")
    end
    -- Not builtin: that would copy lua/ (wemasy's own files) into this rock too.
    assert.equal("none", SANDBOX.build.type)
    assert.same({ ["wemasy-sandbox"] = "bin/wemasy-sandbox" }, SANDBOX.build.install.bin)
    local deps = " " .. table.concat(SANDBOX.dependencies, " ") .. " "
    assert.truthy(deps:find(" wemasy ", 1, true), "the sandbox needs wemasy's endpoint table")
    assert.equal(MAIN.version, SANDBOX.version)
  end)
end)

describe("the two rockspecs", function()
  it("install every Lua module under lua/ by its require name, each in one rock", function()
    local main, sandbox = lua_modules(MAIN), lua_modules(SANDBOX)
    for _, file in ipairs(tree_files("%.lua$")) do
      local name = file:gsub("^[^/]+/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.is_false(main[file] ~= nil and sandbox[file] ~= nil, file .. " is in both rockspecs")
      assert.equal(name, main[file] or sandbox[file], file .. " is not installed as " .. name)
    end
  end)
end)

describe("the main rock alone", function()
  -- What luarocks installs from wemasy-scm-1.rockspec (lua/, wemasy.core,
  -- bin/wemasy), laid out as in a clone without sandbox/: bin/wemasy finds
  -- exactly these beside itself.
  local root

  local function link(target, path)
    os.execute("mkdir -p " .. shell_quote(path:match("^(.*)/")) .. " && ln -s " .. shell_quote(target) .. " "
      .. shell_quote(path))
  end

  lazy_setup(function()
    root = lines_of("mktemp -d /tmp/wemasy-main-rock.XXXXXX")[1]
    local src = lines_of("pwd")[1]
    link(src .. "/lua", root .. "/lua")
    link(CPATH:gsub("%?%.so$", "wemasy/core.so"), root .. "/build/" .. ABI .. "/wemasy/core.so")
    link(src .. "/bin/wemasy", root .. "/bin/wemasy")
  end)

  lazy_teardown(function()
    if root then os.execute("rm -rf " .. shell_quote(root)) end
  end)

  -- Runs a command in root with none of the spec runner's paths; status, stdout + stderr.
  local function run(command)
    local paths = "LUA_PATH='" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;' "
      .. "LUA_CPATH='" .. root .. "/build/" .. ABI .. "/?.so;;' "
    local p = assert(io.popen("cd " .. shell_quote(root) .. " && (env -u LUA_PATH -u LUA_CPATH -u LUA_INIT "
      .. paths .. command .. ") 2>&1; echo \"exit=$?\""))
    local text = p:read("*a")
    p:close()
    local out, status = text:match("^(.-)exit=(%d+)\n$")
    return tonumber(status), out
  end

  local function lua(source) return run(LUA .. " -e " .. shell_quote(source)) end

  it("is the client: require('wemasy') works and a call is checked", function()
    local status, out = lua([[
      local wemasy = require("wemasy")
      assert(not package.searchpath("wemasy.sandbox", package.path), "the sandbox is on the path")
      local client = wemasy.new{ base_url = "http://127.0.0.1:9/api", rate_limit = false }
      local _, err = client:orders_detail{ order_number = "X" }
      print(err.kind)]])
    assert.equal(0, status, out)
    assert.equal("unauthenticated\n", out)
  end)

  it("wemasy.sandbox says to install the rock wemasy-sandbox", function()
    local status, out = lua([[
      local wemasy = require("wemasy")
      local base_url, err = wemasy.sandbox.start{}
      print(base_url, err)
      print(pcall(function() return wemasy.sandbox.tokens end))]])
    assert.equal(0, status, out)
    local first, second = out:match("^([^\n]*)\n([^\n]*)\n$")
    assert.equal("nil\twemasy.sandbox is not installed: it is the rock wemasy-sandbox; in a clone of wemasy: "
      .. "luarocks make wemasy-sandbox-scm-1.rockspec (README.md, Install)", first)
    assert.matches("^false\t.*wemasy%.sandbox%.tokens: wemasy%.sandbox is not installed: it is the rock "
      .. "wemasy%-sandbox;", second)
  end)

  it("wemasy --sandbox exits 1 with one line saying what to install", function()
    local status, out = run(LUA .. " bin/wemasy --sandbox orders/detail order_number=ORD-2025-001")
    assert.equal(1, status, out)
    assert.equal("wemasy: could not start the sandbox: wemasy.sandbox is not installed: it is the rock "
      .. "wemasy-sandbox; in a clone of wemasy: luarocks make wemasy-sandbox-scm-1.rockspec (README.md, Install)\n",
      out)
  end)
end)
