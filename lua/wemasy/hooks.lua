-- Observability: the `hooks` and `debug` options of wemasy.new.
--
--   wemasy.new{ token = ...,
--     hooks = { on_request = function(info) end, on_response = function(info) end },
--     debug = true,            -- one line per call on stderr; or a function(line)
--   }
--
-- Both hooks run in Lua around every call, once each: on_request before the
-- call takes its limiter slot, on_response when it is over (after the C
-- core's retries), also for calls refused before sending (attempts == 0).
-- The info tables hold no token, no request body and no response body:
--
--   endpoint, method, group, idempotent, batch          both hooks
--   ok, status, kind (nil when ok), attempts, duration,  on_response
--   retry_after, rate_limit {limit, remaining}           (the server's headers, as the core read them)
--   limiter {limit, remaining, reset_in, closed_for, store}  (the client's own quota state; store:
--                                                        "local", "shm" or "redis": which one served)
--
-- A hook that raises does not break the call: the call's result is the same,
-- and the error is written to the debug log when `debug` is on (else dropped).
local args = require("wemasy.args")

local M = {}

local HOOK_NAMES = { on_request = true, on_response = true }

-- Raised without a position: wemasy.new re-raises at its caller.
local function option_error(msg)
  error("wemasy.new: " .. msg, 0)
end

-- Seconds, for durations: the injected clock when there is one (specs), else
-- the core's monotonic clock (the limiter's: it never jumps with the wall clock).
local function default_clock()
  return require("wemasy.core").now
end

local Observer = {}
Observer.__index = Observer

-- Reads opts.hooks and opts.debug (raising, naming the option, when they are
-- malformed); returns an observer, or nil when neither is set.
function M.from_options(opts)
  local hooks, debug = opts.hooks, opts.debug
  if hooks ~= nil then
    if type(hooks) ~= "table" then
      option_error("option 'hooks' must be a table { on_request = function, on_response = function } (got "
        .. args.describe(hooks) .. ")")
    end
    for k, v in next, hooks do
      if not HOOK_NAMES[k] then
        option_error("option 'hooks' has an unknown key '" .. tostring(type(k) == "string" and k or type(k))
          .. "' (hooks take on_request, on_response)")
      end
      if type(v) ~= "function" then
        option_error("option 'hooks." .. k .. "' must be a function (got " .. args.describe(v) .. ")")
      end
    end
  end
  if debug ~= nil and type(debug) ~= "boolean" and type(debug) ~= "function" then
    option_error("option 'debug' must be a boolean or a function(line) (got " .. args.describe(debug) .. ")")
  end
  local log
  if debug == true then
    log = function(line) io.stderr:write(line, "\n") end
  elseif type(debug) == "function" then
    log = debug
  end
  local on_request = hooks and rawget(hooks, "on_request")
  local on_response = hooks and rawget(hooks, "on_response")
  if not (on_request or on_response or log) then return nil end
  return setmetatable({
    on_request = on_request, on_response = on_response, log = log,
    clock = type(opts.clock) == "function" and opts.clock or default_clock(),
  }, Observer)
end

function Observer:write(line)
  if self.log then pcall(self.log, line) end
end

function Observer:run(name, info)
  local fn = self[name]
  if not fn then return end
  local ok, why = pcall(fn, info)
  if not ok then self:write("wemasy: hook " .. name .. " raised: " .. tostring(why):gsub("[\r\n]+", " ")) end
end

function Observer:now()
  local ok, t = pcall(self.clock)
  if ok and type(t) == "number" then return t end
  return os.time()
end

-- Starts one call: returns its context (the on_request info plus the start time).
function Observer:start(endpoint, method, group, idempotent, batch)
  local info = { endpoint = endpoint, method = method, group = group, idempotent = idempotent,
                 batch = batch or false }
  self:run("on_request", info)
  return { info = info, started = self:now() }
end

local function copy_rate_limit(rl)
  if type(rl) ~= "table" then return nil end
  return { limit = rl.limit, remaining = rl.remaining }
end

local function describe_line(i)
  local parts = { "wemasy: ", i.endpoint or "?", " -> " }
  if i.ok then
    parts[#parts + 1] = tostring(i.status)
  else
    parts[#parts + 1] = i.kind .. (i.status and (" " .. i.status) or "")
  end
  parts[#parts + 1] = string.format(" in %.1f ms (%d %s", (i.duration or 0) * 1000, i.attempts or 0,
    i.attempts == 1 and "attempt" or "attempts")
  local rl = i.rate_limit
  if rl and rl.remaining and rl.limit then
    parts[#parts + 1] = string.format(", server quota %d/%d", rl.remaining, rl.limit)
  end
  local lim = i.limiter
  if lim then
    parts[#parts + 1] = string.format(", %s slots %d/%d", i.group or "default", lim.remaining, lim.limit)
    if lim.store then parts[#parts + 1] = " (" .. lim.store .. ")" end
  end
  if i.retry_after then parts[#parts + 1] = string.format(", retry after %ss", tostring(i.retry_after)) end
  if i.batch then parts[#parts + 1] = ", batch" end
  parts[#parts + 1] = ")"
  return table.concat(parts)
end

-- Ends one call: `limiter` is the client's quota state of the call's group
-- (or nil when rate limiting is off).
function Observer:finish(ctx, body, err, res, limiter)
  local info = {}
  for k, v in pairs(ctx.info) do info[k] = v end
  info.duration = math.max(0, self:now() - ctx.started)
  if err then
    info.ok, info.kind, info.status = false, err.kind, err.status
    info.attempts = err.attempts or 0
    info.retry_after = err.retry_after
    info.rate_limit = copy_rate_limit(err.rate_limit)
  else
    info.ok = body ~= nil
    info.status = res and res.status
    info.attempts = res and res.attempts or 1
    info.rate_limit = copy_rate_limit(res and res.rate_limit)
  end
  if type(limiter) == "table" then
    info.limiter = { limit = limiter.limit, remaining = limiter.remaining, reset_in = limiter.reset_in,
                     closed_for = limiter.closed_for, store = limiter.store }
  end
  if self.log then self:write(describe_line(info)) end
  self:run("on_response", info)
  return info
end

M.describe_line = describe_line
return M
