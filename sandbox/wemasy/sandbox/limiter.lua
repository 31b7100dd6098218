-- Rate limiting like Laravel's throttle middleware: a fixed window per key and
-- limiter that starts with the key's first request and lasts `window` seconds.
-- Counters live in the lua_shared_dict "wemasy_limits", so all workers agree.

local limiter = {}

local function dict()
   return assert(ngx.shared.wemasy_limits, "lua_shared_dict wemasy_limits is missing")
end

-- Counts one request of `key` (a Bearer token or a client address) in limiter
-- `name`. Returns a table:
--   limit, remaining       for X-RateLimit-Limit / X-RateLimit-Remaining
--   exceeded               true when this request is over the limit
--   retry_after, reset_at  whole seconds to wait (>= 1) and the epoch second
--                          the window ends (only when exceeded)
function limiter.hit(name, key, limit, window)
   local d = dict()
   local k = name .. ":" .. ngx.md5(key)
   local n, err = d:incr(k, 1, 0, window)
   if not n then
      ngx.log(ngx.ERR, "wemasy sandbox: rate counter: ", err)
      n = 1
   end
   local result = { limit = limit, remaining = math.max(0, limit - n) }
   if n > limit then
      local ttl = d:ttl(k)
      local retry = math.max(1, math.ceil(tonumber(ttl) or 1))
      result.exceeded = true
      result.remaining = 0
      result.retry_after = retry
      result.reset_at = math.floor(ngx.now()) + retry
   end
   return result
end

-- The caller's { limit, remaining } as the next hit would start from,
-- without counting a request (for answers that bypass the throttle).
function limiter.peek(name, key, limit)
   local n = tonumber(dict():get(name .. ":" .. ngx.md5(key))) or 0
   return { limit = limit, remaining = math.max(0, limit - n) }
end

function limiter.reset()
   dict():flush_all()
end

return limiter
