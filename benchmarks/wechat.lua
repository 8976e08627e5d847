-- wrk script: pre-built WeChat requests (signed, AES-encrypted, unique MsgIds), one per line: "query<TAB>body".
local requests = {}
local n = 0

init = function(args)
  for line in io.lines(args[1]) do
    local query, body = line:match("^(.-)\t(.*)$")
    requests[#requests + 1] = { query = query, body = body }
  end
  n = math.random(0, #requests - 1)
end

request = function()
  n = n + 1
  local r = requests[(n % #requests) + 1]
  return wrk.format("POST", "/wechat?" .. r.query, { ["Content-Type"] = "text/xml" }, r.body)
end
