-- Bad input never crashes and never sends: every public function of wemasy,
-- every argument, a matrix of hostile values.  Each call must either raise a
-- clear error naming the function/argument (programming mistakes) or return
-- nil plus an invalid_argument error (bad data).  Nothing reaches the server.
local wemasy = require("wemasy")
local sandbox = require("wemasy.sandbox")
local h = require("support.helpers")

local function hostile_values()
  local cyclic = {}
  cyclic.self = cyclic
  local deep = {}
  local t = deep
  for _ = 1, 5000 do t.x = {}; t = t.x end
  local raising = setmetatable({}, {
    __index = function() error("metatable __index raised") end,
    __newindex = function() error("metatable __newindex raised") end,
    __pairs = function() error("metatable __pairs raised") end,
    __len = function() error("metatable __len raised") end,
    __tostring = function() error("metatable __tostring raised") end,
    __eq = function() error("metatable __eq raised") end,
  })
  return {
    { "nil", nil }, { "true", true }, { "false", false }, { "zero", 0 }, { "negative", -1 },
    { "fraction", 1.5 }, { "NaN", 0 / 0 }, { "inf", math.huge }, { "-inf", -math.huge },
    { "2^63", 2 ^ 63 }, { "empty string", "" }, { "string", "x" },
    { "10 MB string", string.rep("x", 10 * 1024 * 1024) }, { "NUL string", "a\0b" },
    { "CRLF string", "a\r\nX-Injected: 1" }, { "invalid UTF-8", "\255\254" },
    { "empty table", {} }, { "nested table", { { { 1 } } } }, { "deep table", deep },
    { "cyclic table", cyclic }, { "function", print }, { "thread", coroutine.create(print) },
    { "userdata", io.stdout }, { "null", wemasy.null }, { "raising metatable", raising },
  }
end

local OPTIONS = { "token", "base_url", "timeout", "connect_timeout", "ca_file", "ca_path", "insecure",
  "proxy", "max_body", "user_agent", "rate_limit", "max_retries", "backoff", "clock", "sleep", "random" }

local function outcome(f, ...)
  local results = table.pack and table.pack(pcall(f, ...)) or { n = select("#", ...) + 1, pcall(f, ...) }
  return results
end

-- Raised: a string naming what was wrong.  Returned: nil + an error value.
local function assert_clean(label, r, name_hint)
  if r[1] == false then
    assert.is_string(r[2], label .. ": raised a non-string error")
    if name_hint then assert.truthy(r[2]:find(name_hint, 1, true), label .. ": " .. r[2]) end
    assert.is_nil(r[2]:find("metatable", 1, true), label .. ": a user metatable ran: " .. r[2])
  else
    assert.is_nil(r[2], label .. ": returned a value")
    assert.truthy(wemasy.is_error(r[3]), label .. ": second value is not a wemasy error")
    assert.truthy(wemasy.error_kinds[r[3].kind], label .. ": unknown kind " .. tostring(r[3].kind))
    assert.is_string(tostring(r[3]))
  end
end

describe("bad input", function()
  h.remove_segments_made() -- wemasy.new with each hostile value, each a quota of its own
  local sb = h.sandbox{}
  local client
  lazy_setup(function()
    client = wemasy.new{ base_url = sb.base_url, token = sandbox.tokens.merchant, rate_limit = { shared = false } }
  end)

  it("wemasy.new raises a clear error for every hostile options value or option", function()
    for _, v in ipairs(hostile_values()) do
      if v[2] ~= nil then
        local r = outcome(wemasy.new, v[2])
        -- An options table that is valid as it stands ({}) builds a client.
        if not (r[1] and tostring(r[2]):find("^wemasy client")) then
          assert_clean("new(" .. v[1] .. ")", r, "new")
        end
      end
      for _, option in ipairs(OPTIONS) do
        if v[2] ~= nil then
          local r = outcome(wemasy.new, { [option] = v[2], base_url = option ~= "base_url" and sb.base_url or nil })
          -- Some values are valid for some options (a string for ca_file); those build a client.
          if r[1] == false then
            assert_clean("new{" .. option .. "=" .. v[1] .. "}", r, option)
          end
        end
      end
    end
  end)

  it("every endpoint method survives every hostile body and field value, sending nothing", function()
    local before = sb:state().total_requests
    for _, ep in ipairs(wemasy.endpoints) do
      local method = client[ep.method]
      for _, v in ipairs(hostile_values()) do
        assert_clean(ep.method .. "(" .. v[1] .. ")", outcome(method, client, v[2]))
        assert_clean(ep.method .. " with self=" .. v[1], outcome(method, v[2], {}), ep.method)
        for _, f in ipairs(ep.fields) do
          local body = {}
          for _, other in ipairs(ep.fields) do body[other.name] = other.example end
          body[f.name] = v[2]
          local r = outcome(method, client, body)
          if r[1] and r[2] == nil then
            assert_clean(ep.method .. "{" .. f.name .. "=" .. v[1] .. "}", r)
          end
        end
      end
    end
    -- Valid combinations above (e.g. mark = false) did reach the server; the
    -- hostile ones did not: at most one request per valid field value.
    assert.is_true(sb:state().total_requests - before < 40)
  end)

  it("client:call survives every hostile path and body", function()
    for _, v in ipairs(hostile_values()) do
      assert_clean("call(" .. v[1] .. ", {})", outcome(client.call, client, v[2], {}), "call")
      local r = outcome(client.call, client, "no/such-endpoint", v[2])
      if not (r[1] and type(r[2]) == "table") then assert_clean("call(path, " .. v[1] .. ")", r) end
    end
  end)

  it("close, has_token and tostring survive a wrong self", function()
    for _, v in ipairs(hostile_values()) do
      assert_clean("close(" .. v[1] .. ")", outcome(client.close, v[2]), "close")
      assert_clean("has_token(" .. v[1] .. ")", outcome(client.has_token, v[2]), "has_token")
    end
  end)

  it("is_error answers false for anything that is not a wemasy error", function()
    for _, v in ipairs(hostile_values()) do
      assert.is_false(wemasy.is_error(v[2]))
    end
  end)

  it("sandbox.start raises a clear error for wrong option types", function()
    for _, v in ipairs(hostile_values()) do
      for _, option in ipairs{ "window", "limits", "workers", "port" } do
        local r = outcome(sandbox.start, { [option] = v[2] })
        if r[1] == false then
          assert.truthy(r[2]:find(option, 1, true), r[2])
        elseif r[2] then
          r[3]:stop() -- a valid value started a sandbox: stop it again
        end
      end
    end
  end)
end)
