-- A small but real HTTP/1.1 server for spec/core/core_spec.lua, on 127.0.0.1 only.
--
--   lua5.4 spec/support/tiny_server.lua [lifetime_seconds [cert.pem key.pem]]
--
-- With a certificate and key it speaks HTTPS instead (needs luasec).
--
-- Binds an ephemeral port, prints "READY <port>" on stdout, then serves
-- keep-alive connections from a select() loop so a slow route never blocks
-- the others.  It stops on POST /quit, after `lifetime_seconds` (default 120)
-- or after 30 idle seconds, so a crashed spec can never leave it running.
--
-- Routes (every method is accepted; the specs POST):
--   /echo            200, body = request head .. "\r\n\r\n" .. request body
--   /status/NNN      status NNN; 3xx adds "Location: /echo"
--   /headers         repeated, padded and mixed-case response headers
--   /continue        a 100 Continue (with a header) before the real response
--   /fold            a header continued on the next line (obs-fold)
--   /hugeheaders     about 1.1 MB of response headers
--   /nul             a body with NUL bytes
--   /big/N           N bytes of "x"
--   /gzip/N          N zero bytes, gzip-encoded
--   /sleep/MS        answers after MS milliseconds
--   /partial         promises 100 bytes, sends 10, closes
--   /reset           promises 1000 bytes, sends 10, resets the connection
--   /conn            "<connection id> <connections accepted so far>"
--   /echoauth/NNN    status NNN whose JSON body and headers carry the request's
--                    Authorization value back: in a message, an error key, a
--                    deeply nested value, a header and (percent-encoded) a Location;
--                    its token in swapped case in the body and as a header name,
--                    and split by obs-fold over three lines of a header
--   /quit            200, then the server exits
--
-- Routes for the limiter, retry and batch specs:
--   /c/NAME/REST     counts the request under NAME, then serves REST as above
--   /count/NAME      how many requests /c/NAME/... has counted
--   /rl/NAME/N/MS    Laravel-style throttle: a fixed window of MS ms per NAME
--                    that starts with its first request; N pass (200 with
--                    X-RateLimit-Limit/-Remaining), more get 429 + Retry-After
--   /rlq/NAME/N/MS   the same without the X-RateLimit headers
--   /rlstats/NAME    "<passed> <over the limit>" for /rl and /rlq
--   /limits/L/R      200 with X-RateLimit-Limit: L, X-RateLimit-Remaining: R
--   /429/S           429 with Retry-After: S (and X-RateLimit-Remaining: 0)
--   /429date/S       429 with Retry-After as an HTTP date S seconds ahead
--   /503/S           503 with Retry-After: S
--   /conc/MS         answers after MS ms; counts requests in progress at once
--   /concstats       the most /conc requests that were in progress at once
--                    (and resets that count)
-- Paths under /services/webshop/v1/ are served as if that prefix were not
-- there, so that wemasy.new's client:call reaches every route.
-- A connection that opens with a TLS handshake gets a plain 400 and is closed.
local socket = require "socket"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local httpd = require "httpd"

local srv = httpd.new { lifetime = tonumber(arg[1]) or 120, cert = arg[2], key = arg[3] }
local response = httpd.response

local pending = {}      -- delayed responses: { at = time, sock = s, data = string }

local counts = {}       -- NAME -> requests seen under /c/NAME/
local throttles = {}    -- NAME -> { start = t, n = count in window, passed = n, over = n }
local conc_now, conc_max = 0, 0

local gzip_cache = {}
local function gzipped_zeros(n)
  if not gzip_cache[n] then
    local p = assert(io.popen("head -c " .. n .. " /dev/zero | gzip -c", "r"))
    gzip_cache[n] = p:read("*a")
    p:close()
  end
  return gzip_cache[n]
end

-- Returns the bytes to send, or nil plus an action name.
local function route(state, path, head, body)
  local n
  if path == "/echo" then
    return response(200, head .. "\r\n\r\n" .. body)
  end
  n = path:match("^/status/(%d+)$")
  if n then
    n = tonumber(n)
    local extra = (n >= 300 and n < 400) and "Location: /echo\r\n" or ""
    return response(n, '{"status":' .. n .. '}', extra)
  end
  if path == "/headers" then
    return response(200, "{}", "X-Multi: a\r\nX-Multi: b\r\nX-Trim:    padded value  \t\r\n"
      .. "X-UPPER-Case: V\r\nX-Empty:\r\n")
  end
  if path == "/continue" then
    return "HTTP/1.1 100 Continue\r\nX-Leak: yes\r\n\r\n"
      .. response(200, "{}", "X-Final: yes\r\n")
  end
  if path == "/fold" then
    return response(200, "{}", "X-Fold: first\r\n   second\r\nX-After: ok\r\n")
  end
  if path == "/hugeheaders" then -- 1.1 MB of headers, each line under 100 kB
    local line = "X-Pad: " .. string.rep("p", 90000) .. "\r\n"
    return response(200, "{}", string.rep(line, 12))
  end
  if path == "/nul" then
    return response(200, "a\0b\0\0c")
  end
  n = path:match("^/big/(%d+)$")
  if n then
    return response(200, string.rep("x", tonumber(n)))
  end
  n = path:match("^/gzip/(%d+)$")
  if n then
    return response(200, gzipped_zeros(tonumber(n)), "Content-Encoding: gzip\r\n")
  end
  n = path:match("^/sleep/(%d+)$")
  if n then
    return nil, "delay", socket.gettime() + tonumber(n) / 1000, response(200, "slept")
  end
  if path == "/partial" then
    return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "close"
  end
  if path == "/reset" then
    return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", "reset"
  end
  n = path:match("^/echoauth/(%d+)$")
  if n then
    local auth = head:match("\r\n[Aa]uthorization:%s*([^\r\n]*)") or ""
    local j = auth:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
    local encoded = auth:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    local token = auth:gsub("^Bearer%s+", "")
    local swapped = token:gsub("%a", function(c) return c == c:lower() and c:upper() or c:lower() end)
    local third = math.floor(#auth / 3)
    local echoed = '{"error":true,"message":"Invalid token: ' .. j .. '","errors":{"' .. j .. '":["' .. j
      .. '"]},"deep":' .. string.rep("[", 300) .. '"' .. j .. '"' .. string.rep("]", 300)
      .. ',"swapped":"' .. swapped:gsub('[%c"\\]', "") .. '"}'
    return response(tonumber(n), echoed, "X-Echo-Authorization: " .. auth .. "\r\nLocation: /login?auth="
      .. encoded .. "\r\nX-Echo-" .. swapped:gsub("[^%w!#$%%&'*+.^_`|~-]", "") .. ": name\r\n"
      .. "X-Echo-Folded: " .. auth:sub(1, third) .. "\r\n  " .. auth:sub(third + 1, 2 * third) .. "\r\n\t"
      .. auth:sub(2 * third + 1) .. "\r\n")
  end
  if path == "/conn" then
    return response(200, state.id .. " " .. srv.accepted)
  end
  if path == "/quit" then
    return response(200, "bye"), "quit"
  end
  return nil
end

-- Like Laravel's throttle: the window starts at the first request after
-- the previous one ended, and lasts `ms`.
local function throttle(name, limit, ms, with_headers)
  local now = socket.gettime()
  local t = throttles[name] or { passed = 0, over = 0 }
  throttles[name] = t
  if not t.start or now >= t.start + ms / 1000 then
    t.start, t.n = now, 0
  end
  t.n = t.n + 1
  local headers = ""
  if with_headers then
    headers = "X-RateLimit-Limit: " .. limit .. "\r\nX-RateLimit-Remaining: "
      .. math.max(0, limit - t.n) .. "\r\n"
  end
  if t.n > limit then
    t.over = t.over + 1
    local retry = math.max(1, math.ceil(t.start + ms / 1000 - now))
    return response(429, '{"message":"Too Many Attempts."}', headers .. "Retry-After: " .. retry .. "\r\n")
  end
  t.passed = t.passed + 1
  return response(200, '{"n":' .. t.n .. '}', headers)
end

-- Routes of the limiter, retry and batch specs.
local function route_limits(path)
  local quiet, name, n, ms = path:match("^/rl(q?)/([^/]+)/(%d+)/(%d+)$")
  if quiet then
    return throttle(name, tonumber(n), tonumber(ms), quiet == "")
  end
  name = path:match("^/rlstats/([^/]+)$")
  if name then
    local t = throttles[name] or { passed = 0, over = 0 }
    return response(200, t.passed .. " " .. t.over)
  end
  name = path:match("^/count/([^/]+)$")
  if name then
    return response(200, tostring(counts[name] or 0))
  end
  local l, r = path:match("^/limits/(%d+)/(%d+)$")
  if l then
    return response(200, "{}", "X-RateLimit-Limit: " .. l .. "\r\nX-RateLimit-Remaining: " .. r .. "\r\n")
  end
  n = path:match("^/429/(%d+)$")
  if n then
    return response(429, "{}", "Retry-After: " .. n .. "\r\nX-RateLimit-Remaining: 0\r\n")
  end
  n = path:match("^/503/(%d+)$")
  if n then
    return response(503, "{}", "Retry-After: " .. n .. "\r\n")
  end
  n = path:match("^/429date/(%d+)$")
  if n then
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + tonumber(n))
    return response(429, "{}", "Retry-After: " .. date .. "\r\n")
  end
  n = path:match("^/conc/(%d+)$")
  if n then
    conc_now = conc_now + 1
    if conc_now > conc_max then conc_max = conc_now end
    return nil, "delay", socket.gettime() + tonumber(n) / 1000, response(200, "conc"), "conc"
  end
  if path == "/concstats" then
    local most = conc_max
    conc_max = 0
    return response(200, tostring(most))
  end
  return response(404, '{"error":"no route"}')
end

-- Serves one request; false when the connection is done (closed, or its
-- answer delayed).
local function serve(sock, state, req)
  -- wemasy.new's client:call("echoauth/401") reaches /echoauth/401.
  local path = req.path:gsub("^/services/webshop/v1/", "/")
  local counted, rest = path:match("^/c/([^/]+)(/.*)$")
  if counted then
    counts[counted] = (counts[counted] or 0) + 1
    path = rest
  end
  local data, action, at, later, tag = route(state, path, req.head, req.body)
  if not data and not action then
    data, action, at, later, tag = route_limits(path)
  end
  if action == "delay" then
    pending[#pending + 1] = { at = at, sock = sock, data = later, tag = tag }
    return false
  end
  srv:send(sock, data)
  if action == "close" then
    srv:drop(sock)
  elseif action == "reset" then
    if sock.setoption then
      sock:setoption("linger", { on = true, timeout = 0 })
    end
    srv:drop(sock)
  elseif action == "quit" then
    srv:stop()
  end
  return action == nil
end

local function flush_pending(now)
  local keep = {}
  for _, p in ipairs(pending) do
    if p.at <= now then
      if p.tag == "conc" then conc_now = conc_now - 1 end
      if srv.clients[p.sock] then
        srv:send(p.sock, p.data)
      end
    else
      keep[#keep + 1] = p
    end
  end
  pending = keep
end

srv:run(serve, flush_pending)
