-- wrk script: POST one support ticket per request, each with its own Idempotency-Key.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("HITL_BENCH_KEY")
end

request = function()
  counter = counter + 1
  local key = string.format("%s-%d-%d", os.getenv("HITL_BENCH_RUN"), tid, counter)
  local body = string.format(
    '{"workflow":"support-triage","external_id":"%s","input":{"subject":"Order %d",' ..
    '"body":"Hello, I was charged twice for order %d and would like a refund of one payment. ' ..
    'Thanks, Alex"}}', key, counter, counter)
  wrk.headers["Idempotency-Key"] = key
  return wrk.format(nil, "/v1/items", nil, body)
end
