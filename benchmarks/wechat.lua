-- wrk script: pre-built WeChat requests (signed, AES-encrypted, unique MsgIds), one per line: "query<TAB>body".
-- Each wrk thread replays its own slice, so no MsgId is ever sent twice (a repeat would take the de-dup path).
local threads = 0
local requests = {}
local n = 0
local step = 1
local pause = 0
offset = 0

setup = function(thread)
  thread:set("offset", threads)  -- becomes the global `offset` in that thread's script
  threads = threads + 1
end

init = function(args)
  for line in io.lines(args[1]) do
    local query, body = line:match("^(.-)\t(.*)$")
    requests[#requests + 1] = { query = query, body = body }
  end
  n = offset
  math.randomseed(offset * 7919 + os.time())
  step = tonumber(args[2])  -- the number of wrk threads
  pause = tonumber(args[3] or "0")  -- ms each connection waits between requests (0: as fast as answered)
end

delay = function()
  -- random around the mean, so the connections do not fire in step (a burst of 100 at once is not a rate)
  return math.random() * 2 * pause
end

request = function()
  local r = requests[(n % #requests) + 1]
  n = n + step
  return wrk.format("POST", "/wechat?" .. r.query, { ["Content-Type"] = "text/xml" }, r.body)
end
