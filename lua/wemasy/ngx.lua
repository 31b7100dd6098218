-- wemasy.ngx: the client for OpenResty / nginx + lua-nginx-module.
--
--   -- nginx.conf, main context:   thread_pool wemasy threads=16;
--   local client = require("wemasy.ngx").new{ token = ..., thread_pool = "wemasy" }
--   local body, err, res = client:orders_detail{ order_number = "ORD-2025-001" }  -- in content_by_lua*
--
-- libcurl blocks, and a blocking call on a worker's event loop stalls every
-- other request of that worker.  Each call here runs through
-- ngx.run_worker_thread on the thread pool, in one of the pool's own LuaJIT
-- VMs (wemasy.ngx.thread), where a plain wemasy client does the work; the
-- request's coroutine yields meanwhile and the event loop goes on.
--
-- Only plain data crosses between the VMs (nil, booleans, numbers, strings,
-- tables, light userdata such as wemasy.null).  Arguments go over as given;
-- results come back as tables and errors are given their metatable again, so
-- callers see the plain client's values.  The options (with the token) go
-- over only when a thread VM does not yet hold a client for them: each VM
-- keeps its clients, keyed by a salted hash of the options (keep-alive per
-- VM; the limiter is the C core's shared memory, one quota for every worker,
-- thread and cron script on the host).
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local json = require("wemasy.json")
local validate = require("wemasy.validate")

local M = {}

M.DEFAULT_THREAD_POOL = "wemasy"
M.THREAD_MODULE = "wemasy.ngx.thread"

-- ngx.run_worker_thread runs in these phases (lua-nginx-module 0.10.21+);
-- elsewhere it raises "API disabled in the context of ...".
local RUNNABLE = { rewrite = true, access = true, content = true, timer = true }

-- Tables nested deeper than this do not cross (newer lua-nginx-modules stop
-- at 100; older ones recurse without a bound).
local MAX_DEPTH = 100

-- What the proxy keeps out of its own table: the token, the options for the
-- thread VMs, the closed twin that answers locally.
local secrets = setmetatable({}, { __mode = "k" })

local Client = { __name = "wemasy.ngx.client" }
Client.__index = Client

------------------------------------------------------------------ loading wemasy itself

-- Says what a failed require of wemasy (or of this module, in a thread VM) means.
local function load_failure(msg)
  msg = tostring(msg)
  local symbol = msg:match("undefined symbol: (lua[%w_]*)")
  if symbol then
    local file = msg:match("from file '([^']+)'") or "wemasy.core"
    return "wemasy.ngx: " .. file .. " is not built for LuaJIT (undefined symbol " .. symbol
      .. "): it is a Lua 5.4 build. nginx's Lua is LuaJIT: point lua_package_cpath at the LuaJIT build"
      .. " (build/jit/?.so of `make build`, or `luarocks --lua-version=5.1 make`)"
  end
  local missing = msg:match("module '([^']+)' not found")
  if missing then
    local which = missing == "wemasy.core" and "lua_package_cpath" or "lua_package_path"
    return "wemasy.ngx: module '" .. missing .. "' not found: add its directory to " .. which
      .. " in nginx.conf (the worker threads' VMs use the same paths) — "
      .. (msg:gsub("%s+", " "):sub(1, 600))
  end
  return "wemasy.ngx: " .. msg:gsub("[\r\n]+", " ")
end

local function need_nginx()
  if type(ngx) == "table" and type(ngx.run_worker_thread) == "function" then return end
  if type(ngx) == "table" and ngx.config and ngx.config.ngx_lua_version then
    error("wemasy.ngx.new: this lua-nginx-module (" .. tostring(ngx.config.ngx_lua_version)
      .. ") has no ngx.run_worker_thread: it needs 0.10.21 or later, in an nginx built --with-threads", 3)
  end
  local where = jit and "plain LuaJIT" or tostring(_VERSION)
  error("wemasy.ngx.new: runs inside nginx (OpenResty, or nginx with lua-nginx-module >= 0.10.21); this is "
    .. where .. ", outside nginx: use require(\"wemasy\").new there", 3)
end

-- wemasy itself (and so wemasy.core, the C module) loads on the first new():
-- requiring this module outside nginx, or with the wrong build, says why there.
local wemasy
-- wemasy.client, for what its call and batch refuse before sending (the same
-- functions, so a proxy answers exactly as a plain client).
local plain_client

local function load_wemasy()
  if wemasy then return end
  local ok, mod = pcall(require, "wemasy")
  if not ok then error(load_failure(mod), 3) end
  wemasy, plain_client = mod, require("wemasy.client")
end

------------------------------------------------------------------ what may cross

-- nil when `v` crosses to a thread VM as is, else a description of what does not.
-- With `room` ({ left = bytes }), its strings (keys too) add up to at most that.
local function uncrossable(v, depth, seen, room)
  local t = type(v)
  if t == "string" and room then
    room.left = room.left - #v
    if room.left < 0 then return "more string bytes than max_request_body" end
  end
  if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
  if v == json.null then return nil end
  if t ~= "table" then return "a " .. t end
  if seen[v] then return "a table that contains itself" end
  if depth >= MAX_DEPTH then return "tables nested more than " .. MAX_DEPTH .. " deep" end
  seen[v] = true
  for k, x in next, v do
    local why = uncrossable(k, depth + 1, seen, room) or uncrossable(x, depth + 1, seen, room)
    if why then return why end
  end
  seen[v] = nil
  return nil
end

-- Whether a request body goes to a thread VM.  One whose strings alone pass
-- max_request_body (its JSON text is longer still) is not copied there: the
-- closed twin refuses it here, naming the field, as the plain client does.
local function crosses(v, limit)
  return uncrossable(v, 0, {}, limit and { left = limit }) == nil
end

-- The first option (by its dotted name) whose value cannot cross, and why.
local function uncrossable_option(opts, prefix, depth)
  local keys = {}
  for k in next, opts do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v, name = opts[k], prefix .. tostring(k)
    if type(v) == "table" and v ~= json.null and depth < 8 then
      local n, why = uncrossable_option(v, name .. ".", depth + 1)
      if n then return n, why end
    else
      local why = uncrossable(v, depth, {})
      if why then return name, why end
    end
  end
end

------------------------------------------------------------------ options

local function copy_plain(v, depth)
  if type(v) ~= "table" or v == json.null then return v end
  local out = {}
  for k, x in next, v do out[k] = depth < 8 and copy_plain(x, depth + 1) or x end
  return out
end

-- A deterministic text of plain options (sorted keys, typed values).
local function serialize(v, out)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in next, v do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) ~= type(b) then return type(a) < type(b) end
      return a < b
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      serialize(k, out)
      out[#out + 1] = "="
      serialize(v[k], out)
      out[#out + 1] = ";"
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = "s" .. #v .. ":" .. v
  elseif t == "number" then
    out[#out + 1] = "n" .. string.format("%.17g", v)
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  else
    out[#out + 1] = "null"
  end
  return out
end

-- A per-process salt, so the key that crosses on every call says nothing
-- about the token even to someone who could guess it.
local salt

local function options_key(opts)
  salt = salt or string.format("%s:%.6f:%d", tostring({}), ngx.now(), math.random(0, 2 ^ 30))
  return "wemasy-" .. ngx.md5(salt .. table.concat(serialize(opts, {})))
end

-- The copy wemasy.new checks here: the limiter in-process, so that checking
-- (possibly in init_by_lua, as root) never creates the shared segment that the
-- workers must own.  A `shared` of the wrong type stays, to be named.
local function checking_copy(opts)
  local copy = {}
  for k, v in next, opts do copy[k] = v end
  local rl = copy.rate_limit
  if rl == nil then
    copy.rate_limit = { shared = false }
  elseif type(rl) == "table" and (rl.shared == nil or type(rl.shared) == "boolean") then
    local c = {}
    for k, v in next, rl do c[k] = v end
    c.shared = false
    copy.rate_limit = c
  end
  return copy
end

local function strip_position(msg)
  return (tostring(msg):gsub("^[^\n]-%.lua:%d+: ", "", 1))
end

-- Returns a client with the plain client's methods whose calls run on the
-- thread pool.  Options: wemasy.new's (checked by wemasy.new itself, so the
-- errors are its own), plus thread_pool.  Options must be plain data:
-- functions (clock, sleep, random, hooks) cannot reach the thread VMs.
function M.new(opts)
  need_nginx()
  if opts ~= nil and type(opts) ~= "table" then
    validate.bad_argument(1, "wemasy.ngx.new", "table", opts, 2)
  end
  load_wemasy()
  local given = {}
  for k, v in next, opts or {} do given[k] = v end
  local pool = given.thread_pool
  given.thread_pool = nil
  if pool == nil then pool = M.DEFAULT_THREAD_POOL end
  if type(pool) ~= "string" or not pool:match("^[%w_%-%.]+$") then
    error("wemasy.ngx.new: option 'thread_pool' must be the name of a thread_pool of nginx.conf (got "
      .. validate.describe(pool) .. ")", 2)
  end

  local ok, twin = pcall(wemasy.new, checking_copy(given))
  if not ok then error(strip_position(twin), 2) end
  twin:close()

  local name, why = uncrossable_option(given, "", 0)
  if name then
    error("wemasy.ngx.new: option '" .. name .. "' cannot be used here: it holds " .. why
      .. ", and only plain data crosses to the worker threads", 2)
  end

  local plain = copy_plain(given, 0)
  -- nginx owns the worker's signals, and a thread of its pool must not change
  -- a process-wide disposition: these clients never watch for SIGINT.
  plain.interruptible = false
  local self = setmetatable({
    base_url = twin.base_url,
    insecure = twin.insecure,
    thread_pool = pool,
  }, Client)
  secrets[self] = {
    token = plain.token,
    opts = plain,
    key = options_key(plain),
    twin = twin,
    max_request_body = twin._core:max_request_body(),
    timeout = type(plain.timeout) == "number" and plain.timeout or require("wemasy.core").options.timeout.default,
  }
  return self
end

------------------------------------------------------------------ one call on the pool

local function check_self(self, method)
  if getmetatable(self) ~= Client then
    error(string.format("bad argument #1 to '%s' (wemasy client expected, got %s; use client:%s(...))",
      method, validate.describe(self), method), 3)
  end
end

local function check_phase(method)
  local phase = ngx.get_phase()
  if not RUNNABLE[phase] then
    error(string.format("wemasy.ngx: client:%s cannot run in the %s phase: ngx.run_worker_thread works only in"
      .. " rewrite_by_lua*, access_by_lua*, content_by_lua* and ngx.timer callbacks", method, phase), 3)
  end
end

local function is_busy(msg)
  return msg == "no available Lua vm" or msg:find("ngx_thread_task_post failed", 1, true) ~= nil
end

local function no_pool(msg, pool)
  return msg:find("not found", 1, true) and msg:find("thread", 1, true) and msg:find("pool", 1, true)
    and not msg:find("module", 1, true) and pool
end

local BUSY = {}

-- Runs method(a, b) on the pool.  Returns the thread's results, or BUSY when
-- no thread VM freed up within the client's timeout.  Raises (at `level`
-- above the caller) what the plain client would raise, and misconfiguration.
local function on_pool(self, method, a, b, level)
  local s = secrets[self]
  local deadline, delay
  level = level + 2
  while true do
    local ok, tag, x, y, z = ngx.run_worker_thread(self.thread_pool, M.THREAD_MODULE, "run", s.key, nil, method, a, b)
    if ok and tag == "miss" then
      ok, tag, x, y, z = ngx.run_worker_thread(self.thread_pool, M.THREAD_MODULE, "run", s.key, s.opts, method, a, b)
    end
    if ok then
      if tag == "ok" then return x, y, z end
      local msg = errors.redact({ tostring(x) }, s.token)[1]
      if tag == "raise" then error(strip_position(msg), level) end
      error(load_failure(msg), level)
    end
    local msg = errors.redact({ tostring(tag) }, s.token)[1]
    if is_busy(msg) then
      ngx.update_time()
      deadline = deadline or (ngx.now() + s.timeout)
      if ngx.now() >= deadline then return BUSY, msg end
      delay = math.min((delay or 0.0005) * 2, 0.05)
      ngx.sleep(delay)
    elseif no_pool(msg, self.thread_pool) then
      error("wemasy.ngx: no thread pool '" .. self.thread_pool .. "' in nginx.conf: add `thread_pool "
        .. self.thread_pool .. " threads=16;` to the main context (outside http {}), and"
        .. " `lua_worker_thread_vm_pool_size 16;` to http {} (" .. msg .. ")", level)
    else
      error(load_failure(msg), level)
    end
  end
end

local function busy_error(endpoint, msg, timeout)
  return errors.new("timeout", { endpoint = endpoint, attempts = 0, sent = false,
    message = string.format("no worker-thread Lua VM came free within %g s (%s): raise"
      .. " lua_worker_thread_vm_pool_size and the thread_pool's threads", timeout, msg) })
end

-- Errors come back as plain tables: give them their metatable again.
local function revive(err)
  if type(err) == "table" and type(err.kind) == "string" and not errors.is_error(err) then
    return errors.new(err.kind, err)
  end
  return err
end

local function answer(body, err, res)
  if err ~= nil then return nil, revive(err) end
  return body, nil, res
end

-- One method per endpoint, as the plain client has.
local path_of = {}

local function endpoint_method(method)
  return function(self, body)
    check_self(self, method)
    if body ~= nil and type(body) ~= "table" then
      validate.bad_argument(2, method, "table", body, 2)
    end
    local s = secrets[self]
    -- A closed client, or a body that cannot cross: the closed twin gives the
    -- plain client's answer (a validation error; it never sends anything).
    if self.closed or not crosses(body, s.max_request_body) then return s.twin[method](s.twin, body) end
    check_phase(method)
    local x, y, z = on_pool(self, method, body, nil, 1)
    if x == BUSY then return nil, busy_error(path_of[method], y, s.timeout) end
    return answer(x, y, z)
  end
end

for _, ep in ipairs(endpoints) do
  path_of[ep.method] = ep.path
  Client[ep.method] = endpoint_method(ep.method)
end

function Client:call(path, body)
  check_self(self, "call")
  if type(path) ~= "string" then
    validate.bad_argument(1, "call", "string", path, 2)
  end
  if body ~= nil and type(body) ~= "table" then
    validate.bad_argument(2, "call", "table", body, 2)
  end
  local s = secrets[self]
  -- A typo or a bad path is refused by the twin, as here, without a thread.
  if self.closed or not crosses(body, s.max_request_body) or not plain_client.target_of(path) then
    return s.twin:call(path, body)
  end
  check_phase("call")
  local x, y, z = on_pool(self, "call", path, body, 1)
  if x == BUSY then return nil, busy_error(path:sub(1, 80), y, s.timeout) end
  return answer(x, y, z)
end

-- Runs the calls in one client:batch on one thread (its curl multi handle);
-- items that cannot cross, or name no method or path, get the twin's answer,
-- in place.  `progress` is a function and cannot cross: it is refused.
function Client:batch(calls, opts)
  check_self(self, "batch")
  if type(calls) ~= "table" then
    validate.bad_argument(1, "batch", "table", calls, 2)
  end
  local s = secrets[self]
  if self.closed then return s.twin:batch(calls, opts) end
  -- The options are checked here, as the plain client does, even with no call to run.
  local checked, refused = pcall(s.twin.batch, s.twin, {}, opts)
  if not checked then error(strip_position(refused), 2) end
  if type(opts) == "table" and type(rawget(opts, "progress")) == "function" then
    error("batch: option 'progress' cannot be used with wemasy.ngx: a function does not cross to the worker"
      .. " thread (count the results instead)", 2)
  end
  local total = plain_client.list_length(calls, 2)
  local sent, where, results = {}, {}, {}
  for i = 1, total do
    local item = rawget(calls, i)
    local name = type(item) == "table" and rawget(item, 1)
    if crosses(item) and (type(item) ~= "table" or crosses(rawget(item, 2), s.max_request_body))
      and not (type(name) == "string" and not plain_client.target_of(name)) then
      sent[#sent + 1] = item
      where[#sent] = i
    else
      results[i] = s.twin:batch({ item })[1]
    end
  end
  if #sent > 0 then
    check_phase("batch")
    local done, why = on_pool(self, "batch", sent, opts, 1)
    for k = 1, #sent do
      local r = done ~= BUSY and done[k] or { nil, busy_error(nil, why, s.timeout) }
      results[where[k]] = { r[1], revive(r[2]), r[3] }
    end
  end
  return results
end

function Client:rate_limit(group)
  check_self(self, "rate_limit")
  if group ~= nil and type(group) ~= "string" then
    validate.bad_argument(1, "rate_limit", "string", group, 2)
  end
  local s = secrets[self]
  if self.closed then return s.twin:rate_limit(group) end
  check_phase("rate_limit")
  local state, err = on_pool(self, "rate_limit", group, nil, 1)
  if state == BUSY then return nil, busy_error(nil, err, s.timeout) end
  if state == nil then return nil, revive(err) end
  return state
end

function Client:has_token()
  check_self(self, "has_token")
  return secrets[self].token ~= nil and not self.closed
end

-- Marks this client closed (its later calls return invalid_argument "client
-- is closed", as the plain client's do).  The thread VMs' clients stay: other
-- clients with the same options share them.
function Client:close()
  check_self(self, "close")
  self.closed = true
  return true
end
Client.__close = Client.close

function Client:__tostring()
  local s = secrets[self]
  return string.format("wemasy client (%s)%s%s%s on thread pool '%s'", self.base_url,
    s.token and " with token" or " without token",
    self.closed and " [closed]" or "",
    self.insecure and " [INSECURE: TLS verification disabled]" or "",
    self.thread_pool)
end

M.Client = Client
M._load_failure = load_failure
return M
