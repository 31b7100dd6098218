-- Specs for the shared limiter segment as something anyone who can open it
-- may have written (issue 15, items 1 to 3): hostile words in a valid
-- segment, a segment of another user or open to others, a full /dev/shm and
-- a segment truncated while mapped.  What could crash or hang runs in a
-- child process under `timeout`, so a failure is a report, not a dead run.
local core = require "wemasy.core"
local h = require "support.helpers"

local srv = h.tiny_server()

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs `code` (Lua, arguments in arg[1..]) in a child of `prefix` (a command
-- such as setpriv, or ""), killed after `limit` seconds.  Returns its output
-- and its exit status (124 or 137: killed by the timeout, 128 + n: signal n).
local function run(code, args, limit, prefix)
  local argv = {}
  for i, a in ipairs(args or {}) do argv[i] = quote(a) end
  -- The code on stdin (`lua -`): a second user cannot read our temporary files.
  local cmd = string.format("timeout -s KILL %d %s %s - %s 2>&1 <<'WEMASY_EOF'\n%s\nWEMASY_EOF\necho \"EXIT $?\"",
    limit, prefix or "", h.LUA, table.concat(argv, " "), code)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("EXIT (%d+)%s*$"))
  return out, status
end

-- In every child: write into the segment's file as a hostile process would.
local POKE = [[
local core = require "wemasy.core"
local L = core._debug_segment_layout()
local function poke(path, field, fmt, value, group, index)
  local f = assert(L[field], field)
  local off = f.offset + (group or 0) * L.group.size + (index or 0) * 8
  local file = assert(io.open(path, "r+b"))
  file:seek("set", off)
  if fmt == "bytes" then file:write(string.rep(value, f.size)) else file:write(core._debug_pack(fmt, value)) end
  file:close()
end
]]

local function shm_path(token)
  return "/dev/shm" .. core._debug_segment(srv.url, token)
end

describe("the shared limiter segment", function()
  describe("never trusted", function()
    -- One request makes the segment and its group "default" (slot 0); then
    -- one hostile write; then a call and a report in the same process.
    local HOSTILE = POKE .. [[
local url, token, path, field, fmt, value = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6]
local index = tonumber(arg[7])
local c = core.new { base_url = url, token = token, max_retries = 0,
  rate_limit = { wait = false, groups = { default = { limit = tonumber(arg[8]) or 60, window = 1 } } } }
assert(c:request("/echo", "{}") == 200)
poke(path, field, fmt, fmt == "bytes" and value or value == "nan" and 0 / 0 or tonumber(value), 0, index)
local t0 = core.now()
local status, kind, _, _, _, retry_after = c:request("/echo", "{}")
local rl, why = c:rate_limit()
print(string.format("CALL %s %s %s IN %.3f", tostring(status), status and "-" or tostring(kind), tostring(retry_after),
  core.now() - t0))
print("REPORT", rl and rl.remaining, rl and rl.closed_for, rl and rl.reset_in, why)
print("STORE", c:limiter_store())
]]

    local function hostile(field, fmt, value, index, limit)
      local token = h.token("hostile")
      local argv = { srv.url, token, shm_path(token), field, fmt, value, index or 0, limit or 60 }
      local out, status = run(HOSTILE, argv, 10)
      core._debug_unlink(srv.url, token)
      assert.equal(0, status, "the child died (" .. tostring(status) .. "): " .. out)
      local call = { out:match("CALL (%S+) (%S+) (%S+) IN (%S+)") }
      local report = { out:match("REPORT\t(%S+)\t(%S+)\t(%S+)") }
      assert.is_true(#call == 4 and #report == 3, out)
      assert.is_true(tonumber(call[4]) < 2, "the call took " .. call[4] .. " s")
      local rl = { remaining = tonumber(report[1]), closed_for = tonumber(report[2]), reset_in = tonumber(report[3]) }
      return call, rl, out
    end

    it("survives a ring head out of range", function()
      local call, rl = hostile("head", "u32", 0xffffffff)
      assert.equal("200", call[1])
      assert.is_true(rl.remaining >= 0 and rl.remaining <= 60)
    end)

    it("survives a count of 2^32 - 1", function()
      local call, rl = hostile("count", "u32", 0xffffffff)
      assert.equal("200", call[1])
      assert.is_true(rl.remaining >= 0 and rl.remaining <= 60)
    end)

    it("caps a stored Retry-After of 1e300 s at a day", function()
      local call, rl = hostile("closed_until", "f64", 1e300)
      assert.equal("rate_limited", call[2])
      assert.is_true(rl.closed_for > 0 and rl.closed_for <= 86400, rl.closed_for)
    end)

    it("takes a closed_until of NaN as not closed", function()
      local call, rl = hostile("closed_until", "f64", "nan")
      assert.equal("200", call[1])
      assert.equal(0, rl.closed_for)
    end)

    it("holds a send time of 1e300 for one window, not forever", function()
      local call, rl = hostile("sends", "f64", 1e300, 0, 1)
      assert.equal("rate_limited", call[2])
      assert.is_true(tonumber(call[3]) <= 1.25, call[3])
      assert.is_true(rl.reset_in <= 1.25, rl.reset_in)
    end)

    it("is not wedged by garbage in the mutex", function()
      local call, _, out = hostile("lock", "bytes", "\255")
      assert.equal("200", call[1], out)
      -- Its first word as if a thread 12345 held it (and never died).
      call, _, out = hostile("lock", "u32", 12345)
      assert.equal("200", call[1], out)
    end)

    it("sets up a segment with a garbage header again instead of using it", function()
      for _, field in ipairs { "magic", "version", "size", "state" } do
        local call, rl, out = hostile(field, "u32", 0x5a5a5a5b)
        assert.equal("200", call[1], out)
        assert.equal(59, rl.remaining, field .. " was used as it was: " .. out) -- a fresh state, one send
      end
    end)

    it("sets up a segment with another layout number again when a client opens it", function()
      -- The layout is in the segment's name: another number at this name is
      -- garbage, not another wemasy version's segment to stay away from.
      local token = h.token("layout")
      local opts = { base_url = srv.url, token = token, max_retries = 0 }
      local c = core.new(opts)
      assert.equal(200, (c:request("/echo", "{}")))
      c:close()
      local file = assert(io.open(shm_path(token), "r+b"))
      file:seek("set", core._debug_segment_layout().version.offset)
      file:write(core._debug_pack("u32", 2))
      file:close()
      c = core.new(opts)
      assert.equal(200, (c:request("/echo", "{}")))
      local store, notice = c:limiter_store()
      c:close()
      core._debug_unlink(srv.url, token)
      assert.equal("shm", store, notice)
    end)

    it("counts a lock held past its bound as a broken segment, not a hang", function()
      local token = h.token("held")
      local c = core.new { base_url = srv.url, token = token, max_retries = 0 }
      assert.equal(200, (c:request("/echo", "{}")))
      local child = h.spawn([[
        local core = require "wemasy.core"
        core._debug_hold_lock(arg[1], arg[2], 8)
      ]], { srv.url, token })
      assert.equal("LOCKED", child.pipe:read("*l"))
      local t0 = core.now()
      local status = c:request("/echo", "{}")
      local took = core.now() - t0
      h.kill(child)
      h.finish(child)
      assert.equal(200, status)
      assert.is_true(took >= 0.9 and took < 3, "took " .. took .. " s")
      assert.equal("shm", c:limiter_store())
      c:close()
      core._debug_unlink(srv.url, token)
    end)
  end)

  describe("of another user", function()
    local NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    local VICTIM = [[
local core = require "wemasy.core"
local url, token = arg[1], arg[2]
if arg[3] == "name" then print("NAME " .. core._debug_segment(url, token)) return end
local ok, c = pcall(core.new, { base_url = url, token = token, max_retries = 0 })
if not ok then print("NEW FAILED " .. tostring(c)) return end
print("CALL " .. tostring((c:request("/echo", "{}"))))
print("STORE", c:limiter_store())
c:close()
]]

    local function nobody(token, what)
      return run(VICTIM, { srv.url, token, what }, 10, NOBODY)
    end

    -- A file at `path`, as another user would leave it there.
    local function plant(path, owner, mode)
      local f = assert(io.open(path, "w"))
      f:close()
      assert(os.execute("chown " .. owner .. " " .. path .. " && chmod " .. mode .. " " .. path))
    end

    local function size_of(path)
      local f = assert(io.open(path, "rb"))
      local n = f:seek("end")
      f:close()
      return n
    end

    it("is refused when another user pre-created it writable for all", function()
      local token = h.token("planted")
      local path = "/dev/shm" .. nobody(token, "name"):match("NAME (%S+)")
      plant(path, "0", "666") -- root's, world-writable: the victim runs as nobody
      local out, status = nobody(token)
      local size = size_of(path)
      os.remove(path)
      assert.equal(0, status, out)
      assert.matches("CALL 200", out)
      assert.equal(0, size, "the victim wrote into another user's segment: " .. out)
      assert.matches("STORE\tlocal\t[^\n]*belongs to uid 0, not to this user", out)
    end)

    it("is refused, not an error, when another user's segment cannot be opened", function()
      local token = h.token("foreign")
      local path = "/dev/shm" .. nobody(token, "name"):match("NAME (%S+)")
      plant(path, "0", "600")
      local out, status = nobody(token)
      os.remove(path)
      assert.equal(0, status, out)
      assert.matches("CALL 200", out)
      assert.matches("STORE\tlocal\t[^\n]*Permission denied", out)
    end)

    -- One call of a client whose segment another user planted (owner, mode):
    -- the limiter's store and notice, and the planted file's size after it.
    local function call_over_planted(tag, owner, mode)
      local token = h.token(tag)
      local path = shm_path(token)
      plant(path, owner, mode)
      local c = core.new { base_url = srv.url, token = token, max_retries = 0 }
      assert.equal(200, (c:request("/echo", "{}")))
      local kind, notice = c:limiter_store()
      c:close()
      local size = size_of(path)
      os.remove(path)
      return kind, notice, size
    end

    it("is refused when it belongs to another user, even to root", function()
      local kind, notice, size = call_over_planted("nobodys", "65534", "600")
      assert.equal("local", kind)
      assert.matches("belongs to uid 65534", notice)
      assert.equal(0, size)
    end)

    it("says so in the hooks and the debug line: store local, and why", function()
      local token = h.token("told")
      local path = shm_path(token)
      plant(path, "65534", "600")
      local infos, lines = {}, {}
      local c = require("wemasy").new { base_url = srv.url, token = token, max_retries = 0,
        hooks = { on_response = function(info) infos[#infos + 1] = info end },
        debug = function(line) lines[#lines + 1] = line end }
      c:call("/echo", {})
      c:close()
      os.remove(path)
      assert.equal(1, #infos)
      assert.equal("local", infos[1].limiter.store)
      assert.matches("belongs to uid 65534, not to this user %(uid 0%): this client keeps its own quota",
        infos[1].limiter.notice)
      assert.matches("default slots 59/60 %(local%), shared memory /wemasy%-%d+%-%x+ belongs to uid 65534", lines[1])
    end)

    it("is refused when other users may write this user's segment", function()
      local kind, notice = call_over_planted("open", "0", "622")
      assert.equal("local", kind)
      assert.matches("open to other users %(mode 622%)", notice)
    end)

    it("keeps the quota of a second user apart in a segment of its own, mode 0600", function()
      local token = h.token("second")
      local out, status = nobody(token)
      local path = "/dev/shm" .. nobody(token, "name"):match("NAME (%S+)")
      local p = io.popen("stat -c '%u %a' " .. path)
      local owner = p:read("*l")
      p:close()
      os.remove(path)
      assert.equal(0, status, out)
      assert.matches("STORE\tshm", out)
      assert.equal("65534 600", owner)
    end)
  end)

  describe("without room", function()
    local function can_unshare()
      return os.execute("unshare -m true 2>/dev/null") == true or os.execute("unshare -m true 2>/dev/null") == 0
    end

    it("falls back clearly on a full /dev/shm instead of dying of SIGBUS", function()
      assert.is_true(can_unshare(), "this spec needs `unshare -m` (root, or a user namespace)")
      -- A private /dev/shm of 64 kB, filled up; then a client that sends.
      local out, status = run([[
local core = require "wemasy.core"
local c = core.new { base_url = arg[1], token = arg[2], max_retries = 0,
  rate_limit = { groups = { default = { limit = 2, window = 30 } }, wait = false } }
print("CALL " .. tostring((c:request("/echo", "{}"))))
print("CALL " .. tostring((c:request("/echo", "{}"))))
print("CALL " .. tostring(select(2, c:request("/echo", "{}"))))
print("STORE", c:limiter_store())
]], { srv.url, h.token("full") }, 10,
        "unshare -m sh -c 'mount -t tmpfs -o size=64k tmpfs /dev/shm && "
        .. "dd if=/dev/zero of=/dev/shm/filler bs=4k count=16 2>/dev/null; exec \"$0\" \"$@\"'")
      assert.equal(0, status, "the child died (" .. tostring(status) .. "): " .. out)
      assert.matches("CALL 200\nCALL 200\nCALL rate_limited\n", out)
      assert.matches("STORE\tlocal\t[^\n]*cannot allocate %d+ bytes of shared memory[^\n]*No space left on device", out)
    end)

    it("survives its segment being truncated while mapped", function()
      local token = h.token("truncated")
      local out, status = run([[
local core = require "wemasy.core"
local c = core.new { base_url = arg[1], token = arg[2], max_retries = 0 }
assert(c:request("/echo", "{}") == 200)
assert(io.open(arg[3], "w")):close() -- truncates it to 0 bytes
print("CALL " .. tostring((c:request("/echo", "{}"))))
print("REMAINING " .. c:rate_limit().remaining)
print("STORE", c:limiter_store())
]], { srv.url, token, shm_path(token) }, 10)
      core._debug_unlink(srv.url, token)
      assert.equal(0, status, "the child died (" .. tostring(status) .. "): " .. out)
      assert.matches("CALL 200\nREMAINING 59\nSTORE\tshm", out)
    end)
  end)
end)
