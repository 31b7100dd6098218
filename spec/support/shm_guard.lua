-- A busted helper (spec/run passes it as --helper): after each spec file, the
-- limiter segments of this user (/dev/shm/wemasy-<uid>-<hash>) that the file
-- made and left behind, one "shm_guard: ..." line on stderr each file, which
-- spec/run counts as a failure.  Specs remove what they make (helpers'
-- forget_tokens, forget_sandbox, core._debug_unlink, or rate_limit = false).
-- spec/run gives each run a /dev/shm of its own where it can (unshare -m), so
-- only this run's segments are seen; on the host's /dev/shm another wemasy
-- process of this uid running meanwhile would be blamed too.
local busted = require "busted"
local segments = require("support.helpers").segments

local before = {}

busted.subscribe({ "file", "start" }, function()
  before = segments()
  return nil, true
end)

busted.subscribe({ "file", "end" }, function(file)
  local left = {}
  for name in pairs(segments()) do
    if not before[name] then left[#left + 1] = name end
  end
  if #left > 0 then
    table.sort(left)
    io.stderr:write(string.format("shm_guard: %s left %d limiter segment(s) in /dev/shm: %s\n",
      file.name, #left, table.concat(left, " ")))
    -- Removed, so the next file (and the next run) starts from a clean /dev/shm.
    for _, name in ipairs(left) do os.remove("/dev/shm/" .. name) end
  end
  return nil, true
end)
