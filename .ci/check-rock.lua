-- What an installed tree must do, run by .ci/check-rock with only the tree
-- (and Debian's lua-cjson, luasocket, argparse) on the path:
--   lua .ci/check-rock.lua main TREE   the wemasy rock alone
--   lua .ci/check-rock.lua both TREE   wemasy and wemasy-sandbox
local mode, tree = arg[1], arg[2]
assert((mode == "main" or mode == "both") and tree, "usage: check-rock.lua main|both TREE")

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local wemasy = require("wemasy")
local where = package.searchpath("wemasy.core", package.cpath)
assert(where and where:find(tree, 1, true), "wemasy.core not from the tree: " .. tostring(where))
-- The release: none of the test build's _debug_ functions (csrc/tests.c), in the module or a client.
local core = require("wemasy.core")
local methods = debug.getmetatable(core.new{ base_url = "http://127.0.0.1:9/api", rate_limit = false }).__index
for _, t in ipairs{ core, methods } do
  for name in pairs(t) do
    assert(not tostring(name):find("^_debug"), "the installed wemasy.core has the test function " .. tostring(name))
  end
end
local client = wemasy.new{ base_url = "http://127.0.0.1:9/api", connect_timeout = 1 }
local _, err = client:orders_detail{ order_number = "X" }
assert(err.kind == "unauthenticated", tostring(err))
assert(exists(tree .. "/bin/wemasy"), "no bin/wemasy in the tree")

-- The `wemasy` command, in this interpreter; its exit code and what it wrote.
local function cli(...)
  local written = {}
  local stream = { write = function(self, text) written[#written + 1] = text; return self end }
  local code = require("wemasy.cli").main({ ... }, {
    stdout = stream, stderr = stream, getenv = function() return nil end, isatty = function() return false end,
  })
  return code, table.concat(written)
end

local sandbox_file = package.searchpath("wemasy.sandbox", package.path)
if mode == "main" then
  assert(not sandbox_file, "the main rock installed the sandbox: " .. tostring(sandbox_file))
  assert(not exists(tree .. "/bin/wemasy-sandbox"), "the main rock installed bin/wemasy-sandbox")
  local base_url, why = wemasy.sandbox.start()
  assert(base_url == nil and why:find("luarocks make wemasy-sandbox-scm-1.rockspec", 1, true), tostring(why))
  local code, out = cli("--sandbox", "orders/detail", "order_number=ORD-2025-001")
  assert(code == 1 and out:find("wemasy.sandbox is not installed", 1, true), code .. ": " .. out)
  print("   wemasy " .. wemasy._VERSION .. " alone from " .. where .. "; --sandbox says: " .. out:gsub("\n$", ""))
  return
end

-- The sandbox from the installed tree: nginx must find its modules and
-- wemasy's endpoint table there.
assert(sandbox_file and sandbox_file:find(tree, 1, true),
  "wemasy.sandbox not from the tree: " .. tostring(sandbox_file))
assert(exists(tree .. "/bin/wemasy-sandbox"), "no bin/wemasy-sandbox in the tree")
local base_url, sb = wemasy.sandbox.start()
assert(base_url, sb)
local shop = wemasy.new{ base_url = base_url, token = wemasy.sandbox.tokens.merchant, rate_limit = { shared = false } }
local body = assert(shop:orders_detail{ order_number = "ORD-2025-001" })
assert(body.data.checkout.order.total_price_with_tax == 129.99551)
sb:stop()
local code, out = cli("--sandbox", "--raw", "orders/detail", "order_number=ORD-2025-001")
assert(code == 0 and out:find('"ORD-2025-001"', 1, true), code .. ": " .. out)
print("   wemasy and wemasy-sandbox from " .. tree .. ": the sandbox answers, and through `wemasy --sandbox`")
