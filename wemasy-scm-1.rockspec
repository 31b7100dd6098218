rockspec_format = "3.0"
package = "wemasy"
version = "scm-1"

source = {
  url = "git+https://github.com/wemasy/wemasy-lua.git",
  branch = "main",
}

description = {
  summary = "Client for the Wemasy e-commerce API: libcurl core, client-side rate limiting, typed errors",
  detailed = [[
    require("wemasy").new{ token = ... } gives a client with one method per
    endpoint that takes and returns Lua tables.  A small C core drives libcurl
    (keep-alive, verified TLS, HTTP/2, timeouts, proxy); requests are
    validated before sending; failures come back as typed errors.  The
    `wemasy` command and a REPL come with it; the stateful sandbox of the API
    on nginx (wemasy.sandbox) is the rock wemasy-sandbox.
  ]],
  homepage = "https://github.com/wemasy/wemasy-lua",
  license = "MIT",
  labels = { "http", "api", "curl", "openresty", "e-commerce" },
}

-- Debian's lua-cjson is not a registered rock: offline installs use
-- `luarocks make --deps-mode=none` (see README.md and `make rock`).
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.6", -- the `wemasy` command only (Debian: lua-argparse)
}

-- Debian keeps curl/curl.h under /usr/include/<multiarch>: pass CURL_INCDIR.
-- hiredis (Debian: libhiredis-dev) is the Redis store's client.
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}

test_dependencies = { "busted >= 2.0" }
test = { type = "busted" }

build = {
  type = "builtin",
  modules = {
    ["wemasy.core"] = {
      sources = {
        "csrc/core.c", "csrc/options.c", "csrc/url.c", "csrc/inject.c", "csrc/call.c", "csrc/request.c", "csrc/batch.c",
        "csrc/transport.c", "csrc/settings.c", "csrc/headers.c", "csrc/buffer.c", "csrc/sockets.c",
        "csrc/classify.c", "csrc/libcurl.c", "csrc/multi.c", "csrc/retry.c", "csrc/interrupt.c",
        "csrc/limiter.c", "csrc/limiter_shm.c", "csrc/limiter_redis.c", "csrc/window.c", "csrc/json.c",
        "csrc/tests.c", -- empty here: the release never defines WEMASY_TESTS (csrc/tests.h)
      },
      defines = { 'WEMASY_VERSION="0.1.0"' },
      -- pthread: the robust process-shared limiter lock; rt: shm_open on older glibc;
      -- hiredis: the Redis store; m: its floor()
      libraries = { "curl", "hiredis", "pthread", "rt", "m" },
      incdirs = { "$(CURL_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(HIREDIS_LIBDIR)" },
    },
    -- the runtime library
    ["wemasy"] = "lua/wemasy/init.lua",
    ["wemasy.args"] = "lua/wemasy/args.lua",
    ["wemasy.client"] = "lua/wemasy/client.lua",
    ["wemasy.endpoints"] = "lua/wemasy/endpoints.lua",
    ["wemasy.errors"] = "lua/wemasy/errors.lua",
    ["wemasy.json"] = "lua/wemasy/json.lua",
    ["wemasy.methods"] = "lua/wemasy/methods.lua",
    ["wemasy.validate"] = "lua/wemasy/validate.lua",
    ["wemasy.hooks"] = "lua/wemasy/hooks.lua",
    -- nginx: the client on ngx_lua's thread pool
    ["wemasy.ngx"] = "lua/wemasy/ngx.lua",
    ["wemasy.ngx.thread"] = "lua/wemasy/ngx/thread.lua",
    -- developer tools: the `wemasy` command, its REPL and printer
    ["wemasy.cli"] = "lua/wemasy/cli.lua",
    ["wemasy.repl"] = "lua/wemasy/repl.lua",
    ["wemasy.pretty"] = "lua/wemasy/pretty.lua",
  },
  install = {
    bin = { ["wemasy"] = "bin/wemasy" },
  },
}
