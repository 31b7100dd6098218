-- The nginx side of bench/openresty/speed.lua: orders/detail the way a shop
-- calls the API without wemasy.  One cosocket per call, back to the
-- worker's keep-alive pool after it; HTTP/1.1 by hand (Content-Length
-- answers only, as the sandbox and the API send); lua-cjson both ways.
-- No retries, no limiter, no error kinds: just the call.
local cjson = require("cjson.safe")

local cosocket = {}

local host, port, prefix, auth

-- Runs in init_by_lua (the master): nginx clears the workers' environment.
function cosocket.setup(base_url, token)
  host, port, prefix = tostring(base_url):match("^http://([^:/]+):(%d+)(.-)/*$")
  port = tonumber(port)
  auth = token and ("Authorization: Bearer " .. token .. "\r\n") or ""
end

-- The header block up to the empty line: status, content-length, close?
local function read_head(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line" end
  local length, close
  while true do
    local h, herr = sock:receive("*l")
    if not h then return nil, herr end
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    name = name and name:lower()
    if name == "content-length" then
      length = tonumber(value)
    elseif name == "connection" then
      close = value:lower() == "close"
    end
  end
  if not length then return nil, "no Content-Length" end
  return status, length, close
end

-- POSTs `body` (a table) to the endpoint; the decoded answer, or nil, err.
function cosocket.call(endpoint, body)
  local sock = ngx.socket.tcp()
  sock:settimeouts(3000, 10000, 10000)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, "connect: " .. err end
  local payload = cjson.encode(body)
  local _, serr = sock:send("POST " .. prefix .. "/services/webshop/v1/" .. endpoint .. " HTTP/1.1\r\nHost: "
    .. host .. "\r\n" .. auth .. "Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: "
    .. #payload .. "\r\n\r\n" .. payload)
  if serr then sock:close() return nil, "send: " .. serr end
  local status, length, close = read_head(sock)
  if not status then sock:close() return nil, "receive: " .. length end
  local text, rerr = sock:receive(length)
  if not text then sock:close() return nil, "receive: " .. rerr end
  if close then sock:close() else sock:setkeepalive(60000, 64) end
  local data = cjson.decode(text)
  if status ~= 200 or type(data) ~= "table" or data.error ~= false then
    return nil, "HTTP " .. status
  end
  return data
end

return cosocket
