-- Checks driven by data: request bodies against the endpoint table, client
-- options against an option table.  Bad field values come back as
-- `nil, err` (they are data, often user input); a wrong option or argument
-- type is a programming mistake and raises an error naming it.
local json = require("wemasy.json")
local errors = require("wemasy.errors")

local M = {}

local MAX_SAFE_INTEGER = 2 ^ 53 -- beyond this a double (LuaJIT, JSON peers) is not exact
local has_integers = math.type ~= nil

-- A value's type for messages.  Never the value: it may be huge or a secret.
local function describe(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.floor(v) and v > -math.huge and v < math.huge then return "integer" end
    return "number"
  end
  return t
end
M.describe = describe

local function is_safe_integer(v)
  return type(v) == "number" and v == math.floor(v) and v >= -MAX_SAFE_INTEGER and v <= MAX_SAFE_INTEGER
end

local function as_integer(v)
  if has_integers then return math.tointeger(v) end
  return v
end

-- Each returns the JSON text of the value, or nil and what is wrong with it.
local encoders = {
  string = function(v)
    if is_safe_integer(v) then return json.encode_string(string.format("%d", v)) end
    if type(v) ~= "string" then return nil, "must be a string (got " .. describe(v) .. ")" end
    if v == "" then return nil, "must not be empty" end
    local s = json.encode_string(v)
    if not s then return nil, "must be valid UTF-8" end
    return s
  end,
  integer = function(v)
    if is_safe_integer(v) then return string.format("%d", as_integer(v)) end
    if type(v) == "number" and v == math.floor(v) then return nil, "is out of range (|n| <= 2^53)" end
    return nil, "must be an integer (got " .. describe(v) .. ")"
  end,
  boolean = function(v)
    if type(v) == "boolean" then return v and "true" or "false" end
    return nil, "must be a boolean (got " .. describe(v) .. ")"
  end,
}

local function add_problem(problems, name, text, state)
  problems[name] = problems[name] or {}
  table.insert(problems[name], text)
  state.first = state.first or text
end

local function field_name(k)
  if type(k) == "string" then return k end
  return "[" .. describe(k) .. " key]"
end

local function unknown_fields(ep, body, problems, state)
  for k in next, body do
    if type(k) ~= "string" or not ep.field[k] then
      local name = field_name(k)
      add_problem(problems, name, "unknown field '" .. name .. "' (" .. ep.path .. " takes: "
        .. table.concat(M.field_names(ep), ", ") .. ")", state)
    end
  end
end

function M.field_names(ep)
  local names = {}
  for i, f in ipairs(ep.fields) do names[i] = f.name end
  return names
end

-- Validates `body` (a table, raw access only) for endpoint `ep`; returns the
-- JSON request text or nil, invalid_argument error listing every problem.
function M.request(ep, body)
  local problems, state, parts = {}, {}, {}
  unknown_fields(ep, body, problems, state)
  for _, f in ipairs(ep.fields) do
    local v = rawget(body, f.name)
    if v == nil or (v == json.null and not f.nullable) then
      if f.required then add_problem(problems, f.name, "field '" .. f.name .. "' is required", state) end
    elseif v == json.null then
      parts[#parts + 1] = json.encode_string(f.name) .. ":null"
    else
      local text, why = encoders[f.type](v)
      if text then
        parts[#parts + 1] = json.encode_string(f.name) .. ":" .. text
      else
        add_problem(problems, f.name, "field '" .. f.name .. "' " .. why, state)
      end
    end
  end
  if state.first then return nil, errors.invalid_argument(ep.path, problems, state.first) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Options: name -> checker returning true or a description of what it must be.
local option_checks = {
  string = function(v) return type(v) == "string" or "a string" end,
  boolean = function(v) return type(v) == "boolean" or "a boolean" end,
  positive = function(v)
    return (type(v) == "number" and v > 0 and v < math.huge) or "a positive number of seconds"
  end,
  positive_integer = function(v)
    return (type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2 ^ 53) or "a positive integer"
  end,
  header_value = function(v)
    if type(v) ~= "string" then return "a string" end
    if v == "" or v:find("[%z\1-\31\127]") then return "a non-empty string without control characters" end
    return true
  end,
  http_url = function(v)
    if type(v) ~= "string" then return "a string" end
    if not (v:match("^[Hh][Tt][Tt][Pp][Ss]?://[^%s/?#]+") and not v:find("[%z\1-\32\127]")) then
      return "an http:// or https:// URL without spaces or control characters"
    end
    return true
  end,
}

-- Raises "<fname>: option 'x' must be ..." for a wrong option; never quotes values.
function M.options(fname, opts, spec, level)
  level = (level or 1) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", fname, describe(opts)), level)
  end
  for k, v in next, opts do
    local kind = type(k) == "string" and spec[k]
    if not kind then
      error(string.format("%s: unknown option '%s'", fname, field_name(k)), level)
    end
    local ok = option_checks[kind](v)
    if ok ~= true then
      error(string.format("%s: option '%s' must be %s (got %s)", fname, k, ok, describe(v)), level)
    end
  end
  return opts
end

return M
