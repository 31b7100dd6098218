-- Runs this directory's nginx.conf for a test, a benchmark or a demo: the
-- file as a user copies it, rendered with a free loopback port, a private
-- prefix, this checkout's paths and whatever the caller adds, against a
-- base URL (the sandbox's).  Lua 5.4 or LuaJIT; nginx itself always runs
-- LuaJIT, so it loads build/jit/wemasy/core.so.
--
--   local launch = dofile("examples/openresty/launch.lua")
--   local shop = assert(launch.start{ base_url = sandbox_url, token = tokens.merchant, workers = 2 })
--   local status, body, headers = launch.request("GET", shop.url .. "/thank-you?...")
--   shop:stop()
--
-- Options of start (all optional but base_url):
--   base_url, token      the shop's WEMASY_BASE_URL / WEMASY_TOKEN
--   workers              worker_processes                                     [1]
--   configure            Lua source put first inside configure{ ... } (extra client options)
--   http, server         nginx.conf text added inside http {} / server {}
--   replace              { {from, to}, ... } more literal replacements (each must match)
--   cpath                directory holding wemasy/core.so                    [build/jit]
--   reuseport            listen with reuseport (spreads connections over workers)
--   env                  { NAME = value } more of nginx's environment (e.g. the LUA_CPATH of a shell)
-- Processes and files go through the sandbox launcher's helpers.
local proc = require("wemasy.sandbox.proc")

local launch = {}

local HOST = "127.0.0.1"

local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "examples/openresty"
local function absolute(path)
  if path:match("^/") then return path end
  return (proc.capture("pwd") or ".") .. "/" .. path:gsub("^%./", "")
end
launch.dir = absolute(here)
launch.root = launch.dir:gsub("/examples/openresty$", "")

-- Replaces `from` (literally) by `to`, exactly once: if the example changes,
-- the launcher says so instead of running something else.
local function replace_once(text, from, to)
  local i, j = text:find(from, 1, true)
  if not i then error("launch: the example's nginx.conf has no " .. string.format("%q", from), 3) end
  if text:find(from, j + 1, true) then error("launch: " .. string.format("%q", from) .. " is there twice", 3) end
  return text:sub(1, i - 1) .. to .. text:sub(j + 1)
end

-- The example's nginx.conf rendered for this checkout.  o: see start, plus
-- port, prefix and modules.
function launch.render(o)
  local text = o.text or assert(proc.read_file(launch.dir .. "/nginx.conf"))
  -- wemasy from lua/, the sandbox's watchdog from sandbox/, the storefront's handlers.
  local lua, sandbox, handlers = launch.root .. "/lua", launch.root .. "/sandbox", launch.dir
  local cpath = o.cpath or (launch.root .. "/build/jit")
  local r = function(from, to) text = replace_once(text, from, to) end
  r("load_module /usr/lib/nginx/modules/ndk_http_module.so;", "load_module " .. o.modules .. "/ndk_http_module.so;")
  r("load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    "load_module " .. o.modules .. "/ngx_http_lua_module.so;")
  r("worker_processes auto;", "worker_processes " .. math.floor(o.workers or 1) .. ";")
  r("listen 8080;", "listen " .. HOST .. ":" .. o.port .. (o.reuseport and " reuseport" or "") .. ";")
  r('lua_package_path "/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;'
    .. '/etc/nginx/lua/?.lua;/etc/nginx/lua/?/init.lua;;";',
    'lua_package_path "' .. lua .. "/?.lua;" .. lua .. "/?/init.lua;" .. sandbox .. "/?.lua;" .. handlers .. "/?.lua;"
    .. handlers .. "/?/init.lua;" .. (o.lua_path and (o.lua_path .. ";") or "") .. ';";')
  r('lua_package_cpath "/usr/local/lib/lua/5.1/?.so;;";', 'lua_package_cpath "' .. cpath .. '/?.so;;";')
  if o.configure then
    r('require("storefront").configure{', 'require("storefront").configure{\n            ' .. o.configure)
  end
  for _, pair in ipairs(o.replace or {}) do r(pair[1], pair[2]) end
  local p = o.prefix
  local http = {
    "http {",
    "    # launch.lua: a private prefix, no access log, the owner's watchdog.",
    '    client_body_temp_path "' .. p .. '/tmp/body";',
    '    proxy_temp_path "' .. p .. '/tmp/proxy";',
    '    fastcgi_temp_path "' .. p .. '/tmp/fastcgi";',
    '    uwsgi_temp_path "' .. p .. '/tmp/uwsgi";',
    '    scgi_temp_path "' .. p .. '/tmp/scgi";',
    "    access_log off;",
  }
  if o.owner_pid then
    http[#http + 1] = "    init_worker_by_lua_block { require(\"wemasy.sandbox.watchdog\").start("
      .. math.floor(o.owner_pid) .. ', "' .. p .. '") }'
  end
  if o.http then http[#http + 1] = o.http end
  r("\nhttp {", "\n" .. table.concat(http, "\n"))
  if o.server then r("        server_name shop.example;", "        server_name shop.example;\n" .. o.server) end
  return text
end

------------------------------------------------------------------ HTTP

-- status, body, headers (lower-case names) or nil, message.  Lua 5.4 or LuaJIT.
function launch.request(method, url, body, headers, timeout)
  local h = { ["content-length"] = tostring(#(body or "")) }
  if body then h["content-type"] = "application/x-www-form-urlencoded" end
  for k, v in pairs(headers or {}) do h[k] = v end
  return proc.http_request{ method = method, url = url, body = body, headers = h, timeout = timeout or 15 }
end

-- Form encoding for launch.request's bodies.
function launch.form(t)
  local keys, out = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    out[#out + 1] = k .. "=" .. tostring(t[k]):gsub("[^%w%-_%.~]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  return table.concat(out, "&")
end

------------------------------------------------------------------ the process

local Shop = {}
Shop.__index = Shop

local function stop(st)
  if st.stopped then return true end
  st.stopped = true
  local gone = true
  if st.pid and proc.alive(st.pid) then
    proc.signal(st.pid, "QUIT")
    gone = proc.wait_gone(st.pid, 5)
    if not gone then
      proc.signal(st.pid, "TERM")
      gone = proc.wait_gone(st.pid, 3)
    end
    if not gone then
      proc.signal(st.pid, "KILL", true)
      proc.signal(st.pid, "KILL")
      gone = proc.wait_gone(st.pid, 3)
    end
  end
  if not st.keep then proc.remove_tree(st.prefix) end
  return gone
end

function Shop:stop() return stop(self._st) end

-- The error log so far (nginx's and the handlers' messages).
function Shop:error_log() return proc.read_file(self.prefix .. "/logs/error.log") or "" end

local function wait_ready(port, seconds)
  return proc.wait_ok(seconds, function()
    return launch.request("GET", "http://" .. HOST .. ":" .. port .. "/health", nil, nil, 2)
  end)
end

-- Starts nginx with the rendered example; a handle or nil, message (with the
-- error log's tail: a configuration that nginx refuses says why there).
function launch.start(o)
  o = o or {}
  local nginx = os.getenv("WEMASY_NGINX") or "/usr/sbin/nginx"
  local modules = (os.getenv("WEMASY_NGINX_MODULES") or "/usr/lib/nginx/modules"):gsub("/+$", "")
  local prefix, err = proc.mktemp()
  if not prefix then return nil, err end
  proc.mkdirs(prefix .. "/conf", prefix .. "/logs", prefix .. "/tmp")
  local me = proc.identity()
  local globals = 'pid "' .. prefix .. '/logs/nginx.pid"; lock_file "' .. prefix .. '/logs/nginx.lock";'
  -- As root, the workers stay root: they must read this checkout and the prefix.
  if me.uid == 0 then globals = globals .. " user " .. me.user .. " " .. me.group .. ";" end
  local failure
  for _ = 1, o.port and 1 or 6 do
    local port = o.port or proc.free_port(HOST)
    local ok, text = pcall(launch.render, {
      text = o.text, modules = modules, prefix = prefix, port = port, workers = o.workers,
      configure = o.configure, http = o.http, server = o.server, replace = o.replace,
      cpath = o.cpath, lua_path = o.lua_path, reuseport = o.reuseport, owner_pid = proc.self_pid(),
    })
    if not ok then
      proc.remove_tree(prefix)
      error(text, 2)
    end
    proc.write_file(prefix .. "/conf/nginx.conf", text)
    proc.write_file(prefix .. "/logs/error.log", "")
    -- The token reaches nginx's master through its environment (init_by_lua
    -- reads it); the interpreter's LUA_PATH/LUA_CPATH are not nginx's.
    local env = "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u WEMASY_BASE_URL -u WEMASY_TOKEN"
      .. (o.base_url and (" WEMASY_BASE_URL=" .. proc.quote(o.base_url)) or "")
      .. (o.token and (" WEMASY_TOKEN=" .. proc.quote(o.token)) or "")
    for name, value in pairs(o.env or {}) do env = env .. " " .. name .. "=" .. proc.quote(value) end
    local cmd = env .. " " .. proc.quote(nginx) .. " -p " .. proc.quote(prefix .. "/")
      .. " -c " .. proc.quote(prefix .. "/conf/nginx.conf") .. " -e " .. proc.quote(prefix .. "/logs/error.log")
      .. " -g " .. proc.quote(globals)
    if proc.run(cmd .. " >>" .. proc.quote(prefix .. "/logs/error.log") .. " 2>&1") then
      local pid
      for _ = 1, 300 do
        pid = tonumber((proc.read_file(prefix .. "/logs/nginx.pid") or ""):match("%d+"))
        if pid then break end
        proc.sleep(0.01)
      end
      local st = { pid = pid, prefix = prefix, keep = o.keep }
      local ready, why = wait_ready(port, 5)
      if not ready then
        local tail = proc.tail(prefix .. "/logs/error.log", 20)
        stop(st)
        return nil, "launch: nginx is not answering on port " .. port .. ": " .. tostring(why) .. "\n" .. tail
      end
      local shop = setmetatable({ url = "http://" .. HOST .. ":" .. port, port = port, prefix = prefix,
                                  pid = pid, _st = st }, Shop)
      shop._sentinel = proc.sentinel(function() stop(st) end)
      return shop
    end
    failure = proc.tail(prefix .. "/logs/error.log", 20)
    if o.port or not failure:find("Address already in use", 1, true) then break end
  end
  proc.remove_tree(prefix)
  return nil, "launch: nginx did not start:\n" .. tostring(failure)
end

return launch
