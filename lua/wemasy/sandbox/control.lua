-- The sandbox's own endpoints under /__sandbox/ (not part of the API):
--   POST /__sandbox/reset   clears all state and rate-limit counters
--   GET  /__sandbox/state   tracked flags, syncs, request counters, config
-- New controls (fault injection, say) are one more entry in `actions`.

local json = require "wemasy.sandbox.json"
local limiter = require "wemasy.sandbox.limiter"
local respond = require "wemasy.sandbox.respond"
local store = require "wemasy.sandbox.store"

local O = json.object

local control = {}

local actions = {
   reset = {
      method = "POST",
      run = function()
         store.reset()
         limiter.reset()
         return 200, O{ "reset", true }
      end,
   },
   state = {
      method = "GET",
      run = function(config)
         local s = store.snapshot()
         return 200, O{
            "tracked", s.tracked,
            "syncs", s.syncs,
            "sync_times", s.sync_times,
            "requests", s.requests,
            "total_requests", s.total_requests,
            "worker", ngx.worker.id(),
            "config", O{
               "window", config.window,
               "limits", O{ "default", config.limits.default, "sync", config.limits.sync },
               "workers", config.workers,
            },
         }
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
   if method ~= action.method and not (method == "HEAD" and action.method == "GET") then
      return respond.send(405, O{ "message", "Use " .. action.method .. " for " .. ngx.var.uri },
         { Allow = action.method })
   end
   return respond.send(action.run(config))
end

return control
