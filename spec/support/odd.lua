-- Starting, asking and stopping spec/support/odd_server.lua from a spec.
local core = require "wemasy.core"
local h = require "support.helpers"

local M = {}

-- Returns { url = "http://127.0.0.1:<port>", pipe = ... }.
function M.start()
  local pipe, port = h.launch("odd_server")
  return { url = "http://127.0.0.1:" .. port, pipe = pipe }
end

function M.stop(srv)
  if not srv then return end
  local c = h.plain(srv.url)
  c:request("/quit", "")
  c:close()
  srv.pipe:close()
end

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

local names = 0
function M.name(tag)
  names = names + 1
  return (tag or "n") .. names .. "-" .. math.random(1, 1e6)
end

function M.count(srv, name)
  local c = core.new { base_url = srv.url, rate_limit = false, max_retries = 0 }
  local status, body = c:request("/count/" .. name, "")
  c:close()
  assert(status == 200, "count failed: " .. tostring(body))
  return tonumber(body)
end

return M
