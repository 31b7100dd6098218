-- The sandbox's own endpoints under /__sandbox/ (not part of the API):
--   POST   /__sandbox/reset    clears all state, rate-limit counters and faults
--   GET    /__sandbox/state    tracked flags, syncs, request counters, faults, config
--   POST   /__sandbox/faults   queues a fault (a JSON object; see faults.lua) -> {"fault":{...,"id":n}}
--   GET    /__sandbox/faults   the pending faults -> {"faults":[...]}
--   DELETE /__sandbox/faults   clears them
-- New controls are one more entry in `actions`: a table of method -> run.

local cjson = require "cjson.safe"
local faults = require "wemasy.sandbox.faults"
local json = require "wemasy.sandbox.json"
local limiter = require "wemasy.sandbox.limiter"
local respond = require "wemasy.sandbox.respond"
local store = require "wemasy.sandbox.store"

local A, O = json.array, json.object

local control = {}

-- A fault as JSON: id, kind, path, count, then its options by name.
local function fault_object(f)
   local list = { "id", f.id, "kind", f.kind, "path", f.path, "count", f.count }
   local names = {}
   for k in pairs(f) do
      if k ~= "id" and k ~= "kind" and k ~= "path" and k ~= "count" then names[#names + 1] = k end
   end
   table.sort(names)
   for _, k in ipairs(names) do
      list[#list + 1] = k
      list[#list + 1] = f[k]
   end
   return O(list)
end

local function pending_faults()
   local list = A()
   for i, f in ipairs(faults.list()) do list[i] = fault_object(f) end
   return list
end

local function request_json()
   ngx.req.read_body()
   local data = ngx.req.get_body_data()
   if not data then
      local file = ngx.req.get_body_file()
      local f = file and io.open(file, "rb")
      if f then
         data = f:read("*a")
         f:close()
      end
   end
   return cjson.decode(data or "")
end

local actions = {
   reset = {
      POST = function()
         store.reset()
         limiter.reset()
         faults.clear()
         return 200, O{ "reset", true }
      end,
   },
   state = {
      GET = function(config)
         local s = store.snapshot()
         return 200, O{
            "tracked", s.tracked,
            "syncs", s.syncs,
            "sync_times", s.sync_times,
            "requests", s.requests,
            "total_requests", s.total_requests,
            "faults", pending_faults(),
            "worker", ngx.worker.id(),
            "config", O{
               "window", config.window,
               "limits", O{ "default", config.limits.default, "sync", config.limits.sync },
               "workers", config.workers,
            },
         }
      end,
   },
   faults = {
      POST = function()
         local spec = request_json()
         if type(spec) ~= "table" then
            return 422, respond.error_body("The body must be a JSON object describing a fault.")
         end
         local fault, err = faults.check(spec)
         if not fault then return 422, respond.error_body(err) end
         fault, err = faults.add(fault)
         if not fault then return 500, respond.error_body(err) end
         return 200, O{ "fault", fault_object(fault) }
      end,
      GET = function()
         return 200, O{ "faults", pending_faults() }
      end,
      DELETE = function()
         faults.clear()
         return 200, O{ "cleared", true }
      end,
   },
}

function control.handle(config)
   local name = ngx.var.uri:match("^/__sandbox/([%w_%-]+)/*$")
   local action = name and actions[name]
   if not action then
      return respond.send(404, O{ "message", "Unknown sandbox control " .. ngx.var.uri })
   end
   local method = ngx.req.get_method()
   local run = action[method] or (method == "HEAD" and action.GET)
   if not run then
      local allowed = {}
      for m in pairs(action) do allowed[#allowed + 1] = m end
      table.sort(allowed)
      allowed = table.concat(allowed, ", ")
      return respond.send(405, O{ "message", "Use " .. allowed .. " for " .. ngx.var.uri },
         { Allow = allowed })
   end
   return respond.send(run(config))
end

return control
