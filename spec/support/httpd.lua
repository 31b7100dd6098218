-- What our HTTP/1.1 test servers (tiny_server, stale_server, odd_server)
-- share: a listening socket on 127.0.0.1, the "READY <port>" line, the
-- select() loop over keep-alive connections, request parsing and response
-- writing.  Each server brings only its routes:
--
--   package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
--   local httpd = require "httpd"
--   local srv = httpd.new{ lifetime = 120, cert = arg[2], key = arg[3] }
--   srv:run(function(sock, state, req) ... end)
--
-- The handler gets each complete request, { head, path, body } (path as on
-- the request line), with the connection's state { id = n (1, 2, ... in
-- order of accept), buf }; it answers with srv:send(sock, bytes) and returns
-- true to go on with the next request buffered on that connection.
-- The loop stops on srv:stop(), after `lifetime` seconds (default 120) or
-- after 30 idle seconds, so a crashed spec can never leave a server running.
local socket = require "socket"

local M = {}

local IDLE_LIMIT = 30

M.REASONS = {
  [100] = "Continue", [200] = "OK", [204] = "No Content", [302] = "Found",
  [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found", [408] = "Request Timeout",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [503] = "Service Unavailable",
}

-- A JSON response with a Content-Length; extra: more header lines, each
-- ending in "\r\n".
function M.response(status, body, extra, reason)
  return table.concat {
    "HTTP/1.1 ", status, " ", reason or M.REASONS[status] or "Status", "\r\n",
    extra or "",
    "Content-Type: application/json\r\n",
    "Content-Length: ", #body, "\r\n\r\n",
    body,
  }
end

local Server = {}
Server.__index = Server

-- opts: lifetime (seconds), cert and key (HTTPS, with luasec), tick (the
-- longest select() wait), with_pid (the READY line also gives our pid, so
-- that a spec can kill a server stuck in a TLS library call).
function M.new(opts)
  local self = setmetatable({
    lifetime = opts.lifetime or 120, tick = opts.tick or 0.02,
    clients = {}, -- socket -> { id = n, buf = string }
    accepted = 0, running = true,
  }, Server)
  if opts.cert then
    self.ssl = require "ssl"
    self.ssl_ctx = assert(self.ssl.newcontext {
      mode = "server", protocol = "any", certificate = opts.cert, key = opts.key,
      options = { "all", "no_sslv3" },
    })
  end
  self.server = assert(socket.bind("127.0.0.1", 0))
  self.server:settimeout(0)
  local _, port = self.server:getsockname()
  local ready = { "READY ", port }
  if opts.with_pid then
    local stat = io.open("/proc/self/stat")
    ready[#ready + 1] = " " .. (stat and stat:read("*l"):match("^%d+") or "?")
    if stat then stat:close() end
  end
  io.stdout:write(table.concat(ready), "\n")
  io.stdout:flush()
  return self
end

function Server:drop(sock)
  self.clients[sock] = nil
  sock:close()
end

-- The client may stop reading (libcurl does, past its header limits): a
-- failed send only ends that connection.
function Server.send(_, sock, data)
  sock:settimeout(5)
  local ok = sock:send(data)
  sock:settimeout(0)
  return ok
end

function Server:stop()
  self.running = false
end

-- Reads the rest of a body whose length is known, blocking briefly: the
-- client sends it right after the head.
local function read_body(sock, state, length)
  local have = state.buf
  if #have < length then
    sock:settimeout(5)
    local rest = sock:receive(length - #have)
    sock:settimeout(0)
    if not rest then return nil end
    have = have .. rest
  end
  state.buf = have:sub(length + 1)
  return have:sub(1, length)
end

-- Serves the first request in the buffer; false when there is none (yet),
-- or the handler is done with the connection.
local function serve_one(self, sock, state, handler)
  local head_end = state.buf:find("\r\n\r\n", 1, true)
  if not head_end then return false end
  local head = state.buf:sub(1, head_end - 1)
  state.buf = state.buf:sub(head_end + 4)
  local path = head:match("^%u+ (%S+) HTTP/1%.%d")
  local body = read_body(sock, state, tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0)
  if not path or not body then
    self:send(sock, M.response(400, "{}"))
    self:drop(sock)
    return false
  end
  return handler(sock, state, { head = head, path = path, body = body }) and self.clients[sock] ~= nil
end

local function on_readable(self, sock, handler)
  local state = self.clients[sock]
  local data, err, partial = sock:receive(65536)
  data = data or partial
  if data and #data > 0 then state.buf = state.buf .. data end
  if not self.ssl_ctx and state.buf:byte(1) == 0x16 then -- a TLS ClientHello, not HTTP
    self:send(sock, M.response(400, "this is plain http"))
    self:drop(sock)
    return
  end
  while self.clients[sock] and serve_one(self, sock, state, handler) do end
  if err == "closed" and self.clients[sock] then self:drop(sock) end
end

-- A blocking handshake keeps this simple; the specs connect one at a time.
local function accept_tls(self, conn)
  if not self.ssl_ctx then return conn end
  local tls = assert(self.ssl.wrap(conn, self.ssl_ctx))
  tls:settimeout(5)
  if not tls:dohandshake() then -- e.g. the client rejected our certificate
    tls:close()
    return nil
  end
  return tls
end

local function accept(self)
  local conn = self.server:accept()
  if conn then
    conn:setoption("tcp-nodelay", true)
    conn = accept_tls(self, conn)
  end
  if conn then
    conn:settimeout(0)
    self.accepted = self.accepted + 1
    self.clients[conn] = { id = self.accepted, buf = "" }
  end
end

-- Serves until stopped; on_tick(now), if given, runs after every select().
function Server:run(handler, on_tick)
  local started = socket.gettime()
  local last_activity = started
  while self.running do
    local now = socket.gettime()
    if now - started > self.lifetime or now - last_activity > IDLE_LIMIT then break end
    local readers, buffered = { self.server }, {}
    for sock in pairs(self.clients) do
      readers[#readers + 1] = sock
      -- TLS may hold decrypted bytes that select() cannot see
      if sock.dirty and sock:dirty() then buffered[#buffered + 1] = sock end
    end
    local ready = socket.select(readers, nil, #buffered > 0 and 0 or self.tick)
    for _, sock in ipairs(buffered) do ready[#ready + 1] = sock end
    for _, sock in ipairs(ready) do
      last_activity = socket.gettime()
      if sock == self.server then
        accept(self)
      elseif self.clients[sock] then
        on_readable(self, sock, handler)
      end
    end
    if on_tick then on_tick(socket.gettime()) end
  end
  for sock in pairs(self.clients) do sock:close() end
  self.server:close()
end

return M
