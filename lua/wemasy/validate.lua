-- Request bodies checked against the endpoint table.  Bad field values come
-- back as `nil, err` (they are data, often user input).  (Client options are
-- checked by the C core, in one place.)
local args = require("wemasy.args")
local json = require("wemasy.json")
local errors = require("wemasy.errors")

local M = {}

local MAX_SAFE_INTEGER = 2 ^ 53 -- beyond this a double (LuaJIT, JSON peers) is not exact
local has_integers = math.type ~= nil
local describe = args.describe

local function is_safe_integer(v)
  return type(v) == "number" and v == math.floor(v) and v >= -MAX_SAFE_INTEGER and v <= MAX_SAFE_INTEGER
end

local function as_integer(v)
  if has_integers then return math.tointeger(v) end
  return v
end

-- What lua-cjson escapes (control characters, '"', '/', '\\'), and bytes that
-- need the UTF-8 check.  A string without any is its own JSON text in quotes.
local NEEDS_WORK = '[%c"/\\\128-\255]'

-- Each returns the JSON text of the value, or nil and what is wrong with it.
local encoders = {
  string = function(v)
    if is_safe_integer(v) then return json.encode_string(string.format("%d", v)) end
    if type(v) ~= "string" then return nil, "must be a string (got " .. describe(v) .. ")" end
    if v == "" then return nil, "must not be empty" end
    if not v:find(NEEDS_WORK) then return '"' .. v .. '"' end
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

-- '"name":' of a field, made once per field (every call of an endpoint sends it).
local key_of = setmetatable({}, { __mode = "k" })

local function key(f)
  local k = key_of[f]
  if not k then
    k = json.encode_string(f.name) .. ":"
    key_of[f] = k
  end
  return k
end

-- Why a field is refused when the body would pass `limit` bytes with it.
local function too_large(limit)
  return string.format("makes the request body larger than max_request_body (%d bytes)", limit)
end

-- Validates `body` (a table, raw access only) for endpoint `ep`; returns the
-- JSON request text or nil, invalid_argument error listing every problem.
-- With `limit`, the text may be at most that many bytes: a string field
-- that would pass it is refused before it is encoded (lua-cjson crashes on
-- a string of a few hundred MB), and so is one whose escapes pass it.
-- The tables for problems are made only when there is one.
function M.request(ep, body, limit)
  local problems, state
  for k in next, body do
    if type(k) ~= "string" or not ep.field[k] then
      problems, state = {}, {}
      unknown_fields(ep, body, problems, state)
      break
    end
  end
  local parts, n, size = {}, 0, 2 -- size: the text so far, braces included
  for _, f in ipairs(ep.fields) do
    local v = rawget(body, f.name)
    local text, why
    if v == nil or (v == json.null and not f.nullable) then
      if f.required then why = "is required" end
    elseif v == json.null then
      text = "null"
    elseif limit and type(v) == "string" and size + #key(f) + #v + 2 + (n > 0 and 1 or 0) > limit then
      why = too_large(limit) -- even unescaped, in quotes, it would not fit
    else
      text, why = encoders[f.type](v)
    end
    if text then
      local part = key(f) .. text
      local grown = size + #part + (n > 0 and 1 or 0)
      if limit and grown > limit then
        why = too_large(limit)
      else
        n, size = n + 1, grown
        parts[n] = part
      end
    end
    if why then
      problems, state = problems or {}, state or {}
      add_problem(problems, f.name, "field '" .. f.name .. "' " .. why, state)
    end
  end
  if state then return nil, errors.invalid_argument(ep.path, problems, state.first) end
  if n == 1 then return "{" .. parts[1] .. "}" end
  return "{" .. table.concat(parts, ",", 1, n) .. "}"
end

return M
