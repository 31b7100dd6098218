-- A throw-away certificate authority for the sandbox's HTTPS listener, made
-- with the openssl command line tool (Debian's `openssl` package). Runs in
-- the launcher (Lua 5.4 or LuaJIT).
--
--   local files, err = require("wemasy.sandbox.ca").make(dir)
--   -- files = { ca_file, ca_key_file, cert_file, key_file } (absolute paths in dir)
--
-- The CA and the server key are EC P-256 keys (fast to make). The server
-- certificate is for IP 127.0.0.1 and DNS localhost, signed by the CA, valid
-- for 30 days from now. Environment: WEMASY_OPENSSL (default: openssl on PATH).

local proc = require "wemasy.sandbox.proc"

local ca = {}

local CA_CONF = [[
[req]
prompt = no
distinguished_name = dn
x509_extensions = v3_ca
[dn]
CN = wemasy sandbox throw-away CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
]]

local SERVER_CONF = [[
[req]
prompt = no
distinguished_name = dn
[dn]
CN = localhost
]]

local SERVER_EXT = [[
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
]]

local function serial()
   math.randomseed(os.time() + math.floor((os.clock() * 1e6) % 1e6))
   local hex = {}
   for i = 1, 16 do hex[i] = string.format("%x", math.random(0, 15)) end
   hex[1] = string.format("%x", math.random(1, 7)) -- positive, no leading zero
   return "0x" .. table.concat(hex)
end

function ca.make(dir)
   if type(dir) ~= "string" or dir == "" then
      error("wemasy.sandbox.make_ca: dir must be a directory name (got " .. type(dir) .. ")", 2)
   end
   if not dir:match("^/") then dir = (proc.capture("pwd") or ".") .. "/" .. dir:gsub("^%./", "") end
   dir = dir:gsub("/+$", "")
   if not proc.run("mkdir -p " .. proc.quote(dir) .. " 2>/dev/null") then return nil, "cannot create " .. dir end

   local openssl = os.getenv("WEMASY_OPENSSL") or "openssl"
   local q = proc.quote
   local f = {
      ca_file = dir .. "/ca.pem", ca_key_file = dir .. "/ca.key",
      cert_file = dir .. "/server.pem", key_file = dir .. "/server.key",
   }
   local ca_conf, server_conf, server_ext, csr, log =
      dir .. "/ca.cnf", dir .. "/server.cnf", dir .. "/server.ext", dir .. "/server.csr", dir .. "/openssl.log"
   for path, text in pairs{ [ca_conf] = CA_CONF, [server_conf] = SERVER_CONF, [server_ext] = SERVER_EXT } do
      local ok, err = proc.write_file(path, text)
      if not ok then return nil, "cannot write " .. path .. ": " .. tostring(err) end
   end
   local o = q(openssl)
   local steps = {
      o .. " genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(f.ca_key_file),
      o .. " req -x509 -new -config " .. q(ca_conf) .. " -key " .. q(f.ca_key_file)
         .. " -sha256 -days 30 -out " .. q(f.ca_file),
      o .. " genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(f.key_file),
      o .. " req -new -config " .. q(server_conf) .. " -key " .. q(f.key_file) .. " -out " .. q(csr),
      o .. " x509 -req -in " .. q(csr) .. " -CA " .. q(f.ca_file) .. " -CAkey " .. q(f.ca_key_file)
         .. " -set_serial " .. serial() .. " -sha256 -days 30 -extfile " .. q(server_ext)
         .. " -out " .. q(f.cert_file),
   }
   local failure
   for _, cmd in ipairs(steps) do
      -- Keys are private to their owner; certificates are for anyone to read.
      local umask = cmd:find(" genpkey ", 1, true) and "077" or "022"
      if not proc.run("umask " .. umask .. "; " .. cmd .. " >" .. q(log) .. " 2>&1") then
         failure = "openssl failed: " .. cmd .. "\n" .. (proc.read_file(log) or "")
         break
      end
   end
   for _, path in ipairs{ ca_conf, server_conf, server_ext, csr, log } do os.remove(path) end
   if failure then return nil, failure end
   return f
end

return ca
