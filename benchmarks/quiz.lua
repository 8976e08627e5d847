-- wrk script: answers to prepared quiz attempts (benchmarks/quiz_answers.py writes the file named by
-- FANGFEI_BENCH_ANSWERS: one "path<TAB>cookie<TAB>body" line per answer, in an order where an attempt's next
-- answer comes thousands of requests after its previous one). Each thread takes every n-th line; a thread that
-- runs out stops, so no answer is sent twice.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local total = tonumber(os.getenv("FANGFEI_BENCH_THREADS"))
  lines = {}
  local n = 0
  for line in io.lines(os.getenv("FANGFEI_BENCH_ANSWERS")) do
    if n % total == id then
      table.insert(lines, line)
    end
    n = n + 1
  end
  position = 0
end

function request()
  position = position + 1
  local line = lines[position]
  if line == nil then
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local path, cookie, body = line:match("([^\t]+)\t([^\t]+)\t(.+)")
  return wrk.format("POST", path, { ["Content-Type"] = "application/json", ["Cookie"] = cookie }, body)
end
