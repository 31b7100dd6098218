-- luacheck: the client runs on Lua 5.4 and LuaJIT; the sandbox's handlers run
-- inside nginx (ngx_lua on LuaJIT).
std = "max"
max_line_length = 120
files["sandbox"] = { std = "max+ngx_lua" }
-- wemasy.ngx runs in nginx; the OpenResty example and its benchmark too.
files["lua/wemasy/ngx.lua"] = { std = "max+ngx_lua", read_globals = { ngx = { fields = { "run_worker_thread" } } } }
files["examples/openresty"] = { std = "max+ngx_lua" }
files["bench/openresty"] = { std = "max+ngx_lua", read_globals = { ngx = { fields = { "run_worker_thread" } } } }
files["spec"] = { std = "max+busted" }
