-- README "Known issues", checked against the libcurl this machine has:
-- tools/curl_fold_uaf.c (plain libcurl, no wemasy code) makes libcurl read
-- and realloc() freed memory on a response whose first header line is a
-- folded continuation, on an easy handle that served a response before.
-- valgrind must see it exactly on the versions the README names; when the
-- answer changes (a fixed libcurl, a Debian backport), so must the README.
local core = require "wemasy.core"
local h = require "support.helpers"

local FIXED_IN = 0x080100 -- 8.1.0: curl #11101, PR #11103

local function version_num(v)
  local a, b, c = v:match("^(%d+)%.(%d+)%.(%d+)")
  return tonumber(a) * 65536 + tonumber(b) * 256 + tonumber(c)
end

-- Runs a shell command (without the sanitizer runtime an ASan spec run
-- preloads); returns its exit status and output.
local function run(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD sh -c '" .. cmd .. "' 2>&1; echo \"rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

describe("known issues", function()
  it("libcurl before 8.1.0 uses freed memory on a folded first header line; later ones do not", function()
    local mktemp = assert(io.popen("mktemp -d /tmp/wemasy-known.XXXXXX"))
    local dir = mktemp:read("*l")
    mktemp:close()
    local bin = dir .. "/curl_fold_uaf"
    local rc, out = run(("cc -O1 -g -std=gnu99 -o %s %s/../tools/curl_fold_uaf.c -lcurl -lpthread"):format(
      bin, h.SPEC_DIR))
    assert.equal(0, rc, out)
    rc, out = run("valgrind --quiet --error-exitcode=99 " .. bin)
    os.execute("rm -rf '" .. dir .. "'")
    assert.matches("libcurl " .. core.curl_version:gsub("%p", "%%%0"), out)
    if version_num(core.curl_version) < FIXED_IN then
      assert.equal(99, rc, out)
      assert.matches("Invalid", out)
    else
      assert.equal(0, rc, out)
    end
  end)
end)
