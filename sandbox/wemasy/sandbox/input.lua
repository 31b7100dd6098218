-- The request's input as Laravel's $request->all() sees it: the query string,
-- overlaid by the body (JSON when Content-Type says JSON, a form when it is
-- application/x-www-form-urlencoded, nothing otherwise). A JSON body that is
-- not an object adds nothing. Then Laravel's TrimStrings and
-- ConvertEmptyStringsToNull middleware.

local cjson = require "cjson.safe"
local validate = require "wemasy.sandbox.validate"

local input = {}

-- Query/form values: a key without "=" is "", a repeated key keeps the last.
local function plain(args)
   local out = {}
   for k, v in pairs(args or {}) do
      if v == true then v = "" end
      if type(v) == "table" then v = v[#v] end
      out[k] = v
   end
   return out
end

local function body_text()
   ngx.req.read_body()
   local data = ngx.req.get_body_data()
   if data then return data end
   local file = ngx.req.get_body_file()
   if not file then return nil end
   local f = io.open(file, "rb")
   if not f then return nil end
   data = f:read("*a")
   f:close()
   return data
end

function input.read()
   local all = plain(ngx.req.get_uri_args(100))
   local ctype = (ngx.var.content_type or ""):lower()
   local body
   if ctype:find("/json", 1, true) or ctype:find("+json", 1, true) then
      local decoded = cjson.decode(body_text() or "")
      if type(decoded) == "table" then body = decoded end
   elseif ctype:find("application/x-www-form-urlencoded", 1, true) then
      ngx.req.read_body()
      body = plain(ngx.req.get_post_args(100))
   end
   for k, v in pairs(body or {}) do all[k] = v end
   return validate.normalize(all)
end

return input
