-- wemasy.methods: what a client is to its caller, written once for the plain
-- client (wemasy.client, over the C core) and wemasy.ngx (over nginx's
-- thread pool).  M.class builds the methods from the endpoint table: one per
-- endpoint, call, batch, rate_limit, has_token, close, tostring; with the
-- argument checks that raise, the hooks and debug observer, and request
-- preparation (validate, encode), which is a pure function: M.prepare.
--
-- Each client has a state table, given to M.new: `token` (nil without one;
-- errors are scrubbed of it), `max_request_body`, `observer` (wemasy.hooks,
-- or nil), `groups` (its limiter groups' names, the core's client:groups()),
-- and whatever its backend keeps there.  A backend is a table of
-- functions that take the client and that state:
--
--   send(self, st, path, text, group, idempotent)  -> body, nil, res or nil, err
--       one prepared request (M.prepare's values)
--   batch(self, st, items, concurrency, on_progress, on_result)
--       items: the core's batch items, each with its `endpoint` (path); calls
--       on_result(k, body, err, res) as item k ends, on_progress(done) after
--   rate_limit(self, st, group)     -> the group's state, or nil, err
--   rate_limit_reset(self, st)      -> true, or nil, err
--   limiter_state(self, st, group)  -> the same for the observer, or nil
--   has_token(self, st), close(self, st)
--   enter(self, st, method)         optional: raises when a call cannot run here
--   where(self, st)                 optional: what tostring adds
--   refuse_progress                 optional: why batch's `progress` is refused
local args = require("wemasy.args")
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local json = require("wemasy.json")
local validate = require("wemasy.validate")

local M = {}

M.API_PREFIX = "/services/webshop/v1/"

-- Each client's state (see above), out of the client table: no dump or
-- pretty-print of a client shows the token.
local state = setmetatable({}, { __mode = "k" })

local by_method = {}
for _, ep in ipairs(endpoints) do by_method[ep.method] = ep end

-- The full paths of the table's endpoints, made once (not on every call).
M.full_path = setmetatable({}, { __index = function(_, path) return M.API_PREFIX .. path end })
for _, ep in ipairs(endpoints) do rawset(M.full_path, ep.path, M.API_PREFIX .. ep.path) end
local full_path = M.full_path

------------------------------------------------------------------ what a call names

-- Accepts "orders/detail", "/orders/detail" or the full "/services/webshop/v1/orders/detail".
local function normalize_path(path)
  local p = path:gsub("^/+", "")
  local prefix = M.API_PREFIX:sub(2)
  if p:sub(1, #prefix) == prefix then p = p:sub(#prefix + 1) end
  if not p:match("^[%w_%-]+[%w_%-/]*$") or p:find("//", 1, true) then return nil end
  return (p:gsub("/+$", ""))
end

local function bad_path(path)
  return errors.new("invalid_argument", { endpoint = type(path) == "string" and path:sub(1, 80) or nil,
    message = "path must look like 'orders/detail' (letters, digits, '_', '-', '/')" })
end

-- Edit distance with transpositions ("detial" is one edit from "detail").
local function distance(a, b)
  local prev2, prev = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, #b do
      local cb = b:byte(j)
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb and 0 or 1))
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[#b]
end

-- The method or path of the endpoint table nearest to `name` (methods first on a tie).
local function closest(name)
  local best, best_d
  local lower = name:sub(1, 80):lower()
  for _, ep in ipairs(endpoints) do
    for _, candidate in ipairs{ ep.method, ep.path } do
      local d = distance(lower, candidate)
      if not best_d or d < best_d then best, best_d = candidate, d end
    end
  end
  return best
end
M.closest = closest

local function unknown_name(name)
  local shown = name:sub(1, 80)
  -- The caller's text goes into the message only when it prints as itself.
  local quoted = shown:find("^[%w_%-%.]+$") and ("'" .. shown .. "' ") or ""
  return errors.new("invalid_argument", { endpoint = shown, message = quoted
    .. "is neither a method nor a path (a path has a '/'): did you mean '" .. closest(name) .. "'?" })
end

-- What a call or batch item names: an endpoint of the table (by its method
-- name or its path) or another path under the API prefix; nil, err when it
-- must not be sent.  A name without '/' is a method or a typo, never a path,
-- so a typo costs no request.
function M.target_of(name)
  if not name:find("/", 1, true) then
    local ep = by_method[name]
    if ep then return ep end
    return nil, name == "" and bad_path(name) or unknown_name(name)
  end
  local rel = normalize_path(name)
  if not rel then return nil, bad_path(name) end
  return endpoints[rel] or rel
end
local target_of = M.target_of

------------------------------------------------------------------ preparing a request

local function missing_token(path)
  return errors.new("unauthenticated", {
    endpoint = path, message = "this endpoint needs a token; none was given to wemasy.new", attempts = 0 })
end

-- A request ready to send: path, JSON text and the table's facts (path,
-- text, group, idempotent, public), or nil, err when it must not be sent.
-- `target` is an endpoint of the table or another path (as target_of gives
-- them); `limit` is max_request_body.  Plain values, not a table: every call
-- and batch item goes through here.  The error is not yet scrubbed of the
-- token (field names and encoder messages are the caller's).
function M.prepare(target, body, has_token, limit)
  local ep = type(target) == "table" and target or endpoints[target]
  if ep then
    if ep.auth and not has_token then return nil, missing_token(ep.path) end
    local text, err = validate.request(ep, body, limit)
    if not text then return nil, err end
    return ep.path, text, ep.group, ep.idempotent, not ep.auth
  end
  local text, why = json.encode(body, nil, limit)
  if not text then return nil, errors.new("invalid_argument", { endpoint = target, message = why }) end
  -- Unknown to the table: the token is sent if set, the default group, and
  -- no retry of anything that may have reached the server.
  return target, text, "default", false, false
end
local prepare = M.prepare

-- One batch entry {method_or_path, body} -> prepare()'s values or nil, err.
local function prepare_item(item, token, limit)
  if type(item) ~= "table" then
    return nil, errors.new("invalid_argument", { message = "a batch item must be a table {method_or_path, body}" })
  end
  local target, body = rawget(item, 1), rawget(item, 2)
  if body ~= nil and type(body) ~= "table" then
    return nil, errors.new("invalid_argument", { message = "a batch item's body must be a table" })
  end
  if type(target) ~= "string" then
    return nil, errors.new("invalid_argument", { message = "a batch item must start with a method name or a path" })
  end
  local resolved, refused = target_of(target)
  if not resolved then return nil, errors.redact(refused, token) end
  local path, text, group, idempotent, public = prepare(resolved, body or {}, token ~= nil, limit)
  if not path then return nil, errors.redact(text, token) end
  return path, text, group, idempotent, public
end

------------------------------------------------------------------ argument checks

-- The number of calls in `calls`, which must be a list (keys 1..n): with a
-- hole, the length operator would drop the calls after it without a word.
-- Raises at `level` (as error() counts from the caller of this function).
local function list_length(calls, level)
  local n, max = 0, 0
  for k in next, calls do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      error("bad argument #1 to 'batch' (a list of calls expected, got a " .. args.describe(k) .. " key)",
        level + 1)
    end
    n = n + 1
    if k > max then max = k end
  end
  if max ~= n then
    local hole = 1
    while rawget(calls, hole) ~= nil do hole = hole + 1 end
    error(string.format("bad argument #1 to 'batch' (a list of calls expected: calls[%d] is nil but calls[%d] is not)",
      hole, max), level + 1)
  end
  return n
end

-- client:batch's options, as the core declares them (csrc/options.h).  Read
-- at the first batch: in nginx's own VMs wemasy.core loads with the first
-- wemasy.ngx.new, after this module.
local function batch_options(opts)
  local declared = require("wemasy.core").batch_options
  local c = declared.concurrency
  if opts == nil then return c.default, nil end
  if type(opts) ~= "table" then
    args.bad_argument(2, "batch", "table", opts, 3)
  end
  for k in next, opts do
    if type(k) ~= "string" or not declared[k] then
      error("batch: unknown option '" .. tostring(type(k) == "string" and k or type(k)) .. "'", 3)
    end
  end
  local n, progress = rawget(opts, "concurrency"), rawget(opts, "progress")
  if n ~= nil and not (type(n) == "number" and n >= c.min and n <= c.max and n == math.floor(n)) then
    error(string.format("batch: option 'concurrency' must be an integer from %d to %d (got %s)", c.min, c.max,
      args.describe(n)), 3)
  end
  if progress ~= nil and type(progress) ~= "function" then
    error("batch: option 'progress' must be a function (got " .. args.describe(progress) .. ")", 3)
  end
  return n or c.default, progress
end

local function check_body(body, method)
  if body ~= nil and type(body) ~= "table" then
    args.bad_argument(2, method, "table", body, 3)
  end
  return body or {}
end

------------------------------------------------------------------ the methods

-- Makes a client: `fields` with the class as its metatable, `st` its state.
function M.new(class, fields, st)
  local self = setmetatable(fields, class)
  state[self] = st
  return self
end

-- The state of a client made by M.new (for its backend's own functions).
function M.state(self)
  return state[self]
end

local function known_group(st, name)
  for _, g in ipairs(st.groups) do
    if g == name then return true end
  end
  return false
end

local function sorted(list)
  local copy = { (table.unpack or unpack)(list) }
  table.sort(copy)
  return copy
end

-- Returns a metatable with every method, over `backend`.
function M.class(name, backend)
  local Class = { __name = name }
  Class.__index = Class
  local send, enter = backend.send, backend.enter

  -- The state of `self`, a client of this class, else raises; with
  -- `expected`, argument #1 must be of that type (or nil, when `optional`).
  local function check_self(self, method, value, expected, optional)
    local st = state[self]
    if not st or not rawequal(getmetatable(self), Class) then
      error(string.format("bad argument #1 to '%s' (wemasy client expected, got %s; use client:%s(...))",
        method, args.describe(self), method), 3)
    end
    if expected and type(value) ~= expected and not (optional and value == nil) then
      args.bad_argument(1, method, expected, value, 3)
    end
    return st
  end

  -- Prepares and sends one call: the call's results.
  local function perform(self, st, target, body)
    local path, text, group, idempotent = prepare(target, body, st.token ~= nil, st.max_request_body)
    if not path then return nil, errors.redact(text, st.token) end
    return send(self, st, path, text, group, idempotent)
  end

  -- One call between on_request and on_response; `target` nil: refused.
  local function observed(self, st, ep, path, target, body, refused)
    local obs = st.observer
    local group = ep and ep.group or "default"
    local ctx = obs:start(path, ep and ep.method, group, ep and ep.idempotent or false)
    local value, err, res
    if target then
      value, err, res = perform(self, st, target, body)
    else
      err = errors.redact(refused, st.token)
    end
    obs:finish(ctx, value, err, res, backend.limiter_state(self, st, group))
    if err then return nil, err end
    return value, nil, res
  end

  for _, ep in ipairs(endpoints) do
    local method = ep.method
    Class[method] = function(self, body)
      local st = check_self(self, method)
      body = check_body(body, method)
      if enter then enter(self, st, method) end
      if st.observer then return observed(self, st, ep, ep.path, ep, body) end
      return perform(self, st, ep, body)
    end
  end

  -- Any endpoint under /services/webshop/v1/.  Known endpoints are validated
  -- exactly as their methods are; others are sent as given (with the token if set).
  function Class:call(path, body)
    local st = check_self(self, "call", path, "string")
    body = check_body(body, "call")
    if enter then enter(self, st, "call") end
    local target, refused = target_of(path)
    if st.observer then
      local ep = type(target) == "table" and target or nil
      return observed(self, st, ep, ep and ep.path or target or path:sub(1, 80), target, body, refused)
    end
    if not target then return nil, errors.redact(refused, st.token) end
    return perform(self, st, target, body)
  end

  -- Runs calls = { {method_or_path, body}, ... } concurrently (at most
  -- opts.concurrency in flight, each through the limiter and retry policy) and
  -- returns one {body, err, res} per call, in input order.  A bad item gets its
  -- own invalid_argument result; the others run.
  function Class:batch(calls, opts)
    local st = check_self(self, "batch", calls, "table")
    local concurrency, progress = batch_options(opts)
    if progress and backend.refuse_progress then error(backend.refuse_progress, 2) end
    local total = list_length(calls, 2)
    if enter and total > 0 then enter(self, st, "batch") end
    -- items[k] is calls[at[k]].
    local results, items, at = {}, {}, {}
    local token, obs, started = st.token, st.observer, {}
    for i = 1, total do
      local call = rawget(calls, i)
      local path, text, group, idempotent, public = prepare_item(call, token, st.max_request_body)
      if path then
        local k = #items + 1
        -- public: a 401 of another item does not stop it (it needs no token).
        items[k] = { endpoint = path, path = full_path[path], body = text, with_auth = token ~= nil, group = group,
                     idempotent = idempotent, public = public }
        at[k] = i
        if obs then
          local ep = endpoints[path]
          started[k] = obs:start(path, ep and ep.method, group, idempotent, true)
        end
      else
        local err = text
        results[i] = { nil, err }
        if obs then
          local ep = by_method[type(call) == "table" and rawget(call, 1) or false] or endpoints[err.endpoint or false]
          obs:finish(obs:start(ep and ep.path or err.endpoint, ep and ep.method, ep and ep.group or "default",
            ep and ep.idempotent or false, true), nil, err)
        end
      end
    end
    local refused = total - #items
    local on_progress = progress and function(done) progress(refused + done, total) end
    if refused > 0 and progress then progress(refused, total) end
    -- Called as each item ends, while the others may still be in flight.
    local function on_result(k, value, err, res)
      results[at[k]] = { value, err, res }
      if obs then
        obs:finish(started[k], value, err, res, backend.limiter_state(self, st, started[k].info.group))
      end
    end
    if #items > 0 then backend.batch(self, st, items, concurrency, on_progress, on_result) end
    return results
  end

  -- {limit, remaining, reset_in, closed_for} of a limiter group, sending nothing.
  function Class:rate_limit(group)
    local st = check_self(self, "rate_limit", group, "string", true)
    if group ~= nil and not known_group(st, group) then
      error(string.format("bad argument #1 to 'rate_limit' (unknown limiter group '%s' (known: %s))",
        group:sub(1, 40), table.concat(sorted(st.groups), ", ")), 2)
    end
    if enter then enter(self, st, "rate_limit") end
    return backend.rate_limit(self, st, group or "default")
  end

  -- Forgets this host's record of the token's quota (every group, every
  -- process that shares it): for after a server-side reset, or a sandbox's.
  function Class:rate_limit_reset()
    local st = check_self(self, "rate_limit_reset")
    if enter then enter(self, st, "rate_limit_reset") end
    return backend.rate_limit_reset(self, st)
  end

  -- False after close().
  function Class:has_token()
    return backend.has_token(self, check_self(self, "has_token"))
  end

  -- Idempotent.  Later calls return invalid_argument "client is closed".
  function Class:close()
    local st = check_self(self, "close")
    backend.close(self, st)
    self.closed = true
    return true
  end
  Class.__close = Class.close

  function Class:__tostring()
    local st = state[self] or {}
    return string.format("wemasy client (%s)%s%s%s%s", self.base_url,
      st.token and " with token" or " without token",
      self.closed and " [closed]" or "",
      self.insecure and " [INSECURE: TLS verification disabled]" or "",
      backend.where and backend.where(self, st) or "")
  end

  return Class
end

return M
