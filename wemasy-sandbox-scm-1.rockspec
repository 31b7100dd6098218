rockspec_format = "3.0"
package = "wemasy-sandbox"
version = "scm-1"

source = {
  url = "git+https://github.com/wemasy/wemasy-lua.git",
  branch = "main",
}

description = {
  summary = "A stateful local copy of the Wemasy e-commerce API on nginx, for offline tests of wemasy",
  detailed = [[
    require("wemasy.sandbox").start() runs the five endpoints of the Wemasy
    webshop API on a real nginx with its Lua module, on a free loopback port:
    seed orders, tokens, Laravel-style validation and rate limiting, and
    faults on request (resets, slow bodies, 5xx, 429 storms).  The routes are
    derived from wemasy's endpoint table, so this rock needs wemasy in the
    same tree.  `wemasy --sandbox` and `wemasy-sandbox` use it.
  ]],
  homepage = "https://github.com/wemasy/wemasy-lua",
  license = "MIT",
  labels = { "testing", "openresty", "e-commerce" },
}

-- Debian's lua-cjson and lua-socket are not registered rocks: offline installs
-- use `luarocks make --deps-mode=none` (see README.md and `make rock`).  nginx
-- itself (nginx-light, libnginx-mod-http-lua) comes from the system.
dependencies = {
  "lua >= 5.1, < 5.5",
  "wemasy",
  "lua-cjson >= 2.1.0",
  "luasocket >= 3.0",
}

-- Plain Lua files: no build step.  (The builtin backend would also copy all of
-- lua/, wemasy's own modules, into this rock.)
build = {
  type = "none",
  install = {
    lua = {
      -- the launcher (plain Lua 5.4 or LuaJIT); faults and tokens are shared with nginx
      ["wemasy.sandbox"] = "sandbox/wemasy/sandbox/init.lua",
      ["wemasy.sandbox.conf"] = "sandbox/wemasy/sandbox/conf.lua",
      ["wemasy.sandbox.proc"] = "sandbox/wemasy/sandbox/proc.lua",
      ["wemasy.sandbox.ca"] = "sandbox/wemasy/sandbox/ca.lua",
      ["wemasy.sandbox.faults"] = "sandbox/wemasy/sandbox/faults.lua",
      ["wemasy.sandbox.tokens"] = "sandbox/wemasy/sandbox/tokens.lua",
      -- the server side, in nginx
      ["wemasy.sandbox.app"] = "sandbox/wemasy/sandbox/app.lua",
      ["wemasy.sandbox.control"] = "sandbox/wemasy/sandbox/control.lua",
      ["wemasy.sandbox.endpoints"] = "sandbox/wemasy/sandbox/endpoints.lua",
      ["wemasy.sandbox.inject"] = "sandbox/wemasy/sandbox/inject.lua",
      ["wemasy.sandbox.input"] = "sandbox/wemasy/sandbox/input.lua",
      ["wemasy.sandbox.json"] = "sandbox/wemasy/sandbox/json.lua",
      ["wemasy.sandbox.limiter"] = "sandbox/wemasy/sandbox/limiter.lua",
      ["wemasy.sandbox.respond"] = "sandbox/wemasy/sandbox/respond.lua",
      ["wemasy.sandbox.seed"] = "sandbox/wemasy/sandbox/seed.lua",
      ["wemasy.sandbox.store"] = "sandbox/wemasy/sandbox/store.lua",
      ["wemasy.sandbox.validate"] = "sandbox/wemasy/sandbox/validate.lua",
      ["wemasy.sandbox.views"] = "sandbox/wemasy/sandbox/views.lua",
      ["wemasy.sandbox.watchdog"] = "sandbox/wemasy/sandbox/watchdog.lua",
    },
    bin = { ["wemasy-sandbox"] = "bin/wemasy-sandbox" },
  },
}
