-- wemasy.sandbox: a stateful local copy of the Wemasy webshop API, served by
-- a real nginx with its Lua module. This file is the launcher; it runs in
-- plain Lua 5.4 and in LuaJIT. The server side is wemasy.sandbox.app.
--
--   local sandbox = require "wemasy.sandbox"
--   local base_url, sb = sandbox.start{ window = 1, limits = { default = 3 } }
--   -- base_url == "http://127.0.0.1:<port>/api"   (nil, "message" on failure)
--   sb:reset()  sb:state()  sb:stop()     (reset also forgets this host's
--                                         client-side quota of its tokens)
--   sb:fault{ kind = "status", status = 503, path = "orders/detail", count = 2 }
--   sb:clear_faults()
--   sandbox.stop_all()
--   sandbox.make_ca(dir)   -> { ca_file, cert_file, key_file, ca_key_file } | nil, message
--
-- Options (all optional; a wrong type raises an error naming the option):
--   window   rate-limit window in seconds (>= 0.001, fractions ok)   [60]
--   limits   { default = 60, sync = 5 }: requests per window          [both]
--   workers  nginx worker_processes (1..64)                           [1]
--   port     loopback port; default a free one (retried if taken)
--   tls      { cert_file = ..., key_file = ..., http2 = true }: also listen
--            with TLS on a second free loopback port (sb.https_url, sb.https_port)
--
-- Environment: WEMASY_NGINX (default /usr/sbin/nginx),
--              WEMASY_NGINX_MODULES (default /usr/lib/nginx/modules).

local conf = require "wemasy.sandbox.conf"
local faults = require "wemasy.sandbox.faults"
local proc = require "wemasy.sandbox.proc"
local tokens = require "wemasy.sandbox.tokens"

local sandbox = {}

sandbox.tokens = tokens.copy()

-- A throw-away CA and a server certificate for 127.0.0.1 and localhost.
function sandbox.make_ca(dir)
   return require("wemasy.sandbox.ca").make(dir)
end

local HOST = "127.0.0.1"

-- Every sandbox this process started and has not stopped yet (inner states;
-- the handles themselves are not kept, so they can be collected).
local running = {}

------------------------------------------------------------------ options

local KNOWN = { window = true, limits = true, workers = true, port = true, tls = true }

local function is_int(v)
   return type(v) == "number" and v == math.floor(v) and v == v and v ~= math.huge
end

local describe = faults.describe

local function bad(option, expected, got)
   error(string.format("wemasy.sandbox: option '%s' must be %s (got %s)", option, expected, describe(got)), 4)
end

-- pairs() that ignores __pairs (options are plain data).
local function raw_pairs(t)
   return next, t, nil
end

local function check_options(opts)
   if opts == nil then opts = {} end
   if type(opts) ~= "table" then
      error("wemasy.sandbox: options must be a table (got " .. describe(opts) .. ")", 3)
   end
   for k in raw_pairs(opts) do
      if not KNOWN[k] then
         error("wemasy.sandbox: unknown option " .. describe(k), 3)
      end
   end
   opts = {
      window = rawget(opts, "window"), limits = rawget(opts, "limits"),
      workers = rawget(opts, "workers"), port = rawget(opts, "port"),
      tls = rawget(opts, "tls"),
   }
   local o = { window = 60, limits = { default = 60, sync = 5 }, workers = 1 }
   if opts.window ~= nil then
      local w = opts.window
      if type(w) ~= "number" or w ~= w or w < 0.001 or w == math.huge then
         bad("window", "a number of seconds, at least 0.001", w)
      end
      o.window = w
   end
   if opts.limits ~= nil then
      if type(opts.limits) ~= "table" then bad("limits", "a table { default = n, sync = n }", opts.limits) end
      for k, v in raw_pairs(opts.limits) do
         if k ~= "default" and k ~= "sync" then
            error("wemasy.sandbox: option 'limits' may only have the keys default and sync (got "
               .. describe(k) .. ")", 3)
         end
         if not is_int(v) or v < 1 then bad("limits." .. k, "a positive integer", v) end
         o.limits[k] = v
      end
   end
   if opts.workers ~= nil then
      local n = opts.workers
      if not is_int(n) or n < 1 or n > 64 then bad("workers", "an integer from 1 to 64", n) end
      o.workers = n
   end
   if opts.port ~= nil then
      local p = opts.port
      if not is_int(p) or p < 1 or p > 65535 then bad("port", "an integer from 1 to 65535", p) end
      o.port = p
   end
   if opts.tls ~= nil then
      local t = opts.tls
      if type(t) ~= "table" then bad("tls", "a table { cert_file = path, key_file = path }", t) end
      for k in raw_pairs(t) do
         if k ~= "cert_file" and k ~= "key_file" and k ~= "http2" then
            error("wemasy.sandbox: option 'tls' may only have the keys cert_file, key_file and http2 (got "
               .. describe(k) .. ")", 3)
         end
      end
      local tls = { http2 = true }
      for _, k in ipairs{ "cert_file", "key_file" } do
         local v = rawget(t, k)
         if type(v) ~= "string" or v == "" then bad("tls." .. k, "a file name", v) end
         tls[k] = v
      end
      local h2 = rawget(t, "http2")
      if h2 ~= nil then
         if type(h2) ~= "boolean" then bad("tls.http2", "a boolean", h2) end
         tls.http2 = h2
      end
      o.tls = tls
   end
   return o
end
sandbox._check_options = check_options

------------------------------------------------------------------ helpers

-- The absolute directory above wemasy/ that holds `module` (found as `file`).
local function dir_of(module, file)
   local path = package.searchpath and package.searchpath(module, package.path)
   if not path then
      return nil, "cannot find " .. file .. " on package.path"
   end
   local dir = path:sub(1, #path - #file):gsub("/+$", "")
   if dir == "" or dir == "." then
      dir = proc.capture("pwd")
   elseif not dir:match("^/") then
      dir = proc.capture("pwd") .. "/" .. dir:gsub("^%./", "")
   end
   return dir
end

-- Where nginx's LuaJIT finds the server modules and wemasy's endpoint table:
-- one directory in an installed tree, lua/ and sandbox/ in a clone.
local function lua_dirs()
   local sandbox_dir, err = dir_of("wemasy.sandbox.app", "wemasy/sandbox/app.lua")
   if not sandbox_dir then return nil, err end
   local wemasy_dir
   wemasy_dir, err = dir_of("wemasy.endpoints", "wemasy/endpoints.lua")
   if not wemasy_dir then return nil, err end
   return sandbox_dir == wemasy_dir and { sandbox_dir } or { sandbox_dir, wemasy_dir }
end

local function nginx_paths()
   local nginx = os.getenv("WEMASY_NGINX") or "/usr/sbin/nginx"
   local modules = (os.getenv("WEMASY_NGINX_MODULES") or "/usr/lib/nginx/modules"):gsub("/+$", "")
   if not proc.exists(nginx) then
      return nil, "nginx not found at " .. nginx .. " (install nginx-light or set WEMASY_NGINX)"
   end
   if not proc.exists(modules .. "/ngx_http_lua_module.so") then
      return nil, "ngx_http_lua_module.so not found in " .. modules
         .. " (install libnginx-mod-http-lua or set WEMASY_NGINX_MODULES)"
   end
   return nginx, modules
end

-- An absolute path (nginx resolves relative ones against its prefix).
local function absolute(path)
   if path:match("^/") then return path end
   return (proc.capture("pwd") or ".") .. "/" .. path:gsub("^%./", "")
end

-- Renders and writes <prefix>/conf/nginx.conf. ports = { http, https }.
local function write_conf(st, o, ports, extra)
   extra = extra or {}
   local me = st.identity
   local listeners = { { host = HOST, port = ports[1] } }
   if o.tls then
      listeners[2] = {
         host = HOST, port = ports[2], ssl = true, http2 = o.tls.http2,
         cert_file = absolute(o.tls.cert_file), key_file = absolute(o.tls.key_file),
      }
   end
   local text = conf.render{
      prefix = st.prefix,
      modules = st.modules,
      lua_dirs = st.lua_dirs,
      listeners = listeners,
      workers = o.workers,
      user = me.uid == 0 and me.user and me.group and { me.user, me.group } or nil,
      access_log = extra.access_log,
      error_log_also = extra.error_log_also,
      app_config = {
         window = o.window,
         limits = o.limits,
         workers = o.workers,
         owner_pid = proc.self_pid(),
         prefix = st.prefix,
      },
   }
   return proc.write_file(st.prefix .. "/conf/nginx.conf", text)
end

-- The nginx command line (LUA_PATH/LUA_CPATH of this process are for this
-- interpreter, not for nginx's LuaJIT: they are dropped).
local function nginx_command(st, globals)
   local cmd = "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT " .. proc.quote(st.nginx)
      .. " -p " .. proc.quote(st.prefix .. "/")
      .. " -c " .. proc.quote(st.prefix .. "/conf/nginx.conf")
      .. " -e " .. proc.quote(st.prefix .. "/logs/error.log")
   if globals then cmd = cmd .. " -g " .. proc.quote(globals) end
   return cmd
end

local function log_tail(st)
   local parts = {}
   for _, name in ipairs({ "startup.log", "error.log" }) do
      local t = proc.tail(st.prefix .. "/logs/" .. name, 15)
      if t ~= "" then parts[#parts + 1] = t end
   end
   return table.concat(parts, "\n")
end

local function prepare()
   local nginx, modules = nginx_paths()
   if not nginx then return nil, modules end
   local dirs, err = lua_dirs()
   if not dirs then return nil, err end
   local prefix
   prefix, err = proc.mktemp()
   if not prefix then return nil, err end
   local st = {
      nginx = nginx, modules = modules, lua_dirs = dirs, prefix = prefix,
      identity = proc.identity(),
   }
   if not proc.mkdirs(prefix .. "/conf", prefix .. "/logs", prefix .. "/tmp") then
      proc.remove_tree(prefix)
      return nil, "cannot create directories in " .. prefix
   end
   return st
end

------------------------------------------------------------------ HTTP (control endpoints)

local function http_request(method, url, timeout, body)
   local headers = { ["content-length"] = tostring(#(body or "")), accept = "application/json" }
   if body then headers["content-type"] = "application/json" end
   local code, text = proc.http_request{ method = method, url = url, body = body, headers = headers,
      timeout = timeout or 5, redirect = false }
   return code, text
end

-- Lua 5.4's cjson gives floats; make whole numbers integers again.
local function integers(v)
   if type(v) == "number" and math.tointeger then
      return math.tointeger(v) or v
   elseif type(v) == "table" then
      for k, x in pairs(v) do v[k] = integers(x) end
   end
   return v
end

-- Keys that are order ids become integers; string ids still find them.
local by_id_mt = {
   __index = function(t, k)
      local n = type(k) == "string" and tonumber(k)
      if n then return rawget(t, math.tointeger and math.tointeger(n) or n) end
   end,
}

local function id_keys(t)
   local out = setmetatable({}, by_id_mt)
   for k, v in pairs(t or {}) do
      local n = tonumber(k)
      if n then k = math.tointeger and math.tointeger(n) or n end
      out[k] = v
   end
   return out
end

------------------------------------------------------------------ stopping

local function stop_state(st)
   if st.stopped then return true end
   st.stopped = true
   running[st] = nil
   local pid, gone = st.pid, true
   if pid and proc.alive(pid) then
      proc.signal(pid, "QUIT")
      gone = proc.wait_gone(pid, 5)
      if not gone then
         proc.signal(pid, "TERM")
         gone = proc.wait_gone(pid, 3)
      end
      if not gone then
         -- The master setsid()s when it daemonizes: its group holds the workers too.
         proc.signal(pid, "KILL", true)
         proc.signal(pid, "KILL")
         gone = proc.wait_gone(pid, 3)
      end
   end
   proc.remove_tree(st.prefix)
   return gone
end

function sandbox.stop_all()
   local list = {}
   for st in pairs(running) do list[#list + 1] = st end
   for _, st in ipairs(list) do stop_state(st) end
end

-- Stops what is left when the interpreter closes (normal end, os.exit(n, true)).
sandbox._exit_sentinel = proc.sentinel(sandbox.stop_all)

------------------------------------------------------------------ the handle

local Sandbox = {}
Sandbox.__index = Sandbox

function Sandbox:stop()
   return stop_state(self._st)
end

local function control(self, method, name, request_body)
   if self._st.stopped then error("wemasy.sandbox: this sandbox is stopped", 3) end
   local url = "http://" .. HOST .. ":" .. self.port .. "/__sandbox/" .. name
   local code, body = http_request(method, url, nil, request_body)
   if code ~= 200 then
      error("wemasy.sandbox: " .. method .. " " .. url .. " failed: " .. tostring(code)
         .. (body and body ~= "" and (" " .. body) or ""), 3)
   end
   return body
end

-- This host's record of the quota (wemasy's client-side limiter) of each
-- sandbox token and of `extra` tokens, on this sandbox's URLs: the server's
-- counters start over, so the clients' must too, or they would wait for
-- requests the sandbox no longer counts.
local function forget_quotas(self, extra)
   local ok, core = pcall(require, "wemasy.core")
   if not ok or type(core.rate_limit_reset) ~= "function" then return end
   local list = {}
   for _, t in pairs(tokens.tokens) do list[#list + 1] = t end
   for _, t in ipairs(extra or {}) do list[#list + 1] = t end
   for _, url in ipairs{ self.base_url, self.https_url } do
      core.rate_limit_reset(url)
      for _, t in ipairs(list) do core.rate_limit_reset(url, t) end
   end
end

-- Clears tracked flags, syncs, request counters and rate-limit counters, and
-- this host's client-side quota of the sandbox tokens (and of the tokens in
-- the optional list `extra_tokens`).
function Sandbox:reset(extra_tokens)
   control(self, "POST", "reset")
   forget_quotas(self, extra_tokens)
   return true
end

-- The decoded /__sandbox/state: tracked, syncs, sync_times (order id keys),
-- requests (endpoint path keys), total_requests, config.
function Sandbox:state()
   local body = control(self, "GET", "state")
   local cjson = require "cjson.safe"
   local s = cjson.decode(body)
   if type(s) ~= "table" then error("wemasy.sandbox: bad state body: " .. body, 2) end
   s = integers(s)
   s.tracked = id_keys(s.tracked)
   s.syncs = id_keys(s.syncs)
   s.sync_times = id_keys(s.sync_times)
   s.faults = s.faults or {}
   return s
end

-- Queues a fault for the next `count` requests of `path` (see
-- wemasy.sandbox.faults for the kinds and their options). A bad field
-- raises an error naming it. Returns the queued fault, with its id.
function Sandbox:fault(spec)
   local fault, err = faults.check(spec)
   if not fault then error("wemasy.sandbox: " .. err, 2) end
   if self._st.stopped then error("wemasy.sandbox: this sandbox is stopped", 2) end
   local cjson = require "cjson.safe"
   local body = control(self, "POST", "faults", assert(cjson.encode(fault)))
   local answer = cjson.decode(body)
   if type(answer) ~= "table" or type(answer.fault) ~= "table" then
      error("wemasy.sandbox: bad answer to a fault: " .. body, 2)
   end
   return integers(answer.fault)
end

-- Drops every pending fault.
function Sandbox:clear_faults()
   control(self, "DELETE", "faults")
   return true
end

------------------------------------------------------------------ starting

local function wait_ready(port, seconds)
   return proc.wait_ok(seconds, function()
      return http_request("GET", "http://" .. HOST .. ":" .. port .. "/__sandbox/state", 2)
   end)
end

local function read_pid(st, seconds)
   local deadline = proc.now() + seconds
   repeat
      local pid = tonumber((proc.read_file(st.prefix .. "/logs/nginx.pid") or ""):match("%d+"))
      if pid then return pid end
      proc.sleep(0.01)
   until proc.now() >= deadline
end

local function new_handle(st, port, https_port)
   local sb = setmetatable({
      base_url = "http://" .. HOST .. ":" .. port .. "/api",
      https_url = https_port and ("https://" .. HOST .. ":" .. https_port .. "/api") or nil,
      https_port = https_port,
      port = port,
      prefix = st.prefix,
      pid = st.pid,
      _st = st,
   }, Sandbox)
   sb._sentinel = proc.sentinel(function() stop_state(st) end)
   return sb
end

-- The listening ports: { http, https (only with tls) }; free ones unless
-- `port` was given.
local function pick_ports(o)
   local ports = { o.port or proc.free_port(HOST) }
   if o.tls then
      local p
      for _ = 1, 20 do
         p = proc.free_port(HOST)
         if p ~= ports[1] then break end
      end
      ports[2] = p
   end
   return ports
end

-- nil, message when a tls file cannot be read (nginx would not start).
local function check_tls_files(o)
   if not o.tls then return true end
   for _, k in ipairs{ "cert_file", "key_file" } do
      if not proc.exists(o.tls[k]) then
         return nil, "wemasy.sandbox: cannot read tls." .. k .. " " .. o.tls[k]
      end
   end
   return true
end

-- Both ways to run one: the options checked, a fresh prefix (o, st), or
-- nil and a message.
local function begin(opts)
   local o = check_options(opts)
   local okf, ferr = check_tls_files(o)
   if not okf then return nil, ferr end
   local st, err = prepare()
   if not st then return nil, err end
   return o, st
end

function sandbox.start(opts)
   local o, st = begin(opts)
   if not o then return nil, st end

   local attempts = o.port and 1 or 8
   local failure
   for _ = 1, attempts do
      local ports = pick_ports(o)
      local port = ports[1]
      local ok, werr = write_conf(st, o, ports)
      if not ok then
         failure = "cannot write nginx.conf: " .. tostring(werr)
         break
      end
      local started = proc.run(nginx_command(st) .. " >>" .. proc.quote(st.prefix .. "/logs/startup.log") .. " 2>&1")
      if started then
         st.pid = read_pid(st, 3)
         if not st.pid then
            failure = "nginx started but wrote no pid file"
            break
         end
         running[st] = true
         local ready, why = wait_ready(port, 5)
         if not ready then
            local tail = log_tail(st)
            stop_state(st)
            return nil, "wemasy.sandbox: nginx is not answering on port " .. port .. ": "
               .. tostring(why) .. (tail ~= "" and ("\n" .. tail) or "")
         end
         local sb = new_handle(st, port, ports[2])
         return sb.base_url, sb
      end
      local logs = log_tail(st)
      failure = "nginx did not start" .. (logs ~= "" and (":\n" .. logs) or "")
      if o.port or not logs:find("Address already in use", 1, true) then break end
      proc.write_file(st.prefix .. "/logs/startup.log", "")
      proc.write_file(st.prefix .. "/logs/error.log", "")
   end
   proc.remove_tree(st.prefix)
   return nil, "wemasy.sandbox: " .. tostring(failure)
end

------------------------------------------------------------------ foreground (bin/wemasy-sandbox)

-- Runs nginx in the foreground until it exits (Ctrl-C), then removes the
-- prefix. `print_banner(base_url, tokens, https_url)` is called before nginx
-- starts (https_url only with tls). Returns true, or nil and a message.
function sandbox.run(opts, print_banner)
   local o, st = begin(opts)
   if not o then return nil, st end
   local attempts = o.port and 1 or 8
   local result, failure = nil, nil
   for _ = 1, attempts do
      local ports = pick_ports(o)
      write_conf(st, o, ports, { access_log = "/dev/stdout", error_log_also = "stderr" })
      if print_banner then
         print_banner("http://" .. HOST .. ":" .. ports[1] .. "/api", tokens.copy(),
            ports[2] and ("https://" .. HOST .. ":" .. ports[2] .. "/api") or nil)
      end
      -- exec: nginx replaces the shell, so Ctrl-C reaches nginx alone (fast
      -- shutdown) and this interpreter, waiting in system(), ignores it.
      proc.run("exec " .. nginx_command(st, "daemon off;"))
      local logs = proc.tail(st.prefix .. "/logs/error.log", 15)
      if not logs:find("[emerg]", 1, true) then
         result = true
         break
      end
      failure = "nginx could not start" .. (logs ~= "" and (":\n" .. logs) or "")
      if o.port or not logs:find("Address already in use", 1, true) then break end
      proc.write_file(st.prefix .. "/logs/error.log", "")
   end
   proc.remove_tree(st.prefix)
   if result then return true end
   return nil, failure
end

return sandbox
