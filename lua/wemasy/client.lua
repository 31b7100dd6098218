-- The client: one wemasy.core handle (libcurl, limiter, retries) behind
-- methods generated from the endpoint table.
local core = require("wemasy.core")
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local hooks = require("wemasy.hooks")
local json = require("wemasy.json")
local validate = require("wemasy.validate")

local M = {}

M.API_PREFIX = "/services/webshop/v1/"
-- The options and their defaults are the core's declaration (csrc/options.h).
M.DEFAULT_BASE_URL = core.options.base_url.default
M.DEFAULT_CONCURRENCY = core.batch_options.concurrency.default
local CONCURRENCY = core.batch_options.concurrency

local Client = { __name = "wemasy.client" }
Client.__index = Client

-- The token stays out of the client table (and so out of any dump or
-- pretty-print of it); only redaction needs it on this side of the C core.
local secrets = setmetatable({}, { __mode = "k" })
-- The hooks/debug observer of a client (wemasy.hooks), when it has one.
local observers = setmetatable({}, { __mode = "k" })
-- The longest request body a client sends: its option, as the core read it.
local max_request = setmetatable({}, { __mode = "k" })

local by_method = {}
for _, ep in ipairs(endpoints) do by_method[ep.method] = ep end

local function raw_copy(t)
  local copy = {}
  for k, v in next, t do copy[k] = v end
  return copy
end

-- Options are checked by the C core (one place, nested names included);
-- its messages are re-worded as wemasy.new's and raised at the caller.
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    validate.bad_argument(1, "wemasy.new", "table", opts, 2)
  end
  local core_opts = opts and raw_copy(opts) or {}
  if core_opts.base_url == nil then core_opts.base_url = M.DEFAULT_BASE_URL end
  -- hooks and debug live on this side of the core (kind "lua").
  local ok_obs, observer = pcall(hooks.from_options, core_opts)
  if not ok_obs then error(tostring(observer), 2) end
  for _, o in ipairs(core.options) do
    if o.kind == "lua" then core_opts[o.name] = nil end
  end
  local ok, handle = pcall(core.new, core_opts)
  if not ok then
    error((tostring(handle):gsub("^wemasy%.core%.new: ", "wemasy.new: ")), 2)
  end
  local self = setmetatable({
    base_url = (core_opts.base_url:gsub("/+$", "")),
    insecure = core_opts.insecure == true,
    _core = handle,
  }, Client)
  secrets[self] = core_opts.token
  observers[self] = observer
  max_request[self] = handle:max_request_body()
  return self
end

local function check_self(self, method)
  if not rawequal(getmetatable(self), Client) then
    error(string.format("bad argument #1 to '%s' (wemasy client expected, got %s; use client:%s(...))",
      method, validate.describe(self), method), 3)
  end
end

local function check_body(body, method)
  if body ~= nil and type(body) ~= "table" then
    validate.bad_argument(2, method, "table", body, 3)
  end
  return body or {}
end

-- The client's quota state of `group`, for the hooks (nil when limiting is off).
local function limiter_state(self, group)
  local ok, state = pcall(self._core.rate_limit, self._core, group)
  return ok and state or nil
end

-- A rate_limited error says its limiter group and, when the server's
-- Retry-After closed that group for every caller, for how long (the
-- limiter's own reading, not a guess from the headers).
local function note_rate_limit(self, err, group)
  err.group = group
  local state = limiter_state(self, group)
  if state and state.closed_for > 0 then err.closed_for = state.closed_for end
end

-- What one transfer (after the core's retries) became: body, nil, res or nil, err.
-- The core's values: status, body, headers, attempts, retry_after, limit,
-- remaining, or nil, kind, message, sent, attempts, retry_after.
local function outcome(self, path, group, status, a, b, c, d, e, f)
  local value, err, res
  if status then
    value, err, res = errors.from_response(path, status, a, b, d, e, f)
    if res then res.attempts = c end
    if err then err.attempts = c end
  else
    err = errors.from_transport(path, a, b)
    err.sent, err.attempts, err.retry_after = c, d, e
  end
  if err and err.kind == "rate_limited" then note_rate_limit(self, err, group) end
  if err then return nil, errors.redact(err, secrets[self]) end
  return value, nil, res
end

local function missing_token(path)
  return errors.new("unauthenticated", {
    endpoint = path, message = "this endpoint needs a token; none was given to wemasy.new", attempts = 0 })
end

-- A request ready for the core: path, encoded body and the table's facts
-- (path, text, group, idempotent, public), or nil, err when it must not be sent.
-- Plain values, not a table: every call and batch item goes through here.
local function prepare(self, ep_or_path, body)
  local ep = type(ep_or_path) == "table" and ep_or_path or endpoints[ep_or_path]
  if ep then
    if ep.auth and not secrets[self] then return nil, missing_token(ep.path) end
    local text, err = validate.request(ep, body, max_request[self])
    -- Field names and encoder messages are the caller's: one may be the token.
    if not text then return nil, errors.redact(err, secrets[self]) end
    return ep.path, text, ep.group, ep.idempotent, not ep.auth
  end
  local text, why = json.encode(body, nil, max_request[self])
  if not text then
    return nil, errors.redact(errors.new("invalid_argument", { endpoint = ep_or_path, message = why }), secrets[self])
  end
  -- Unknown to the table: the token is sent if set, the default group, and
  -- no retry of anything that may have reached the server.
  return ep_or_path, text, "default", false, false
end

-- The full paths of the table's endpoints, made once (not on every call).
local full_path = setmetatable({}, { __index = function(_, path) return M.API_PREFIX .. path end })
for _, ep in ipairs(endpoints) do rawset(full_path, ep.path, M.API_PREFIX .. ep.path) end

-- prepare()'s values in, the call's result out.
local function send(self, path, text, group, idempotent)
  if not path then return nil, text end
  return outcome(self, path, group, self._core:request(full_path[path], text, secrets[self] ~= nil, group, idempotent))
end

-- One call, between on_request and on_response when the client is observed.
local function observed(self, path, method, group, idempotent, prepare_fn, ...)
  local obs = observers[self]
  local ctx = obs:start(path, method, group, idempotent)
  local body, err, res = send(self, prepare_fn(...))
  obs:finish(ctx, body, err, res, limiter_state(self, group))
  if err then return nil, err end
  return body, nil, res
end

for _, ep in ipairs(endpoints) do
  Client[ep.method] = function(self, body)
    check_self(self, ep.method)
    body = check_body(body, ep.method)
    if observers[self] then
      return observed(self, ep.path, ep.method, ep.group, ep.idempotent, prepare, self, ep, body)
    end
    return send(self, prepare(self, ep, body))
  end
end

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
-- so a typo costs no request.  (wemasy.ngx answers through this too.)
local function target_of(name)
  if not name:find("/", 1, true) then
    local ep = by_method[name]
    if ep then return ep end
    return nil, name == "" and bad_path(name) or unknown_name(name)
  end
  local rel = normalize_path(name)
  if not rel then return nil, bad_path(name) end
  return endpoints[rel] or rel
end
M.target_of = target_of

-- Any endpoint under /services/webshop/v1/.  Known endpoints are validated
-- exactly as their methods are; others are sent as given (with the token if set).
function Client:call(path, body)
  check_self(self, "call")
  if type(path) ~= "string" then
    validate.bad_argument(1, "call", "string", path, 2)
  end
  body = check_body(body, "call")
  local target, refused = target_of(path)
  if observers[self] then
    local ep = type(target) == "table" and target or endpoints[target or false]
    local function prepare_call()
      if not target then return nil, errors.redact(refused, secrets[self]) end
      return prepare(self, target, body)
    end
    return observed(self, ep and ep.path or target or path:sub(1, 80), ep and ep.method,
      ep and ep.group or "default", ep and ep.idempotent or false, prepare_call)
  end
  if not target then return nil, errors.redact(refused, secrets[self]) end
  return send(self, prepare(self, target, body))
end

-- One batch entry {method_or_path, body} -> prepare()'s values or nil, err.
local function prepare_item(self, item)
  if type(item) ~= "table" then
    return nil, errors.new("invalid_argument", { message = "a batch item must be a table {method_or_path, body}" })
  end
  local target, body = rawget(item, 1), rawget(item, 2)
  if body ~= nil and type(body) ~= "table" then
    return nil, errors.new("invalid_argument", { message = "a batch item's body must be a table" })
  end
  body = body or {}
  if type(target) ~= "string" then
    return nil, errors.new("invalid_argument", { message = "a batch item must start with a method name or a path" })
  end
  local resolved, refused = target_of(target)
  if not resolved then return nil, errors.redact(refused, secrets[self]) end
  return prepare(self, resolved, body)
end

-- The number of calls in `calls`, which must be a list (keys 1..n): with a
-- hole, the length operator would drop the calls after it without a word.
-- Raises at `level` (as error() counts from the caller of this function).
local function list_length(calls, level)
  local n, max = 0, 0
  for k in next, calls do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      error("bad argument #1 to 'batch' (a list of calls expected, got a " .. validate.describe(k) .. " key)",
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
M.list_length = list_length

local function batch_options(opts)
  if opts == nil then return M.DEFAULT_CONCURRENCY, nil end
  if type(opts) ~= "table" then
    validate.bad_argument(2, "batch", "table", opts, 3)
  end
  for k in next, opts do
    if type(k) ~= "string" or not core.batch_options[k] then
      error("batch: unknown option '" .. tostring(type(k) == "string" and k or type(k)) .. "'", 3)
    end
  end
  local n, progress = rawget(opts, "concurrency"), rawget(opts, "progress")
  local c = CONCURRENCY
  if n ~= nil and not (type(n) == "number" and n >= c.min and n <= c.max and n == math.floor(n)) then
    error(string.format("batch: option 'concurrency' must be an integer from %d to %d (got %s)", c.min, c.max,
      validate.describe(n)), 3)
  end
  if progress ~= nil and type(progress) ~= "function" then
    error("batch: option 'progress' must be a function (got " .. validate.describe(progress) .. ")", 3)
  end
  return n or M.DEFAULT_CONCURRENCY, progress
end

-- Runs calls = { {method_or_path, body}, ... } concurrently (at most
-- opts.concurrency in flight, each through the limiter and retry policy) and
-- returns one {body, err, res} per call, in input order.  A bad item gets its
-- own invalid_argument result; the others run.
function Client:batch(calls, opts)
  check_self(self, "batch")
  if type(calls) ~= "table" then
    validate.bad_argument(1, "batch", "table", calls, 2)
  end
  local concurrency, progress = batch_options(opts)
  local total = list_length(calls, 2)
  -- items[k] is calls[at[k]], sent to paths[k].
  local results, items, at, paths = {}, {}, {}, {}
  local token = secrets[self] ~= nil
  local obs, started = observers[self], {}
  for i = 1, total do
    local path, text, group, idempotent, public = prepare_item(self, rawget(calls, i))
    if path then
      local k = #items + 1
      -- public: a 401 of another item does not stop it (it needs no token).
      items[k] = { path = full_path[path], body = text, with_auth = token, group = group, idempotent = idempotent,
                   public = public }
      at[k], paths[k] = i, path
      if obs then
        local ep = endpoints[path]
        started[k] = obs:start(path, ep and ep.method, group, idempotent, true)
      end
    else
      local err = text
      results[i] = { nil, err }
      if obs then
        local ep = by_method[type(rawget(calls, i)) == "table" and rawget(rawget(calls, i), 1) or false]
          or endpoints[err.endpoint or false]
        obs:finish(obs:start(ep and ep.path or err.endpoint, ep and ep.method, ep and ep.group or "default",
          ep and ep.idempotent or false, true), nil, err)
      end
    end
  end
  local refused = total - #items
  local on_progress = progress and function(done) progress(refused + done, total) end
  if refused > 0 and progress then progress(refused, total) end
  -- Called by the core as each transfer ends, while the others are still in
  -- flight: decoding overlaps the server's work instead of following it.
  -- (k, then what core:request returns: see outcome)
  local function on_result(k, status, a, b, c, d, e, f)
    local result = { outcome(self, paths[k], items[k].group, status, a, b, c, d, e, f) }
    results[at[k]] = result
    if obs then
      obs:finish(started[k], result[1], result[2], result[3], limiter_state(self, started[k].info.group))
    end
  end
  if #items > 0 then self._core:batch(items, concurrency, on_progress, on_result) end
  return results
end

-- {limit, remaining, reset_in, closed_for} of a limiter group, sending nothing.
function Client:rate_limit(group)
  check_self(self, "rate_limit")
  if group ~= nil and type(group) ~= "string" then
    validate.bad_argument(1, "rate_limit", "string", group, 2)
  end
  local state, why = self._core:rate_limit(group or "default")
  if not state then return nil, errors.new("invalid_argument", { message = tostring(why) }) end
  return state
end

-- False after close(): the core has wiped the token by then.
function Client:has_token()
  check_self(self, "has_token")
  return self._core:has_token()
end

-- Idempotent; the C core frees the curl handles.  Later calls return
-- invalid_argument "client is closed".
function Client:close()
  check_self(self, "close")
  self._core:close()
  self.closed = true
  return true
end
Client.__close = Client.close

function Client:__tostring()
  return string.format("wemasy client (%s)%s%s%s", self.base_url,
    secrets[self] and " with token" or " without token",
    self.closed and " [closed]" or "",
    self.insecure and " [INSECURE: TLS verification disabled]" or "")
end

M.Client = Client
return M
