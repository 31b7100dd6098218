-- One process of a "host" of spec/support/hosts.lua (run by it, not by hand):
--
--   lua host_worker.lua <base_url> <token> <path> <body> <start> <duration> <pace> <rate_limit> <outfile>
--
-- From <start> (socket.gettime()) for <duration> seconds it calls <path> with
-- <body> through its own client (rate_limit: a Lua table constructor; no
-- retries, so a 429 is counted, never hidden), one call every <pace> seconds
-- or as fast as its limiter lets it (pace 0).  Writes to <outfile> one line
-- per call, "<sent> <took> <outcome>" (seconds from <start>; outcome: the
-- status, or the error kind), then "END".
local socket = require "socket"
local core = require "wemasy.core"

local base_url, token, path, body = arg[1], arg[2], arg[3], arg[4]
local start, duration, pace = tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])
local rate_limit = assert((loadstring or load)("return " .. arg[8]))()
local outfile = arg[9]

local c = core.new { base_url = base_url, token = token ~= "" and token or nil, max_retries = 0,
                     rate_limit = rate_limit, timeout = 10 }
local lines = {}
local function sleep_until(t)
  local d = t - socket.gettime()
  if d > 0 then socket.sleep(d) end
end

sleep_until(start)
local deadline, n = start + duration, 0
while true do
  local due = start + n * pace
  if due >= deadline then break end
  sleep_until(due)
  local t0 = socket.gettime()
  if t0 >= deadline then break end
  local status, kind = c:request(path, body)
  local t1 = socket.gettime()
  lines[#lines + 1] = ("%.4f %.4f %s"):format(t0 - start, t1 - t0, status and tostring(status) or tostring(kind))
  n = n + 1
end
c:close()
lines[#lines + 1] = "END"
local f = assert(io.open(outfile, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
