-- Processes that share one quota, against tiny_server's /rl/<name>/<limit>/<ms>
-- route, which counts like Laravel's throttle (/rlstats/<name>: how many
-- passed, how many over the limit).  For the shm store's specs (processes)
-- and the Redis store's (hosts: support.redis's spawn_host).
local assert = require "luassert"
local h = require "support.helpers"

local M = {}

-- A child's script (for h.spawn): arg = url, token, name, limit, ms, per and,
-- optionally, store and margin.  It sends `per` requests through a limiter
-- of `limit` per `ms` milliseconds and prints "OK <200s> STORES <the
-- limiter's stores it saw, when a store was given> OTHER <other answers>".
M.CHILD = [[
  local core = require "wemasy.core"
  local url, token, name, store = arg[1], arg[2], arg[3], arg[7]
  local limit, ms, per, margin = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[8])
  local c = core.new { base_url = url, token = token, max_retries = 0,
    rate_limit = { store = store, margin = margin, groups = { default = { limit = limit, window = ms / 1000 } } } }
  local ok, other, stores = 0, {}, {}
  for _ = 1, per do
    local status, kind = c:request("/rl/" .. name .. "/" .. limit .. "/" .. ms, "{}")
    if status == 200 then ok = ok + 1 else other[#other + 1] = tostring(status or kind) end
    if store then stores[#stores + 1] = c:rate_limit().store end
  end
  print("OK " .. ok .. " STORES " .. table.concat(stores, ",") .. " OTHER " .. table.concat(other, ","))
]]

-- Waits for the children (M.CHILD's) on route `name` of `srv`: each got only
-- 200s, `expected` passed in all, and none over the server's limit.  Returns
-- each child's stores, as a set.
function M.collect(srv, name, kids, expected)
  local total, stores = 0, {}
  for i, kid in ipairs(kids) do
    local out = h.finish(kid)
    local ok, seen, other = out:match("OK (%d+) STORES (%S*) OTHER (.*)$")
    assert.is_not_nil(ok, "child said: " .. out)
    assert.equal("", other:gsub("%s+$", ""), "a child got other answers")
    total = total + tonumber(ok)
    stores[i] = {}
    for s in seen:gmatch("[^,]+") do stores[i][s] = true end
  end
  local passed, over = h.get(srv.url, "/rlstats/" .. name):match("^(%d+) (%d+)$")
  assert.equal(expected, total)
  assert.equal(expected, tonumber(passed))
  assert.equal(0, tonumber(over), "requests over the server's limit")
  return stores
end

return M
