-- Errors as values: every failure a caller can meet is one table with a
-- `kind` from a closed list, so `if err.kind == "rate_limited"` is all a
-- caller needs; `tostring(err)` is one readable line.
local json = require("wemasy.json")

local M = {}

-- The contract's kinds (extend, never rename).
M.kinds = {
  invalid_argument = "caught before sending",
  unauthenticated = "401: missing or invalid token",
  forbidden = "403: the token lacks the permission",
  not_found = "404",
  validation = "422: err.errors holds field -> messages",
  rate_limited = "429 or the client's own limiter: err.retry_after in seconds",
  server = "5xx",
  api = "2xx whose body says \"error\": true",
  http = "any other status",
  timeout = "connect or total timeout",
  network = "resolve, connect, reset, broken transfer",
  tls = "certificate or handshake",
  decode = "body is not the JSON expected (or larger than max_body)",
}

local KIND_BY_STATUS = {
  [401] = "unauthenticated",
  [403] = "forbidden",
  [404] = "not_found",
  [422] = "validation",
  [429] = "rate_limited",
}

local Error = { __name = "wemasy.error" }
Error.__index = Error

-- Raw fields, and only strings and numbers: an error a caller edited (or
-- made with this metatable) must not raise or run its fields' metamethods.
local function field_text(e, k)
  local v = rawget(e, k)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return string.format(math.type and math.type(v) == "integer" and "%d" or "%.14g", v) end
  return nil
end

-- Seconds for a person, rounded up: retrying sooner would be refused again.
local function seconds(v)
  return (string.format("%.1f", math.ceil(v * 10 - 1e-9) / 10):gsub("%.0$", "")) .. " s"
end

-- What a rate_limited line adds: when to retry, and what the server's
-- Retry-After did to the client's limiter group (closed for every caller).
local function rate_limit_note(e)
  local wait, closed, group = rawget(e, "retry_after"), rawget(e, "closed_for"), field_text(e, "group")
  local from_server = rawget(e, "status") == 429
  local note = ""
  if type(wait) == "number" and wait >= 0 and wait < math.huge then
    note = "; retry in " .. seconds(wait)
  elseif from_server then
    return "; the server sent no Retry-After"
  end
  if type(closed) == "number" and closed > 0 and group then
    note = note .. "; the server's Retry-After closed group '" .. group .. "' for every caller on this token"
  elseif from_server then
    note = note .. "; no limiter group closed"
  end
  return note
end

function Error.__tostring(e)
  local endpoint, status = field_text(e, "endpoint"), field_text(e, "status")
  local where = endpoint and (" on " .. endpoint) or ""
  status = status and (" " .. status) or ""
  local message = (field_text(e, "message") or ""):gsub("[\r\n]+", " ")
  local kind = field_text(e, "kind")
  if kind == "rate_limited" then message = message .. rate_limit_note(e) end
  return "wemasy " .. (kind or "?") .. status .. where .. ": " .. message
end

function M.new(kind, fields)
  local err = fields or {}
  err.kind = kind
  err.message = err.message or kind
  return setmetatable(err, Error)
end

function M.is_error(v)
  return rawequal(getmetatable(v), Error) -- rawequal: v's metatable may have an __eq
end

-- Laravel's shape: the first message, then "(and N more errors)".
function M.invalid_argument(endpoint, problems, first)
  local total = 0
  for _, msgs in pairs(problems) do total = total + #msgs end
  local message = first
  if total > 1 then
    message = message .. string.format(" (and %d more %s)", total - 1, total == 2 and "error" or "errors")
  end
  return M.new("invalid_argument", { endpoint = endpoint, message = message, errors = problems })
end

local function header_number(headers, name)
  local v = headers and headers[name]
  if not v then return nil end
  -- Digits only, as servers send them: no capture string to make.
  if v:find("^%d+$") then return tonumber(v) end
  return tonumber(v:match("^%s*(%d+)%s*$"))
end

function M.rate_limit_of(headers)
  return {
    limit = header_number(headers, "x-ratelimit-limit"),
    remaining = header_number(headers, "x-ratelimit-remaining"),
  }
end

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthenticated", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [413] = "Payload Too Large", [422] = "Unprocessable Content",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local function status_kind(status)
  if KIND_BY_STATUS[status] then return KIND_BY_STATUS[status] end
  if status >= 500 and status < 600 then return "server" end
  return "http"
end

local function message_of(body, status)
  if type(body) == "table" and type(body.message) == "string" and body.message ~= "" then
    return body.message
  end
  return "HTTP " .. status .. (REASONS[status] and (" " .. REASONS[status]) or "")
end

-- Turns one HTTP response into `body, nil, res` or `nil, err`.
function M.from_response(endpoint, status, text, headers)
  local res = { status = status, headers = headers, rate_limit = M.rate_limit_of(headers) }
  local body, decode_err = json.decode(text)
  if status >= 200 and status < 300 then
    if type(body) ~= "table" then
      local why = decode_err and ("invalid JSON: " .. decode_err)
        or ("expected a JSON object, got " .. (body == json.null and "null" or type(body)))
      if text == "" then why = "empty response body" end
      local ctype = headers and headers["content-type"]
      if ctype and not ctype:find("json", 1, true) then why = why .. " (Content-Type: " .. ctype .. ")" end
      return nil, M.new("decode", { status = status, endpoint = endpoint, headers = headers,
                                   message = why, rate_limit = res.rate_limit })
    end
    if body.error == true then
      return nil, M.new("api", { status = status, endpoint = endpoint, headers = headers, body = body,
                                message = message_of(body, status), rate_limit = res.rate_limit })
    end
    return body, nil, res
  end
  local kind = status_kind(status)
  local err = M.new(kind, {
    status = status, endpoint = endpoint, headers = headers, rate_limit = res.rate_limit,
    body = type(body) == "table" and body or nil,
    message = message_of(body, status),
  })
  if kind == "validation" then
    err.errors = type(body) == "table" and type(body.errors) == "table" and body.errors or {}
  elseif kind == "rate_limited" then
    err.retry_after = header_number(headers, "retry-after")
  end
  return nil, err
end

-- What the C core reports for a transfer that produced no response.
local CORE_KINDS = {
  timeout = "timeout", network = "network", tls = "tls", rate_limited = "rate_limited",
  too_large = "decode", closed = "invalid_argument", internal = "network",
  unauthenticated = "unauthenticated", forbidden = "forbidden", -- a batch's items not sent after a 401 / 403
}

function M.from_transport(endpoint, kind, message)
  local err = M.new(CORE_KINDS[kind] or "network", { endpoint = endpoint, message = message })
  if kind == "too_large" then err.reason = "too_large" end
  return err
end

-- The token must never leave in an error: a server may echo it back (in a
-- message, a header, a JSON key, however deep), and curl messages may quote
-- a URL.  Every string of the error is scrubbed, keys included, each table
-- once (a decoded body can be 1000 levels deep: the walk has no depth limit).
local function replace_all(value, secret)
  local from = value:find(secret, 1, true)
  if not from then return value end
  local parts, pos = {}, 1
  while from do
    parts[#parts + 1] = value:sub(pos, from - 1)
    pos = from + #secret
    from = value:find(secret, pos, true)
  end
  parts[#parts + 1] = value:sub(pos)
  return table.concat(parts, "[REDACTED]")
end

local function scrub_string(value, forms)
  for i = 1, #forms do value = replace_all(value, forms[i]) end
  return value
end

-- Fields of the error itself that are ours, never text from a server or
-- libcurl: a (short) token that is part of "network" must not mangle them.
local OWN_FIELDS = { kind = true, reason = true }

local function scrub(root, forms)
  local seen, stack = { [root] = true }, { root }
  while #stack > 0 do
    local t = table.remove(stack)
    local renamed
    for k, v in next, t do
      if not (t == root and OWN_FIELDS[k]) then
        if type(v) == "string" then
          local clean = scrub_string(v, forms)
          if clean ~= v then rawset(t, k, clean) end
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          stack[#stack + 1] = v
        end
        if type(k) == "string" and scrub_string(k, forms) ~= k then
          renamed = renamed or {}
          renamed[#renamed + 1] = k
        end
      end
    end
    for _, k in ipairs(renamed or {}) do
      local v = rawget(t, k)
      rawset(t, k, nil)
      rawset(t, scrub_string(k, forms), v)
    end
  end
end

-- The token as given and percent-encoded (as a URL or a form echoes it).
local function secret_forms(secret)
  local forms = { secret }
  local upper = secret:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
  if upper ~= secret then
    forms[2] = upper
    local lower = upper:gsub("%%%x%x", string.lower)
    if lower ~= upper then forms[3] = lower end
  end
  return forms
end

function M.redact(err, secret)
  if type(secret) == "string" and secret ~= "" and type(err) == "table" then
    scrub(err, secret_forms(secret))
  end
  return err
end

return M
