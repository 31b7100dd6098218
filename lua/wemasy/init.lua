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

-- wemasy.sandbox (and wemasy.pretty, the REPL's printer) load on first use:
-- only specs, examples, offline tests and people at a prompt need them.
local lazy = { sandbox = "wemasy.sandbox", pretty = "wemasy.pretty" }
return setmetatable(wemasy, {
  __index = function(t, k)
    if lazy[k] then
      local module = require(lazy[k])
      rawset(t, k, module)
      return module
    end
  end,
})
