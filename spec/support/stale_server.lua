-- A server that misbehaves on kept-alive connections, for
-- spec/core/stale_connection_spec.lua and spec/core/fork_spec.lua; 127.0.0.1 only.
--
--   lua5.4 spec/support/stale_server.lua [lifetime_seconds [cert.pem key.pem]]
--
-- With a certificate and key it speaks HTTPS instead (needs luasec).
-- Prints "READY <port> <pid>", serves from a select() loop, and stops on /quit,
-- after `lifetime_seconds` (default 120) or after 30 idle seconds.
--
-- Every answer is tagged with the request's own id, so a client that reads
-- another request's answer is caught.  Answers carry X-Conn: the number of
-- the connection that served them (1, 2, ... in order of accept).
--
--   /id/ID            200 {"id":"ID"}
--   /extra/ID/MS      200 {"id":"ID"}, and MS ms later a second, complete
--                     response nobody asked for: 200 {"id":"extra-ID"}
--   /close/ID/MS      200 {"id":"ID"}, and MS ms later closes the connection
--   /halfclose/ID/MS  200 {"id":"ID"}, and MS ms later shuts down its sending
--                     side (FIN) but keeps the connection open, reading
--                     requests it will never answer
--   /408/ID/MS        200 {"id":"ID"}, and MS ms later an idle-timeout
--                     408 with Connection: close, then closes
--   /truncate/ID      a status line and half a header block, then closes
--   /settled          answers once nothing above is still waiting to happen
--   /stats            {"accepted":N,"requests":N,"ids":{"ID":times seen,...}}
--                     (requests and ids count the tagged routes only)
--   /quit             200, then the server exits
local socket = require "socket"

local LIFETIME = tonumber(arg[1]) or 120
local CERT, KEY = arg[2], arg[3]
local IDLE_LIMIT = 30

local ssl, ssl_ctx
if CERT then
  ssl = require "ssl"
  ssl_ctx = assert(ssl.newcontext {
    mode = "server", protocol = "any", certificate = CERT, key = KEY,
    options = { "all", "no_sslv3" },
  })
end

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
-- Our pid too, so a spec can kill a server stuck in a TLS library call.
local self_stat = io.open("/proc/self/stat")
local pid = self_stat and self_stat:read("*l"):match("^%d+") or "?"
if self_stat then self_stat:close() end
io.stdout:write("READY ", port, " ", pid, "\n")
io.stdout:flush()

local clients = {}   -- socket -> { id = n, buf = string, mute = bool }
local later = {}     -- { at = time, sock = s, act = function }
local waiting = {}   -- sockets waiting for /settled
local accepted, requests, ids = 0, 0, {}
local started = socket.gettime()
local last_activity = started
local running = true

local function response(status, reason, body, extra)
  return table.concat {
    "HTTP/1.1 ", status, " ", reason, "\r\n", extra or "",
    "Content-Type: application/json\r\nContent-Length: ", #body, "\r\n\r\n", body,
  }
end

local function drop(sock)
  clients[sock] = nil
  sock:close()
end

local function send_all(sock, data)
  sock:settimeout(5)
  local ok = sock:send(data)
  sock:settimeout(0)
  return ok
end

local function tagged(state, id)
  return response(200, "OK", '{"id":"' .. id .. '"}', "X-Conn: " .. state.id .. "\r\n")
end

local function schedule(sock, ms, act)
  later[#later + 1] = { at = socket.gettime() + ms / 1000, sock = sock, act = act }
end

-- What to do a while after the answer, by route.
local AFTER = {
  extra = function(sock, id)
    send_all(sock, response(200, "OK", '{"id":"extra-' .. id .. '"}'))
  end,
  close = function(sock)
    drop(sock)
  end,
  halfclose = function(sock)
    if clients[sock] then
      clients[sock].mute = true
      if sock.shutdown then sock:shutdown("send") else drop(sock) end -- luasec has none
    end
  end,
  ["408"] = function(sock)
    send_all(sock, response(408, "Request Timeout", '{"message":"idle timeout"}', "Connection: close\r\n"))
    drop(sock)
  end,
}

local function stats()
  local parts = {}
  for id, n in pairs(ids) do parts[#parts + 1] = '"' .. id .. '":' .. n end
  return '{"accepted":' .. accepted .. ',"requests":' .. requests .. ',"ids":{'
    .. table.concat(parts, ",") .. "}}"
end

-- Serves one request; returns false when the connection is gone or muted.
local function route(sock, state, path)
  local kind, id, ms = path:match("^/(%w+)/([%w%-]+)/(%d+)$")
  if not kind then
    kind, id = path:match("^/(%w+)/([%w%-]+)$")
  end
  if id then
    requests = requests + 1
    ids[id] = (ids[id] or 0) + 1
  end
  if kind == "id" then
    return send_all(sock, tagged(state, id))
  elseif kind and AFTER[kind] and ms then
    send_all(sock, tagged(state, id))
    schedule(sock, tonumber(ms), function() AFTER[kind](sock, id) end)
    return true
  elseif kind == "truncate" then
    send_all(sock, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Conn: "
      .. state.id .. "\r\nX-Cut-Here: ")
    drop(sock)
    return false
  elseif path == "/settled" then
    if #later == 0 then return send_all(sock, response(200, "OK", "{}")) end
    waiting[#waiting + 1] = sock
    return true
  elseif path == "/stats" then
    return send_all(sock, response(200, "OK", stats()))
  elseif path == "/quit" then
    send_all(sock, response(200, "OK", "{}"))
    running = false
    return false
  end
  return send_all(sock, response(404, "Not Found", '{"error":"no route"}'))
end

local function serve_one(sock, state)
  local head_end = state.buf:find("\r\n\r\n", 1, true)
  if not head_end then
    return false
  end
  local head = state.buf:sub(1, head_end - 1)
  local length = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0
  if #state.buf < head_end + 3 + length then
    return false -- the body is still on its way
  end
  state.buf = state.buf:sub(head_end + 4 + length)
  if state.mute then
    return true -- read, never answered: the sending side is shut
  end
  local path = head:match("^%u+ (%S+) HTTP/1%.%d")
  if not path then
    send_all(sock, response(400, "Bad Request", "{}"))
    drop(sock)
    return false
  end
  return route(sock, state, (path:gsub("^/services/webshop/v1/", "/"))) and clients[sock] ~= nil
end

local function on_readable(sock)
  local state = clients[sock]
  local data, err, partial = sock:receive(65536)
  data = data or partial
  if data and #data > 0 then
    state.buf = state.buf .. data
  end
  while clients[sock] and serve_one(sock, state) do
  end
  if err == "closed" and clients[sock] then
    drop(sock)
  end
end

local function accept_tls(conn)
  if not ssl_ctx then
    return conn
  end
  local tls = assert(ssl.wrap(conn, ssl_ctx))
  tls:settimeout(5)
  if not tls:dohandshake() then
    tls:close()
    return nil
  end
  return tls
end

local function run_later(now)
  local keep = {}
  for _, l in ipairs(later) do
    if l.at <= now then
      if clients[l.sock] then l.act() end
    else
      keep[#keep + 1] = l
    end
  end
  later = keep
  if #later == 0 and #waiting > 0 then
    for _, sock in ipairs(waiting) do
      if clients[sock] then send_all(sock, response(200, "OK", "{}")) end
    end
    waiting = {}
  end
end

while running do
  local now = socket.gettime()
  if now - started > LIFETIME or now - last_activity > IDLE_LIMIT then
    break
  end
  local readers, buffered = { server }, {}
  for sock in pairs(clients) do
    readers[#readers + 1] = sock
    if sock.dirty and sock:dirty() then
      buffered[#buffered + 1] = sock
    end
  end
  local ready = socket.select(readers, nil, #buffered > 0 and 0 or 0.01)
  for _, sock in ipairs(buffered) do
    ready[#ready + 1] = sock
  end
  for _, sock in ipairs(ready) do
    last_activity = socket.gettime()
    if sock == server then
      local conn = server:accept()
      if conn then
        conn:setoption("tcp-nodelay", true)
        conn = accept_tls(conn)
      end
      if conn then
        conn:settimeout(0)
        accepted = accepted + 1
        clients[conn] = { id = accepted, buf = "" }
      end
    elseif clients[sock] then
      on_readable(sock)
    end
  end
  run_later(socket.gettime())
end

for sock in pairs(clients) do
  sock:close()
end
server:close()
