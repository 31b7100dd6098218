-- wemasy: a client for the Wemasy e-commerce API.
--
--   local wemasy = require("wemasy")
--   local client = wemasy.new{ token = os.getenv("WEMASY_TOKEN") }
--   local body, err, res = client:orders_detail{ order_number = "ORD-2025-001" }
--
-- Methods return `body, nil, res` on success and `nil, err` on failure; see
-- README.md for the error kinds.  This file is only the facade.
local core = require("wemasy.core")
local client = require("wemasy.client")
local errors = require("wemasy.errors")
local json = require("wemasy.json")

local wemasy = {
  _VERSION = core._VERSION,
  -- JSON null, in requests (`mark = wemasy.null`) and in responses.  It is
  -- lua-cjson's sentinel, so `v == wemasy.null` and `v == cjson.null` agree.
  null = json.null,
  new = client.new,
  endpoints = require("wemasy.endpoints"),
  error_kinds = errors.kinds,
  is_error = errors.is_error,
  DEFAULT_BASE_URL = client.DEFAULT_BASE_URL,
}

-- A Lua prompt with a client ready: wemasy.repl{ sandbox = true } (wemasy.repl).
function wemasy.repl(opts)
  return require("wemasy.repl").run(opts)
end

-- The sandbox is a rock of its own (wemasy-sandbox), which production installs
-- leave out.  Without it, wemasy.sandbox says what to install: start and run
-- fail as they do when nginx is missing (nil, message), so `wemasy --sandbox`
-- and the REPL print it; anything else raises it.
local SANDBOX_MISSING = "wemasy.sandbox is not installed: it is the rock wemasy-sandbox; "
  .. "in a clone of wemasy: luarocks make wemasy-sandbox-scm-1.rockspec (README.md, Install)"

local function missing_sandbox()
  local function fail() return nil, SANDBOX_MISSING end
  return setmetatable({ start = fail, run = fail }, {
    __index = function(_, k) error("wemasy.sandbox." .. tostring(k) .. ": " .. SANDBOX_MISSING, 2) end,
  })
end

-- A module that is not installed, as opposed to one that fails to load.
local function require_installed(name)
  local ok, module = pcall(require, name)
  if ok then return module end
  if tostring(module):find("module '" .. name .. "' not found", 1, true) then return nil end
  error(module, 0)
end

-- wemasy.sandbox (and wemasy.pretty, the REPL's printer) load on first use:
-- only specs, examples, offline tests and people at a prompt need them.
local lazy = {
  sandbox = function() return require_installed("wemasy.sandbox") or missing_sandbox() end,
  pretty = function() return require("wemasy.pretty") end,
}
return setmetatable(wemasy, {
  __index = function(t, k)
    if lazy[k] then
      local module = lazy[k]()
      rawset(t, k, module)
      return module
    end
  end,
})
