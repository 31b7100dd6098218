-- One quota for every host on a token (issue 16): hosts are process groups
-- with a private /dev/shm (spec/support/hosts.lua), two processes each, all
-- calling tiny_server's fixed-window throttle on one token as fast as their
-- limiters let them, no retries.  Each host's shm store is exact on its host
-- only, so four hosts send four quotas; on one Redis they send one.
local core = require "wemasy.core"
local h = require "support.helpers"
local hosts = require "support.hosts"
local redis = require "support.redis"

local LIMIT, WINDOW, DURATION = 10, 1, 2.5

describe("four hosts on one token", function()
  local srv = h.tiny_server()

  -- o: rate_limit (a table, or a function (host, proc)), and optionally
  -- hosts, procs, limit, window, duration, pace, as hosts.run takes them.
  local function run(o)
    assert(hosts.available(), "these specs need `unshare -m` (not as root: user namespaces) for a private /dev/shm")
    local limit, window = o.limit or LIMIT, o.window or WINDOW
    local function rate_limit(host, proc)
      local rl = type(o.rate_limit) == "function" and o.rate_limit(host, proc) or o.rate_limit
      rl.groups = { default = { limit = limit, window = window } }
      return rl
    end
    -- Options the core refuses fail here, in this process, with their own error.
    core.new({ base_url = srv.url, rate_limit = rate_limit(1, 1) }):close()
    local name = h.counter("hosts")
    local r = hosts.run { hosts = o.hosts or 4, procs = o.procs or 2, base_url = srv.url, token = h.token("hosts"),
                          path = ("/rl/%s/%d/%d"):format(name, limit, window * 1000),
                          duration = o.duration or DURATION, pace = o.pace, rate_limit = rate_limit }
    local passed, over = h.get(srv.url, "/rlstats/" .. name):match("^(%d+) (%d+)$")
    r.passed, r.over = tonumber(passed), tonumber(over)
    assert.same({}, r.other, "answers other than 200 and 429")
    return r
  end

  it("each on its own shm store: several quotas, and 429s (the harness isolates the hosts)", function()
    local r = run { rate_limit = {} }
    assert.is_true(r.over > 0, "no 429: the hosts shared one /dev/shm")
    -- More than one exact quota allows in the run (late calls included).
    assert.is_true(#r.calls > LIMIT * math.ceil(DURATION / WINDOW), "the hosts sent only " .. #r.calls)
  end)

  it("on one Redis: 0 x 429 and the quota used", function()
    local server = redis.start { lifetime = 60 }
    local ok, r = pcall(run, { rate_limit = { store = server.url } })
    redis.stop(server)
    assert(ok, r)
    assert.equal(0, r.over, "requests over the server's limit")
    -- Windows of 1.25 s (the margin added) start at 0 and 1.25: two quotas
    -- fit in 2.5 s; one and a half is generous for a loaded machine.
    assert.is_true(r.ok >= 1.5 * LIMIT, r.ok)
  end)

  it("on one Redis, a background host leaves an interactive host its reserve: waits < 1 s", function()
    local server = redis.start { lifetime = 60 }
    -- Host 1: a cron job as fast as it may, reserve 3 of 6 per 2 s; host 2:
    -- the storefront, a call every 0.8 s (at most 3 in any 2.25 s).
    local ok, r = pcall(run, { hosts = 2, procs = 1, limit = 6, window = 2, duration = 5,
      pace = function(host) return host == 2 and 0.8 or 0 end,
      rate_limit = function(host)
        if host == 1 then return { store = server.url, priority = "background", reserve = 3 } end
        return { store = server.url }
      end })
    redis.stop(server)
    assert(ok, r)
    assert.equal(0, r.over, "requests over the server's limit")
    local waits, background = {}, 0
    for _, c in ipairs(r.calls) do
      if c.host == 2 then waits[#waits + 1] = c.took elseif c.outcome == "200" then background = background + 1 end
    end
    assert.is_true(#waits >= 5, #waits)
    assert.is_true(hosts.quantile(waits, 1) < 1, "the interactive host's longest wait: " .. hosts.quantile(waits, 1))
    -- The reserve counts every host's sends: beside 2-3 interactive calls per
    -- window the job gets N - K - those, but it took its 3 at the start.
    assert.is_true(background >= 3, "the background host sent only " .. background)
  end)
end)
