-- A pretty printer for the REPL and the command line: responses as indented
-- Lua tables (keys sorted, so the same value always prints the same way),
-- wemasy.null as `null`, errors as their one line plus the field errors, the
-- client as its tostring.  Cycles and tables already shown print as a marker;
-- tables deeper than `max_depth` print as `{...}`.  Never raises.
--
--   local pretty = require("wemasy.pretty")
--   print(pretty(body))                       -- pretty.format(body)
--   pretty.print(body, err)                   -- like print, every value formatted
--   pretty.format(body, { color = true, indent = "  ", max_depth = 12, width = 100 })
--
-- Written here rather than on lua-inspect: Debian ships that for LuaJIT only,
-- and the output must be the same on both interpreters (and know wemasy.null).
local json = require("wemasy.json")
local errors = require("wemasy.errors")

local M = {}

M.DEFAULTS = { color = false, indent = "  ", max_depth = 12, width = 100 }

-- ANSI SGR codes per kind of token.
local COLORS = {
  string = "32", number = "36", boolean = "33", null = "35", key = "1",
  error = "31", field = "33", meta = "2", other = "35",
}

local IDENTIFIER = "^[%a_][%w_]*$"
local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function paint(opts, kind, text)
  if not opts.color then return text end
  return "\27[" .. COLORS[kind] .. "m" .. text .. "\27[0m"
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c\\"]', function(c)
    return ESCAPES[c] or string.format("\\%03d", c:byte())
  end) .. '"'
end

-- Integral floats print without ".0" (2502, as in the JSON); others print in
-- the shortest form that reads back as the same double (129.99551).
local function number_text(n)
  if n ~= n then return "nan" end
  if n == math.huge then return "inf" elseif n == -math.huge then return "-inf" end
  if math.type and math.type(n) == "integer" then return string.format("%d", n) end
  if n == math.floor(n) and math.abs(n) < 2 ^ 53 then return string.format("%d", n) end
  return json.shortest_float(n, 14)
end

local function is_client(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == "wemasy.client"
end

-- tostring through a __tostring metamethod, protected; nil when there is none.
local function own_tostring(v)
  local mt = getmetatable(v)
  if type(mt) ~= "table" or rawget(mt, "__tostring") == nil then return nil end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return nil
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    if ta == "number" then return true elseif tb == "number" then return false end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function key_text(opts, k)
  if type(k) == "string" and k:match(IDENTIFIER) and not KEYWORDS[k] then return paint(opts, "key", k) end
  if type(k) == "string" then return "[" .. paint(opts, "string", quote(k)) .. "]" end
  if type(k) == "number" then return "[" .. paint(opts, "number", number_text(k)) .. "]" end
  return "[" .. paint(opts, "other", tostring(k)) .. "]"
end

-- The one line and, under it, "field: message; message" per field error.
local function error_lines(opts, err)
  local lines = { paint(opts, "error", tostring(err)) }
  local fields = rawget(err, "errors")
  if type(fields) == "table" then
    local names = {}
    for name in next, fields do names[#names + 1] = name end
    table.sort(names, key_order)
    for _, name in ipairs(names) do
      local msgs = fields[name]
      local text
      if type(msgs) == "table" then
        local parts = {}
        for i = 1, #msgs do parts[i] = tostring(msgs[i]) end
        text = table.concat(parts, "; ")
      else
        text = tostring(msgs)
      end
      lines[#lines + 1] = "  " .. paint(opts, "field", tostring(name)) .. ": " .. text
    end
  end
  return lines
end

local format_value

-- Formats a plain table: on one line when it holds only short scalars and fits
-- the width, else one entry per line.
local function format_table(t, opts, depth, state)
  if state.path[t] then return paint(opts, "meta", "<cycle>") end
  if state.shown[t] then return paint(opts, "meta", "<table shown above>") end
  if depth >= opts.max_depth then return paint(opts, "meta", "{...}") end
  state.shown[t], state.path[t] = true, true

  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in next, t do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)

  -- A table inside forces one entry per line (markers and {} do not).
  local entries, nested = {}, false
  local function value_text(v)
    local text = format_value(v, opts, depth + 1, state)
    if text:sub(1, 1) == "{" and text ~= "{}" then nested = true end
    return text
  end
  for i = 1, n do
    entries[#entries + 1] = value_text(rawget(t, i))
  end
  for _, k in ipairs(keys) do
    entries[#entries + 1] = key_text(opts, k) .. " = " .. value_text(rawget(t, k))
  end
  state.path[t] = nil

  if #entries == 0 then return "{}" end
  local pad = opts.indent:rep(depth)
  if not nested then
    local line = "{ " .. table.concat(entries, ", ") .. " }"
    local visible = opts.color and line:gsub("\27%[[%d;]*m", "") or line
    if #pad + #visible <= opts.width and not line:find("\n", 1, true) then return line end
  end
  local inner = pad .. opts.indent
  return "{\n" .. inner .. table.concat(entries, ",\n" .. inner) .. "\n" .. pad .. "}"
end

function format_value(v, opts, depth, state)
  local t = type(v)
  if v == json.null then return paint(opts, "null", "null") end
  if t == "string" then return paint(opts, "string", quote(v)) end
  if t == "number" then return paint(opts, "number", number_text(v)) end
  if t == "boolean" then return paint(opts, "boolean", tostring(v)) end
  if t == "nil" then return paint(opts, "null", "nil") end
  if t ~= "table" then return paint(opts, "other", own_tostring(v) or tostring(v)) end
  if errors.is_error(v) then
    local lines = error_lines(opts, v)
    return table.concat(lines, "\n" .. opts.indent:rep(depth))
  end
  if is_client(v) then return paint(opts, "other", tostring(v)) end
  local s = own_tostring(v)
  if s then return paint(opts, "other", s) end
  return format_table(v, opts, depth, state)
end

local function options(given)
  local opts = {}
  for k, v in pairs(M.DEFAULTS) do opts[k] = v end
  if type(given) == "table" then
    for k, v in pairs(given) do opts[k] = v end
  end
  opts.color = opts.color == true
  return opts
end

-- The text of one value.
function M.format(v, opts)
  opts = options(opts)
  local ok, text = pcall(format_value, v, opts, 0, { path = {}, shown = {} })
  if ok then return text end
  return "<wemasy.pretty could not format a " .. type(v) .. ": " .. tostring(text) .. ">"
end

-- Like print: every argument formatted, tab-separated, one line feed.
-- `pretty.print_to(file, opts, ...)` writes elsewhere or in colour.
function M.print_to(file, opts, ...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = type(v) == "string" and v or M.format(v, opts)
  end
  file:write(table.concat(parts, "\t"), "\n")
end

function M.print(...)
  M.print_to(io.stdout, nil, ...)
end

-- Colour when this process's stdout (or the fd given) is a terminal and
-- NO_COLOR is unset (https://no-color.org).
function M.is_terminal(fd)
  local ok, how, code = os.execute("test -t " .. (fd or 1))
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
  return ok == true and how == "exit" and code == 0
end

function M.want_color(fd)
  local no_color = os.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return M.is_terminal(fd)
end

return setmetatable(M, { __call = function(_, v, opts) return M.format(v, opts) end })
