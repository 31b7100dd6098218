local endpoints = require("wemasy.endpoints")
local json = require("wemasy.json")
local validate = require("wemasy.validate")

local function request(path, body)
  return validate.request(endpoints[path], body)
end

describe("request validation", function()
  it("encodes valid bodies in the page's field order", function()
    assert.equal('{"website_id":"1","order_session":"s","email":"a@b.nl"}',
      request("orders/get", { email = "a@b.nl", order_session = "s", website_id = "1" }))
  end)

  it("sends integers as strings where the API wants a string", function()
    assert.equal('{"website_id":"7","order_session":"s"}',
      request("orders/mark-purchase-tracked", { website_id = 7, order_session = "s" }))
    assert.equal('{"website_id":"7","order_session":"s"}',
      request("orders/mark-purchase-tracked", { website_id = 7.0, order_session = "s" }))
  end)

  it("accepts integers, including integral floats, for integer fields", function()
    assert.equal('{"order_id":42}', request("customer/orders/get", { order_id = 42 }))
    assert.equal('{"order_id":2502}', request("customer/orders/get", { order_id = 2502.0 }))
  end)

  for _, bad in ipairs{ 42.5, "42", true, {}, 0 / 0, math.huge, 2 ^ 60, json.null } do
    it("refuses order_id = " .. tostring(bad) .. " as invalid_argument", function()
      local text, err = request("orders/sync-snelstart-order", { order_id = bad })
      assert.is_nil(text)
      assert.equal("invalid_argument", err.kind)
      assert.equal("orders/sync-snelstart-order", err.endpoint)
      assert.is_table(err.errors.order_id)
      assert.matches("order_id", err.message)
    end)
  end

  it("accepts mark as true, false, wemasy.null or absent and nothing else", function()
    local base = { website_id = "1", order_session = "s" }
    local function with_mark(v)
      local b = { website_id = base.website_id, order_session = base.order_session, mark = v }
      return request("orders/mark-purchase-tracked", b)
    end
    assert.matches('"mark":true}$', with_mark(true))
    assert.matches('"mark":false}$', with_mark(false))
    assert.matches('"mark":null}$', with_mark(json.null))
    assert.equal('{"website_id":"1","order_session":"s"}', with_mark(nil))
    for _, bad in ipairs{ 1, "true", {}, print } do
      local text, err = with_mark(bad)
      assert.is_nil(text)
      assert.equal("invalid_argument", err.kind)
      assert.matches("mark.*boolean", err.message)
    end
  end)

  it("lists every problem Laravel-style and names unknown fields", function()
    local text, err = request("orders/get", { website_id = {}, emial = "x" })
    assert.is_nil(text)
    assert.equal("invalid_argument", err.kind)
    assert.same({ "unknown field 'emial' (orders/get takes: website_id, order_session, email)" }, err.errors.emial)
    assert.same({ "field 'website_id' must be a string (got table)" }, err.errors.website_id)
    assert.same({ "field 'order_session' is required" }, err.errors.order_session)
    assert.same({ "field 'email' is required" }, err.errors.email)
    assert.matches("%(and 3 more errors%)$", err.message)
  end)

  it("refuses empty strings, invalid UTF-8 and non-string keys", function()
    local _, err = request("orders/detail", { order_number = "" })
    assert.matches("must not be empty", err.message)
    _, err = request("orders/detail", { order_number = "\255\254" })
    assert.matches("UTF%-8", err.message)
    _, err = request("orders/detail", { order_number = "x", [1] = "y" })
    assert.matches("unknown field", err.message)
  end)

  it("keeps NUL bytes and huge strings intact instead of truncating them", function()
    local big = string.rep("x", 1024 * 1024)
    local text = request("orders/detail", { order_number = big .. "\0" })
    assert.equal('{"order_number":"' .. big .. '\\u0000"}', text)
  end)

  it("never shows a field's value in a message", function()
    local _, err = request("orders/detail", { order_number = 12.5 })
    assert.not_matches("12.5", err.message)
  end)
end)
