-- What the automation examples share: a client from the environment or a
-- sandbox, the list files they read, a progress bar and CSV fields.  Not part
-- of wemasy; copy what you need.
local wemasy = require("wemasy")

local M = {}

-- A client: with `sandbox_opts` a sandbox is started (and stopped at exit),
-- else WEMASY_TOKEN / WEMASY_BASE_URL are used (the token is optional for
-- scripts that only use Public endpoints).  Returns client, sandbox or nil.
function M.client(sandbox_opts, client_opts, token_optional)
  local opts = {}
  for k, v in pairs(client_opts or {}) do opts[k] = v end
  local sb
  if sandbox_opts then
    local base_url, handle = wemasy.sandbox.start(sandbox_opts)
    if not base_url then M.die("could not start the sandbox: " .. tostring(handle)) end
    sb = handle
    opts.base_url, opts.token = base_url, wemasy.sandbox.tokens.merchant
  else
    opts.token = os.getenv("WEMASY_TOKEN")
    opts.base_url = os.getenv("WEMASY_BASE_URL")
    if opts.token == "" then opts.token = nil end
    if not opts.token and not token_optional then
      M.die("set WEMASY_TOKEN (a merchant token), or run with --sandbox")
    end
    if opts.base_url == "" then opts.base_url = nil end
  end
  return wemasy.new(opts), sb
end

function M.die(message, code)
  io.stderr:write(tostring(arg and arg[0] or "example"), ": ", message, "\n")
  os.exit(code or 1, true)
end

-- Non-empty lines that are not '#' comments, trimmed.
function M.read_list(path)
  local f, why = io.open(path, "r")
  if not f then M.die(tostring(why)) end
  local list = {}
  for line in f:lines() do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then list[#list + 1] = line end
  end
  f:close()
  return list
end

-- A small CSV reader (RFC 4180: quoted fields, "" inside quotes; no newlines
-- inside fields).  Returns a list of rows keyed by the header's names.
function M.read_csv(path)
  local f, why = io.open(path, "r")
  if not f then M.die(tostring(why)) end
  local header, rows = nil, {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line ~= "" then
      local fields, pos = {}, 1
      while pos <= #line + 1 do
        if line:sub(pos, pos) == '"' then
          local value, i = {}, pos + 1
          while true do
            local q = line:find('"', i, true)
            if not q then M.die(path .. ": unterminated quote") end
            value[#value + 1] = line:sub(i, q - 1)
            if line:sub(q + 1, q + 1) == '"' then
              value[#value + 1] = '"'
              i = q + 2
            else
              pos = q + 2
              break
            end
          end
          fields[#fields + 1] = table.concat(value)
        else
          local comma = line:find(",", pos, true) or (#line + 1)
          fields[#fields + 1] = line:sub(pos, comma - 1)
          pos = comma + 1
        end
      end
      if not header then
        header = fields
      else
        local row = {}
        for i, name in ipairs(header) do row[name] = fields[i] end
        rows[#rows + 1] = row
      end
    end
  end
  f:close()
  return rows
end

-- One CSV field: quoted when it holds a comma, quote or line break.
function M.csv_field(v)
  if v == nil or v == wemasy.null then return "" end
  local s = tostring(v)
  if s:find('[",\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function M.csv_line(values)
  local parts = {}
  for i = 1, #values do parts[i] = M.csv_field(values[i]) end
  return table.concat(parts, ",") .. "\r\n"
end

-- A progress bar on stderr: redrawn in place on a terminal, one line per
-- update otherwise (logs, cron mail).
function M.progress(total)
  local tty = wemasy.pretty.is_terminal(2)
  local bar = { total = total }
  function bar.update(done, text)
    local width = 24
    local filled = total > 0 and math.floor(width * done / total + 0.5) or width
    local line = string.format("[%s%s] %d/%d  %s", string.rep("#", filled), string.rep("-", width - filled),
      done, total, text or "")
    if tty then
      io.stderr:write("\r\27[K", line)
    else
      io.stderr:write(line, "\n")
    end
    io.stderr:flush()
  end
  function bar.finish()
    if tty then io.stderr:write("\n") end
  end
  return bar
end

function M.money(n)
  if type(n) ~= "number" then return "" end
  return string.format("%.2f", n)
end

return M
