-- wemasy.ngx.thread: the side of wemasy.ngx that runs in the Lua VMs of
-- ngx.run_worker_thread (a plain LuaJIT state per VM, with the worker's
-- package.path and package.cpath; a VM runs one call at a time).
--
-- Each VM keeps plain wemasy clients keyed by the options' hash that the
-- worker sends with every call, so one libcurl handle (keep-alive) serves
-- every call of those options that lands on this VM.  When a key is unknown
-- the answer is "miss" and the worker sends the call again with the options:
-- the token crosses once per VM, not on every call.
--
-- Every answer starts with a tag: "ok" (the client's results follow), "miss",
-- "raise" (what the plain client raised: a programming error) or "load"
-- (wemasy could not be loaded here).  Only plain data crosses back; errors
-- lose their metatable on the way and wemasy.ngx gives it back.
local M = {}

-- At most this many clients per VM (a storefront that makes a client per
-- customer token must not grow without bound); the least recently used goes.
M.MAX_CLIENTS = 32

local clients, count, tick = {}, 0, 0
local stats = { created = 0, misses = 0, evicted = 0, calls = 0 }

local function evict_oldest()
  local oldest, at
  for key, entry in pairs(clients) do
    if not at or entry.used < at then oldest, at = key, entry.used end
  end
  if oldest then
    pcall(clients[oldest].client.close, clients[oldest].client)
    clients[oldest] = nil
    count = count - 1
    stats.evicted = stats.evicted + 1
  end
end

local function client_for(wemasy, key, opts)
  tick = tick + 1
  local entry = clients[key]
  if entry then
    entry.used = tick
    return entry.client
  end
  if opts == nil then
    stats.misses = stats.misses + 1
    return nil
  end
  if count >= M.MAX_CLIENTS then evict_oldest() end
  local client = wemasy.new(opts)
  clients[key] = { client = client, used = tick }
  count = count + 1
  stats.created = stats.created + 1
  return client
end

-- What wemasy.ngx asks of a client: a prepared request or batch (checked and
-- encoded in the worker), or the state of a limiter group.  A request's
-- answer comes back undecoded (wemasy.client.request: the core's values, the
-- body as its text): one string crosses instead of a decoded tree, and the
-- worker's VM decodes it (wemasy.client.outcome).
local function invoke(client, method, ...)
  local plain = require("wemasy.client")
  if method == "send" then return plain.request(client, ...) end
  if method == "batch" then
    local items, concurrency = ...
    local results = {}
    plain.batch(client, items, concurrency, function(k, body, err, res) results[k] = { body, err, res } end)
    return results
  end
  if method == "rate_limit" then return client:rate_limit((...)) end
  if method == "rate_limit_reset" then return client:rate_limit_reset() end
  if method == "limiter_state" then return plain.limiter_state(client, nil, (...)) end
  error("wemasy.ngx: no method '" .. tostring(method) .. "'")
end

-- invoke's results after "ok" (all of them: a send's are eight), or "raise".
local function tagged(done, ...)
  if not done then return "raise", tostring((...)) end
  return "ok", ...
end

function M.run(key, opts, method, ...)
  local loaded, wemasy = pcall(require, "wemasy")
  if not loaded then return "load", tostring(wemasy) end
  local ok, client = pcall(client_for, wemasy, key, opts)
  if not ok then return "raise", tostring(client) end
  if not client then return "miss" end
  stats.calls = stats.calls + 1
  return tagged(pcall(invoke, client, method, ...))
end

-- This VM's counters (for specs and troubleshooting): clients held, created,
-- misses (calls that came again with the options), evictions, calls.
function M.stats()
  return { clients = count, created = stats.created, misses = stats.misses,
           evicted = stats.evicted, calls = stats.calls }
end

return M
