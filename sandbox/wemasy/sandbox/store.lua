-- The sandbox's changing state, kept in the lua_shared_dict "wemasy_state" so
-- that every worker sees the same: purchase-tracked flags, SnelStart syncs
-- and request counters. Seed data never changes; this is all that does.

local store = {}

local function dict()
   return assert(ngx.shared.wemasy_state, "lua_shared_dict wemasy_state is missing")
end

local function incr(key)
   local n, err = dict():incr(key, 1, 0)
   if not n then ngx.log(ngx.ERR, "wemasy sandbox: state: ", err) end
   return n
end

-- One request that reached an API location; path like "orders/get".
function store.count_request(path)
   incr("total")
   incr("req:" .. path)
end

-- Sets the tracked flag of an order; returns the flag as it was before.
-- safe_add is atomic, so of two simultaneous calls exactly one sees false.
function store.mark_tracked(order_id)
   local ok, err = dict():safe_add("tracked:" .. order_id, true)
   if not ok and err ~= "exists" then
      ngx.log(ngx.ERR, "wemasy sandbox: state: ", err)
   end
   return not ok
end

function store.is_tracked(order_id)
   return dict():get("tracked:" .. order_id) == true
end

-- Records one SnelStart sync of an order (count and time).
function store.record_sync(order_id)
   local n = incr("sync:" .. order_id)
   if n then dict():set("synct:" .. order_id .. ":" .. n, ngx.now()) end
end

function store.reset()
   dict():flush_all()
end

-- Everything, as plain tables keyed by strings:
-- { tracked = {["2502"]=true}, syncs = {["2502"]=1}, sync_times = {["2502"]={t...}},
--   requests = {["orders/get"]=3}, total_requests = 3 }
function store.snapshot()
   local d = dict()
   local snap = { tracked = {}, syncs = {}, sync_times = {}, requests = {}, total_requests = 0 }
   for _, key in ipairs(d:get_keys(0)) do
      local kind, rest = key:match("^(%w+):(.*)$")
      if key == "total" then
         snap.total_requests = d:get(key) or 0
      elseif kind == "tracked" then
         snap.tracked[rest] = d:get(key) or nil
      elseif kind == "sync" then
         snap.syncs[rest] = d:get(key)
      elseif kind == "req" then
         snap.requests[rest] = d:get(key)
      elseif kind == "synct" then
         local id, n = rest:match("^(.*):(%d+)$")
         local times = snap.sync_times[id] or {}
         snap.sync_times[id] = times
         times[tonumber(n)] = d:get(key)
      end
   end
   -- n runs 1..count; a time can be missing only while it is being written.
   for id, times in pairs(snap.sync_times) do
      local ns, list = {}, {}
      for n in pairs(times) do ns[#ns + 1] = n end
      table.sort(ns)
      for i, n in ipairs(ns) do list[i] = times[n] end
      snap.sync_times[id] = list
   end
   return snap
end

return store
