-- common.lua - what the benchmark parents (speed.lua, batch.lua, ratelimit.lua)
-- share: running commands, the machine lines of a report, medians, wrk.
-- Lua 5.4 and LuaJIT both load it: each script puts its own directory first on
-- package.path, so `require("common")` finds this file whatever LUA_PATH is.
local M = {}

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The interpreter this script runs on: the lowest index of arg.
function M.interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i]
end

local function run(cmd)
  local p = io.popen(cmd)
  local s = p and p:read("a") or ""
  if p then p:close() end
  return (s:gsub("%s+$", ""))
end

-- A command's standard output, trailing space cut; its stderr is dropped.
function M.capture(cmd)
  return run(cmd .. " 2>/dev/null")
end

-- The same with stderr kept (`nginx -v` writes its version there, and a
-- failed run's message belongs in the error that reports it).
function M.capture_with_stderr(cmd)
  return run(cmd .. " 2>&1")
end

-- Options as "--name value" pairs, --foo-bar setting o.foo_bar: `defaults`
-- names every option but --out, and a number there takes numbers only.
function M.parse_args(argv, defaults, script)
  local o = defaults
  local i = 1
  while i <= #argv do
    local k, v = argv[i], argv[i + 1]
    local key = k:match("^%-%-(.+)$")
    key = key and key:gsub("%-", "_")
    if key and type(o[key]) == "number" then o[key] = tonumber(v) or error(k .. " wants a number", 0)
    elseif key == "out" or (key and type(o[key]) == "string") then o[key] = v
    else error(script .. ": unknown argument " .. tostring(k), 0) end
    i = i + 2
  end
  return o
end

function M.dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

function M.exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- The median of xs (left unsorted); NaN for no values.
function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Runs cmd through capture and parses its "key=value ..." line; fails loudly,
-- with the command and all it printed, unless looks_right(fields) holds.
function M.measure(cmd, capture, looks_right)
  local out = capture(cmd)
  local r = {}
  for k, v in out:gmatch("(%w[%w_]*)=(%S+)") do r[k] = tonumber(v) or v end
  if not looks_right(r) then
    error("benchmark run failed: " .. cmd .. "\n" .. out, 0)
  end
  return r
end

-- The sandbox alone: wrk POSTs body to url for `seconds` over `connections`
-- connections.  Returns requests/s and the request count, or nil when wrk
-- is not installed; any error or non-2xx answer fails.
function M.wrk(capture, url, body, token, connections, seconds)
  if capture("command -v wrk") == "" then return nil end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(string.format("wrk.method = 'POST'\nwrk.body = %q\n", body),
    "wrk.headers['Accept'] = 'application/json'\n",
    "wrk.headers['Content-Type'] = 'application/json'\n",
    string.format("wrk.headers['Authorization'] = %q\n", "Bearer " .. token))
  f:close()
  local out = capture(string.format("wrk -t1 -c%d -d%ds -s %s %s", connections, seconds, M.shell_quote(script),
    M.shell_quote(url)))
  os.remove(script)
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local total = tonumber(out:match("(%d+) requests in"))
  local bad = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  if not rps or bad > 0 or out:match("Socket errors") then error("wrk failed or saw errors:\n" .. out, 0) end
  return rps, total
end

------------------------------------------------------------------------ report

function M.cpu_model(capture)
  return (capture("grep -m1 '^model name' /proc/cpuinfo"):gsub("^model name%s*:%s*", ""))
end

-- curl-config comes with the -dev package; the curl tool names the same
-- library where that is missing.
function M.curl_version()
  local curl = M.capture("curl-config --version")
  if curl == "" then curl = M.capture("curl --version | head -1") end
  return curl
end

function M.date_line()
  return "date:     " .. os.date("!%Y-%m-%d %H:%M:%S UTC")
end

-- Adds the strings in `more` to the end of `lines`.
function M.append(lines, more)
  for _, line in ipairs(more) do lines[#lines + 1] = line end
  return lines
end

-- The first lines of batch.lua's and ratelimit.lua's reports: the date and
-- the machine, then the lines in `more`.
function M.date_and_machine(more)
  return M.append({ M.date_line(), "machine:  nproc=" .. M.capture("nproc") .. ", " .. M.cpu_model(M.capture) },
    more)
end

-- How this run was started: BENCH_COMMAND from the Makefile, else this very
-- command line.
function M.command_line()
  return "command:  " .. (os.getenv("BENCH_COMMAND")
    or (M.interpreter() .. " " .. arg[0] .. " " .. table.concat(arg, " ")))
end

-- Prints the report and writes it to the file `out` as well, if given.
function M.write_report(lines, out)
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  if out then
    local f = assert(io.open(out, "w"))
    f:write(text)
    f:close()
  end
end

return M
