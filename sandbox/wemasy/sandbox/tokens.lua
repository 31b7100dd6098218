-- The sandbox's fixed API tokens and who each one is.
-- Shared by the launcher (sandbox.tokens) and by the nginx side (auth).

local M = {}

-- name -> Bearer token (Sanctum-like "<id>|<secret>")
M.tokens = {
   merchant            = "1|wemasy-sandbox-merchant-finance-token",
   merchant_no_finance = "2|wemasy-sandbox-merchant-token",
   customer            = "3|wemasy-sandbox-customer-john-token",
   other_customer      = "4|wemasy-sandbox-customer-jane-token",
}

-- name -> identity. Both merchant tokens are users of the one merchant
-- account that owns websites 1, 2 and 3; only "merchant" may use finance
-- features (SnelStart). customer_id refers to seed.customers.
M.identities = {
   merchant            = { role = "merchant", finance = true },
   merchant_no_finance = { role = "merchant", finance = false },
   customer            = { role = "customer", customer_id = 1 },
   other_customer      = { role = "customer", customer_id = 2 },
}

local by_token = {}
for name, token in pairs(M.tokens) do
   local id = M.identities[name]
   by_token[token] = {
      name = name, role = id.role, finance = id.finance, customer_id = id.customer_id,
   }
end

-- Bearer token -> identity table (name, role, finance, customer_id) or nil.
function M.lookup(token)
   return token and by_token[token] or nil
end

-- A fresh copy of name -> token, so callers cannot change the real table.
function M.copy()
   local t = {}
   for k, v in pairs(M.tokens) do t[k] = v end
   return t
end

return M
