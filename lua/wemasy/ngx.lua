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
-- The methods are the plain client's (wemasy.methods): arguments are checked
-- and requests validated and encoded here, in the worker; only a prepared
-- request (path, JSON text, group) crosses to a thread VM, so a body that
-- must not be sent never does.  Only plain data crosses between the VMs
-- (nil, booleans, numbers, strings, tables, light userdata such as
-- wemasy.null).  A call's answer comes back as the core's values (status,
-- the body's text, the headers the core parsed, ...) and is decoded and
-- mapped here by wemasy.client's own code, so callers see the plain client's
-- values; a batch's results come back as tables and errors are given their
-- metatable again.  The options (with the token) go over only when a thread
-- VM does not yet hold a client for them: each VM keeps its clients, keyed
-- by a salted hash of the options (keep-alive per VM; the limiter is the C
-- core's shared memory, one quota for every worker, thread and cron script
-- on the host).
local args = require("wemasy.args")
local errors = require("wemasy.errors")
local hooks = require("wemasy.hooks")
local json = require("wemasy.json")
local methods = require("wemasy.methods")

local M = {}

M.DEFAULT_THREAD_POOL = "wemasy"
M.THREAD_MODULE = "wemasy.ngx.thread"

-- ngx.run_worker_thread runs in these phases (lua-nginx-module 0.10.21+);
-- elsewhere it raises "API disabled in the context of ...".
local RUNNABLE = { rewrite = true, access = true, content = true, timer = true }

-- Tables nested deeper than this do not cross (newer lua-nginx-modules stop
-- at 100; older ones recurse without a bound).
local MAX_DEPTH = 100

-- What the plain client answers once closed (the core's words, csrc/request.c).
local CLOSED = "client is closed"

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
local wemasy, plain_client

local function load_wemasy()
  if wemasy then return end
  local ok, mod = pcall(require, "wemasy")
  if not ok then error(load_failure(mod), 3) end
  wemasy, plain_client = mod, require("wemasy.client")
end

------------------------------------------------------------------ what may cross

-- nil when `v` crosses to a thread VM as is, else a description of what does not.
local function uncrossable(v, depth, seen)
  local t = type(v)
  if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
  if v == json.null then return nil end
  if t ~= "table" then return "a " .. t end
  if seen[v] then return "a table that contains itself" end
  if depth >= MAX_DEPTH then return "tables nested more than " .. MAX_DEPTH .. " deep" end
  seen[v] = true
  for k, x in next, v do
    local why = uncrossable(k, depth + 1, seen) or uncrossable(x, depth + 1, seen)
    if why then return why end
  end
  seen[v] = nil
  return nil
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

------------------------------------------------------------------ one call on the pool

-- This file and wemasy.methods: what raise() looks past.
local OWN = { [debug.getinfo(1, "S").source] = true, [debug.getinfo(methods.class, "S").source] = true }

-- Raises msg at the code that called the client's method (the first caller
-- outside wemasy.ngx and wemasy.methods), as the plain client's checks do.
local function raise(msg)
  local level = 2
  local info = debug.getinfo(level, "S")
  while info and OWN[info.source] do
    level = level + 1
    info = debug.getinfo(level, "S")
  end
  error(msg, level)
end

local function check_phase(method)
  local phase = ngx.get_phase()
  if not RUNNABLE[phase] then
    raise(string.format("wemasy.ngx: client:%s cannot run in the %s phase: ngx.run_worker_thread works only in"
      .. " rewrite_by_lua*, access_by_lua*, content_by_lua* and ngx.timer callbacks", method, phase))
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

local unpack = table.unpack or unpack

-- All of ngx.run_worker_thread's results, nils included (a send's are ten).
local function pack(...)
  return { n = select("#", ...), ... }
end

-- Runs wemasy.ngx.thread's `method` with the arguments on the pool.  Returns
-- its results, or BUSY when no thread VM freed up within the client's
-- timeout.  Raises what the thread side raised, and misconfiguration.
local function on_pool(self, st, method, ...)
  local deadline, delay
  while true do
    local r = pack(ngx.run_worker_thread(self.thread_pool, M.THREAD_MODULE, "run", st.key, nil, method, ...))
    if r[1] and r[2] == "miss" then
      r = pack(ngx.run_worker_thread(self.thread_pool, M.THREAD_MODULE, "run", st.key, st.opts, method, ...))
    end
    local ok, tag, x = r[1], r[2], r[3]
    if ok then
      if tag == "ok" then return unpack(r, 3, r.n) end
      local msg = errors.redact_text(tostring(x), st.token)
      if tag == "raise" then raise(strip_position(msg)) end
      raise(load_failure(msg))
    end
    local msg = errors.redact_text(tostring(tag), st.token)
    if is_busy(msg) then
      ngx.update_time()
      deadline = deadline or (ngx.now() + st.timeout)
      if ngx.now() >= deadline then return BUSY, msg end
      delay = math.min((delay or 0.0005) * 2, 0.05)
      ngx.sleep(delay)
    elseif no_pool(msg, self.thread_pool) then
      raise("wemasy.ngx: no thread pool '" .. self.thread_pool .. "' in nginx.conf: add `thread_pool "
        .. self.thread_pool .. " threads=16;` to the main context (outside http {}), and"
        .. " `lua_worker_thread_vm_pool_size 16;` to http {} (" .. msg .. ")")
    else
      raise(load_failure(msg))
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

-- What the core answers a request of a closed client.
local function closed_error(path, token)
  local err = errors.from_transport(path, "closed", CLOSED)
  err.sent, err.attempts = false, 0
  return errors.redact(err, token)
end

------------------------------------------------------------------ the backend of wemasy.methods

local backend = {
  refuse_progress = "batch: option 'progress' cannot be used with wemasy.ngx: a function does not cross to the"
    .. " worker thread (count the results instead)",
}

-- A closed client answers here, in any phase; an open one only where
-- ngx.run_worker_thread works.
function backend.enter(self, _, method)
  if not self.closed then check_phase(method) end
end

-- The limiter state that came back with a rate_limited answer, for outcome().
local function state_from_thread(state)
  return function() return state end
end
local NO_STATE = state_from_thread(nil)

-- The core's values of a send (after the group's limiter state when they are
-- rate_limited) become the call's results here, in the worker's VM, just as
-- the plain client makes them: decoding, error mapping, redaction.
local function settle(self, st, path, group, state, ...)
  if state == BUSY then return nil, busy_error(path, ..., st.timeout) end
  return plain_client.outcome(self, st, state and state_from_thread(state) or NO_STATE, path, group, ...)
end

function backend.send(self, st, path, text, group, idempotent)
  if self.closed then return nil, closed_error(path, st.token) end
  return settle(self, st, path, group, on_pool(self, st, "send", path, text, group, idempotent))
end

-- The whole batch runs on one thread (its curl multi handle).
function backend.batch(self, st, items, concurrency, _, on_result)
  if self.closed then
    for k, item in ipairs(items) do on_result(k, nil, closed_error(item.endpoint, st.token)) end
    return
  end
  local done, why = on_pool(self, st, "batch", items, concurrency)
  for k = 1, #items do
    local r = done ~= BUSY and done[k] or { nil, busy_error(nil, why, st.timeout) }
    on_result(k, r[1], revive(r[2]), r[3])
  end
end

function backend.rate_limit(self, st, group)
  if self.closed then return nil, errors.new("invalid_argument", { message = CLOSED }) end
  local state, err = on_pool(self, st, "rate_limit", group)
  if state == BUSY then return nil, busy_error(nil, err, st.timeout) end
  if state == nil then return nil, revive(err) end
  return state
end

-- For debug lines: one more trip to the pool, only when debug is on.
function backend.limiter_state(self, st, group)
  if self.closed then return nil end
  local ok, state = pcall(on_pool, self, st, "rate_limit", group)
  if ok and type(state) == "table" and state ~= BUSY then return state end
  return nil
end

function backend.has_token(self, st)
  return st.token ~= nil and not self.closed
end

-- The thread VMs' clients stay: other clients with the same options share them.
function backend.close() end

function backend.where(self)
  return " on thread pool '" .. self.thread_pool .. "'"
end

local Client = methods.class("wemasy.ngx.client", backend)

-- Returns a client with the plain client's methods whose calls run on the
-- thread pool.  Options: wemasy.new's (checked by wemasy.new itself, so the
-- errors are its own), plus thread_pool.  Options must be plain data:
-- functions (clock, sleep, random, hooks) cannot reach the thread VMs.
function M.new(opts)
  need_nginx()
  if opts ~= nil and type(opts) ~= "table" then
    args.bad_argument(1, "wemasy.ngx.new", "table", opts, 2)
  end
  load_wemasy()
  local given = {}
  for k, v in next, opts or {} do given[k] = v end
  local pool = given.thread_pool
  given.thread_pool = nil
  if pool == nil then pool = M.DEFAULT_THREAD_POOL end
  if type(pool) ~= "string" or not pool:match("^[%w_%-%.]+$") then
    error("wemasy.ngx.new: option 'thread_pool' must be the name of a thread_pool of nginx.conf (got "
      .. args.describe(pool) .. ")", 2)
  end

  -- The client wemasy.new makes to check the options is closed at once.
  local ok, checked = pcall(wemasy.new, checking_copy(given))
  if not ok then error(strip_position(checked), 2) end
  local max_request_body = methods.state(checked).max_request_body
  checked:close()

  local name, why = uncrossable_option(given, "", 0)
  if name then
    error("wemasy.ngx.new: option '" .. name .. "' cannot be used here: it holds " .. why
      .. ", and only plain data crosses to the worker threads", 2)
  end

  local plain = copy_plain(given, 0)
  -- nginx owns the worker's signals, and a thread of its pool must not change
  -- a process-wide disposition: these clients never watch for SIGINT.
  plain.interruptible = false
  return methods.new(Client, { base_url = checked.base_url, insecure = checked.insecure, thread_pool = pool }, {
    token = plain.token,
    opts = plain,
    key = options_key(plain),
    max_request_body = max_request_body,
    -- `debug` (true: a function cannot cross) reports the calls from here,
    -- where they are made, refused ones included.
    observer = hooks.from_options(plain),
    timeout = type(plain.timeout) == "number" and plain.timeout or require("wemasy.core").options.timeout.default,
  })
end

M.Client = Client
M._load_failure = load_failure
return M
