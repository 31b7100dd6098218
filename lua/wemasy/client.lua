-- The client: one wemasy.core handle (libcurl, limiter, retries) behind
-- the methods of wemasy.methods (this file: options in, core results out).
local args = require("wemasy.args")
local core = require("wemasy.core")
local errors = require("wemasy.errors")
local hooks = require("wemasy.hooks")
local methods = require("wemasy.methods")

local M = {}

-- The options and their defaults are the core's declaration (csrc/options.h).
M.DEFAULT_BASE_URL = core.options.base_url.default

local full_path = methods.full_path

local function raw_copy(t)
  local copy = {}
  for k, v in next, t do copy[k] = v end
  return copy
end

-- Options are checked by the C core (one place, nested names included);
-- its messages are re-worded as wemasy.new's and raised at the caller.
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    args.bad_argument(1, "wemasy.new", "table", opts, 2)
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
  -- The token stays out of the client table (and so out of any dump or
  -- pretty-print of it); only redaction needs it on this side of the C core.
  return methods.new(M.Client, {
    base_url = (core_opts.base_url:gsub("/+$", "")),
    insecure = core_opts.insecure == true,
    _core = handle,
  }, { token = core_opts.token, max_request_body = handle:max_request_body(), observer = observer,
        groups = handle:groups() })
end

-- The client's quota state of `group`, for the hooks (nil when limiting is
-- off), with where it lives (`store`, and a `notice` saying why not where
-- it was asked to be).
local function limiter_state(self, _, group)
  local ok, state = pcall(self._core.rate_limit, self._core, group)
  return ok and state or nil
end

-- A rate_limited error says its limiter group and, when the server's
-- Retry-After closed that group for every caller, for how long (the
-- limiter's own reading, not a guess from the headers).  `limits` reads
-- it: limits(self, st, group) -> the group's state or nil (wemasy.ngx's
-- comes from the thread VM that made the call).
local function note_rate_limit(self, st, limits, err, group)
  err.group = group
  local state = limits(self, st, group)
  if state and state.closed_for > 0 then err.closed_for = state.closed_for end
end

-- An error as the caller gets it: with its limiter group when rate_limited,
-- and scrubbed of the token.
local function refused(self, st, limits, err, group)
  if err.kind == "rate_limited" then note_rate_limit(self, st, limits, err, group) end
  return nil, errors.redact(err, st.token)
end

-- A response: status, text, headers, attempts, retry_after, limit, remaining.
local function answered(self, st, limits, path, group, status, text, headers, attempts, retry_after, limit,
                        remaining)
  local value, err, res = errors.from_response(path, status, text, headers, retry_after, limit, remaining)
  if err then
    err.attempts = attempts
    return refused(self, st, limits, err, group)
  end
  res.attempts = attempts
  return value, nil, res
end

-- No response: nil, kind, message, sent, attempts, retry_after.
local function failed(self, st, limits, path, group, _, kind, message, sent, attempts, retry_after)
  local err = errors.from_transport(path, kind, message)
  err.sent, err.attempts, err.retry_after = sent, attempts, retry_after
  return refused(self, st, limits, err, group)
end

-- What one transfer (after the core's retries) became: body, nil, res or
-- nil, err, from the core's values for it (either shape above, as
-- client:request of wemasy.core returns them).
local function outcome(self, st, limits, path, group, status, ...)
  if status then return answered(self, st, limits, path, group, status, ...) end
  return failed(self, st, limits, path, group, status, ...)
end

-- True when the core's values for a transfer become a rate_limited error,
-- the one outcome that reads the limiter's state.
function M.rate_limited(status, kind)
  if status then return errors.status_kind(status) == "rate_limited" end
  return errors.core_kinds()[kind] == "rate_limited"
end

-- The core is this client's backend (see wemasy.methods).
local backend = { limiter_state = limiter_state }

function backend.send(self, st, path, text, group, idempotent)
  return outcome(self, st, limiter_state, path, group,
    self._core:request(full_path[path], text, st.token ~= nil, group, idempotent))
end

-- The core calls back as each transfer ends, while the others are still
-- in flight: decoding overlaps the server's work instead of following it.
function backend.batch(self, st, items, concurrency, on_progress, on_result)
  self._core:batch(items, concurrency, on_progress, function(k, ...)
    local item = items[k]
    on_result(k, outcome(self, st, limiter_state, item.endpoint, item.group, ...))
  end)
end

function backend.rate_limit(self, _, group)
  local state, why = self._core:rate_limit(group)
  if not state then return nil, errors.new("invalid_argument", { message = tostring(why) }) end
  return state
end

function backend.rate_limit_reset(self)
  local ok, why = self._core:rate_limit_reset()
  if not ok then return nil, errors.new("invalid_argument", { message = tostring(why) }) end
  return true
end

-- False after close(): the core has wiped the token by then.
function backend.has_token(self)
  return self._core:has_token()
end

-- The C core frees the curl handles.
function backend.close(self)
  self._core:close()
end

local Client = methods.class("wemasy.client", backend)

local function with_limiter_state(client, st, group, status, kind, ...)
  local state = M.rate_limited(status, kind) and limiter_state(client, st, group) or false
  return state, status, kind, ...
end

-- Sends a request prepared by wemasy.methods and returns the core's values
-- for it, undecoded, after the limiter state of `group` when they are
-- M.rate_limited (else false).  What wemasy.ngx's thread VMs do: the text
-- crosses back to the worker's VM, where M.outcome makes the call's results.
function M.request(client, path, text, group, idempotent)
  local st = methods.state(client)
  return with_limiter_state(client, st, group,
    client._core:request(full_path[path], text, st.token ~= nil, group, idempotent))
end

-- outcome(self, st, limits, path, group, <the core's values>) (see above).
M.outcome = outcome

-- Runs prepared batch items; on_result(k, body, err, res) as each ends.
function M.batch(client, items, concurrency, on_result)
  return backend.batch(client, methods.state(client), items, concurrency, nil, on_result)
end

M.Client = Client
-- The hooks' limiter state, for wemasy.ngx's thread VMs too.
M.limiter_state = limiter_state
return M
