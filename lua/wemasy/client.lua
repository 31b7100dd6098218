-- The client: one wemasy.core handle (one libcurl handle, keep-alive) behind
-- methods generated from the endpoint table.
local core = require("wemasy.core")
local endpoints = require("wemasy.endpoints")
local errors = require("wemasy.errors")
local json = require("wemasy.json")
local validate = require("wemasy.validate")

local M = {}

M.API_PREFIX = "/services/webshop/v1/"
M.DEFAULT_BASE_URL = "https://api.wemasy.nl/api"

-- Options of wemasy.new (part of the public contract: extend, never rename).
M.OPTIONS = {
  token = "header_value",
  base_url = "http_url",
  timeout = "positive",
  connect_timeout = "positive",
  ca_file = "string",
  ca_path = "string",
  insecure = "boolean",
  proxy = "string",
  max_body = "positive_integer",
  user_agent = "header_value",
}

local Client = { __name = "wemasy.client" }
Client.__index = Client

-- The token stays out of the client table (and so out of any dump or
-- pretty-print of it); only redaction needs it on this side of the C core.
local secrets = setmetatable({}, { __mode = "k" })

function M.new(opts)
  opts = validate.options("wemasy.new", opts, M.OPTIONS, 2)
  local base_url = (opts.base_url or M.DEFAULT_BASE_URL):gsub("/+$", "")
  local handle = core.new{
    base_url = base_url, token = opts.token,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    ca_file = opts.ca_file, ca_path = opts.ca_path, insecure = opts.insecure,
    proxy = opts.proxy, max_body = opts.max_body, user_agent = opts.user_agent,
  }
  local self = setmetatable({ base_url = base_url, insecure = opts.insecure == true, _core = handle }, Client)
  secrets[self] = opts.token
  return self
end

local function check_self(self, method)
  if getmetatable(self) ~= Client then
    error(string.format("bad argument #1 to '%s' (wemasy client expected, got %s; use client:%s(...))",
      method, validate.describe(self), method), 3)
  end
end

local function check_body(body, method)
  if body ~= nil and type(body) ~= "table" then
    error(string.format("bad argument #2 to '%s' (table expected, got %s)", method, validate.describe(body)), 3)
  end
  return body or {}
end

-- One request whose body is already encoded.
local function send(self, path, text, with_auth)
  local secret = secrets[self]
  if with_auth and not secret then
    return nil, errors.new("unauthenticated", {
      endpoint = path, message = "this endpoint needs a token; none was given to wemasy.new" })
  end
  local status, body, headers, sent = self._core:request(M.API_PREFIX .. path, text, secret ~= nil)
  local value, err, res
  if status then
    value, err, res = errors.from_response(path, status, body, headers)
  else
    err = errors.from_transport(path, body, headers)
    err.sent = sent
  end
  if err then return nil, errors.redact(err, secret) end
  return value, nil, res
end

local function call_endpoint(self, ep, body)
  local text, err = validate.request(ep, body)
  if not text then return nil, err end
  return send(self, ep.path, text, ep.auth)
end

for _, ep in ipairs(endpoints) do
  Client[ep.method] = function(self, body)
    check_self(self, ep.method)
    return call_endpoint(self, ep, check_body(body, ep.method))
  end
end

-- Accepts "orders/detail", "/orders/detail" or the full "/services/webshop/v1/orders/detail".
local function normalize_path(path)
  local p = path:gsub("^/+", "")
  local prefix = M.API_PREFIX:sub(2)
  if p:sub(1, #prefix) == prefix then p = p:sub(#prefix + 1) end
  if not p:match("^[%w_%-]+[%w_%-/]*$") or p:find("//", 1, true) or p:find("%.%.") then return nil end
  return (p:gsub("/+$", ""))
end

-- Any endpoint under /services/webshop/v1/.  Known endpoints are validated
-- exactly as their methods are; others are sent as given (with the token if set).
function Client:call(path, body)
  check_self(self, "call")
  if type(path) ~= "string" then
    error("bad argument #1 to 'call' (string expected, got " .. validate.describe(path) .. ")", 2)
  end
  body = check_body(body, "call")
  local rel = normalize_path(path)
  if not rel then
    return nil, errors.new("invalid_argument", {
      message = "path must look like 'orders/detail' (letters, digits, '_', '-', '/')" })
  end
  local ep = endpoints[rel]
  if ep then return call_endpoint(self, ep, body) end
  local text, why = json.encode(body)
  if not text then return nil, errors.new("invalid_argument", { endpoint = rel, message = why }) end
  return send(self, rel, text, false)
end

function Client:has_token()
  check_self(self, "has_token")
  return secrets[self] ~= nil
end

-- Idempotent; the C core frees the curl handle.  Later calls return
-- invalid_argument "client is closed".
function Client:close()
  check_self(self, "close")
  self._core:close()
  self.closed = true
  return true
end
Client.__close = Client.close

function Client:__tostring()
  return string.format("wemasy client (%s)%s%s%s", self.base_url,
    secrets[self] and " with token" or " without token",
    self.closed and " [closed]" or "",
    self.insecure and " [INSECURE: TLS verification disabled]" or "")
end

M.Client = Client
return M
