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
local socket = require "socket"

local LIFETIME = tonumber(arg[1]) or 120
local IDLE_LIMIT = 30

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
io.stdout:write("READY ", port, "\n")
io.stdout:flush()

local clients = {} -- socket -> bytes received and not yet served
local counts = {}  -- NAME -> requests seen under /c/NAME/
local started = socket.gettime()
local last_activity = started
local running = true

local function plain(status, body, extra)
  return table.concat { "HTTP/1.1 ", status, " X\r\n", extra or "", "Content-Type: application/json\r\n",
    "Content-Length: ", #body, "\r\n\r\n", body }
end

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
  if name then return plain(200, tostring(counts[name] or 0)), true end
  if path == "/quit" then
    running = false
    return plain(200, "bye"), false
  end
  n = tonumber(path:match("^[%w.-]+:(%d+)$"))
  if n then return "HTTP/1.1 200 Connection established\r\n" .. string.rep("X-P: 1\r\n", n) .. "\r\n", false end
  local hex = path:match("^/raw/(%x*)")
  if hex then return unhex(hex), false end
  n = tonumber(path:match("^/many/(%d+)"))
  if n then return plain(200, "{}", string.rep("X-H: 1\r\n", n) .. "Connection: close\r\n"), false end
  n = tonumber(path:match("^/long/(%d+)"))
  if n then
    return plain(200, "{}", "X-Long: " .. string.rep("a", math.max(0, n - 10)) .. "\r\nConnection: close\r\n"), false
  end
  return plain(404, '{"error":"no route"}'), true
end

local function drop(sock)
  clients[sock] = nil
  sock:close()
end

-- The client may stop reading (libcurl does, past its header limits): a
-- failed send only ends this connection.
local function send_all(sock, data)
  sock:settimeout(5)
  sock:send(data)
  sock:settimeout(0)
end

-- Serves every complete request in the buffer; false when the socket is gone.
local function serve(sock)
  while true do
    local buf = clients[sock]
    local head_end = buf:find("\r\n\r\n", 1, true)
    if not head_end then return true end
    local head = buf:sub(1, head_end - 1)
    local length = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0
    if #buf < head_end + 3 + length then return true end -- the body is still coming
    clients[sock] = buf:sub(head_end + 4 + length)
    local data, keep = route(head:match("^%u+ (%S+) HTTP/1%.%d") or "/")
    send_all(sock, data)
    if not keep then
      drop(sock)
      return false
    end
  end
end

local function on_readable(sock)
  local data, err, partial = sock:receive(65536)
  data = data or partial
  if data and #data > 0 then clients[sock] = clients[sock] .. data end
  if serve(sock) and err == "closed" then drop(sock) end
end

while running do
  local now = socket.gettime()
  if now - started > LIFETIME or now - last_activity > IDLE_LIMIT then break end
  local readers = { server }
  for sock in pairs(clients) do readers[#readers + 1] = sock end
  local ready = socket.select(readers, nil, 0.05)
  for _, sock in ipairs(ready) do
    last_activity = socket.gettime()
    if sock == server then
      local conn = server:accept()
      if conn then
        conn:settimeout(0)
        conn:setoption("tcp-nodelay", true)
        clients[conn] = ""
      end
    elseif clients[sock] then
      on_readable(sock)
    end
  end
end

for sock in pairs(clients) do sock:close() end
server:close()
