-- One HTTP request on a new connection, with luasocket's socket.http alone
-- (the sandbox's own specs speak to it without wemasy).
local cjson = require "cjson.safe"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

-- Returns { status, body, headers (lower-case names), json (nil unless the
-- body is JSON) }; raises when no answer came.
function M.request(method, url, body, headers)
   local h = {}
   for k, v in pairs(headers or {}) do h[k:lower()] = v end
   local source
   if body then
      h["content-length"] = tostring(#body)
      source = ltn12.source.string(body)
   end
   local chunks = {}
   local ok, status, rheaders = http.request{
      url = url, method = method, headers = h, source = source,
      sink = ltn12.sink.table(chunks),
   }
   assert(ok, "request to " .. url .. " failed: " .. tostring(status))
   local text = table.concat(chunks)
   return { status = status, body = text, headers = rheaders, json = cjson.decode(text) }
end

return M
