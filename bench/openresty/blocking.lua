-- The nginx side of bench/openresty/latency.lua: the example's order page with
-- a plain wemasy client, called directly on the worker's event loop.  This is
-- what wemasy.ngx exists to avoid; the benchmark shows what it costs.
local storefront = require("storefront")
local wemasy = require("wemasy")

local blocking = {}

local client

function blocking.order()
  client = client or wemasy.new{ base_url = storefront.shop.base_url, timeout = 10, connect_timeout = 3,
    rate_limit = { wait = true, max_wait = 2, groups = { default = { limit = 1000, window = 1 } } } }
  return require("storefront.order")(client)
end

return blocking
