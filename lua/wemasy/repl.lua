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
local pretty = require("wemasy.pretty")

local M = {}

M.SANDBOX_TOKENS = { "merchant", "merchant_no_finance", "customer", "other_customer" }

-- Where the client comes from: opts, then WEMASY_TOKEN / WEMASY_BASE_URL.
-- Returns the environment for the prompt, or nil, message.
function M.environment(opts)
  opts = opts or {}
  local wemasy = require("wemasy")
  local env = { wemasy = wemasy }
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
  end
  env.client = client
  for k, v in pairs(opts.extra or {}) do env[k] = v end
  if env.sandbox and not env.tokens then env.tokens = wemasy.sandbox.tokens end
  local color = opts.color
  if color == nil then color = pretty.want_color(1) end
  env.pp = function(...) pretty.print_to(io.stdout, { color = color }, ...) end
  return env
end

-- For `lua -i`: the environment's names become globals; print pretty-prints.
function M.setup(opts)
  local env, why = M.environment(opts)
  if not env then error(why, 2) end
  for k, v in pairs(env) do _G[k] = v end
  _G.print = env.pp
  io.stdout:write(M.banner(env), "\n")
  return env.client
end

function M.banner(env)
  local lines = {
    "wemasy " .. tostring(env.wemasy._VERSION) .. ": " .. tostring(env.client),
    "  try:  client:orders_detail{ order_number = \"ORD-2025-001\" }",
    "        client:rate_limit(\"sync\")     wemasy.endpoints     pp(value)",
  }
  if env.sandbox then
    lines[#lines + 1] = "  sandbox at " .. tostring(env.sandbox.base_url)
      .. " (wemasy.new{ base_url = sandbox.base_url, token = tokens.customer } for another role)"
  end
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

local function pack(...) return { n = select("#", ...), ... } end

-- The traceback of an error at the prompt, down to the typed chunk only;
-- Ctrl-C's "interrupted!" needs none.
local function traceback(message)
  if type(message) == "string" and message:find("interrupted!$") then return message end
  local tb = debug.traceback(tostring(message), 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut - 1) or tb
end

-- Reads, evaluates and prints until the end of input (or exit/quit).
local function read_eval_print(input, output, scope, color, prompt, continuation)
  local buffer
  while true do
    output:write(buffer and continuation or prompt)
    output:flush()
    local line = input:read("*l")
    if not line then break end
    if not buffer and (line == "exit" or line == "quit") then break end
    buffer = buffer and (buffer .. "\n" .. line) or line
    local f, err = compile(buffer, scope)
    if f or not incomplete(err) then -- else: wait for more lines
      buffer = nil
      if not f then
        output:write(tostring(err), "\n")
      else
        local r = pack(xpcall(f, traceback))
        if not r[1] then
          output:write(tostring(r[2]), "\n")
        elseif r.n > 1 then
          local values = {}
          for i = 2, r.n do values[i - 1] = r[i] end
          for i = 1, r.n - 1 do
            output:write(pretty.format(values[i], { color = color }), i < r.n - 1 and "\n" or "")
          end
          output:write("\n")
        end
      end
    end
  end
end

-- The prompt.  opts: everything environment() takes (or `client`, and
-- `extra` names for the prompt), plus input/output files (stdin/stdout),
-- prompt strings and color.  Returns true at the end
-- of input; stops the sandbox it started.
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
  output:write(M.banner(env), "\n")
  local prompt, continuation = opts.prompt or "wemasy> ", opts.continuation or "    >> "
  -- Every Ctrl-C during a call comes back here as "interrupted!": lua.c's
  -- own handler turns itself off after the first, and a second one would
  -- kill the prompt (and leave its sandbox behind).
  local core = require("wemasy.core")
  local mode = core.on_interrupt("raise")
  local ok, why_not = pcall(read_eval_print, input, output, scope, color, prompt, continuation)
  core.on_interrupt(mode)
  if not ok then
    if env.sandbox and not opts.client then env.sandbox:stop() end
    error(why_not, 0)
  end
  output:write("\n")
  if env.sandbox and not opts.client then env.sandbox:stop() end
  return true
end

return M
