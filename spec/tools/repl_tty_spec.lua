-- `wemasy repl` typed at as a person would (issue 17 item 2): in a tmux
-- pane, with send-keys (Up, Tab, Ctrl-D) and capture-pane.  Checks line
-- editing and history (also across sessions, in a 0600 file that never gets
-- the token), Tab completion of methods and fields, and `_err`.
-- Skipped, saying so, only when tmux is not installed.
local core = require("wemasy.core")
local repl = require("wemasy.repl")
local sandbox = require("wemasy.sandbox")
local read_file = require("wemasy.sandbox.proc").read_file
local h = require("support.helpers")

local LUA = h.LUA

local sh, capture = h.shell_quote, h.output

local function exists(cmd) return capture("command -v " .. cmd) ~= "" end

describe("wemasy repl in a terminal (tmux)", function()
  if not exists("tmux") then
    -- spec/run shows no passing (or pending) line: say it where it is seen.
    io.stderr:write("spec/tools/repl_tty_spec.lua: SKIPPED, tmux is not installed (apt-get install tmux)\n")
    it("is skipped: tmux is not installed (apt-get install tmux, or make deps)", function()
      pending("tmux is not installed: the REPL's terminal spec did not run")
    end)
    return
  end

  local base_url, sb, home, socket
  local token = sandbox.tokens.merchant

  -- One tmux server of our own (-L), no user config (-f /dev/null).
  local function tmux(args) return capture("tmux -L " .. socket .. " -f /dev/null " .. args) end

  local function screen() return tmux("capture-pane -p -t spec") end

  -- Polls the pane until `pattern` (plain text) shows, for up to 20 s.
  local function wait_for(text, count)
    count = count or 1
    local deadline = os.time() + 20
    local seen
    repeat
      seen = screen()
      local n = select(2, seen:gsub(text:gsub("%p", "%%%0"), ""))
      if n >= count then return seen end
      os.execute("sleep 0.1")
    until os.time() > deadline
    error("the pane never showed " .. string.format("%q", text) .. " x" .. count .. ":\n" .. seen, 2)
  end

  local function keys(...)
    local list = {}
    for i = 1, select("#", ...) do list[i] = sh((select(i, ...))) end
    tmux("send-keys -t spec " .. table.concat(list, " "))
  end

  local function start_repl()
    tmux("kill-session -t spec")
    local cmd = table.concat({
      "env -u XDG_STATE_HOME -u WEMASY_TOKEN HOME=" .. sh(home), "NO_COLOR=1", "TERM=xterm",
      "LUA_PATH=" .. sh(os.getenv("LUA_PATH") or ""), "LUA_CPATH=" .. sh(os.getenv("LUA_CPATH") or ""),
      -- --token, not WEMASY_TOKEN: the REPL learns the token from the command line.
      LUA, "bin/wemasy repl --base-url", sh(base_url), "--token", sh(token), "; echo EXITED $?; sleep 600",
    }, " ")
    tmux("new-session -d -s spec -x 200 -y 50 " .. sh(cmd))
    wait_for("wemasy>")
  end

  lazy_setup(function()
    base_url, sb = sandbox.start{}
    assert(base_url, sb)
    home = os.tmpname()
    os.remove(home)
    assert(os.execute("mkdir -m 700 " .. sh(home)))
    socket = "wemasy-spec-" .. home:match("[^/]+$")
  end)

  lazy_teardown(function()
    if socket then tmux("kill-server") end
    if home then os.execute("rm -rf " .. sh(home)) end
    if base_url then
      core._debug_unlink(base_url, token)
      core._debug_unlink(base_url, nil)
    end
    if sb then sb:stop() end
  end)

  it("edits lines, recalls them with Up, completes with Tab, keeps _err, saves history without the token", function()
    assert.truthy(capture(LUA .. " -e 'require(\"readline\")'") == "",
      "lua-readline is not installed for " .. LUA .. " (apt-get install lua-readline, or make deps)")
    -- A history from before, too long and readable by others: cut and made private.
    local path = home .. "/.wemasy_history"
    local old = {}
    for i = 1, repl.HISTORY_LINES + 5 do old[i] = "old_line(" .. i .. ")" end
    local f = assert(io.open(path, "w"))
    f:write(table.concat(old, "\n"), "\n")
    f:close()
    assert(os.execute("chmod 644 " .. sh(path)))
    start_repl()
    keys("1 + 41", "Enter")
    wait_for("\n42")
    keys("Up")
    local seen = wait_for("wemasy> 1 + 41", 2)
    assert.falsy(seen:find("^[[A", 1, true), seen)
    keys("Enter")
    wait_for("\n42", 2)

    -- Tab: a method, then the endpoint's field, then a unique completion of a global.
    keys("client:orders_det", "Tab")
    wait_for("wemasy> client:orders_detail")
    keys("{ order_n", "Tab")
    wait_for("client:orders_detail{ order_number")
    keys(' = "ORD-2025-001" }.data.order_number', "Enter")
    wait_for('\n"ORD-2025-001"')
    -- Two Tabs list the candidates.
    keys("client:rate", "Tab")
    wait_for("wemasy> client:rate_limit")
    keys("C-u", "client:", "Tab", "Tab")
    seen = wait_for("client:orders_detail ")
    assert.truthy(seen:find("client:rate_limit", 1, true), seen)
    assert.truthy(seen:find("client:customer_orders_get", 1, true), seen)
    keys("C-u")

    -- A failed call in a chain: the nil error, then the call's own error.
    keys('client:orders_detail{ order_number = "NOPE" }.data.x', "Enter")
    seen = wait_for("last wemasy error")
    assert.truthy(seen:find("attempt to index a nil value", 1, true), seen)
    assert.truthy(seen:find("wemasy not_found 404 on orders/detail", 1, true), seen)

    -- Lines with the token, or giving one, are not kept.
    keys('t = "' .. token .. '"', "Enter")
    keys('x = { token = "literal-secret-1234" }', "Enter")
    keys("_err.status", "Enter")
    wait_for("\n404")
    keys("C-d")
    wait_for("EXITED 0")

    local history = read_file(path)
    assert.is_string(history, "no history file at " .. path)
    assert.equal("600", (capture("stat -c %a " .. sh(path)):gsub("%s", "")))
    assert.truthy(history:find("1 + 41\n", 1, true), history)
    assert.truthy(history:find('client:orders_detail{ order_number = "ORD-2025-001" }.data.order_number\n', 1,
      true), history)
    assert.falsy(history:find(token, 1, true), history)
    assert.falsy(history:find("literal-secret-1234", 1, true), history)
    assert.equal(1, select(2, history:gsub("1 %+ 41\n", "")), "a repeated line is kept once: " .. history)
    assert.falsy(history:find("old_line(5)\n", 1, true))
    assert.truthy(history:find("^old_line%(6%)\n"), history:sub(1, 40))

    -- A new session recalls the last session's lines.
    start_repl()
    keys("Up")
    wait_for("wemasy> _err.status")
    keys("C-u", "C-d")
    wait_for("EXITED 0")
  end)
end)
