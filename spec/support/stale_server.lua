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
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local httpd = require "httpd"

-- Our pid too, so a spec can kill a server stuck in a TLS library call.
local srv = httpd.new { lifetime = tonumber(arg[1]) or 120, cert = arg[2], key = arg[3], tick = 0.01, with_pid = true }

local later = {}     -- { at = time, sock = s, act = function }
local waiting = {}   -- sockets waiting for /settled
local requests, ids = 0, {}

local response = httpd.response

local function tagged(state, id)
  return response(200, '{"id":"' .. id .. '"}', "X-Conn: " .. state.id .. "\r\n")
end

local function schedule(sock, ms, act)
  later[#later + 1] = { at = socket.gettime() + ms / 1000, sock = sock, act = act }
end

-- What to do a while after the answer, by route.
local AFTER = {
  extra = function(sock, id)
    srv:send(sock, response(200, '{"id":"extra-' .. id .. '"}'))
  end,
  close = function(sock)
    srv:drop(sock)
  end,
  halfclose = function(sock)
    if srv.clients[sock] then
      srv.clients[sock].mute = true
      if sock.shutdown then sock:shutdown("send") else srv:drop(sock) end -- luasec has none
    end
  end,
  ["408"] = function(sock)
    srv:send(sock, response(408, '{"message":"idle timeout"}', "Connection: close\r\n"))
    srv:drop(sock)
  end,
}

local function stats()
  local parts = {}
  for id, n in pairs(ids) do parts[#parts + 1] = '"' .. id .. '":' .. n end
  return '{"accepted":' .. srv.accepted .. ',"requests":' .. requests .. ',"ids":{'
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
    return srv:send(sock, tagged(state, id))
  elseif kind and AFTER[kind] and ms then
    srv:send(sock, tagged(state, id))
    schedule(sock, tonumber(ms), function() AFTER[kind](sock, id) end)
    return true
  elseif kind == "truncate" then
    srv:send(sock, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Conn: "
      .. state.id .. "\r\nX-Cut-Here: ")
    srv:drop(sock)
    return false
  elseif path == "/settled" then
    if #later == 0 then return srv:send(sock, response(200, "{}")) end
    waiting[#waiting + 1] = sock
    return true
  elseif path == "/stats" then
    return srv:send(sock, response(200, stats()))
  elseif path == "/quit" then
    srv:send(sock, response(200, "{}"))
    srv:stop()
    return false
  end
  return srv:send(sock, response(404, '{"error":"no route"}'))
end

-- Muted connections are read and never answered: their sending side is shut.
local function serve(sock, state, req)
  if state.mute then return true end
  return route(sock, state, (req.path:gsub("^/services/webshop/v1/", "/")))
end

local function run_later(now)
  local keep = {}
  for _, l in ipairs(later) do
    if l.at <= now then
      if srv.clients[l.sock] then l.act() end
    else
      keep[#keep + 1] = l
    end
  end
  later = keep
  if #later == 0 and #waiting > 0 then
    for _, sock in ipairs(waiting) do
      if srv.clients[sock] then srv:send(sock, response(200, "{}")) end
    end
    waiting = {}
  end
end

srv:run(serve, run_later)
