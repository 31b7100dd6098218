-- Starting, asking and stopping spec/support/odd_server.lua from a spec.
local h = require "support.helpers"

local M = {}

-- Returns { url = "http://127.0.0.1:<port>", pipe = ... }.
function M.start()
  local pipe, port = h.launch("odd_server")
  return { url = "http://127.0.0.1:" .. port, pipe = pipe }
end

-- Asks it to quit (POST /quit) and waits for it.
M.stop = h.stop_server

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A base_url under which every request gets exactly `bytes` back, counted
-- under `name`.
function M.raw_url(srv, name, bytes)
  return srv.url .. "/c/" .. name .. "/raw/" .. M.hex(bytes)
end

-- An HTTP/1.1 response with these header lines ("Name: value" each) and body.
function M.response(status, header_lines, body)
  body = body or "{}"
  return "HTTP/1.1 " .. status .. " X\r\n" .. table.concat(header_lines or {}, "\r\n")
    .. ((header_lines and #header_lines > 0) and "\r\n" or "")
    .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
end

-- Counted as on tiny_server: /c/NAME/..., then M.count(srv, NAME).
M.name, M.count = h.counter, h.count

return M
