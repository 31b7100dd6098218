-- Errors as values: every failure a caller can meet is one table with a
-- `kind` from a closed list, so `if err.kind == "rate_limited"` is all a
-- caller needs; `tostring(err)` is one readable line.
local endpoints = require("wemasy.endpoints")
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
  network = "resolve, connect, reset, broken transfer; or the circuit breaker is open (err.reason)",
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
  local wait = rawget(e, "retry_after")
  if rawget(e, "reason") == "circuit_open" and type(wait) == "number" and wait >= 0 and wait < math.huge then
    message = message .. "; the next probe in " .. seconds(wait)
  end
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

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthenticated", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [413] = "Payload Too Large", [422] = "Unprocessable Content",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- The kind of a non-2xx status.
local function status_kind(status)
  if KIND_BY_STATUS[status] then return KIND_BY_STATUS[status] end
  if status >= 500 and status < 600 then return "server" end
  return "http"
end
M.status_kind = status_kind

local function message_of(body, status)
  if type(body) == "table" and type(body.message) == "string" and body.message ~= "" then
    return body.message
  end
  return "HTTP " .. status .. (REASONS[status] and (" " .. REASONS[status]) or "")
end

-- A decoded table is an object or an array: the text's first byte says which.
local function is_object(text)
  return text:byte(1) == 123 or text:match("^[ \t\r\n]*(.)") == "{"
end

local function json_type(body)
  if body == json.null then return "null" end
  return type(body) == "table" and "array" or type(body)
end

-- Why a 2xx body is not what the endpoint answers, or nil.  The endpoints
-- of the table answer an object; client:call to another path may answer an
-- array too.  Anything else (a bare string, number, boolean, null) is not an
-- answer: `false` would even break `if not body`.
local function shape_problem(endpoint, body, text)
  local ep = endpoints[endpoint]
  if type(ep) == "table" and ep.path == endpoint then
    if type(body) == "table" and is_object(text) then return nil end
    return "expected a JSON object, got " .. json_type(body)
  end
  if type(body) == "table" then return nil end
  return "expected a JSON object or array, got " .. json_type(body)
end

-- Turns one HTTP response into `body, nil, res` or `nil, err`.  The
-- Retry-After and X-RateLimit-* values are the C core's reading of the
-- headers (nil when absent or not valid), the same the limiter learnt from.
function M.from_response(endpoint, status, text, headers, retry_after, limit, remaining)
  local res = { status = status, headers = headers, rate_limit = { limit = limit, remaining = remaining } }
  local body, decode_err = json.decode(text)
  if status >= 200 and status < 300 then
    local why = decode_err and ("invalid JSON: " .. decode_err) or shape_problem(endpoint, body, text)
    if why then
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
    err.retry_after = retry_after
  end
  return nil, err
end

-- The core's kinds (core.kinds, csrc/request.c) that are not kinds of the
-- contract themselves, and the contract's kind each one is reported as.
local CONTRACT_KIND_OF = {
  too_large = "decode", closed = "invalid_argument", internal = "network", interrupted = "network",
  circuit_open = "network",
}

-- Core kinds that live on as err.reason under the contract's kind.
local CORE_REASONS = { too_large = true, interrupted = true, circuit_open = true }

-- Core kind -> contract kind, for every kind the core names (the others are
-- the contract's own: timeout, rate_limited, invalid_argument, ...).  Made
-- on first use, when the core is loaded (it reported the kind): wemasy.ngx
-- requires this module where the core may not load.
local by_core_kind

function M.core_kinds()
  if not by_core_kind then
    local map = {}
    for _, name in ipairs(require("wemasy.core").kinds) do
      map[name] = M.kinds[name] and name or CONTRACT_KIND_OF[name]
    end
    by_core_kind = map
  end
  return by_core_kind
end

function M.from_transport(endpoint, kind, message)
  local err = M.new((by_core_kind or M.core_kinds())[kind] or "network", { endpoint = endpoint, message = message })
  if CORE_REASONS[kind] then err.reason = kind end
  return err
end

-- The token must never leave in an error: a server may echo it back (in a
-- message, a header, a JSON key, however deep), and curl messages may quote
-- a URL.  Every string of the error is scrubbed, keys included, each table
-- once (a decoded body can be 1000 levels deep: the walk has no depth limit).
--
-- It is found in any case and with whitespace anywhere inside it: the core
-- lower-cases header names (a token echoed as one), a server may change its
-- case, and a header folded over lines (obs-fold) reaches us joined with a
-- space at the fold, which can fall anywhere in the token.  A form of the
-- token is a Lua pattern, "[aA]%s*[bB]%s*...": a string without it costs a
-- find() in C, no copy.  The pattern matcher nests once per item, and
-- LuaJIT's stops at 200 ("pattern too complex"), so a long token (a JWT) is
-- matched in chunks, each anchored where the one before ended: every %s* sits
-- before a non-space item, so a match is unique and chunks cannot disagree.
local CHUNK_ITEMS = 100

local function loose_chunks(form)
  local items = {}
  for c in form:gmatch(".") do
    if c:find("%a") then
      items[#items + 1] = "[" .. c:lower() .. c:upper() .. "]"
    elseif c:find("%c") then
      items[#items + 1] = "%c" -- never in a token (the core refuses it), but a pattern cannot hold NUL on 5.1
    elseif c:find("%p") then
      items[#items + 1] = "%" .. c
    elseif not c:find("%s") then -- the token's own spaces are the %s* between its other bytes
      items[#items + 1] = c
    end
  end
  if #items == 0 then return nil end -- all whitespace: it would match everywhere
  local chunks = {}
  for i = 1, #items, CHUNK_ITEMS do
    local chunk = table.concat(items, "%s*", i, math.min(i + CHUNK_ITEMS - 1, #items))
    chunks[#chunks + 1] = i == 1 and chunk or "^%s*" .. chunk
  end
  return chunks
end

-- Where the first match of chunks starts and ends in value at or after init.
local function find_loose(value, chunks, init)
  local from, to = value:find(chunks[1], init)
  while from and #chunks > 1 do
    local last = to
    for i = 2, #chunks do
      last = select(2, value:find(chunks[i], last + 1))
      if not last then break end
    end
    if last then return from, last end
    from, to = value:find(chunks[1], from + 1)
  end
  return from, to
end

local function replace_loose(value, chunks)
  if #chunks == 1 then return (value:gsub(chunks[1], "[REDACTED]")) end
  local parts, pos = {}, 1
  local from, to = find_loose(value, chunks, 1)
  while from do
    parts[#parts + 1] = value:sub(pos, from - 1)
    pos = to + 1
    from, to = find_loose(value, chunks, pos)
  end
  parts[#parts + 1] = value:sub(pos)
  return table.concat(parts, "[REDACTED]")
end

-- forms: { chunks, anchor, chunks, anchor, ... }.  An anchor is a byte of
-- the token that no case change or inserted space alters (a digit or a
-- punctuation mark): a string without it is skipped by a plain find
-- (memchr) instead of trying the pattern at every byte.
local function scrub_string(value, forms)
  for i = 1, #forms, 2 do
    local anchor = forms[i + 1]
    if (not anchor or value:find(anchor, 1, true)) and find_loose(value, forms[i], 1) then
      value = replace_loose(value, forms[i])
    end
  end
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

-- A byte of form that is the same in every case: punctuation first (rarer
-- in text than digits), or false.
local function anchor_of(form)
  return form:match("[^%w%s%c%-%._]") or form:match("%p") or form:match("%d") or false
end

-- The token as given and percent-encoded (as a URL or a form echoes it; its
-- hex digits in either case, as the patterns ignore case).  The last token's
-- forms are kept: a process usually has one, and every error is scrubbed.
local last_secret, last_forms

local function secret_forms(secret)
  if secret == last_secret then return last_forms end
  local forms = {}
  local encoded = secret:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
  for _, form in ipairs{ secret, encoded ~= secret and encoded or nil } do
    local chunks = loose_chunks(form)
    if chunks then
      forms[#forms + 1] = chunks
      forms[#forms + 1] = anchor_of(form)
    end
  end
  last_secret, last_forms = secret, forms
  return forms
end

function M.redact(err, secret)
  if type(secret) == "string" and secret ~= "" and type(err) == "table" then
    scrub(err, secret_forms(secret))
  end
  return err
end

-- One text with the token replaced the way errors are scrubbed.
function M.redact_text(text, secret)
  if type(secret) ~= "string" or secret == "" then return text end
  return scrub_string(text, secret_forms(secret))
end

return M
