-- An API that is down, in the ways APIs go down, for the circuit breaker's
-- specs (spec/client/breaker_spec.lua), on 127.0.0.1 only.
--
--   lua5.4 spec/support/down_server.lua [lifetime_seconds]
--
-- Prints "READY <control port>", then "API <api port>".  The API port answers every
-- request (whatever its path) by the mode, which the control port sets:
--   refuse   nothing listens on the API port: connections are refused
--   hang     requests are read and never answered
--   503      503 {"error": true, "message": "down"}
--   ok       200 {"error": false, "data": {}}          (the mode at start)
-- Control routes: /mode/M (drops every API connection, so a kept-alive one
-- cannot carry on in the old mode), /count (requests the API port has read,
-- answered or not), /quit.  It stops on /quit, after `lifetime_seconds`
-- (default 120) or after 30 idle seconds.
local socket = require "socket"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local httpd = require "httpd"

local srv = httpd.new { lifetime = tonumber(arg[1]) or 120, tick = 0.005 }
local response = httpd.response

local api, api_port
local function listen()
  api = assert(socket.bind("127.0.0.1", api_port or 0))
  api:settimeout(0)
  api_port = select(2, api:getsockname())
end
listen()
io.stdout:write("API ", api_port, "\n")
io.stdout:flush()

local mode, count = "ok", 0

local ANSWERS = {
  ["503"] = response(503, '{"error": true, "message": "down"}'),
  ok = response(200, '{"error": false, "data": {}}'),
}

local function set_mode(m)
  for sock, state in pairs(srv.clients) do
    if state.api then srv:drop(sock) end
  end
  if m == "refuse" and api then
    api:close()
    api = nil
  elseif m ~= "refuse" and not api then
    listen()
  end
  mode = m
end

local function control(sock, req)
  local m = req.path:match("^/mode/(%w+)$")
  if m and (ANSWERS[m] or m == "hang" or m == "refuse") then
    set_mode(m)
    srv:send(sock, response(200, "{}"))
  elseif req.path == "/count" then
    srv:send(sock, response(200, tostring(count)))
  elseif req.path == "/quit" then
    srv:send(sock, response(200, "{}"))
    srv:stop()
  else
    srv:send(sock, response(404, "{}"))
  end
  return true
end

-- API connections join the loop's clients, marked, as they are accepted.
local function accept_api()
  while api do
    local conn = api:accept()
    if not conn then return end
    conn:settimeout(0)
    srv.accepted = srv.accepted + 1
    srv.clients[conn] = { id = srv.accepted, buf = "", api = true }
  end
end

srv:run(function(sock, state, req)
  if not state.api then return control(sock, req) end
  count = count + 1
  if mode == "hang" then return false end -- read, never answered
  srv:send(sock, ANSWERS[mode])
  return true
end, accept_api)
if api then api:close() end
