-- Random Lua values into every public function of wemasy and wemasy.core.
--
--   lua5.4 fuzz/lua_driver.lua --seed N --calls N [--trace] [--port N]
--
-- Reproducible: one seeded generator (Park-Miller, exact in doubles); a seed
-- makes the same calls again on the same interpreter (Lua 5.4 draws a few
-- values LuaJIT has not, integers, so the two runs differ).  Prints
-- "FUZZ OK seed=S calls=N seconds=T" and exits 0, or describes the finding
-- with the seed and the call number and exits 1.  A crash (the process
-- dies) is for the caller to see; --trace then writes each call to stderr
-- before making it, so the last line names the culprit.
--
-- A finding is: a raised error that is not a string (or the marker a user
-- function raised), a user metamethod that ran where wemasy promises raw
-- access, or a result outside the contract (a method returning anything but
-- `body, nil, res` or `nil, err` with a known kind, a core request anything
-- but its documented values).  Calls that pass validation go to --port on
-- 127.0.0.1 (a closed port by default: a refused connection, at once), with
-- rate limiting off or bounded, and sleep/clock hooks that never block.
local wemasy = require("wemasy")
local core = require("wemasy.core")

local args = { seed = 1, calls = 10000, port = 1 }
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(%w+)$")
    if k == "trace" then args.trace = true
    elseif k then args[k] = tonumber(arg[i + 1]); i = i + 1
    else error("usage: lua_driver.lua --seed N --calls N [--trace] [--port N]") end
    i = i + 1
  end
end

------------------------------------------------------------------ generator

local state = args.seed % 2147483646 + 1
local function rnd() -- (0, 1)
  state = (state * 16807) % 2147483647
  return state / 2147483647
end
local function int(n) return math.floor(rnd() * n) + 1 end -- 1..n
local function chance(p) return rnd() < p end
local function pick(list) return list[int(#list)] end

local MARK_META = "FUZZ: a metamethod ran"   -- must never run where access is raw
local MARK_USER = "FUZZ: user function raised" -- may propagate: the caller's own error
local MARK_TABLE = setmetatable({}, { __tostring = function() return MARK_USER end })

local function raiser(msg) return function() error(msg, 0) end end
local RAISING_MT = {
  __index = raiser(MARK_META), __newindex = raiser(MARK_META), __len = raiser(MARK_META),
  __pairs = raiser(MARK_META), __ipairs = raiser(MARK_META), __eq = raiser(MARK_META),
  __lt = raiser(MARK_META), __le = raiser(MARK_META), __concat = raiser(MARK_META),
  __call = raiser(MARK_META), __tostring = raiser(MARK_META), __close = raiser(MARK_META),
  __unm = raiser(MARK_META), __add = raiser(MARK_META), __name = "fuzz.raising",
}
-- getmetatable(v) returns this table, whose own metatable raises on ==.
local SNEAKY_MT = setmetatable({}, RAISING_MT)

local BASE = "http://127.0.0.1:" .. args.port
local TOKENS = { "fuzz-token-a", "1|fuzz-token-b", nil }
local P = tostring(args.port)
-- Every URL a client may be made with: this machine, that port (or one that
-- never gets that far).
local BASES = { BASE, BASE .. "/", BASE .. "/api", "https://127.0.0.1:" .. P, "http://[::1]:" .. P,
  "http://localhost:" .. P .. "/api", "HTTP://127.0.0.1:" .. P, "http://127.0.0.1:" .. P .. "/a b",
  "ftp://127.0.0.1:" .. P, "http://", "", "http://127.0.0.1:" .. P .. "\r\nX: 1", "http://192.0.2.1:" .. P }
local LOCAL = {}
for _, b in ipairs(BASES) do LOCAL[b] = true end

local ascii = {}
for b = 0, 255 do ascii[b + 1] = string.char(b) end

local function random_bytes(n)
  local t = {}
  for i = 1, n do
    local r = rnd()
    if r < 0.6 then t[i] = ascii[int(95) + 32] -- printable
    elseif r < 0.7 then t[i] = pick{ "\0", "\r", "\n", "\t", "\127" }
    else t[i] = ascii[int(256)] end
  end
  return table.concat(t)
end

local BIG_STRING = string.rep("x", 16 * 1024 * 1024 + 1)
local FIELD_WORDS = { "order_number", "order_id", "website_id", "order_session", "email", "mark", "ORD-2025-001",
  "abc123def456ghi789", "john@example.com", "orders/detail", "orders/get", "/orders/detail",
  "/services/webshop/v1/orders/detail", "customer/orders/get", "orders/sync-snelstart-order",
  "orders/mark-purchase-tracked", "default", "sync", "no/such", "../../etc", "a//b", "", " ", "é", "\255\254",
  "orders_detail", "orders_get", "call", "path", "body", "with_auth", "group", "idempotent" }

-- Most strings come from a pool made once (making them is what costs);
-- a few are fresh.
local STRING_POOL = {}
for i = 1, 1500 do
  local r = rnd()
  if r < 0.7 then STRING_POOL[i] = random_bytes(int(40) - 1)
  elseif r < 0.97 then STRING_POOL[i] = random_bytes(int(2000))
  else STRING_POOL[i] = string.rep(random_bytes(int(8)), int(20000)) end
end

local function random_string()
  local r = rnd()
  if r < 0.35 then return pick(FIELD_WORDS) end
  if r < 0.95 then return pick(STRING_POOL) end
  if r < 0.99998 then return random_bytes(int(24) - 1) end
  return BIG_STRING
end

local NUMBERS = { 0, -0.0, 1, -1, 2, 42, 2502, 1.5, -1.5, 0.1, 1e-300, 5e-324, 1e308, -1e308, 2 ^ 31, 2 ^ 32,
  2 ^ 53, 2 ^ 53 + 2, -2 ^ 53, 2 ^ 63, -2 ^ 63, 2 ^ 64, 2 ^ 1023, math.huge, -math.huge, 0 / 0, 64, 65, 100,
  101, 1024, 1025, 86400, 2147483, 2147484, 16777216 }
if math.type then
  NUMBERS[#NUMBERS + 1] = math.maxinteger
  NUMBERS[#NUMBERS + 1] = math.mininteger
  NUMBERS[#NUMBERS + 1] = math.tointeger(2502)
end

local function random_number()
  if chance(0.7) then return pick(NUMBERS) end
  if chance(0.5) then return (rnd() - 0.5) * 10 ^ int(20) end
  return math.floor((rnd() - 0.5) * 2 ^ int(62))
end

-- Heavy values, made once.
local DEEP = {}
do
  local t = DEEP
  for _ = 1, 20000 do t.x = {}; t = t.x end
end
local DEEP_ARRAY = {}
do
  local t = DEEP_ARRAY
  for _ = 1, 20000 do t[1] = {}; t = t[1] end
end
local CYCLIC = {}
CYCLIC.self, CYCLIC[1] = CYCLIC, CYCLIC
local WIDE = {}
for i = 1, 5000 do WIDE[i] = i end
local WIDE_MAP = {}
for i = 1, 5000 do WIDE_MAP["k" .. i] = "v" .. i end

local FUNCS -- set below: functions of several behaviours

local random_value

local function random_table(depth)
  local r = rnd()
  if r < 0.05 then return {} end
  if r < 0.07 then return pick{ DEEP, DEEP_ARRAY, CYCLIC, WIDE, WIDE_MAP } end
  local t = {}
  local n = int(6) - 1
  for i = 1, n do
    if chance(0.5) then
      t[i] = random_value(depth + 1)
    else
      local k = chance(0.8) and random_string() or random_value(depth + 1)
      if k ~= nil and rawequal(k, k) then t[k] = random_value(depth + 1) end
    end
  end
  if chance(0.05) then setmetatable(t, RAISING_MT)
  elseif chance(0.02) then setmetatable(t, SNEAKY_MT)
  elseif chance(0.02) then setmetatable(t, { __metatable = random_value(depth + 1) }) end
  return t
end

function random_value(depth)
  depth = depth or 0
  local r = rnd()
  if depth > 4 then r = r * 0.7 end -- no tables below this
  if r < 0.08 then return nil end
  if r < 0.14 then return chance(0.5) end
  if r < 0.34 then return random_number() end
  if r < 0.62 then return random_string() end
  if r < 0.66 then return wemasy.null end
  if r < 0.68 then return pick(FUNCS) end
  if r < 0.69 then return coroutine.create(print) end
  if r < 0.70 then return io.stdout end
  return random_table(depth)
end

------------------------------------------------------------------ user functions and hooks

-- A fake clock that only moves when slept on: a wait can never spin.
local fake = { now = 1000 }
FUNCS = {
  function() end,
  function() return 1 end,
  raiser(MARK_USER),
  function() error(MARK_TABLE) end,
  function() return 0 / 0 end,
  function() return "x" end,
  function(...) return ... end,
  function() return {} end,
  tostring,
}
local HOOKS = {
  clock = { function() return fake.now end, function() return 0 / 0 end, raiser(MARK_USER),
            function() return "1000" end, function() return math.huge end, function() return -1e300 end },
  -- No sleep that leaves the fake clock where it was: with it, a wait for
  -- a slot would ask the clock forever (a broken pair of hooks, not a bug).
  sleep = { function(s) if type(s) == "number" and s == s and s < 1e9 then fake.now = fake.now + s end end,
            raiser(MARK_USER), function() error(MARK_TABLE) end,
            function(s) fake.now = fake.now + (type(s) == "number" and s == s and s < 1e9 and 2 * s or 1) end },
  random = { function() return rnd() end, function() return 0 / 0 end, function() return -5 end,
             function() return 7 end, raiser(MARK_USER), function() return nil end },
}

------------------------------------------------------------------ options

-- The options and their kinds and ranges are the core's declaration
-- (core.options): a new option is fuzzed by its kind without a line here.
local OPTIONS = core.options

-- Strings worth trying, per option (other string options get STRINGS).
local STRINGS = { "", "x", "a\r\nb: c" }
local STRING_VALUES = {
  token = function() return TOKENS[int(3)] end,
  base_url = function() return chance(0.7) and BASE or pick(BASES) end,
  ca_file = function() return pick{ "/nonexistent", "/etc/ssl/certs", "" } end,
  proxy = function() return pick{ "", "http://127.0.0.1:1" } end,
  user_agent = function() return pick{ "fuzz/1", "", "a\r\nb: c" } end,
}
STRING_VALUES.ca_path = STRING_VALUES.ca_file
local LUA_VALUES = {
  hooks = function() return { on_request = pick(FUNCS), on_response = pick(FUNCS) } end,
  debug = function() return pick{ false, function() end, raiser(MARK_USER) } end,
}

local option_value

-- Its range's edges and a little past them, its default, a fraction.
local function number_for(o)
  if o.kind == "bytes" then return pick{ 1, 16, 1024, o.default, o.max, o.max + 2, 0.5, 0 } end
  if o.kind == "integer" then return pick{ o.min, o.min + 1, o.default or o.min, o.max, o.max + 1, o.min - 1, 0.5 } end
  if o.kind == "millis" then return pick{ 0.001, 0.5, 1, o.default, o.min, -1, o.max, o.max + 1 } end
  return pick{ o.min, 0.001, 0.01, 1, o.default or 1, -1, o.max, o.max + 1 }
end

local function table_for(o)
  local t = {}
  for _, f in ipairs(o.fields) do
    if chance(0.5) then t[f.name] = option_value(f) end
  end
  return t
end

local function groups_value()
  return { default = { limit = pick{ 1, 2, 1024, 1025 }, window = pick{ 0.001, 1, 60 } },
           [random_string()] = { limit = 1, window = 1 } }
end

function option_value(o)
  if chance(0.3) then return random_value() end
  local k = o.kind
  if k == "url" or k == "header" or k == "string" or k == "any_string" then
    return (STRING_VALUES[o.name] or function() return pick(STRINGS) end)()
  end
  if k == "millis" or k == "seconds" or k == "positive_seconds" or k == "share" or k == "integer"
     or k == "bytes" then
    return number_for(o)
  end
  if k == "boolean" then return chance(0.7) and chance(0.5) or random_value() end
  if k == "choice" then return chance(0.8) and pick(o.choices) or random_value() end
  if k == "function" then return pick(HOOKS[o.name] or FUNCS) end
  if k == "lua" then return LUA_VALUES[o.name]() end
  if k == "groups" then return groups_value() end
  if k == "rate_limit" then
    if chance(0.3) then return false end
    local rl = {}
    for _, f in ipairs(o.fields) do
      if chance(0.4) then rl[f.name] = random_value() end
    end
    if chance(0.3) then rl.groups = groups_value() end
    return rl
  end
  if k == "table" then return table_for(o) end
  if k == "breaker" then return chance(0.3) and pick{ false, true } or table_for(o) end
  error("fuzz: no values for option kind " .. tostring(k))
end

local function random_options()
  if chance(0.05) then
    -- (nil would be the defaults: the real API, and its shared segment)
    local v = random_value() or false
    -- Even a random table may be valid options: never the default URL.
    if type(v) == "table" and not rawequal(v, CYCLIC) and not rawequal(v, DEEP) and not rawequal(v, DEEP_ARRAY)
       and not rawequal(v, WIDE) and not rawequal(v, WIDE_MAP) then
      rawset(v, "base_url", BASE)
      rawset(v, "rate_limit", false)
      rawset(v, "max_retries", 0)
    end
    return v
  end
  local opts = {}
  for _, o in ipairs(OPTIONS) do
    if chance(0.25) then opts[o.name] = option_value(o) end
  end
  if chance(0.05) then opts[random_string()] = random_value() end
  -- Never a shared segment per random (base_url, token), never a real host
  -- reached, never a wait that could block: checked values stay fuzzed.
  if type(opts.rate_limit) == "table" then
    local rl = opts.rate_limit
    local max_wait, shared = rawget(rl, "max_wait"), rawget(rl, "shared")
    if type(max_wait) == "number" and max_wait == max_wait then rawset(rl, "max_wait", math.min(max_wait, 0.01)) end
    if max_wait == nil then rawset(rl, "max_wait", 0.01) end
    if shared == nil or shared == true then rawset(rl, "shared", false) end
  elseif opts.rate_limit == nil or opts.rate_limit == true then
    opts.rate_limit = false
  end
  if opts.debug == true then opts.debug = FUNCS[1] end -- not stderr
  -- The fake clock and its sleep unless fuzzed: nothing ever blocks.
  if type(opts.sleep) ~= "function" then opts.sleep = HOOKS.sleep[1] end
  if type(opts.clock) ~= "function" then opts.clock = HOOKS.clock[1] end
  -- Never the default (the real API) nor any other host: only the port.
  -- (192.0.2.1 is TEST-NET-1: allowed with allow_http, never routed; the
  -- connect fails or times out within connect_timeout, capped here.)
  if opts.base_url == nil or (type(opts.base_url) == "string" and not LOCAL[opts.base_url]) then
    opts.base_url = BASE
  end
  if opts.base_url == BASES[#BASES] then opts.connect_timeout = 0.001 end
  return opts
end

------------------------------------------------------------------ checks

local KINDS = wemasy.error_kinds
local Client = require("wemasy.client").Client
local CORE_KINDS = {} -- every kind the core names (csrc/request.c)
for _, kind in ipairs(require("wemasy.core").kinds) do CORE_KINDS[kind] = true end

local findings = 0
local current -- description of the call being made

local function finding(what)
  findings = findings + 1
  io.stdout:write(string.format("FUZZ FINDING seed=%d call=%s: %s\n  call: %s\n", args.seed,
    tostring(current and current.n), what, current and current.desc or "?"))
  io.stdout:flush()
  os.exit(1)
end

local function describe(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    if #v > 60 then return string.format("<string of %d bytes>", #v) end
    return string.format("%q", v)
  elseif t == "table" then
    if depth > 1 then return "{...}" end
    if rawequal(v, DEEP) or rawequal(v, DEEP_ARRAY) then return "<deep table>" end
    if rawequal(v, CYCLIC) then return "<cyclic table>" end
    local parts, n = {}, 0
    for k, x in next, v do
      n = n + 1
      if n > 8 then parts[#parts + 1] = "..."; break end
      parts[#parts + 1] = "[" .. describe(k, depth + 1) .. "]=" .. describe(x, depth + 1)
    end
    local mt = getmetatable(v)
    return "{" .. table.concat(parts, ",") .. "}" .. (mt and "<mt>" or "")
  elseif t == "number" then
    return string.format("%.17g", v)
  end
  return t == "nil" and "nil" or t
end

local function raised_ok(e)
  if rawequal(e, MARK_TABLE) then return true end
  if type(e) ~= "string" then return false, "raised a " .. type(e) .. " (not a string)" end
  if e:find(MARK_META, 1, true) then return false, "a metamethod ran: " .. e end
  return true
end

local function check_error_value(err, where)
  if not wemasy.is_error(err) then finding(where .. ": second value is not a wemasy error: " .. describe(err)) end
  if not KINDS[rawget(err, "kind")] then finding(where .. ": unknown kind " .. describe(rawget(err, "kind"))) end
  local ok, s = pcall(tostring, err)
  if not ok or type(s) ~= "string" then finding(where .. ": tostring(err) failed: " .. describe(s)) end
end

-- body, nil, res  or  nil, err
local function check_method_result(where, n, a, b, c)
  if a == nil then
    if n > 2 then finding(where .. ": nil, err, and more") end
    check_error_value(b, where)
  else
    if b ~= nil then finding(where .. ": a body and an error") end
    if type(c) ~= "table" or type(c.status) ~= "number" then finding(where .. ": success without res") end
  end
end

local function pack(...) return { n = select("#", ...), ... } end

local function run(where, fn, check, ...)
  if args.trace then io.stderr:write(string.format("call %d %s: %s\n", current.n, where, current.desc)) end
  local res = pack(pcall(fn, ...))
  if not res[1] then
    local ok, why = raised_ok(res[2])
    if not ok then finding(where .. ": " .. why) end
  elseif check then
    check(where, res.n - 1, res[2], res[3], res[4], res[5], res[6], res[7])
  end
  return res
end

------------------------------------------------------------------ targets

local good_w = wemasy.new{ base_url = BASE, token = "fuzz-token-a", rate_limit = false, max_retries = 0,
                           sleep = HOOKS.sleep[1] }
local good_w_anon = wemasy.new{ base_url = BASE, rate_limit = false, max_retries = 1,
                                backoff = { base = 0, cap = 0 } }
local good_w_limited = wemasy.new{ base_url = BASE, token = "1|fuzz-token-b", max_retries = 1,
  clock = HOOKS.clock[1], sleep = HOOKS.sleep[1],
  rate_limit = { shared = false, max_wait = 5, groups = { default = { limit = 3, window = 1 } } } }
local good_c = core.new{ base_url = BASE, token = "fuzz-token-a", rate_limit = false, max_retries = 0 }
local good_c_limited = core.new{ base_url = BASE, max_retries = 2, clock = HOOKS.clock[1], sleep = HOOKS.sleep[1],
  random = HOOKS.random[1],
  rate_limit = { shared = false, max_wait = 3, groups = { default = { limit = 2, window = 1 } } } }
local made = {} -- clients from random options, closed or dropped later
local closed_w = wemasy.new{ base_url = BASE, rate_limit = false }
closed_w:close()
local closed_c = core.new{ base_url = BASE, rate_limit = false }
closed_c:close()

-- User functions that come back into wemasy: as a hook or a progress
-- callback they re-enter the call in progress (close it, call it again).
FUNCS[#FUNCS + 1] = function() local c = made[#made]; if c then c:close() end end
FUNCS[#FUNCS + 1] = function() return good_c:request("/x", "{}") end
FUNCS[#FUNCS + 1] = function() return good_c:batch({ { path = "/x", body = "" } }, 1, nil, function() end) end
FUNCS[#FUNCS + 1] = function() return good_w:orders_detail{ order_number = "x" } end
FUNCS[#FUNCS + 1] = function() return good_w:batch({ { "orders_detail", { order_number = "x" } } }) end

local W_CLIENTS = { good_w, good_w, good_w_anon, good_w_limited, closed_w }
local C_CLIENTS = { good_c, good_c, good_c_limited, closed_c }

local function some_w_self()
  local r = rnd()
  if r < 0.85 then return pick(W_CLIENTS) end
  if r < 0.9 and #made > 0 then return pick(made) end
  if r < 0.95 then return pick(C_CLIENTS) end
  return random_value()
end

local function some_c_self()
  local r = rnd()
  if r < 0.9 then return pick(C_CLIENTS) end
  if r < 0.95 then return pick(W_CLIENTS) end
  return random_value()
end

local ENDPOINT_FIELDS = {}
for _, ep in ipairs(wemasy.endpoints) do ENDPOINT_FIELDS[ep.method] = ep.fields end

local function random_body(method)
  if chance(0.1) then return random_value() end
  local body = {}
  local fields = ENDPOINT_FIELDS[method]
  if fields and chance(0.8) then
    for _, f in ipairs(fields) do
      if chance(0.8) then body[f.name] = chance(0.6) and f.example or random_value() end
    end
    if chance(0.1) then body[random_string()] = random_value() end
    return body
  end
  return random_table(1)
end

local function random_path()
  if chance(0.6) then return pick(FIELD_WORDS) end
  if chance(0.5) then return "/" .. random_string() end
  return random_value()
end

local TARGETS = {}
local function target(weight, name, fn)
  for _ = 1, weight do TARGETS[#TARGETS + 1] = { name = name, fn = fn } end
end

for _, ep in ipairs(wemasy.endpoints) do
  target(4, "wemasy " .. ep.method, function()
    local self, body = some_w_self(), random_body(ep.method)
    current.desc = "client:" .. ep.method .. "(" .. describe(body) .. ") self=" .. describe(self)
    run(ep.method, Client[ep.method], check_method_result, self, body)
  end)
end

target(4, "wemasy call", function()
  local self, path = some_w_self(), random_path()
  local body = random_body(type(path) == "string" and path:gsub("/", "_") or nil)
  current.desc = "client:call(" .. describe(path) .. ", " .. describe(body) .. ")"
  run("call", good_w.call, check_method_result, self, path, body)
end)

target(3, "wemasy batch", function()
  local self = some_w_self()
  local calls = {}
  for i = 1, int(10) - 1 do
    if chance(0.9) then
      local m = chance(0.5) and pick(wemasy.endpoints).method or random_path()
      calls[i] = { m, random_body(m) }
    else
      calls[i] = random_value()
    end
  end
  if chance(0.1) then calls = random_value() end
  local opts = nil
  if chance(0.5) then
    opts = { concurrency = chance(0.7) and int(64) or random_value(), progress = chance(0.5) and pick(FUNCS) or nil }
    if chance(0.1) then opts[random_string()] = 1 end
    if chance(0.1) then opts = random_value() end
  end
  current.desc = "client:batch(" .. describe(calls) .. ", " .. describe(opts) .. ")"
  run("batch", good_w.batch, function(where, _, results)
    if type(results) ~= "table" then finding(where .. ": no results table") end
    local n = type(calls) == "table" and (rawlen and rawlen(calls) or #calls) or 0
    for i = 1, n do
      local r = results[i]
      if type(r) ~= "table" then finding(where .. ": no result " .. i) end
      check_method_result(where .. "[" .. i .. "]", r[2] ~= nil and 2 or 3, r[1], r[2], r[3])
    end
  end, self, calls, opts)
end)

target(2, "wemasy rate_limit", function()
  local self, group = some_w_self(), chance(0.5) and pick{ "default", "sync", nil } or random_value()
  current.desc = "client:rate_limit(" .. describe(group) .. ")"
  run("rate_limit", good_w.rate_limit, function(where, _, a, b)
    if a == nil then check_error_value(b, where)
    elseif type(a) ~= "table" or type(a.limit) ~= "number" then finding(where .. ": odd report") end
  end, self, group)
end)

target(1, "wemasy has_token/tostring/close", function()
  local self = some_w_self()
  current.desc = "has_token/tostring(" .. describe(self) .. ")"
  run("has_token", good_w.has_token, function(where, _, a)
    if type(a) ~= "boolean" then finding(where .. ": not a boolean") end
  end, self)
  if rawequal(getmetatable(self), Client) then run("tostring", tostring, nil, self) end
  if chance(0.2) and not rawequal(self, good_w) then run("close", good_w.close, nil, self) end
end)

target(3, "wemasy.is_error", function()
  local v = chance(0.2) and setmetatable({ kind = random_value(), message = random_value() },
    getmetatable(select(2, good_w:call("no such", {})))) or random_value()
  current.desc = "is_error(" .. describe(v) .. ")"
  run("is_error", wemasy.is_error, function(where, _, a)
    if type(a) ~= "boolean" then finding(where .. ": not a boolean") end
  end, v)
  if wemasy.is_error(v) then run("tostring(err)", tostring, nil, v) end
end)

target(4, "wemasy.new", function()
  local opts = random_options()
  current.desc = "wemasy.new(" .. describe(opts) .. ")"
  local res = run("wemasy.new", wemasy.new, function(where, _, c)
    if getmetatable(c) ~= getmetatable(good_w) then finding(where .. ": not a client") end
  end, opts)
  if res[1] then
    -- wemasy.new(nil) is the real API: close it, never call it.
    if not LOCAL[res[2].base_url] and not LOCAL[res[2].base_url .. "/"] then
      res[2]:close()
    elseif chance(0.3) and #made < 20 then
      made[#made + 1] = res[2]
    elseif chance(0.8) then
      res[2]:close()
    end
  end
end)

target(4, "core.new", function()
  local opts = random_options()
  -- The options the Lua layer reads are unknown to the core.
  if type(opts) == "table" then
    for _, o in ipairs(OPTIONS) do
      if o.kind == "lua" then rawset(opts, o.name, nil) end
    end
  end
  current.desc = "core.new(" .. describe(opts) .. ")"
  local res = run("core.new", core.new, nil, opts)
  if res[1] then
    local c = res[2]
    if chance(0.5) and (tostring(c):find("127.0.0.1:" .. P, 1, true) or tostring(c):find("[::1]:" .. P, 1, true)
                        or tostring(c):find("localhost:" .. P, 1, true)) then
      current.desc = current.desc .. " then request"
      run("core.new+request", c.request, nil, c, "/x", "{}", true, nil, chance(0.5))
    end
    if chance(0.8) then c:close() end
  end
end)

local function check_core_result(where, n, a, b, c, d, e)
  if a == nil then
    if not CORE_KINDS[b] then finding(where .. ": unknown core kind " .. describe(b)) end
    if type(c) ~= "string" then finding(where .. ": message is not a string") end
    if type(d) ~= "boolean" then finding(where .. ": sent is not a boolean") end
    if type(e) ~= "number" then finding(where .. ": attempts is not a number") end
  else
    if type(a) ~= "number" or type(b) ~= "string" or type(c) ~= "table" or type(d) ~= "number" then
      finding(where .. ": odd success " .. describe({ a, b, c, d }) .. " n=" .. n)
    end
  end
end

target(5, "core request", function()
  local self = some_c_self()
  local path = chance(0.7) and pick{ "/x", "/services/webshop/v1/orders/detail", "/" } or random_path()
  local body = chance(0.7) and pick{ "{}", "", random_string() } or random_value()
  local with_auth = random_value()
  local group = chance(0.6) and pick{ "default", "sync", "g" .. int(20) } or random_value()
  local idem = random_value()
  if chance(0.5) then with_auth, idem = chance(0.5), chance(0.5) end
  current.desc = "core:request(" .. describe(path) .. ", " .. describe(body) .. ", " .. describe(with_auth) .. ", "
    .. describe(group) .. ", " .. describe(idem) .. ")"
  run("core request", good_c.request, check_core_result, self, path, body, with_auth, group, idem)
end)

target(3, "core batch", function()
  local self = some_c_self()
  local items = {}
  for i = 1, int(12) - 1 do
    if chance(0.85) then
      items[i] = { path = chance(0.8) and "/x" or random_path(), body = chance(0.8) and "{}" or random_value() }
      if chance(0.3) then items[i].with_auth = random_value() end
      if chance(0.3) then items[i].idempotent = chance(0.5) end
      if chance(0.3) then items[i].group = chance(0.5) and pick{ "default", "sync" } or random_value() end
    else
      items[i] = random_value()
    end
  end
  if chance(0.05) then items = random_value() end
  local conc = chance(0.7) and int(64) or random_value()
  local progress = chance(0.3) and pick(FUNCS) or nil
  -- Every result goes to on_result, once per item (and nothing is returned).
  local results = {}
  local function on_result(k, status, kind)
    if results[k] ~= nil then finding("core batch: a second result for item " .. describe(k)) end
    results[k] = { status = status, kind = not status and kind or nil }
  end
  local collect = chance(0.95) and on_result or random_value()
  current.desc = "core:batch(" .. describe(items) .. ", " .. describe(conc) .. ")"
  run("core batch", good_c.batch, function(where, n)
    if n ~= 0 then finding(where .. ": returned " .. n .. " values; it reports through on_result only") end
    for i = 1, rawequal(collect, on_result) and type(items) == "table" and (rawlen and rawlen(items) or #items) or 0 do
      local r = results[i]
      if type(r) ~= "table" then finding(where .. ": no result " .. i) end
      if r.status == nil and not CORE_KINDS[r.kind] then finding(where .. ": odd kind " .. describe(r.kind)) end
    end
  end, self, items, conc, progress, collect)
end)

target(2, "core rate_limit/has_token/tostring/close", function()
  local self, group = some_c_self(), chance(0.5) and pick{ "default", "sync", nil } or random_value()
  current.desc = "core rate_limit(" .. describe(group) .. ") self=" .. describe(self)
  run("core rate_limit", good_c.rate_limit, nil, self, group)
  run("core has_token", good_c.has_token, nil, self)
  if type(self) == "userdata" and rawequal(getmetatable(self), getmetatable(good_c)) then
    run("core tostring", tostring, nil, self)
  end
  if chance(0.1) and not rawequal(self, good_c) then run("core close", good_c.close, nil, self) end
end)

if core.json_decode then
  local JSON_PIECES = { "{", "}", "[", "]", ",", ":", '"', '"a"', "1", "-0", "1e309", "-1e-400", "0.1", "01",
    "true", "false", "null", "nan", "Infinity", "\\u0000", '"\\ud800"', '"\\udbff\\udfff"', '"\\x"', " ", "\0",
    "9007199254740993", "-9223372036854775809", "1.7976931348623157e308", '{"a":', "[[[[", "]]]]" }
  target(4, "core.json_decode", function()
    local parts = {}
    for i = 1, int(30) do parts[i] = chance(0.9) and pick(JSON_PIECES) or random_bytes(int(4)) end
    local text = chance(0.95) and table.concat(parts) or random_value()
    if chance(0.01) then text = string.rep("[", int(3000)) .. string.rep("]", int(3000)) end
    current.desc = "core.json_decode(" .. describe(text) .. ")"
    run("json_decode", core.json_decode, nil, text)
  end)
end

------------------------------------------------------------------ main

local started = os.clock()
current = { n = 0 }
for n = 1, args.calls do
  current = { n = n, desc = "?" }
  TARGETS[int(#TARGETS)].fn()
  if n % 2000 == 0 then
    collectgarbage()
    if #made > 10 then
      for i = #made, 1, -1 do if chance(0.5) then made[i]:close() end table.remove(made, i) end
    end
  end
end
for _, c in ipairs(made) do c:close() end
for _, c in ipairs{ good_w, good_w_anon, good_w_limited, good_c, good_c_limited } do c:close() end
collectgarbage()
collectgarbage()
io.stdout:write(string.format("FUZZ OK seed=%d calls=%d findings=%d seconds=%.1f\n", args.seed, args.calls,
  findings, os.clock() - started))
