-- Laravel-style validation: rules, messages and the 422 body, as Laravel 10
-- produces them with its English language lines.
--
--   local errors = validate.check(input, rules)  -- nil when valid
--   local body   = validate.body(errors)         -- {message=..., errors={...}}
--
-- rules is a list, in the order the fields are reported:
--   { { "order_id", { "required", "integer", validate.exists(fn) } }, ... }
-- input is the request input as decoded (cjson.null for JSON null).
--
-- What Laravel does and this does too:
-- * `required` fails for a missing field, null, "" (after trimming), and an
--   empty array; after a failed `required` the field's other rules are skipped.
-- * a missing (or, with `nullable`, null) field skips every other rule.
-- * the other rules all run, so one field can collect several messages
--   (e.g. "abc" for an integer that must exist: both messages).
-- * the message is the first message, plus " (and N more error[s])".

local json = require "wemasy.sandbox.json"

local validate = {}

local null = json.null

local function is_null(v)
   return v == nil or v == null
end

-- Laravel's TrimStrings + ConvertEmptyStringsToNull middleware, applied to
-- the request input before validation (and before the handler sees it).
function validate.normalize(input)
   if type(input) ~= "table" then return {} end
   local out = {}
   for k, v in pairs(input) do
      if type(v) == "string" then
         v = v:match("^%s*(.-)%s*$")
         if v == "" then v = null end
      elseif type(v) == "table" and v ~= null then
         v = validate.normalize(v)
      end
      out[k] = v
   end
   return out
end

local function attribute(field)
   return (field:gsub("_", " "))
end

local function is_empty(v)
   if is_null(v) then return true end
   if type(v) == "string" then return v:match("^%s*$") ~= nil end
   if type(v) == "table" then return next(v) == nil end
   return false
end

-- Laravel's `integer`: PHP's FILTER_VALIDATE_INT — whole numbers, and
-- strings of an optional sign and digits without leading zeros. Booleans fail.
local function is_integer(v)
   if type(v) == "number" then
      return v == math.floor(v) and v > -2^63 and v < 2^63
   end
   if type(v) == "string" then
      local s = v:match("^%s*(.-)%s*$")
      return s:match("^[+-]?0$") ~= nil or s:match("^[+-]?[1-9]%d*$") ~= nil
         and #s:gsub("^[+-]", "") <= 18
   end
   return false
end

-- Laravel's `boolean`: true, false, 1, 0, "1", "0".
local function is_boolean(v)
   return v == true or v == false or v == 0 or v == 1 or v == "0" or v == "1"
end

local checks = {
   string = {
      test = function(v) return type(v) == "string" end,
      message = "The %s field must be a string.",
   },
   integer = { test = is_integer, message = "The %s field must be an integer." },
   boolean = { test = is_boolean, message = "The %s field must be true or false." },
}

-- A rule like Laravel's exists:table,column: fn(value) -> truthy when found.
function validate.exists(fn)
   return { test = fn, message = "The selected %s is invalid." }
end

-- Converts a value that passed `integer` to a Lua integer (or nil).
function validate.to_integer(v)
   local n = tonumber(type(v) == "string" and v:match("^%s*%+?(.-)%s*$") or v)
   if not n or n ~= math.floor(n) then return nil end
   return math.tointeger and math.tointeger(n) or n
end

-- Converts a value that passed `boolean` (or is null/missing) to true/false/nil.
function validate.to_boolean(v)
   if v == true or v == 1 or v == "1" then return true end
   if v == false or v == 0 or v == "0" then return false end
   return nil
end

-- Returns nil when input passes, else an ordered table field -> { messages }.
function validate.check(input, rules)
   local errors, order = {}, {}
   for _, spec in ipairs(rules) do
      local field, field_rules = spec[1], spec[2]
      local value = input[field]
      local name = attribute(field)
      local messages = {}
      local required, nullable = false, false
      for _, rule in ipairs(field_rules) do
         if rule == "required" then required = true end
         if rule == "nullable" then nullable = true end
      end
      if required and is_empty(value) then
         messages[1] = string.format("The %s field is required.", name)
      elseif not (value == nil or (nullable and value == null)) then
         for _, rule in ipairs(field_rules) do
            local check = type(rule) == "table" and rule or checks[rule]
            if check and not check.test(value) then
               messages[#messages + 1] = string.format(check.message, name)
            end
         end
      end
      if #messages > 0 then
         errors[field] = json.array(messages)
         order[#order + 1] = field
      end
   end
   if #order == 0 then return nil end
   return json.order(errors, order)
end

-- The 422 body for errors returned by validate.check.
function validate.body(errors)
   local all = {}
   for _, field in ipairs(json.keys(errors)) do
      for _, m in ipairs(errors[field]) do all[#all + 1] = m end
   end
   local message = all[1]
   local more = #all - 1
   if more > 0 then
      message = string.format("%s (and %d more error%s)", message, more, more == 1 and "" or "s")
   end
   return json.object{ "message", message, "errors", errors }
end

return validate
