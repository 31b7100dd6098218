-- The nginx side's entry points, called from the generated nginx.conf:
--   configure(cfg)  init_by_lua: window, limits, workers, owner pid, prefix
--   init_worker()   init_worker_by_lua: the orphan watchdog
--   api()           location /api/
--   control()       location /__sandbox/
--   fallback()      location /
--
-- An API request goes through, in Laravel's order: route (404), method (405),
-- a queued fault (wemasy.sandbox.faults), throttle (429), authentication (401),
-- authorization (403), validation (422), then the endpoint's handler. Every
-- request that reaches api() is counted.

local api = require "wemasy.endpoints"
local endpoints = require "wemasy.sandbox.endpoints"
local faults = require "wemasy.sandbox.faults"
local inject = require "wemasy.sandbox.inject"
local input = require "wemasy.sandbox.input"
local json = require "wemasy.sandbox.json"
local limiter = require "wemasy.sandbox.limiter"
local respond = require "wemasy.sandbox.respond"
local store = require "wemasy.sandbox.store"
local tokens = require "wemasy.sandbox.tokens"
local validate = require "wemasy.sandbox.validate"

local O = json.object

local app = {}

local WEBSHOP = "services/webshop/v1/"

-- The server's quota per limiter group: the API's (from the endpoint table)
-- unless sandbox.start asked for others.
local function limits_of(given)
   local limits = {}
   for name, group in pairs(api.groups) do limits[name] = given and given[name] or group.limit end
   return limits
end

local config = { window = 60, limits = limits_of(nil), workers = 1 }

function app.configure(cfg)
   cfg = cfg or {}
   config = {
      window = cfg.window or 60,
      limits = limits_of(cfg.limits),
      workers = cfg.workers or 1,
      owner_pid = cfg.owner_pid,
      prefix = cfg.prefix,
   }
end

function app.config()
   return config
end

function app.init_worker()
   require("wemasy.sandbox.watchdog").start(config.owner_pid, config.prefix)
end

-- Laravel's bearerToken(): what follows the last "Bearer ", up to a comma.
local function bearer_token()
   local header = ngx.var.http_authorization
   if not header then return nil end
   local last, from = nil, 1
   while true do
      local at = header:find("Bearer ", from, true)
      if not at then break end
      last, from = at, at + 1
   end
   if not last then return nil end
   local token = header:sub(last + 7):match("^([^,]*)")
   if token == "" then return nil end
   return token
end

local function handle_api()
   -- Path without /api/ and trailing slashes, as Laravel's $request->path().
   local path = ngx.var.uri:sub(#"/api/" + 1):gsub("/+$", "")
   local name = path:sub(1, #WEBSHOP) == WEBSHOP and path:sub(#WEBSHOP + 1) or nil
   store.count_request(name or ("/api/" .. path))

   local endpoint = name and endpoints[name]
   if not endpoint then
      return respond.send(404, O{ "message", "The route " .. path .. " could not be found." })
   end
   local method = ngx.req.get_method()
   if method ~= "POST" then
      return respond.send(405, O{ "message", string.format(
         "The %s method is not supported for route %s. Supported methods: POST.", method, path) },
         { Allow = "POST" })
   end
   local token = bearer_token()
   local key = token or ngx.var.remote_addr

   -- Fault injection (POST /__sandbox/faults): before the throttle, and not
   -- counted by it (a delay goes on to the throttle afterwards).
   local fault = faults.take(name)
   if fault then
      local handled = inject.apply(fault, {
         rate = function()
            return limiter.peek(endpoint.limiter, key, config.limits[endpoint.limiter])
         end,
      })
      if handled then return end
   end

   local rate = limiter.hit(endpoint.limiter, key, config.limits[endpoint.limiter], config.window)
   local headers = {
      ["X-RateLimit-Limit"] = rate.limit,
      ["X-RateLimit-Remaining"] = rate.remaining,
   }
   if rate.exceeded then
      headers["Retry-After"] = rate.retry_after
      headers["X-RateLimit-Reset"] = rate.reset_at
      return respond.send(429, respond.error_body("Too Many Attempts."), headers)
   end

   local who
   if endpoint.auth then
      who = tokens.lookup(token)
      if not who then
         return respond.send(401, respond.error_body("Unauthenticated."), headers)
      end
      if endpoint.authorize and not endpoint.authorize(who) then
         return respond.send(403, respond.error_body("This action is unauthorized."), headers)
      end
   end

   local args = input.read()
   local errors = validate.check(args, endpoint.rules)
   if errors then
      return respond.send(422, validate.body(errors), headers)
   end

   local status, body = endpoint.handler(args, who)
   return respond.send(status, body, headers)
end

local function guarded(fn, ...)
   local ok, err = pcall(fn, ...)
   if not ok then
      ngx.log(ngx.ERR, "wemasy sandbox: ", err)
      if not ngx.headers_sent then
         respond.send(500, O{ "message", "Server Error" })
      end
   end
end

function app.api()
   guarded(handle_api)
end

function app.control()
   guarded(require("wemasy.sandbox.control").handle, config)
end

function app.fallback()
   guarded(respond.send, 404, O{ "message", "Not Found" })
end

return app
