-- Request bodies checked against the endpoint table.  Bad field values come
-- back as `nil, err` (they are data, often user input).  (Client options are
-- checked by the C core, in one place.)
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

return M
