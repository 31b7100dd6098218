-- The circuit breaker in wemasy.ngx (issue 14 item 3) on real nginx: two
-- workers, each with its thread VMs and their core clients, are one breaker,
-- because its state lives with the limiter's, in the host's shared segment.
-- nginx runs LuaJIT: this runs on the LuaJIT pass.
if not jit then
  describe("the circuit breaker in nginx", function()
    pending("nginx runs LuaJIT: this spec runs on the LuaJIT pass (build/jit/wemasy/core.so)")
  end)
  return
end

local proc = require("wemasy.sandbox.proc")
local helpers = require("support.helpers")
local launch = dofile((helpers.SPEC_DIR:gsub("/spec$", "")) .. "/examples/openresty/launch.lua")

local FAILURES = 3

-- The page: one orders/detail call through wemasy.ngx, its error on one line.
local NGINX_SIDE = [=[
local wngx = require("wemasy.ngx")
local M, client = {}, nil

function M.call()
  client = client or wngx.new{ base_url = "@BASE@", token = "@TOKEN@", timeout = 2, max_retries = 0,
                               breaker = { failures = @FAILURES@, cooldown = 60 } }
  local body, err = client:orders_detail{ order_number = "ORD-2025-001" }
  if body then return ngx.say("ok") end
  ngx.say(err.kind, " ", tostring(err.reason), " ", err.attempts, " ", tostring(err.sent), " ",
          err.retry_after and (err.retry_after > 30 and "wait" or "short") or "none")
end

return M
]=]

describe("the circuit breaker in wemasy.ngx", function()
  local down, shop, dir, token = {}, nil, nil, nil

  lazy_setup(function()
    local pipe, ctl = helpers.launch("down_server")
    local api = assert((pipe:read("*l") or ""):match("^API (%d+)$"))
    down.pipe, down.ctl, down.url = pipe, "http://127.0.0.1:" .. ctl, "http://127.0.0.1:" .. api
    token = helpers.token("brk-ngx")
    dir = assert(proc.mktemp())
    proc.write_file(dir .. "/ngx_breaker.lua", (NGINX_SIDE:gsub("@([%w_]+)@",
      { BASE = down.url, TOKEN = token, FAILURES = tostring(FAILURES) })))
    local err
    shop, err = launch.start{
      base_url = down.url, token = token, workers = 2, reuseport = true, lua_path = dir .. "/?.lua",
      server = [[
        add_header X-Worker $pid always;
        location = /b/call { content_by_lua_block { require("ngx_breaker").call() } }
]],
    }
    assert(shop, err)
  end)

  lazy_teardown(function()
    if shop then shop:stop() end
    if dir then proc.remove_tree(dir) end
    helpers.forget_tokens(down.url)
    if down.pipe then helpers.stop_server({ url = down.ctl, pipe = down.pipe }) end
  end)

  it("is one breaker for every worker and thread VM: a dead API gets `failures` tries in all", function()
    helpers.get(down.ctl, "/mode/503")
    local before = tonumber(helpers.get(down.ctl, "/count"))
    local lines, pids = {}, {}
    for i = 1, 40 do
      local status, body, headers = launch.request("GET", shop.url .. "/b/call")
      assert.equal(200, status, tostring(body))
      lines[i] = body:gsub("\n$", "")
      if lines[i]:find("circuit_open", 1, true) then pids[headers["x-worker"] or "?"] = true end
    end
    local sent = tonumber(helpers.get(down.ctl, "/count")) - before
    for i = 1, FAILURES do assert.equal("server nil 1 nil none", lines[i]) end
    for i = FAILURES + 1, 40 do assert.equal("network circuit_open 0 false wait", lines[i]) end
    assert.equal(FAILURES, sent)
    local workers = 0
    for _ in pairs(pids) do workers = workers + 1 end
    assert.is_true(workers >= 2, "only one worker answered; cannot tell one breaker from two")
  end)
end)
