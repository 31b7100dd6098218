-- A server that answers what no well-behaved server would, for the specs of
-- what the client makes of it (spec/core/classify_spec.lua), on 127.0.0.1 only.
--
--   lua5.4 spec/support/odd_server.lua [lifetime_seconds]
--
-- Prints "READY <port>", then serves from a select() loop.  It stops on
-- POST /quit, after `lifetime_seconds` (default 120) or after 30 idle
-- seconds, so a crashed spec can never leave it running.
--
-- The answer is chosen by the start of the request's path, so that a client's
-- base_url can carry it (base_url = "http://127.0.0.1:<port>/raw/<hex>") and
-- every endpoint under it gets that answer; the rest of the path is ignored.
--   /raw/HEX/...     the hex-decoded bytes, exactly, then the connection closes
--                    (a status line or none, any headers, any body)
--   /many/N/...      a 200 with N headers "X-H: 1", body {}
--   /long/N/...      a 200 with one header line of N bytes, body {}
--   /c/NAME/...      counts the request under NAME, then serves the rest
--   /count/NAME      how many requests /c/NAME/ has counted
--   /quit            200, then the server exits
-- As a proxy (the client's `proxy` option, an https:// base_url):
--   CONNECT host:N   a 200 "Connection established" with N headers "X-P: 1",
--                    the port saying how many, then the connection closes
-- Every answer but /count and /quit closes the connection after it.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local httpd = require "httpd"

local srv = httpd.new { lifetime = tonumber(arg[1]) or 120, tick = 0.05 }
local response = httpd.response

local counts = {}  -- NAME -> requests seen under /c/NAME/

local function unhex(s)
  return (s:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Returns the bytes to send and whether to keep the connection open.
local function route(path)
  local name, rest = path:match("^/c/([^/]+)(/.*)$")
  if name then
    counts[name] = (counts[name] or 0) + 1
    path = rest
  end
  local n
  name = path:match("^/count/([^/]+)$")
  if name then return response(200, tostring(counts[name] or 0)), true end
  if path == "/quit" then
    srv:stop()
    return response(200, "bye"), false
  end
  n = tonumber(path:match("^[%w.-]+:(%d+)$"))
  if n then return "HTTP/1.1 200 Connection established\r\n" .. string.rep("X-P: 1\r\n", n) .. "\r\n", false end
  local hex = path:match("^/raw/(%x*)")
  if hex then return unhex(hex), false end
  n = tonumber(path:match("^/many/(%d+)"))
  if n then return response(200, "{}", string.rep("X-H: 1\r\n", n) .. "Connection: close\r\n"), false end
  n = tonumber(path:match("^/long/(%d+)"))
  if n then
    return response(200, "{}", "X-Long: " .. string.rep("a", math.max(0, n - 10)) .. "\r\nConnection: close\r\n"), false
  end
  return response(404, '{"error":"no route"}'), true
end

-- Answers one request; the client may stop reading (libcurl does, past its
-- header limits): a failed send only ends this connection.
local function serve(sock, _, req)
  local data, keep = route(req.path)
  srv:send(sock, data)
  if not keep then srv:drop(sock) end
  return keep
end

srv:run(serve)
