-- wrk script: POST /api/chat with a rotating set of residents and messages.
local messages = {
  "你好", "消费全返是真的吗", "有人推荐我投资养老院，每年返息百分之十二", "养老投姿", "火车票怎么买",
  "推荐一个人奖励两百，下线投资还有提成", "非法集资的四个特征是什么", "我在银行买了大额存单，利率两点几",
}
local n = 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
  n = n + 1
  local body = string.format('{"user":"bench-%d","text":"%s"}', n % 400,
    messages[(n % #messages) + 1])
  return wrk.format("POST", "/api/chat", headers, body)
end
