-- wrk script: Telegram updates (a resident's text message) posted to our webhook with the secret header.
local n = 0
local messages = { "消费全返是真的吗", "养老投姿", "有人推荐我投资养老院，每年返息百分之十二", "/start", "火车票怎么买" }
local headers = { ["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = "bench-secret" }

request = function()
  n = n + 1
  local user = 100000 + (n % 500)
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"date":1763700000,"chat":{"id":%d,"type":"private"},' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"R"},"text":"%s"}}',
    n + math.random(1, 1000000000), n, user, user, messages[(n % #messages) + 1])
  return wrk.format("POST", "/telegram/webhook", headers, body)
end
