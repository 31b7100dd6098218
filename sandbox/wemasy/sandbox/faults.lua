-- Fault injection: what a fault may say (checked the same in the launcher,
-- which raises, and in nginx, which answers 422) and the queue of pending
-- faults, kept in the lua_shared_dict "wemasy_faults" so that every worker
-- takes from the same queue. What each kind does to a request is
-- wemasy.sandbox.inject.
--
-- A fault: { kind = "status", path = "orders/detail" | "*", count = 1 | n | -1, <options of the kind> }
--   path   an endpoint path under services/webshop/v1/, or "*" (any endpoint)   ["*"]
--   count  how many requests it applies to; -1 until cleared                   [1]
--
-- The pure part (KINDS, check) runs in Lua 5.4, LuaJIT and nginx; the queue
-- (add, clear, list, take) only in nginx.

local api = require "wemasy.endpoints"

local faults = {}

local MB = 1024 * 1024

-- Option checkers: each returns true when the value is good, plus a
-- description for the error message.
local function integer(min, max)
   return function(v)
      return type(v) == "number" and v == math.floor(v) and v >= min and v <= max
   end, string.format("an integer from %d to %d", min, max)
end

local function number(min, max, exclusive_min)
   return function(v)
      return type(v) == "number" and v == v and (exclusive_min and v > min or not exclusive_min and v >= min)
         and v <= max
   end, string.format("a number of seconds %s %s, at most %s", exclusive_min and "above" or "from",
      tostring(min), tostring(max))
end

local function text(max)
   return function(v) return type(v) == "string" and #v <= max end,
      string.format("a string of at most %d bytes", max)
end

local function header_text(max)
   return function(v) return type(v) == "string" and #v <= max and not v:find("[%c]") end,
      string.format("a string of at most %d bytes without control characters", max)
end

local HOUR = 3600

local OPTION = {}
do
   local function def(name, check, what) OPTION[name] = { check = check, what = what } end
   def("status", integer(200, 599))
   def("body", text(64 * 1024))
   def("content_type", header_text(200))
   def("retry_after", integer(0, 86400))
   def("seconds", number(0, HOUR))
   def("interval", number(0, 60, true))
   def("bytes", integer(2, 2 ^ 40))
   def("location", header_text(2000))
end

-- Each kind: its options and their defaults (false: optional, no default).
faults.KINDS = {
   status = { status = 500, body = false, content_type = false, retry_after = false },
   rate_limited = { retry_after = 1 },
   delay = { seconds = 1 },
   reset_before = {},
   reset_after_headers = {},
   no_headers = { seconds = 30 },
   trickle = { seconds = 2, interval = 0.2 },
   short_body = { bytes = 64 },
   malformed_json = {},
   html = {},
   big_body = { bytes = 50 * MB },
   empty_200 = {},
   redirect = { location = "/api/elsewhere" },
}

local function kind_names()
   local list = {}
   for name in pairs(faults.KINDS) do list[#list + 1] = name end
   table.sort(list)
   return table.concat(list, ", ")
end

-- Describes a bad value without running any of its metamethods (also used by
-- wemasy.sandbox's option checks).
local function describe(v)
   local t = type(v)
   if t == "string" then
      return #v > 40 and string.format("a string of %d bytes", #v) or string.format("%q", v)
   elseif t == "number" or t == "boolean" or t == "nil" then
      return tostring(v)
   end
   return "a " .. t
end
faults.describe = describe

local function is_path(p)
   return p == "*" or (api[p] ~= nil and type(api[p]) == "table" and api[p].path == p)
end

-- Checks a fault and fills in its defaults. Returns the fault as a new plain
-- table, or nil, "message naming the field". Ignores metatables.
function faults.check(spec)
   if type(spec) ~= "table" then
      return nil, "a fault must be a table (got " .. describe(spec) .. ")"
   end
   local kind = rawget(spec, "kind")
   if type(kind) ~= "string" then
      return nil, "fault field 'kind' must be a string, one of " .. kind_names() .. " (got " .. describe(kind) .. ")"
   end
   local options = faults.KINDS[kind]
   if not options then
      return nil, "fault field 'kind' must be one of " .. kind_names() .. " (got " .. describe(kind) .. ")"
   end
   local out = { kind = kind, path = "*", count = 1 }
   for k, v in next, spec do
      if k == "path" then
         if type(v) ~= "string" or not is_path(v) then
            return nil, "fault field 'path' must be \"*\" or an endpoint path such as \"orders/detail\" (got "
               .. describe(v) .. ")"
         end
         out.path = v
      elseif k == "count" then
         if type(v) ~= "number" or v ~= math.floor(v) or not (v >= 1 and v <= 2 ^ 31 or v == -1) then
            return nil, "fault field 'count' must be a positive integer, or -1 for until cleared (got "
               .. describe(v) .. ")"
         end
         out.count = v
      elseif k == "kind" then
         out.kind = kind
      elseif type(k) ~= "string" or not OPTION[k] then
         return nil, "fault field " .. describe(k) .. " is not known"
      elseif options[k] == nil then
         return nil, "fault field '" .. k .. "' does not apply to kind '" .. kind .. "'"
      else
         local check, what = OPTION[k].check, OPTION[k].what
         if not check(v) then
            return nil, "fault field '" .. k .. "' must be " .. what .. " (got " .. describe(v) .. ")"
         end
         out[k] = v
      end
   end
   for name, default in pairs(options) do
      if out[name] == nil and default ~= false then out[name] = default end
   end
   return out
end

------------------------------------------------------------------ the queue (nginx only)

-- Keys in the dict:
--   seq          the last id given out (ids grow; the queue's order)
--   low          no fault with a smaller id is left
--   f:<id>       the fault, JSON
--   left:<id>    how many requests it still applies to (absent when count is -1)

local function dict()
   return assert(ngx.shared.wemasy_faults, "lua_shared_dict wemasy_faults is missing")
end

-- Decoded faults by their JSON text: a fault never changes once queued.
local decoded = setmetatable({}, { __mode = "k" })

local function decode(raw)
   local f = decoded[raw]
   if not f then
      f = require("cjson.safe").decode(raw)
      if type(f) ~= "table" then return nil end
      decoded[raw] = f
   end
   return f
end

-- Queues a checked fault (from faults.check); returns it with its id.
function faults.add(fault)
   local d = dict()
   local id = assert(d:incr("seq", 1, 0))
   fault.id = id
   if fault.count ~= -1 then
      assert(d:set("left:" .. id, fault.count))
   end
   local ok, err = d:set("f:" .. id, require("cjson.safe").encode(fault))
   if not ok then
      d:delete("left:" .. id)
      return nil, "cannot queue the fault: " .. tostring(err)
   end
   return fault
end

function faults.clear()
   dict():flush_all()
end

-- Calls fn(id, fault, raw) for each queued fault, oldest first.
local function each(d, fn)
   local seq = d:get("seq") or 0
   local low = d:get("low") or 1
   local first_live
   for id = low, seq do
      local raw = d:get("f:" .. id)
      if raw then
         first_live = first_live or id
         local f = decode(raw)
         if f and fn(id, f) then return end
      end
   end
   -- Ids below the first one still queued never come back: skip them next time.
   local up_to = first_live or (seq + 1)
   if up_to > low then d:set("low", up_to) end
end

-- The pending faults, oldest first, each with `count` = what is left.
function faults.list()
   local d = dict()
   local out = {}
   each(d, function(id, f)
      local copy = {}
      for k, v in pairs(f) do copy[k] = v end
      if f.count ~= -1 then copy.count = d:get("left:" .. id) or 0 end
      if copy.count ~= 0 then out[#out + 1] = copy end
   end)
   return out
end

-- Takes the first pending fault for an endpoint path (or "*"), using up one
-- of its count; nil when none applies. Safe across workers: each use is one
-- atomic decrement, so a fault of count n applies to exactly n requests.
function faults.take(path)
   local d = dict()
   local found
   each(d, function(id, f)
      if f.path ~= "*" and f.path ~= path then return false end
      if f.count == -1 then
         found = f
         return true
      end
      local left = d:incr("left:" .. id, -1)
      if left and left >= 0 then
         if left == 0 then
            d:delete("f:" .. id)
            d:delete("left:" .. id)
         end
         found = f
         return true
      end
      return false
   end)
   return found
end

return faults
