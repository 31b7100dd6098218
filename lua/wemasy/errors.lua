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

function Error.__tostring(e)
  local where = e.endpoint and (" on " .. e.endpoint) or ""
  local status = e.status and (" " .. e.status) or ""
  local message = tostring(e.message or ""):gsub("[\r\n]+", " ")
  return "wemasy " .. e.kind .. status .. where .. ": " .. message
end

function M.new(kind, fields)
  local err = fields or {}
  err.kind = kind
  err.message = err.message or kind
  return setmetatable(err, Error)
end

function M.is_error(v)
  return getmetatable(v) == Error
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
  return v and tonumber(v:match("^%s*(%d+)%s*$"))
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
}

function M.from_transport(endpoint, kind, message)
  local err = M.new(CORE_KINDS[kind] or "network", { endpoint = endpoint, message = message })
  if kind == "too_large" then err.reason = "too_large" end
  return err
end

-- The token must never leave in an error: a server may echo it back, and curl
-- messages may quote a URL.  Walks the error's strings (bounded depth).
local function scrub(value, secret, depth)
  local t = type(value)
  if t == "string" then
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
  elseif t == "table" and depth < 64 then
    for k, v in next, value do
      local clean = scrub(v, secret, depth + 1)
      if clean ~= v then rawset(value, k, clean) end
    end
  end
  return value
end

function M.redact(err, secret)
  if secret and secret ~= "" then scrub(err, secret, 0) end
  return err
end

return M
