-- What each fault kind (wemasy.sandbox.faults) does to the request it hits.
-- Runs in nginx only, from app.lua's hook before the throttle.
--
-- inject.apply(fault, ctx) answers the request the fault's way and returns
-- true, or (delay) waits and returns false so that the request goes on as
-- usual. ctx.rate() gives the caller's { limit, remaining } without counting
-- a request.
--
-- How connections end (HTTP/1.x):
--   * a reset (TCP RST): ngx.exit(444) in a location with
--     `reset_timedout_connection on` (conf.lua sets it for /api/): nginx
--     closes a 444 with SO_LINGER 0.
--   * an orderly close (FIN) after a partial response: take the raw
--     downstream socket (ngx.req.socket(true), after ngx.flush(true)) and
--     return; nginx then closes the connection instead of keeping it alive.
-- The request body is read first in every kind, so the client has sent its
-- whole request before anything goes wrong. HTTP/2 has no raw socket: there
-- a reset or a close is the stream's RST_STREAM (ngx.exit(444)), and a short
-- body ends the stream early.

local json = require "wemasy.sandbox.json"
local respond = require "wemasy.sandbox.respond"

local O = json.object

local inject = {}

local CHUNK = 64 * 1024
local XS = string.rep("x", CHUNK)
local SPACES = string.rep(" ", CHUNK)

local function http2()
   return ngx.req.http_version() == 2
end

local function read_body()
   ngx.req.read_body()
end

local function sleep(seconds)
   if seconds > 0 then ngx.sleep(seconds) end
end

-- Drops the connection at once: a TCP reset (a stream reset on HTTP/2).
local function reset()
   return ngx.exit(444)
end

-- Ends the response here, whatever Content-Length promised, with an orderly
-- close of the connection.
local function close()
   ngx.flush(true)
   if http2() then
      return -- the stream ends (END_STREAM) short of its content-length
   end
   local sock, err = ngx.req.socket(true)
   if not sock then
      ngx.log(ngx.WARN, "wemasy sandbox: no raw socket (", err, "): resetting instead")
      return reset()
   end
   -- Returning with the raw socket taken: nginx closes the connection.
end

local function start(status, content_type, length)
   ngx.status = status
   ngx.header["Content-Type"] = content_type or "application/json"
   ngx.header["Cache-Control"] = "no-cache, private"
   if length then ngx.header["Content-Length"] = length end
end

-- Sends the first `limit` bytes of a JSON document of `total` bytes, in
-- chunks of at most 64 KiB, each flushed (and waited for) before the next,
-- so that a body of any size costs one chunk of memory. False when the
-- client went away.
local function stream_json(total, limit)
   local head, tail, fill = '{"error":false,"message":"big body","data":"', '"}', XS
   if total < #head + #tail then head, tail, fill = "{", "}", SPACES end
   local budget = limit
   local function emit(s)
      if budget <= 0 or s == "" then return budget > 0 end
      if #s > budget then s = s:sub(1, budget) end
      budget = budget - #s
      ngx.print(s)
      local ok = ngx.flush(true)
      return ok and budget > 0
   end
   if not emit(head) then return budget == 0 end
   local left = total - #head - #tail
   while left > 0 do
      local n = math.min(left, CHUNK)
      if not emit(n == CHUNK and fill or fill:sub(1, n)) then return budget == 0 end
      left = left - n
   end
   emit(tail)
   return true
end

local kinds = {}

function kinds.status(f, ctx)
   local rate = ctx.rate()
   local headers = {
      ["X-RateLimit-Limit"] = rate.limit,
      ["X-RateLimit-Remaining"] = rate.remaining,
      ["Retry-After"] = f.retry_after,
      ["Content-Type"] = f.content_type,
   }
   respond.send(f.status, f.body or O{ "message", "Server Error" }, headers)
end

function kinds.rate_limited(f, ctx)
   local rate = ctx.rate()
   respond.send(429, respond.error_body("Too Many Attempts."), {
      ["X-RateLimit-Limit"] = rate.limit,
      ["X-RateLimit-Remaining"] = 0,
      ["Retry-After"] = f.retry_after,
      ["X-RateLimit-Reset"] = math.floor(ngx.now()) + f.retry_after,
   })
end

function kinds.delay(f)
   sleep(f.seconds)
   return false
end

function kinds.reset_before()
   read_body()
   return reset()
end

function kinds.reset_after_headers()
   read_body()
   start(200, nil, 2048)
   ngx.send_headers()
   ngx.flush(true)
   return reset()
end

function kinds.no_headers(f)
   read_body()
   sleep(f.seconds)
   if http2() then return reset() end
   return close()
end

function kinds.trickle(f)
   read_body()
   local steps = math.max(1, math.floor(f.seconds / f.interval + 0.5))
   local head, tail = '{"error":false,"message":"trickle","data":"', '"}'
   local size = math.max(#head + #tail, (steps + 1) * 4)
   local body = head .. string.rep("x", size - #head - #tail) .. tail
   local piece = math.ceil(#body / (steps + 1))
   start(200, nil, #body)
   local at = 1
   while at <= #body do
      ngx.print(body:sub(at, at + piece - 1))
      at = at + piece
      if not ngx.flush(true) then return end
      if at <= #body then ngx.sleep(f.interval) end
   end
end

function kinds.short_body(f)
   read_body()
   start(200, nil, f.bytes)
   if stream_json(f.bytes, math.floor(f.bytes / 2)) then
      return close()
   end
end

function kinds.malformed_json()
   respond.send(200, '{"error":false,"data":{')
end

function kinds.html()
   respond.send(200, "<html><body>Maintenance</body></html>", { ["Content-Type"] = "text/html" })
end

function kinds.big_body(f)
   read_body()
   start(200, nil, f.bytes)
   stream_json(f.bytes, f.bytes)
end

function kinds.empty_200()
   respond.send(200, "")
end

function kinds.redirect(f)
   respond.send(302, "", { Location = f.location })
end

function inject.apply(fault, ctx)
   local run = assert(kinds[fault.kind], "no such fault kind")
   local handled = run(fault, ctx)
   return handled ~= false
end

return inject
