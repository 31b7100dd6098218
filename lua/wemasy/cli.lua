-- The `wemasy` command: call any endpoint from the shell, list the endpoints,
-- show the rate-limit quota, open a Lua prompt.  bin/wemasy is only
-- `os.exit(require("wemasy.cli").main(arg), true)`.
--
--   wemasy orders/detail order_number=ORD-2025-001
--   wemasy orders/detail --json '{"order_number":"ORD-2025-001"}'
--   echo '{"order_id":2502}' | wemasy customer/orders/get -
--   wemasy --sandbox orders/detail order_number=ORD-2025-001
--   wemasy endpoints | wemasy rate-limit | wemasy repl
--
-- main() returns the exit code (0, or the code of the error's kind: M.EXIT)
-- and takes its streams and environment from `sys`, so specs run it in-process.
-- The token is never printed: every line written goes through redaction.
local wemasy = require("wemasy")
local core = require("wemasy.core")
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local json = require("wemasy.json")
local methods = require("wemasy.methods")
local pretty = require("wemasy.pretty")

local M = {}

-- Exit codes: fixed, documented (README "Command line and REPL"), one per
-- error kind.  Extend, never renumber.
M.EXIT_CODES = {
  { "ok", 0, "the call succeeded" },
  { "failure", 1, "anything else: the sandbox did not start, an unexpected error" },
  { "usage", 2, "bad command line: unknown option or command, bad field=value or --json" },
  { "invalid_argument", 3, "the request was refused before sending (bad or unknown field)" },
  { "unauthenticated", 4, "401, or an Auth endpoint without a token" },
  { "forbidden", 5, "403" },
  { "not_found", 6, "404" },
  { "validation", 7, "422" },
  { "rate_limited", 8, "429, or no rate-limit slot within the wait" },
  { "server", 9, "5xx" },
  { "api", 10, "2xx whose body says \"error\": true" },
  { "http", 11, "any other HTTP status" },
  { "timeout", 12, "connect or total timeout" },
  { "network", 13, "resolve, connect, reset" },
  { "tls", 14, "certificate or handshake" },
  { "decode", 15, "the response is not the JSON expected" },
  { "interrupted", 130, "Ctrl-C (SIGINT): the call stopped, nothing more was sent" },
}
M.EXIT = {}
for _, row in ipairs(M.EXIT_CODES) do M.EXIT[row[1]] = row[2] end

M.COMMANDS = {
  { "endpoints [PATH]", "the endpoints: fields (* required), types, auth, limiter group" },
  { "rate-limit", "the quota left in each limiter group, shared by every process on the token" },
  { "repl", "a Lua prompt with `client` ready (see README)" },
  { "help [PATH]", "this text, or one endpoint's fields" },
}

local COMMAND_NAMES = {}
for _, c in ipairs(M.COMMANDS) do COMMAND_NAMES[c[1]:match("^%S+")] = true end

local SANDBOX_TOKENS = { "merchant", "merchant_no_finance", "customer", "other_customer" }

-- What the value of each option is, for the message of a missing, empty or
-- malformed one ("--timeout needs a value: a number of seconds, ...").
-- Ranges are not restated: wemasy.new checks them and names the option,
-- which Run:new_client says as the flag.
local FLAG_VALUES = {
  ["--token"] = "the API token (WEMASY_TOKEN or --token-file keep it out of the process list)",
  ["--token-file"] = "a file that holds the API token",
  ["--base-url"] = "the API's URL, e.g. " .. wemasy.DEFAULT_BASE_URL,
  ["--redis"] = "a Redis URL, redis://[:password@]host:port[/db]",
  ["--as"] = "whose sandbox token: " .. table.concat(SANDBOX_TOKENS, ", "),
  ["--json"] = "a JSON object, '-' for stdin or @FILE",
  ["--color"] = "auto, always or never",
  ["--timeout"] = "a number of seconds, e.g. --timeout 30",
  ["--connect-timeout"] = "a number of seconds, e.g. --connect-timeout 10",
  ["--max-retries"] = "a number of retries, e.g. --max-retries 2",
  ["--ca-file"] = "a CA bundle file (PEM)",
  ["--ca-path"] = "a directory of CA certificates",
  ["--proxy"] = "a proxy URL, e.g. http://proxy.example:3128",
}
-- The short aliases of value options, so messages name the long flag.
local LONG_FLAG = { ["-t"] = "--token", ["-u"] = "--base-url", ["-j"] = "--json" }
-- Options whose empty value is a mistake (an unset shell variable), not "none".
local NOT_EMPTY = { "--token", "--base-url", "--ca-file", "--ca-path" }

local function needs_value(flag)
  local what = FLAG_VALUES[flag]
  return flag .. " needs a value" .. (what and ": " .. what or "")
end

-- argparse's converter for a number option: a number, or nil and a message
-- naming the flag (argparse's own is "malformed argument 'x'").
local function number_of(flag)
  return function(text)
    if text == "" then return nil, needs_value(flag) end
    local n = tonumber(text)
    if not n then return nil, flag .. " wants " .. FLAG_VALUES[flag] .. " (got '" .. text .. "')" end
    return math.tointeger and math.tointeger(n) or n
  end
end

-- argparse takes "-1" for an option even right after --timeout: a value
-- option followed by a negative number gets it as its value (--timeout=-1),
-- so wemasy.new can say it must be positive.  Nothing after "--" changes.
local function negative_values(argv)
  local out, i = {}, 1
  while i <= #argv do
    local a, value = argv[i], argv[i + 1]
    if a == "--" then
      for j = i, #argv do out[#out + 1] = argv[j] end
      break
    end
    local long = LONG_FLAG[a] or a
    if FLAG_VALUES[long] and value and value:match("^%-%.?%d") then
      out[#out + 1] = long .. "=" .. value
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

-- argparse's parse error, said as a flag and what it wants when it can be.
local function parse_message(message)
  local typed = tostring(message):match("^option '(%-%-?[%w-]+)' requires an argument$")
  if typed then return needs_value(LONG_FLAG[typed] or typed) end
  return tostring(message)
end

local by_method = {}
for _, ep in ipairs(endpoints) do by_method[ep.method] = ep end

local function endpoint_of(name)
  if not name then return nil end
  return endpoints[(name:gsub("^/+", ""):gsub("^services/webshop/v1/", ""))] or by_method[name]
end

-- A typo at the shell costs no request either: the nearest endpoint of the
-- table, by the same measure as client:call's "did you mean".
local function unknown_endpoint(what, name)
  return what .. " '" .. name .. "': did you mean '" .. methods.closest(name) .. "'? (wemasy endpoints lists them)"
end

local function group_text(name)
  local g = endpoints.groups[name]
  return g and string.format("%s (%d per %d s)", name, g.limit, g.window) or name
end

local function epilog()
  local lines = {}
  local function add(...)
    for i = 1, select("#", ...) do lines[#lines + 1] = (select(i, ...)) end
  end
  add("Commands:")
  for _, c in ipairs(M.COMMANDS) do add(string.format("   %-20s %s", c[1], c[2])) end
  add("   PATH [field=value ...]  call an endpoint (PATH or method name, e.g. orders/detail or",
      "                           orders_detail); any other path with a '/' goes through client:call",
      "",
      "Endpoints:")
  for _, ep in ipairs(endpoints) do
    local fields = {}
    for _, f in ipairs(ep.fields) do fields[#fields + 1] = f.name .. (f.required and "*" or "") end
    add(string.format("   %-30s %-6s %s", ep.path, ep.auth and "Auth" or "Public", table.concat(fields, " ")))
  end
  add("",
      "Fields: field=value (integer fields parse as integers, string fields stay strings,",
      "true/false/null for booleans), field:=JSON for a raw JSON value, '-' or --json - for a",
      "JSON body on stdin, --json @FILE for one in a file. field=value pairs win over --json.",
      "",
      "Environment: WEMASY_TOKEN, WEMASY_BASE_URL, WEMASY_REDIS_URL (flags win), NO_COLOR.",
      "Pass the token in WEMASY_TOKEN or --token-file: every local user can read --token's",
      "value in the process list.",
      "",
      "Exit codes:")
  for _, row in ipairs(M.EXIT_CODES) do add(string.format("  %3d  %-17s %s", row[2], row[1], row[3])) end
  add("",
      "Examples:",
      "   wemasy --sandbox orders/detail order_number=ORD-2025-001",
      "   WEMASY_TOKEN=... wemasy orders/detail order_number=ORD-2025-001 --raw | jq .data.type",
      "   echo '{\"order_id\": 2502}' | wemasy --sandbox --as customer customer/orders/get -")
  return table.concat(lines, "\n")
end

function M.parser(argparse)
  argparse = argparse or require("argparse")
  local p = argparse("wemasy", "Call the Wemasy e-commerce API from the shell.")
    :add_help(false)
    :help_max_width(100)
    :help_description_margin(32)
    :epilog(epilog())
  p:argument("command", "An endpoint (orders/detail) or a command: endpoints, rate-limit, repl, help."):args("?")
  p:argument("fields", "field=value pairs for the request body; '-' reads a JSON body from stdin."):args("*")
  p:option("-t --token", "Bearer token (default: $WEMASY_TOKEN). Never printed, but other local users see it in"
    .. " the process list (/proc/PID/cmdline): prefer $WEMASY_TOKEN or --token-file.")
  p:option("--token-file", "Read the token from a file ('-': stdin), less one trailing newline. Warns when"
    .. " group or others may read the file."):argname("<path>")
  p:option("-u --base-url", "API base URL (default: $WEMASY_BASE_URL, else " .. wemasy.DEFAULT_BASE_URL .. ").")
  p:flag("-s --sandbox", "Start a local sandbox (nginx) for this command and use it.")
  p:option("--as", "With --sandbox: whose token to use (default merchant)."):choices(SANDBOX_TOKENS)
  p:option("-j --json", "Request body as a JSON object; '-' reads stdin, '@FILE' a file.")
  p:flag("-r --raw", "Print the response as JSON on one line instead of indented.")
  p:option("--color", "Colour the output: auto (when a terminal), always, never.")
    :choices({ "auto", "always", "never" }):default("auto")
  p:option("--timeout", "Total seconds per request (wemasy.new's timeout).", nil, number_of("--timeout"))
  p:option("--connect-timeout", "Seconds to connect.", nil, number_of("--connect-timeout"))
  p:option("--max-retries", "Retries after a failure that is safe to retry.", nil, number_of("--max-retries"))
  p:flag("--no-wait", "Fail with rate_limited instead of waiting for a rate-limit slot.")
  p:option("--redis", "Share the rate limit with every host on the token through this Redis,"
    .. " redis://[:password@]host:port[/db] (default: $WEMASY_REDIS_URL). Prefer the variable for a password.")
    :argname("<url>")
  p:option("--ca-file", "CA bundle for TLS verification.")
  p:option("--ca-path", "CA directory for TLS verification.")
  p:option("--proxy", "Proxy URL.")
  p:flag("--insecure", "Turn TLS verification off.")
  p:flag("-d --debug", "One line per call on stderr: endpoint, status, time, attempts, quota.")
  p:flag("-h --help", "Show this help (with PATH: that endpoint's fields) and exit.")
  p:flag("-V --version", "Show the version and exit.")
  return p
end

function M.help()
  local ok, argparse = pcall(require, "argparse")
  if not ok then return nil end
  return M.parser(argparse):get_help()
end

-- One endpoint, as `wemasy endpoints PATH` and `wemasy help PATH` show it.
function M.describe_endpoint(ep)
  local lines = {
    ep.path .. "  -  " .. ep.summary,
    string.format("   method client:%s   auth: %s   limiter group: %s   %s", ep.method,
      ep.auth and "Auth (token)" or "Public", group_text(ep.group),
      ep.idempotent and "retried when safe (idempotent)" or "not idempotent"),
    string.format("   %-16s %-10s %-9s %s", "field", "type", "required", "example"),
  }
  for _, f in ipairs(ep.fields) do
    local t = f.type .. (f.nullable and "|null" or "")
    local example = type(f.example) == "string" and string.format("%q", f.example) or tostring(f.example)
    lines[#lines + 1] = string.format("   %-16s %-10s %-9s %s", f.name, t, f.required and "yes" or "no", example)
  end
  local call = { "wemasy " .. ep.path }
  for _, f in ipairs(ep.fields) do
    if f.required then call[#call + 1] = f.name .. "=" .. tostring(f.example) end
  end
  lines[#lines + 1] = "   e.g. " .. table.concat(call, " ")
  return table.concat(lines, "\n")
end

function M.endpoints_text(only)
  local blocks = {}
  for _, ep in ipairs(endpoints) do
    if not only or only == ep then blocks[#blocks + 1] = M.describe_endpoint(ep) end
  end
  return table.concat(blocks, "\n\n") .. "\n"
end

function M.endpoints_json(only)
  local list = {}
  for _, ep in ipairs(endpoints) do
    if not only or only == ep then
      local fields = {}
      for i, f in ipairs(ep.fields) do
        fields[i] = { name = f.name, type = f.type, required = f.required == true, nullable = f.nullable == true }
      end
      list[#list + 1] = { path = ep.path, method = ep.method, summary = ep.summary, auth = ep.auth,
                          group = ep.group, idempotent = ep.idempotent, fields = fields }
    end
  end
  return list
end

-- A field=value's value, typed by the endpoint table when the field is known.
local function coerce(field, text)
  local t = field and field.type
  if t == "string" then return text end
  if t == "integer" then
    if text:match("^%-?%d+$") then
      local n = tonumber(text)
      return math.tointeger and math.tointeger(n) or n
    end
    return text -- the client refuses it, naming the field
  end
  if t == "boolean" then
    if text == "true" then return true elseif text == "false" then return false end
    if text == "null" and field.nullable then return json.null end
    return text
  end
  -- An unknown endpoint or field: JSON scalars as such, anything else a string.
  if text == "true" then return true elseif text == "false" then return false end
  if text == "null" then return json.null end
  if text:match("^%-?%d+%.?%d*[eE]?[-+]?%d*$") and tonumber(text) then
    local n = tonumber(text)
    return math.tointeger and math.tointeger(n) or n
  end
  return text
end
M.coerce = coerce

local function read_all(file)
  local text = file:read("*a")
  return text or ""
end

-- The request body from --json, '-' and field=value arguments, or nil, message.
function M.body(ep, json_arg, fields, stdin)
  local body = {}
  local from_stdin = false
  local function decode(text, where)
    local value, why = json.decode(text)
    if value == nil then return nil, where .. " is not valid JSON: " .. tostring(why) end
    if type(value) ~= "table" or (next(value) ~= nil and rawget(value, 1) ~= nil) then
      return nil, where .. " must be a JSON object"
    end
    return value
  end
  if json_arg then
    local text, where = json_arg, "--json"
    if json_arg == "-" then
      text, where, from_stdin = read_all(stdin), "stdin", true
    elseif json_arg:sub(1, 1) == "@" then
      local f, why = io.open(json_arg:sub(2), "rb")
      if not f then return nil, "--json " .. json_arg .. ": " .. tostring(why) end
      text, where = read_all(f), json_arg:sub(2)
      f:close()
    end
    local value, why = decode(text, where)
    if not value then return nil, why end
    body = value
  end
  for _, arg in ipairs(fields) do
    if arg == "-" then
      if from_stdin then return nil, "stdin can be read once ('-' and --json - together)" end
      from_stdin = true
      local value, why = decode(read_all(stdin), "stdin")
      if not value then return nil, why end
      for k, v in pairs(value) do if body[k] == nil then body[k] = v end end
    else
      local name, raw = arg:match("^([^=:]+):=(.*)$")
      if name then
        local value, why = json.decode(raw)
        if value == nil then return nil, "field " .. name .. ":= is not valid JSON: " .. tostring(why) end
        body[name] = value
      else
        name, raw = arg:match("^([^=]+)=(.*)$")
        if not name then return nil, "expected field=value, got '" .. arg .. "'" end
        body[name] = coerce(ep and ep.field[name], raw)
      end
    end
  end
  return body
end

-- Every string written goes through this: the token never reaches a terminal
-- (in any case, however spaced: as errors are scrubbed).  `secrets` grows
-- when --token-file is read.
local function redactor(secrets)
  return function(text)
    text = tostring(text)
    for _, s in ipairs(secrets) do
      if #s >= 4 then text = errors.redact_text(text, s) end
    end
    return text
  end
end

-- Tokens that may appear on this command line, found before parsing (so even
-- a parse error cannot echo one).
local function secrets_of(argv, getenv)
  local list = {}
  local env = getenv("WEMASY_TOKEN")
  if env and env ~= "" then list[#list + 1] = env end
  for i, a in ipairs(argv) do
    if (a == "-t" or a == "--token") and argv[i + 1] then list[#list + 1] = argv[i + 1] end
    local v = a:match("^%-%-token=(.+)$") or a:match("^%-t(.+)$")
    if v then list[#list + 1] = v end
  end
  return list
end

local function rate_limit_text(client)
  local names = {}
  for name in pairs(endpoints.groups) do names[#names + 1] = name end
  table.sort(names)
  local lines = { string.format("%-10s %6s %10s %10s %11s", "group", "limit", "remaining", "reset_in", "closed_for") }
  local states = {}
  for _, name in ipairs(names) do
    local s, err = client:rate_limit(name)
    if not s then return nil, err end
    states[name] = s
    lines[#lines + 1] = string.format("%-10s %6d %10d %9.1fs %10.1fs", name, s.limit, s.remaining, s.reset_in,
      s.closed_for)
  end
  return table.concat(lines, "\n"), states
end

local Run = {}
Run.__index = Run

function Run:out(text) self.stdout:write(self.redact(text)) end
function Run:err(text) self.stderr:write(self.redact(text)) end

function Run:usage_error(message)
  self:err("wemasy: " .. message .. "\n(wemasy --help shows the usage)\n")
  return M.EXIT.usage
end

-- The token of --token-file PATH ('-': stdin): all of it, less one trailing
-- newline (echo and editors add one).  A file others may read is used, with
-- a warning: Docker and Kubernetes mount secrets 0644 in the container.
-- Returns the token, or nil and the exit code.
function Run:token_from_file()
  local path = self.args.token_file
  local text, why
  if path == "-" then
    text = self.stdin:read("*a") or ""
  else
    local f
    f, why = io.open(path, "rb")
    if f then
      text, why = f:read("*a")
      f:close()
    end
    if not text then
      why = tostring(why)
      if why:sub(1, #path + 2) == path .. ": " then why = why:sub(#path + 3) end
      return nil, self:usage_error("--token-file " .. path .. ": cannot read it (" .. why .. ")")
    end
  end
  if text:sub(-2) == "\r\n" then text = text:sub(1, -3) elseif text:sub(-1) == "\n" then text = text:sub(1, -2) end
  if text == "" then return nil, self:usage_error("--token-file " .. path .. ": no token in it (empty)") end
  self.secrets[#self.secrets + 1] = text
  local mode, regular
  if path ~= "-" then mode, regular = core.file_mode(path) end
  if regular and mode % 64 >= 1 then -- any of the group's or others' bits
    self:err(string.format("wemasy: warning: --token-file %s may be read by other users (mode %03o):"
      .. " chmod 600 it\n", path, mode % 512))
  end
  return text
end

function Run:color(fd)
  local want = self.args.color
  if want == "always" then return true elseif want == "never" then return false end
  local no_color = self.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  return self.isatty(fd)
end

-- wemasy.new options from the flags and the environment; starts the sandbox
-- for --sandbox.  Returns options or nil, exit code.
function Run:client_options()
  local a = self.args
  local opts = {
    timeout = a.timeout, connect_timeout = a.connect_timeout, max_retries = a.max_retries,
    ca_file = a.ca_file, ca_path = a.ca_path, proxy = a.proxy, insecure = a.insecure or nil,
  }
  if a.no_wait then opts.rate_limit = { wait = false } end
  local redis = a.redis or self.getenv("WEMASY_REDIS_URL")
  if redis and redis ~= "" then
    opts.rate_limit = opts.rate_limit or {}
    opts.rate_limit.store = redis
  end
  if a.debug then
    opts.debug = function(line) self:err(line .. "\n") end
  end
  if a.sandbox then
    if a.base_url or a.token then return nil, self:usage_error("--sandbox uses its own base URL and tokens") end
    local base_url, sb = wemasy.sandbox.start{}
    if not base_url then
      self:err("wemasy: could not start the sandbox: " .. tostring(sb) .. "\n")
      return nil, M.EXIT.failure
    end
    self.sandbox = sb
    opts.base_url, opts.token = base_url, wemasy.sandbox.tokens[a.as or "merchant"]
    -- A fresh sandbox (new port) each run: keep the limiter in-process
    -- (unless a Redis was asked for).
    opts.rate_limit = opts.rate_limit or {}
    if not opts.rate_limit.store then opts.rate_limit.shared = false end
  else
    if a.as then return nil, self:usage_error("--as only applies with --sandbox") end
    local token, base_url = a.token or self.file_token or self.getenv("WEMASY_TOKEN"),
      a.base_url or self.getenv("WEMASY_BASE_URL")
    if token ~= "" then opts.token = token end
    if base_url ~= "" then opts.base_url = base_url end
  end
  return opts
end

function Run:new_client()
  local opts, code = self:client_options()
  if not opts then return nil, code end
  self.token = opts.token
  local ok, client = pcall(wemasy.new, opts)
  if not ok then
    -- wemasy.new names the option; say it as the flag.
    local msg = tostring(client):gsub("^.-wemasy%.new: ", "")
    msg = msg:gsub("option 'rate_limit%.store'", "--redis")
    msg = msg:gsub("option '([%w_]+)'", function(name)
      if name == "token" and self.file_token and not self.args.token then return "--token-file" end
      return "--" .. name:gsub("_", "-")
    end)
    return nil, self:usage_error(msg)
  end
  self.client = client
  return client
end

function Run:print_value(value)
  if self.args.raw then
    local text, why = json.encode(value)
    self:out((text or ("null -- " .. tostring(why))) .. "\n")
  else
    self:out(pretty.format(value, { color = self:color(1) }) .. "\n")
  end
end

function Run:print_error(err)
  self:err(pretty.format(err, { color = self:color(2) }) .. "\n")
  return M.EXIT[err.kind] or M.EXIT.failure
end

function Run:endpoints_command()
  local name = self.args.fields[1]
  local ep = endpoint_of(name)
  if name and not ep then return self:usage_error(unknown_endpoint("unknown endpoint", name)) end
  if self.args.raw then
    self:print_value(M.endpoints_json(ep))
  else
    self:out(M.endpoints_text(ep))
  end
  return M.EXIT.ok
end

function Run:rate_limit_command()
  local client, code = self:new_client()
  if not client then return code end
  local text, states = rate_limit_text(client)
  if not text then return self:print_error(states) end
  if self.args.raw then self:print_value(states) else self:out(text .. "\n") end
  return M.EXIT.ok
end

function Run:repl_command()
  local client, code = self:new_client()
  if not client then return code end
  local env = self.sandbox and { sandbox = self.sandbox } or {}
  local repl = require("wemasy.repl")
  -- The REPL keeps the history file free of every token this command knows.
  local secrets = { self.token }
  for _, t in ipairs(self.secrets) do secrets[#secrets + 1] = t end
  local ok, why = repl.run{ client = client, input = self.stdin, output = self.stdout,
                            color = self:color(1), extra = env, secrets = secrets }
  if not ok then
    self:err("wemasy: " .. tostring(why) .. "\n")
    return M.EXIT.failure
  end
  return M.EXIT.ok
end

function Run:call_command(target)
  local ep = endpoint_of(target)
  if not ep and not target:find("/", 1, true) then
    return self:usage_error(unknown_endpoint("unknown command or endpoint", target))
  end
  local body, why = M.body(ep, self.args.json, self.args.fields, self.stdin)
  if not body then return self:usage_error(why) end
  local client, code = self:new_client()
  if not client then return code end
  local value, err
  if ep then
    value, err = client[ep.method](client, body)
  else
    value, err = client:call(target, body)
  end
  if err then
    -- Refused for want of a token: wemasy.new's words mean nothing at a shell.
    if err.kind == "unauthenticated" and err.status == nil and not client:has_token() then
      err.message = "this endpoint needs a token: set WEMASY_TOKEN or give --token-file PATH (or try --sandbox)"
    end
    return self:print_error(err)
  end
  self:print_value(value)
  return M.EXIT.ok
end

-- Reads --token-file (before any other argument is used, so that the token is
-- redacted from every message); returns an exit code when that fails.
function Run:read_token_file()
  local a = self.args
  if not a.token_file then return nil end
  if a.token then return self:usage_error("--token and --token-file: give one of them") end
  if a.sandbox then return self:usage_error("--sandbox uses its own base URL and tokens, not --token-file") end
  local stdin_body = a.json == "-" or a.command == "repl"
  for _, f in ipairs(a.fields) do stdin_body = stdin_body or f == "-" end
  if a.token_file == "-" and stdin_body then
    return self:usage_error("stdin can be read once: --token-file - with a body from stdin, or with repl")
  end
  local token, code = self:token_from_file()
  if not token then return code end
  self.file_token = token
  return nil
end

function Run:dispatch()
  local a = self.args
  if a.version then
    self:out("wemasy " .. tostring(wemasy._VERSION) .. " (" .. _VERSION .. ")\n")
    return M.EXIT.ok
  end
  local command = a.command
  if a.help or command == "help" then
    local topic = command == "help" and a.fields[1] or command
    local ep = endpoint_of(topic)
    if ep then
      self:out(M.describe_endpoint(ep) .. "\n")
    elseif topic and not COMMAND_NAMES[topic] then
      return self:usage_error("no help for '" .. topic
        .. "': not a command nor an endpoint (wemasy endpoints lists them)")
    else
      self:out(self.parser:get_help() .. "\n")
    end
    return M.EXIT.ok
  end
  if not command then return self:usage_error("say what to do: an endpoint, endpoints, rate-limit or repl (--help)") end
  if command == "endpoints" then return self:endpoints_command() end
  local code = self:read_token_file()
  if code then return code end
  if command == "rate-limit" then return self:rate_limit_command() end
  if command == "repl" then return self:repl_command() end
  return self:call_command(command)
end

-- argv: the arguments (arg); sys: { stdout, stderr, stdin, getenv, isatty(fd) }.
function M.main(argv, sys)
  sys = sys or {}
  argv = argv or {}
  local args_list = {}
  for i = 1, #argv do args_list[i] = argv[i] end
  local getenv = sys.getenv or os.getenv
  local secrets = secrets_of(args_list, getenv)
  local self = setmetatable({
    stdout = sys.stdout or io.stdout, stderr = sys.stderr or io.stderr, stdin = sys.stdin or io.stdin,
    getenv = getenv, isatty = sys.isatty or pretty.is_terminal,
    secrets = secrets,
  }, Run)
  self.redact = redactor(self.secrets)
  local ok_ap, argparse = pcall(require, "argparse")
  if not ok_ap then
    self:err("wemasy: the command line needs argparse: apt-get install lua-argparse (or luarocks install argparse)\n")
    return M.EXIT.failure
  end
  self.parser = M.parser(argparse)
  local parsed, args = self.parser:pparse(negative_values(args_list))
  if not parsed then return self:usage_error(parse_message(args)) end
  for _, flag in ipairs(NOT_EMPTY) do
    if args[flag:sub(3):gsub("%-", "_")] == "" then return self:usage_error(needs_value(flag)) end
  end
  self.args = args
  -- Ctrl-C raises Lua's "interrupted!" (lua.c's handler, or the core's for
  -- a call it stopped): one line and 130, as shells report a SIGINT.
  local interrupted = false
  local ok, code = xpcall(function() return self:dispatch() end, function(e)
    if type(e) == "string" and e:find("interrupted!$") then
      interrupted = true
      return e
    end
    return debug.traceback(e, 2)
  end)
  if self.client then self.client:close() end
  if self.sandbox then self.sandbox:stop() end
  if interrupted then
    self:err("wemasy: interrupted\n")
    return M.EXIT.interrupted
  end
  if not ok then
    self:err("wemasy: internal error: " .. tostring(code) .. "\n")
    return M.EXIT.failure
  end
  return code
end

return M
