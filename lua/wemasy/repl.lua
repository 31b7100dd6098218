-- A Lua prompt with a client ready, for trying the API by hand.
--
--   wemasy repl --sandbox                 -- from the shell (bin/wemasy)
--   require("wemasy").repl{ sandbox = true }
--   lua5.4 -i -e 'require("wemasy.repl").setup{ sandbox = true }'   -- Lua's own prompt
--
-- In the prompt: `client`, `wemasy`, `pp` (pretty print) and, with a sandbox,
-- `sandbox` (its handle) and `tokens`.  Results print through wemasy.pretty:
--
--   > client:orders_detail{ order_number = "ORD-2025-001" }
--
-- setup() is for `lua -i`: it sets those globals and replaces the global
-- `print` with one that pretty-prints tables (Lua's prompt prints results
-- through the global `print`, on 5.4 and on LuaJIT).
--
-- At a terminal with Debian's lua-readline installed, run() reads through it:
-- line editing, history in a private file that never gets the token
-- (history_file, keeps_in_history) and Tab completion (complete: a pure
-- function of the line).  Elsewhere it reads plain lines.  Every method of
-- `client` that returns nil, err leaves err in `_err`, which a chained call
-- (`client:orders_detail{...}.data`) would otherwise lose.
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local pretty = require("wemasy.pretty")

local M = {}

-- The tokens of an environment, for the history filter: kept out of the
-- environment itself, which is the prompt's global scope.
local secrets_of = setmetatable({}, { __mode = "k" })

local function pack(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

M.SANDBOX_TOKENS = { "merchant", "merchant_no_finance", "customer", "other_customer" }

-- Where the client comes from: opts, then WEMASY_TOKEN / WEMASY_BASE_URL.
-- Returns the environment for the prompt, or nil, message.
function M.environment(opts)
  opts = opts or {}
  local wemasy = require("wemasy")
  local env = { wemasy = wemasy }
  local secrets = {}
  local client = opts.client
  if not client then
    local new_opts = {}
    for k, v in pairs(opts.options or {}) do new_opts[k] = v end
    if opts.sandbox then
      local base_url, sb = wemasy.sandbox.start(opts.sandbox_options or {})
      if not base_url then return nil, "could not start the sandbox: " .. tostring(sb) end
      local who = opts.as or "merchant"
      if not wemasy.sandbox.tokens[who] then
        sb:stop()
        return nil, "unknown sandbox token '" .. tostring(who) .. "' (" .. table.concat(M.SANDBOX_TOKENS, ", ") .. ")"
      end
      new_opts.base_url, new_opts.token = base_url, wemasy.sandbox.tokens[who]
      -- A sandbox gets a new port each time: a shared limiter segment per run
      -- would only pile up in /dev/shm.
      if new_opts.rate_limit == nil then new_opts.rate_limit = { shared = false } end
      env.sandbox, env.tokens = sb, wemasy.sandbox.tokens
    else
      if new_opts.token == nil then new_opts.token = opts.token or os.getenv("WEMASY_TOKEN") end
      if new_opts.base_url == nil then new_opts.base_url = opts.base_url or os.getenv("WEMASY_BASE_URL") end
      if new_opts.token == "" then new_opts.token = nil end
      if new_opts.base_url == "" then new_opts.base_url = nil end
    end
    local ok, c = pcall(wemasy.new, new_opts)
    if not ok then
      if env.sandbox then env.sandbox:stop() end
      return nil, tostring(c)
    end
    client = c
    secrets[#secrets + 1] = new_opts.token
  end
  env.client = client
  for k, v in pairs(opts.extra or {}) do env[k] = v end
  if env.sandbox and not env.tokens then env.tokens = wemasy.sandbox.tokens end
  -- What the history must never get: the caller's tokens, the environment's, the sandbox's.
  for _, t in ipairs(opts.secrets or {}) do secrets[#secrets + 1] = t end
  secrets[#secrets + 1] = os.getenv("WEMASY_TOKEN")
  for _, t in pairs(env.tokens or {}) do secrets[#secrets + 1] = t end
  secrets_of[env] = secrets
  local color = opts.color
  if color == nil then color = pretty.want_color(1) end
  env.pp = function(...) pretty.print_to(io.stdout, { color = color }, ...) end
  return env
end

-- Tab completion -------------------------------------------------------------

local by_method = {}
for _, ep in ipairs(endpoints) do by_method[ep.method] = ep end

-- value[key] without running code: raw fields, then __index tables only.
local function peek(value, key)
  for _ = 1, 16 do
    if type(value) ~= "table" then return nil end
    local v = rawget(value, key)
    if v ~= nil then return v end
    local mt = getmetatable(value)
    value = type(mt) == "table" and rawget(mt, "__index") or nil
  end
  return nil
end

-- The identifier keys of value and of its __index tables (functions only
-- when `methods`), metamethods left out.
local function keys_of(value, methods)
  local seen, list = {}, {}
  for _ = 1, 16 do
    if type(value) ~= "table" then break end
    for k, v in next, value do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not k:match("^__") and not seen[k]
        and (not methods or type(v) == "function") then
        seen[k] = true
        list[#list + 1] = k
      end
    end
    local mt = getmetatable(value)
    value = type(mt) == "table" and rawget(mt, "__index") or nil
  end
  return list
end

-- Scans `text` as Lua far enough to know whether it ends inside a string
-- (or comment) and where the innermost unclosed '{' is.
local function scan(text)
  local braces, i, n = {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' or c == "'" then
      local j = i + 1
      while true do
        local d = text:sub(j, j)
        if d == "" then return true end
        if d == "\\" then j = j + 1 elseif d == c then break end
        j = j + 1
      end
      i = j
    elseif c == "[" and text:match("^%[=*%[", i) then
      local eq = text:match("^%[(=*)%[", i)
      local close = text:find("]" .. eq .. "]", i, true)
      if not close then return true end
      i = close + #eq + 1
    elseif c == "-" and text:sub(i + 1, i + 1) == "-" then
      local eq = text:match("^%-%-%[(=*)%[", i)
      local close = text:find(eq and "]" .. eq .. "]" or "\n", i, true)
      if not close then return true end
      i = close + (eq and #eq + 1 or 0)
    elseif c == "{" then
      braces[#braces + 1] = i
    elseif c == "}" then
      braces[#braces] = nil
    end
    i = i + 1
  end
  return false, braces[#braces]
end

local function matching(names, prefix, lead, exclude)
  local list = {}
  for _, name in ipairs(names) do
    if name:sub(1, #prefix) == prefix and not (exclude and exclude[name]) then list[#list + 1] = lead .. name end
  end
  table.sort(list)
  return list
end

-- Inside `x:METHOD{` or `x:METHOD({`, at a key: that endpoint's field names
-- (those not given yet), or nil when the cursor is not there.
local function field_candidates(before, brace)
  local ep = by_method[before:sub(1, brace - 1):match(":([%a_][%w_]*)%s*%(?%s*$") or false]
  if not ep then return nil end
  local inside = before:sub(brace + 1)
  local prefix = inside:match("^%s*([%a_]?[%w_]*)$") or inside:match("[,;]%s*([%a_]?[%w_]*)$")
  if not prefix then return nil end
  local names, given = {}, {}
  for i, f in ipairs(ep.fields) do
    names[i] = f.name
    if inside:find("%f[%w_]" .. f.name .. "%s*=") then given[f.name] = true end
  end
  return matching(names, prefix, "", given), #before - #prefix + 1
end

-- Candidates for the word that ends at `cursor` in `line`, evaluated in
-- `scope` (the prompt's globals), and where they start: the candidates
-- replace line:sub(start, cursor).  Globals, `t.` fields, `x:` methods and,
-- inside client:METHOD{, the endpoint's field names.  Runs no code.
function M.complete(line, cursor, scope)
  local before = line:sub(1, cursor or #line)
  local in_string, brace = scan(before)
  if in_string then return {}, #before + 1 end
  if brace then
    local list, start = field_candidates(before, brace)
    if list then return list, start end
  end
  local chain = before:match("[%a_][%w_%.:]*$") or ""
  local start = #before - #chain + 1
  if before:sub(start - 1, start - 1):match("[%.:%w_%)%]]") then return {}, start end
  local base, sep, prefix = chain:match("^(.-)([%.:])([%a_]?[%w_]*)$")
  if not base then return matching(keys_of(scope), chain, ""), start end
  if base:find(":", 1, true) or base == "" then return {}, start end
  local value = scope
  for name in base:gmatch("[^%.]+") do value = peek(value, name) end
  return matching(keys_of(value, sep == ":"), prefix, base .. sep), start
end

-- History --------------------------------------------------------------------

M.HISTORY_LINES = 1000

-- $XDG_STATE_HOME/wemasy/history, else ~/.wemasy_history; nil without a home.
function M.history_file(getenv)
  getenv = getenv or os.getenv
  local state, home = getenv("XDG_STATE_HOME"), getenv("HOME")
  if state and state:match("^/") then return state .. "/wemasy/history" end
  if home and home:match("^/") then return home .. "/.wemasy_history" end
  return nil
end

-- Whether a typed line may go to the history file: not blank, no known
-- token, nothing that looks like it gives one (a token = ..., "token": ...,
-- --token, Bearer, Authorization), whatever the value.
function M.keeps_in_history(line, secrets)
  if not line:find("%S") then return false end
  for _, s in ipairs(secrets or {}) do
    if #s >= 4 and line:find(s, 1, true) then return false end
  end
  local lower = line:lower()
  return not (lower:find("token%s*=[^=]") or lower:find("token%s*=$") or lower:find("token[\"']?%s*:%s*[\"']")
    or lower:find("%-%-token") or lower:find("bearer") or lower:find("authorization"))
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Makes `path` a regular file only its owner reads (0600, in a 0700 directory
-- if one is made) and cuts it to its last M.HISTORY_LINES lines.  Returns
-- true when it can be used.
local function private_history(path)
  local dir = path:match("^(.*)/[^/]*$")
  local ok = os.execute("umask 077 && mkdir -p -- " .. sh_quote(dir) .. " && touch -- " .. sh_quote(path)
    .. " && [ -f " .. sh_quote(path) .. " ] && chmod 600 -- " .. sh_quote(path) .. " 2>/dev/null")
  if not (ok == true or ok == 0) then return false end
  local f = io.open(path, "rb")
  if not f then return false end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  if #lines > M.HISTORY_LINES then
    f = io.open(path, "wb") -- the file exists: its mode stays
    if not f then return false end
    f:write(table.concat(lines, "\n", #lines - M.HISTORY_LINES + 1), "\n")
    f:close()
  end
  return true
end

-- Line reading -----------------------------------------------------------------

-- A reader(prompt) -> line through lua-readline, or nil when it cannot be
-- used.  Lines are added to the history (and appended to its file at once)
-- by keeps_in_history, never by readline itself.
local function readline_reader(scope, history, secrets)
  local ok, rl = pcall(require, "readline")
  if not ok then return nil end
  if history and not private_history(history) then history = nil end
  rl.set_options{ histfile = history or "", auto_add = false, completion = true }
  rl.set_readline_name("wemasy")
  rl.set_complete_function(function(text, from, to)
    rl.set_completion_append_character("")
    local list, start = M.complete(text, to, scope)
    -- readline replaces text:sub(from, to): give each candidate that word's head.
    local head = text:sub(from, start - 1)
    for i, c in ipairs(list) do list[i] = head .. c:sub(math.max(from - start, 0) + 1) end
    return list
  end)
  local last
  return function(prompt)
    local line = rl.readline(prompt)
    if line and line ~= last and M.keeps_in_history(line, secrets) then
      last = line
      rl.add_history(line)
      local f = history and io.open(history, "ab")
      if f then
        f:write(line, "\n")
        f:close()
      end
    end
    return line
  end, history
end

local function plain_reader(input, output)
  return function(prompt)
    output:write(prompt)
    output:flush()
    return input:read("*l")
  end
end

-- _err ---------------------------------------------------------------------------

-- Wraps each method of `client` on the instance, so that a nil, err result
-- also sets scope._err and calls on_error(err).  Returns the undo.
local function watch_errors(client, scope, on_error)
  local mt = type(client) == "table" and getmetatable(client)
  local class = type(mt) == "table" and rawget(mt, "__index")
  if type(class) ~= "table" then return function() end end
  local names = {}
  for name, method in pairs(class) do
    if type(name) == "string" and type(method) == "function" and not name:match("^__")
      and rawget(client, name) == nil then
      names[#names + 1] = name
      rawset(client, name, function(...)
        local r = pack(method(...))
        if r[1] == nil and errors.is_error(r[2]) then
          rawset(scope, "_err", r[2])
          if on_error then on_error(r[2]) end
        end
        return unpack(r, 1, r.n)
      end)
    end
  end
  return function()
    for _, name in ipairs(names) do rawset(client, name, nil) end
  end
end

-- For `lua -i`: the environment's names become globals; print pretty-prints.
function M.setup(opts)
  local env, why = M.environment(opts)
  if not env then error(why, 2) end
  watch_errors(env.client, _G)
  for k, v in pairs(env) do _G[k] = v end
  _G.print = env.pp
  io.stdout:write(M.banner(env), "\n")
  return env.client
end

-- note: a last line about the prompt itself (editing, history), if any.
function M.banner(env, note)
  local lines = {
    "wemasy " .. tostring(env.wemasy._VERSION) .. ": " .. tostring(env.client),
    "  try:  client:orders_detail{ order_number = \"ORD-2025-001\" }",
    "        client:rate_limit(\"sync\")     wemasy.endpoints     pp(value)     _err (the last error)",
  }
  if env.sandbox then
    lines[#lines + 1] = "  sandbox at " .. tostring(env.sandbox.base_url)
      .. " (wemasy.new{ base_url = sandbox.base_url, token = tokens.customer } for another role)"
  end
  lines[#lines + 1] = note
  return table.concat(lines, "\n")
end

local load_chunk = loadstring and setfenv and function(text, name, env)
  local f, why = loadstring(text, name)
  if f then setfenv(f, env) end
  return f, why
end or function(text, name, env)
  return load(text, name, "t", env)
end

local function incomplete(why)
  return type(why) == "string" and why:find("<eof>", 1, true) ~= nil
end

-- Compiles `text` as an expression first (so `client:orders_detail{...}`
-- prints its results), then as statements.
local function compile(text, env)
  local f = load_chunk("return " .. text, "=stdin", env)
  if f then return f end
  return load_chunk(text, "=stdin", env)
end

-- The traceback of an error at the prompt, down to the typed chunk only;
-- Ctrl-C's "interrupted!" needs none.
local function traceback(message)
  if type(message) == "string" and message:find("interrupted!$") then return message end
  local tb = debug.traceback(tostring(message), 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut - 1) or tb
end

-- lua-readline's reader at a terminal, else plain lines; and the banner's note.
local function reader(opts, input, output, scope, secrets)
  if opts.readline == false or input ~= io.stdin or not pretty.is_terminal(0) then
    return plain_reader(input, output)
  end
  local history = opts.history
  if history == nil then history = M.history_file() end
  local read, file = readline_reader(scope, history or nil, secrets)
  if not read then
    return plain_reader(input, output), "  (no line editing: apt-get install lua-readline)"
  end
  return read, "  Tab completes, Up recalls" .. (file and " (history in " .. file .. ")" or "")
end

-- Runs one complete chunk and prints its results, or its error and the
-- wemasy error a chained call lost (last_error() tells it).
local function eval_print(f, output, color, last_error)
  local r = pack(xpcall(f, traceback))
  if not r[1] then
    output:write(tostring(r[2]), "\n")
    -- Often "attempt to index a nil value": the call's own error says why.
    local failed = last_error()
    if failed then output:write("last wemasy error (_err): ", pretty.format(failed, { color = color }), "\n") end
  elseif r.n > 1 then
    for i = 2, r.n do
      output:write(pretty.format(r[i], { color = color }), i < r.n and "\n" or "")
    end
    output:write("\n")
  end
end

-- Reads, evaluates and prints until the end of input (or exit/quit).
-- ctx: read, output, scope, color, prompt, continuation, last_error, new_line.
local function read_eval_print(ctx)
  local buffer
  while true do
    ctx.output:flush()
    local line = ctx.read(buffer and ctx.continuation or ctx.prompt)
    if not line then break end
    if not buffer and (line == "exit" or line == "quit") then break end
    buffer = buffer and (buffer .. "\n" .. line) or line
    local f, err = compile(buffer, ctx.scope)
    if f or not incomplete(err) then -- else: wait for more lines
      buffer = nil
      if not f then
        ctx.output:write(tostring(err), "\n")
      else
        ctx.new_line()
        eval_print(f, ctx.output, ctx.color, ctx.last_error)
      end
    end
  end
end

-- The prompt.  opts: everything environment() takes (or `client`, and
-- `extra` names for the prompt), plus input/output files (stdin/stdout),
-- prompt strings, color, readline (false: plain lines even at a terminal),
-- history (a file, false for none; default history_file()) and secrets
-- (tokens the history must not get).  Returns true at the end of input;
-- stops the sandbox it started.
function M.run(opts)
  opts = opts or {}
  local input, output = opts.input or io.stdin, opts.output or io.stdout
  local env, why = M.environment(opts)
  if not env then return nil, why end
  local color = opts.color
  if color == nil then color = output == io.stdout and pretty.want_color(1) end
  local function show(...)
    pretty.print_to(output, { color = color }, ...)
  end
  env.pp = show
  env.print = show
  local scope = setmetatable(env, { __index = _G })
  local failed -- the error a client method returned while this line ran
  local unwatch = watch_errors(env.client, scope, function(err) failed = err end)
  local read, note = reader(opts, input, output, scope, secrets_of[env])
  output:write(M.banner(env, note), "\n")
  -- Every Ctrl-C during a call comes back here as "interrupted!": lua.c's
  -- own handler turns itself off after the first, and a second one would
  -- kill the prompt (and leave its sandbox behind).
  local core = require("wemasy.core")
  local mode = core.on_interrupt("raise")
  local ok, why_not = pcall(read_eval_print, {
    read = read, output = output, scope = scope, color = color,
    prompt = opts.prompt or "wemasy> ", continuation = opts.continuation or "    >> ",
    last_error = function() return failed end, new_line = function() failed = nil end,
  })
  core.on_interrupt(mode)
  unwatch()
  if env.sandbox and not opts.client then env.sandbox:stop() end
  if not ok then error(why_not, 0) end
  output:write("\n")
  return true
end

return M
