-- One quota for every host on a token (issue 16): hosts are process groups
-- with a private /dev/shm (spec/support/hosts.lua), two processes each, all
-- calling tiny_server's fixed-window throttle on one token as fast as their
-- limiters let them, no retries.  Each host's shm store is exact on its host
-- only, so four hosts send four quotas; on one Redis they send one.
local core = require "wemasy.core"
local h = require "support.helpers"
local hosts = require "support.hosts"
local redis = require "support.redis_server"

local LIMIT, WINDOW, DURATION = 10, 1, 2.5

describe("four hosts on one token", function()
  local srv = h.tiny_server()

  local function run(rate_limit)
    assert(hosts.available(), "these specs need `unshare -m` (root) for a private /dev/shm per host")
    rate_limit.groups = { default = { limit = LIMIT, window = WINDOW } }
    -- Options the core refuses fail here, in this process, with their own error.
    core.new({ base_url = srv.url, rate_limit = rate_limit }):close()
    local name = h.counter("hosts")
    local r = hosts.run { hosts = 4, procs = 2, base_url = srv.url, token = h.token("hosts"),
                          path = ("/rl/%s/%d/%d"):format(name, LIMIT, WINDOW * 1000), duration = DURATION,
                          rate_limit = rate_limit }
    local passed, over = h.get(srv.url, "/rlstats/" .. name):match("^(%d+) (%d+)$")
    r.passed, r.over = tonumber(passed), tonumber(over)
    assert.same({}, r.other, "answers other than 200 and 429")
    return r
  end

  it("each on its own shm store: several quotas, and 429s (the harness isolates the hosts)", function()
    local r = run {}
    assert.is_true(r.over > 0, "no 429: the hosts shared one /dev/shm")
    -- More than one exact quota allows in the run (late calls included).
    assert.is_true(#r.calls > LIMIT * math.ceil(DURATION / WINDOW), "the hosts sent only " .. #r.calls)
  end)

  it("on one Redis: 0 x 429 and the quota used", function()
    local server = redis.start { lifetime = 60 }
    local ok, r = pcall(run, { store = server.url })
    redis.stop(server)
    assert(ok, r)
    assert.equal(0, r.over, "requests over the server's limit")
    -- Windows of 1.25 s (the margin added) start at 0 and 1.25: two quotas
    -- fit in 2.5 s; one and a half is generous for a loaded machine.
    assert.is_true(r.ok >= 1.5 * LIMIT, r.ok)
  end)
end)
