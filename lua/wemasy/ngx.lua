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

------------------------------------------------------------------ loading wemasy itself

-- Says what a failed require of wemasy (or of this module, in a thread VM) means.
local function load_failure(msg)
  msg = tostring(msg)
  local symbol = msg:match("undefined symbol: (lua[%w_]*)")
  if symbol then
    local file = msg:match("from file '([^']+)'") or "wemasy.core"
    local head = "wemasy.ngx: " .. file .. " is not built for LuaJIT (undefined symbol " .. symbol
      .. "): it is a Lua 5.4 build. nginx's Lua is LuaJIT: "
    if file:find("wemasy/core", 1, true) or file == "wemasy.core" then
      return head .. "point lua_package_cpath at the LuaJIT build"
        .. " (build/jit/?.so of `make build`, or `luarocks --lua-version=5.1 make`)"
    end
    -- Another module (lua-cjson): ";;" in lua_package_cpath is LuaJIT's
    -- default, or the LUA_CPATH nginx was started with (a shell that ran
    -- `eval "$(luarocks path)"` for Lua 5.4).
    local env = os.getenv("LUA_CPATH")
    return head .. (env and ("nginx was started with LUA_CPATH=" .. env .. ", which ';;' in lua_package_cpath"
      .. " brings in") or "';;' in lua_package_cpath brought in a Lua 5.4 directory")
      .. ": start nginx without it (`env -u LUA_CPATH -u LUA_PATH nginx ...`; systemd's nginx.service"
      .. " does not pass it), or list LuaJIT's directories (/usr/local/lib/lua/5.1/?.so;"
      .. "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so) instead of ';;'"
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

-- wemasy's own modules load here, in the master (init_by_lua) or a worker:
-- a wrong build among them (lua-cjson's) is named, not only reported.
local function need(name)
  local ok, mod = pcall(require, name)
  if not ok then error(load_failure(mod), 2) end
  return mod
end

local args = need("wemasy.args")
local errors = need("wemasy.errors")
local hooks = need("wemasy.hooks")
local json = need("wemasy.json")
local methods = need("wemasy.methods")

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

------------------------------------------------------------------ the wait for a thread VM

local unpack = table.unpack or unpack

-- All of a call's results, nils included (a send's are ten).
local function pack(...)
  return { n = select("#", ...), ... }
end

-- A worker's thread VMs (lua_worker_thread_vm_pool_size) serve all of its
-- clients and thread pools, so the wait for one is per worker (this module's
-- state, after the fork).  Calls take a slot first: while the number of VMs
-- is unknown every call goes straight through; the first "no available Lua
-- vm" shows that the calls holding one are all there are, and from then on
-- a call that finds no slot waits in ngx.semaphore's queue, first come first
-- served, and each call that ends hands its slot to the oldest waiter.  (The
-- old sleep-and-poll let new arrivals overtake old waiters: p99 0.35-0.74 s.)
-- At most max_queue calls wait; one more is refused at once.
local gate = { held = 0, queued = 0, sema = nil }

M.DEFAULT_MAX_QUEUE = 256

-- nginx's graceful shutdown (reload, quit) lets a worker exit once no timer
-- is pending but cancelable ones, and a request waiting on
-- ngx.run_worker_thread has none: the worker exited under such pages, with
-- "open socket left in connection" alerts, and their browsers got an empty
-- reply although the call completed.  (A call waiting in the queue or in a
-- backoff holds a timer of its own.)  So while calls hold a slot, a timer
-- callback sleeps in short steps: its sleep is the pending timer that keeps
-- the worker until the last page is answered, at most KEEP_STEP s later.
local KEEP_STEP = 0.05
local keeping = false

local function keep_worker()
  while gate.held > 0 do ngx.sleep(KEEP_STEP) end
  keeping = false
end

local function held()
  gate.held = gate.held + 1
  if not keeping then
    -- A delay of 0 is allowed even while the worker shuts down.
    keeping = ngx.timer.at(0, keep_worker) and true or false
  end
end

local QUEUE_FULL, QUEUE_TIMEOUT = {}, {}

-- Takes a slot for a call, waiting up to `timeout` s in the queue.  Returns
-- true, or QUEUE_FULL / QUEUE_TIMEOUT.
local function acquire(max_queue, timeout)
  if gate.sema == nil then
    held()
    return true
  end
  if gate.sema:count() <= 0 and gate.queued >= max_queue then return QUEUE_FULL end
  gate.queued = gate.queued + 1
  local ok = gate.sema:wait(timeout)
  gate.queued = gate.queued - 1
  if not ok then return QUEUE_TIMEOUT end
  held()
  return true
end

local function release()
  gate.held = gate.held - 1
  if gate.sema then gate.sema:post(1) end
end

-- The slot of a call found no VM: there are fewer VMs than slots.  Drops the
-- slot (no post) and returns true: the call waits in the queue again.  When
-- it is the only call of ours, the VMs are held by something else: false,
-- keep the slot and try again after a nap.
local function lost_slot()
  if gate.held <= 1 then return false end
  gate.held = gate.held - 1
  if gate.sema == nil then gate.sema = require("ngx.semaphore").new(0) end
  return true
end

local BUSY, RAISE = {}, {}

-- One trip to the pool: ngx.run_worker_thread's results, packed, or false
-- and the message if it raised (the slot is given back whatever happens).
local function trip(pool, ...)
  local r = pack(pcall(ngx.run_worker_thread, pool, ...))
  if not r[1] then return { false, r[2], n = 2 } end
  return { n = r.n - 1, unpack(r, 2, r.n) }
end

-- Runs wemasy.ngx.thread's `method` with the arguments on the pool, on a
-- slot.  Returns ngx.run_worker_thread's packed results ({true, "ok",
-- ...}), BUSY and the message when the slot had no VM, or RAISE and what to
-- raise (what the thread side raised, misconfiguration).
local function on_slot(self, st, method, ...)
  local r = trip(self.thread_pool, M.THREAD_MODULE, "run", st.key, nil, method, ...)
  if r[1] and r[2] == "miss" then
    r = trip(self.thread_pool, M.THREAD_MODULE, "run", st.key, st.opts, method, ...)
  end
  local ok, tag, x = r[1], r[2], r[3]
  if ok then
    if tag == "ok" then return r end
    local msg = errors.redact_text(tostring(x), st.token)
    if tag == "raise" then return RAISE, strip_position(msg) end
    return RAISE, load_failure(msg)
  end
  local msg = errors.redact_text(tostring(tag), st.token)
  if is_busy(msg) then return BUSY, msg end
  if no_pool(msg, self.thread_pool) then
    return RAISE, "wemasy.ngx: no thread pool '" .. self.thread_pool .. "' in nginx.conf: add `thread_pool "
      .. self.thread_pool .. " threads=16;` to the main context (outside http {}), and"
      .. " `lua_worker_thread_vm_pool_size 16;` to http {} (" .. msg .. ")"
  end
  return RAISE, load_failure(msg)
end

-- Takes a slot, runs the call on it, gives the slot back; when the slot had
-- no VM behind it, drops it (or naps) and waits again, until the timeout.
-- Returns the call's results, or BUSY, QUEUE_FULL / QUEUE_TIMEOUT and the
-- last message; raises what on_slot says to.
local function on_pool(self, st, method, ...)
  ngx.update_time()
  local deadline = ngx.now() + st.timeout
  local msg = "no available Lua vm"
  while true do
    local got = acquire(self.max_queue, math.max(deadline - ngx.now(), 0.001))
    if got ~= true then return BUSY, got, msg end
    local x, y = on_slot(self, st, method, ...)
    if x ~= BUSY then
      release()
      if x == RAISE then raise(y) end
      return unpack(x, 3, x.n)
    end
    msg = y
    if not lost_slot() then
      release()
      ngx.sleep(0.005)
    end
    ngx.update_time()
    if ngx.now() >= deadline then return BUSY, QUEUE_TIMEOUT, msg end
  end
end

local function busy_error(endpoint, why, msg, self, timeout)
  if why == QUEUE_FULL then
    return errors.new("network", { endpoint = endpoint, attempts = 0, sent = false, reason = "queue_full",
      message = string.format("%d calls of this nginx worker already wait for a worker-thread Lua VM"
        .. " (max_queue): nothing was sent; raise lua_worker_thread_vm_pool_size and the thread_pool's threads,"
        .. " or max_queue", self.max_queue) })
  end
  return errors.new("timeout", { endpoint = endpoint, attempts = 0, sent = false, reason = "queue_timeout",
    message = string.format("no worker-thread Lua VM came free within %g s (%s): nothing was sent; raise"
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
  if state == BUSY then
    local why, msg = ...
    return nil, busy_error(path, why, msg, self, st.timeout)
  end
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
  local done, why, msg = on_pool(self, st, "batch", items, concurrency)
  for k = 1, #items do
    local r = done ~= BUSY and done[k] or { nil, busy_error(nil, why, msg, self, st.timeout) }
    on_result(k, r[1], revive(r[2]), r[3])
  end
end

function backend.rate_limit(self, st, group)
  if self.closed then return nil, errors.new("invalid_argument", { message = CLOSED }) end
  local state, err, msg = on_pool(self, st, "rate_limit", group)
  if state == BUSY then return nil, busy_error(nil, err, msg, self, st.timeout) end
  if state == nil then return nil, revive(err) end
  return state
end

function backend.rate_limit_reset(self, st)
  if self.closed then return nil, errors.new("invalid_argument", { message = CLOSED }) end
  local ok, err, msg = on_pool(self, st, "rate_limit_reset")
  if ok == BUSY then return nil, busy_error(nil, err, msg, self, st.timeout) end
  if ok == nil then return nil, revive(err) end
  return true
end

-- For debug lines: one more trip to the pool, only when debug is on.
function backend.limiter_state(self, st, group)
  if self.closed then return nil end
  local ok, state = pcall(on_pool, self, st, "limiter_state", group)
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

-- A page waits for its calls, and a shopper does not wait 90 s (the plain
-- client's 30 s timeout and 2 retries against a hung API): the options a
-- caller leaves out default to these, so a hung API holds a call at most
-- about 5 s, limiter wait and retry included: a slot within max_wait
-- (0.5 s), a try of at most `timeout` (2 s; connect within 1 s), one retry
-- (a read's, or anything not sent) after at most 0.25 s of backoff or
-- max_wait for its slot, and its try: 0.5 + 2 + 0.5 + 2 = 5 s.  max_wait is
-- set here whatever the plain client's default is.  A caller's own value
-- wins, field by field (backoff.cap alone keeps base = 0.25).
M.HANDLER_DEFAULTS = {
  timeout = 2,
  connect_timeout = 1,
  max_retries = 1,
  backoff = { base = 0.25, cap = 0.5 },
  rate_limit = { max_wait = 0.5 },
}

-- given with the handler defaults where it has nothing; the caller's tables
-- are copied, not changed.  A value of the wrong type stays, for wemasy.new
-- to name.
local function with_handler_defaults(given)
  for k, v in next, M.HANDLER_DEFAULTS do
    local mine = given[k]
    if mine == nil then
      given[k] = copy_plain(v, 0)
    elseif type(mine) == "table" and type(v) == "table" then
      local merged = {}
      for f, x in next, mine do merged[f] = x end
      for f, x in next, v do
        if merged[f] == nil then merged[f] = x end
      end
      given[k] = merged
    end
  end
  return given
end

local Client = methods.class("wemasy.ngx.client", backend)

-- Returns a client with the plain client's methods whose calls run on the
-- thread pool.  Options: wemasy.new's (checked by wemasy.new itself, so the
-- errors are its own), plus thread_pool and max_queue; what is left out
-- takes M.HANDLER_DEFAULTS, then the plain client's.  Options must be plain data:
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
  local max_queue = given.max_queue
  given.max_queue = nil
  if max_queue == nil then max_queue = M.DEFAULT_MAX_QUEUE end
  if type(max_queue) ~= "number" or max_queue < 0 or max_queue > 1e6 or max_queue ~= math.floor(max_queue) then
    error("wemasy.ngx.new: option 'max_queue' must be an integer from 0 to 1000000, the calls that may wait"
      .. " for a thread VM in one worker (got " .. args.describe(max_queue) .. ")", 2)
  end

  -- The client wemasy.new makes to check the options is closed at once.
  with_handler_defaults(given)
  local ok, checked = pcall(wemasy.new, checking_copy(given))
  if not ok then error(strip_position(checked), 2) end
  local max_request_body, groups = methods.state(checked).max_request_body, methods.state(checked).groups
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
  return methods.new(Client, { base_url = checked.base_url, insecure = checked.insecure, thread_pool = pool,
    max_queue = max_queue }, {
    token = plain.token,
    opts = plain,
    key = options_key(plain),
    max_request_body = max_request_body,
    groups = groups,
    -- `debug` (true: a function cannot cross) reports the calls from here,
    -- where they are made, refused ones included.
    observer = hooks.from_options(plain),
    timeout = type(plain.timeout) == "number" and plain.timeout or require("wemasy.core").options.timeout.default,
  })
end

M.Client = Client
M._load_failure = load_failure
return M
