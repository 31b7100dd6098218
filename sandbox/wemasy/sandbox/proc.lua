-- Processes and files for the launcher, in plain Lua 5.4 and LuaJIT, with
-- nothing beyond the shell's usual tools (mktemp, kill, rm, id, env) and
-- luasocket (for sleeping, finding a free port and HTTP requests).

local proc = {}

local has_socket, socket = pcall(require, "socket")

-- A word for sh, single-quoted.
function proc.quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute that answers true/false the same in Lua 5.1/LuaJIT and 5.4.
function proc.run(cmd)
   local a, _, c = os.execute(cmd)
   if type(a) == "number" then return a == 0 end
   return a == true and (c == nil or c == 0)
end

-- All that a file (or a pipe) holds, closing it; nil when it did not open.
local function slurp(f)
   if not f then return nil end
   local s = f:read("*a")
   f:close()
   return s
end

-- The command's standard output, trailing newlines removed (nil on failure).
function proc.capture(cmd)
   local out = slurp(io.popen(cmd, "r"))
   out = out and out:gsub("%s+$", "")
   if out == "" then return nil end
   return out
end

function proc.read_file(path)
   return slurp(io.open(path, "rb"))
end

function proc.write_file(path, text)
   local f, err = io.open(path, "wb")
   if not f then return nil, err end
   f:write(text)
   f:close()
   return true
end

function proc.exists(path)
   local f = io.open(path, "rb")
   if f then f:close() return true end
   return false
end

function proc.sleep(seconds)
   if has_socket then
      socket.sleep(seconds)
   else
      proc.run("sleep " .. string.format("%.3f", seconds))
   end
end

function proc.now()
   if has_socket then return socket.gettime() end
   return os.time()
end

-- True while pid runs (a zombie, already dead, counts as gone).
function proc.alive(pid)
   pid = tonumber(pid)
   if not pid or pid <= 0 then return false end
   local stat = proc.read_file("/proc/" .. pid .. "/stat")
   if stat then
      local state = stat:match("^%d+ %b() (%a)")
      return state ~= "Z" and state ~= "X"
   end
   if proc.exists("/proc/self/stat") then return false end
   return proc.run("kill -0 " .. pid .. " 2>/dev/null")
end

-- Sends a signal (name without SIG) to pid, or to process group -pid.
function proc.signal(pid, sig, group)
   local target = group and ("-- -" .. math.floor(pid)) or tostring(math.floor(pid))
   return proc.run("kill -" .. sig .. " " .. target .. " 2>/dev/null")
end

-- Waits up to `seconds` for pid to be gone; true when it is.
function proc.wait_gone(pid, seconds)
   local deadline = proc.now() + seconds
   while proc.alive(pid) do
      if proc.now() >= deadline then return false end
      proc.sleep(0.02)
   end
   return true
end

-- This process's id (the Lua interpreter), or nil where /proc is missing.
function proc.self_pid()
   local stat = proc.read_file("/proc/self/stat")
   return stat and tonumber(stat:match("^(%d+)"))
end

-- A new private directory like /tmp/wemasy-sandbox.XXXXXX (mode 0700).
function proc.mktemp()
   local dir = proc.capture("mktemp -d /tmp/wemasy-sandbox.XXXXXX 2>/dev/null")
   if not dir or not dir:match("^/tmp/wemasy%-sandbox%.[%w]+$") then
      return nil, "mktemp -d /tmp/wemasy-sandbox.XXXXXX failed"
   end
   return dir
end

-- Removes a directory made by proc.mktemp (and refuses anything else).
function proc.remove_tree(dir)
   if type(dir) ~= "string" or not dir:match("^/tmp/wemasy%-sandbox%.[%w]+$") then
      return false
   end
   return proc.run("rm -rf " .. proc.quote(dir))
end

function proc.mkdirs(...)
   local words = {}
   for _, d in ipairs({ ... }) do words[#words + 1] = proc.quote(d) end
   return proc.run("mkdir -p " .. table.concat(words, " "))
end

-- { uid = n, user = "name", group = "name" }
function proc.identity()
   return {
      uid = tonumber(proc.capture("id -u")),
      user = proc.capture("id -un"),
      group = proc.capture("id -gn"),
   }
end

-- A port on 127.0.0.1 that was free a moment ago (the kernel's choice).
function proc.free_port(host)
   if has_socket then
      local server = socket.bind(host or "127.0.0.1", 0)
      if server then
         local _, port = server:getsockname()
         server:close()
         if tonumber(port) then return tonumber(port) end
      end
   end
   return math.random(20000, 60000)
end

-- One HTTP request with luasocket (the launchers' control and test calls):
-- status, body, headers (lower-case names), or nil, message.  r.headers go
-- as given (content-length is the caller's), r.body as it is; r.timeout in
-- seconds for each socket operation; r.redirect = false answers a 3xx
-- rather than follow it (a request with a body never follows one).
function proc.http_request(r)
   local http = require "socket.http"
   local ltn12 = require "ltn12"
   local chunks = {}
   local ok, code, headers = http.request{
      url = r.url, method = r.method, headers = r.headers, redirect = r.redirect,
      source = r.body and ltn12.source.string(r.body) or nil,
      sink = ltn12.sink.table(chunks),
      create = function()
         local s = require("socket").tcp()
         s:settimeout(r.timeout)
         return s
      end,
   }
   if not ok then return nil, code end
   return code, table.concat(chunks), headers or {}
end

-- Calls get() (an HTTP request: status, body, or nil, message) every 50 ms
-- until it answers 200, for at most `seconds`: true, or nil and the last
-- answer (or error).
function proc.wait_ok(seconds, get)
   local deadline = proc.now() + seconds
   local last
   repeat
      local code, body = get()
      if code == 200 then return true end
      last = code and ("HTTP " .. code .. " " .. tostring(body)) or body
      proc.sleep(0.05)
   until proc.now() >= deadline
   return nil, last
end

-- A value that calls fn (errors ignored) when it is collected, at the latest
-- when the interpreter closes: kept by a handle, it stops what the handle
-- started if the script forgets to.
function proc.sentinel(fn)
   local guard = function() pcall(fn) end
   if newproxy then -- LuaJIT / 5.1: tables have no __gc, userdata do
      local p = newproxy(true)
      getmetatable(p).__gc = guard
      return p
   end
   return setmetatable({}, { __gc = guard })
end

-- The last `n` lines of a file.
function proc.tail(path, n)
   local text = proc.read_file(path)
   if not text or text == "" then return "" end
   local lines = {}
   for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
   local first = math.max(1, #lines - (n or 20) + 1)
   return table.concat(lines, "\n", first)
end

return proc
