-- The storefront's shared part: its two wemasy clients and a little HTML.
--
-- configure() runs once, in init_by_lua (the nginx master, before the workers
-- fork): the clients are plain Lua tables that the workers inherit; no libcurl
-- handle lives in them.  Their calls run on the "wemasy" thread pool.
local wemasy_ngx = require("wemasy.ngx")

local storefront = {}

local function merged(base, extra)
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(extra) do
    if type(v) == "table" and type(out[k]) == "table" then
      out[k] = merged(out[k], v)
    else
      out[k] = v
    end
  end
  return out
end

-- opts: wemasy.new's options shared by both clients (base_url, token, ...).
function storefront.configure(opts)
  opts = opts or {}
  -- Pages a shopper waits for: wemasy.ngx's handler defaults (a call ends
  -- within ~5 s, a limiter slot within 0.5 s); a thank-you page still renders
  -- when the API is slow or the quota is spent.
  storefront.shop = wemasy_ngx.new(merged({}, opts))
  -- The admin hook: never wait for a slot (fail fast, answer at once) and
  -- never re-send a sync (it is not idempotent).
  storefront.admin = wemasy_ngx.new(merged({ max_retries = 0, rate_limit = { wait = false } }, opts))
end

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- Text for HTML; wemasy.null (JSON null) and nil become "".
function storefront.html(v)
  if v == nil or type(v) == "userdata" then return "" end
  return (tostring(v):gsub("[&<>\"']", ESCAPES))
end

function storefront.money(v)
  if type(v) ~= "number" then return "" end
  return string.format("€ %.2f", v)
end

function storefront.page(status, title, body)
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>",
    storefront.html(title), "</title></head>\n<body>\n<h1>", storefront.html(title), "</h1>\n", body,
    "\n</body></html>\n")
  return ngx.exit(status)
end

-- A request argument (query string, or form body for POST) as a short string, or nil.
function storefront.arg(name)
  local v = ngx.req.get_uri_args(20)[name]
  if v == nil and ngx.req.get_method() == "POST" then
    ngx.req.read_body()
    local form = ngx.req.get_post_args(20)
    v = form and form[name]
  end
  if type(v) == "table" then v = v[1] end
  if type(v) ~= "string" or v == "" or #v > 200 then return nil end
  return v
end

-- A failure the shopper should not see the details of: logged, never with the token
-- (wemasy errors never contain it).
function storefront.log_error(where, err)
  ngx.log(ngx.ERR, where, ": ", tostring(err))
end

-- Seconds to put in Retry-After for a rate_limited error.
function storefront.retry_after(err)
  return tostring(math.max(1, math.ceil(tonumber(err.retry_after) or 1)))
end

return storefront
