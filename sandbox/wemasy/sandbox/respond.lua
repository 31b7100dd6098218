-- Writes a JSON response from the nginx side: status, headers, body.
-- Every response of the sandbox goes through here, so every one of them is
-- Content-Type: application/json.

local json = require "wemasy.sandbox.json"

local respond = {}

-- body: a table (encoded with wemasy.sandbox.json) or an already encoded string.
function respond.send(status, body, headers)
   local text = type(body) == "string" and body or json.encode(body)
   ngx.status = status
   ngx.header["Content-Type"] = "application/json"
   ngx.header["Cache-Control"] = "no-cache, private"
   for name, value in pairs(headers or {}) do
      ngx.header[name] = value
   end
   ngx.header["Content-Length"] = #text
   ngx.print(text)
end

-- {"error":true,"message":...} (the error shape the API pages show)
function respond.error_body(message, extra)
   local list = { "error", true, "message", message }
   for i = 1, #(extra or {}), 2 do
      list[#list + 1] = extra[i]
      list[#list + 1] = extra[i + 1]
   end
   return json.object(list)
end

return respond
