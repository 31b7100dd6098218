-- Stops an orphaned sandbox: when the process that started nginx is gone
-- (a crashed or killed spec run), worker 0 removes the private prefix and
-- asks the master to quit. The launcher's own stop/__gc path is the normal
-- way; this is only the backstop.

local watchdog = {}

local INTERVAL = 1

local function alive(pid)
   local f = io.open("/proc/" .. pid .. "/stat", "r")
   if not f then
      -- No /proc: ask kill(1) (a zombie counts as alive there).
      local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
      return r == 0 or r == true
   end
   local stat = f:read("*a") or ""
   f:close()
   local state = stat:match("^%d+ %b() (%a)")
   return state ~= "Z" and state ~= "X"
end

local function check(premature, owner_pid, prefix)
   if premature or alive(owner_pid) then return end
   ngx.log(ngx.WARN, "wemasy sandbox: owner process ", owner_pid, " is gone; stopping")
   if prefix and prefix:match("^/tmp/wemasy%-sandbox%.[%w]+$") then
      os.execute("rm -rf '" .. prefix .. "'")
   end
   local master = require("ngx.process").get_master_pid()
   if master then os.execute("kill -QUIT " .. master) end
end

-- Called from init_worker; does nothing without an owner pid.
function watchdog.start(owner_pid, prefix)
   if not owner_pid or ngx.worker.id() ~= 0 then return end
   local ok, err = ngx.timer.every(INTERVAL, check, owner_pid, prefix)
   if not ok then ngx.log(ngx.ERR, "wemasy sandbox: watchdog: ", err) end
end

return watchdog
