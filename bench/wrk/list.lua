-- The parity list: a page of 20 threads with one metadata filter, the bucket changing every request.
--   wrk ... -s bench/wrk/list.lua URL -- MODE BUCKETS [API_KEY]
-- MODE `ours`: GET /api/v1/threads?metadata.bucket=N&limit=20; MODE `peer`: the LangGraph server's
-- POST /threads/search {"metadata": {"bucket": "N"}, "limit": 20}. Prints one JSON line at the end.

local threads = {}
local counter = 0
local mode = "ours"
local buckets = 50
local headers = {["Content-Type"] = "application/json"}
non2xx = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  buckets = tonumber(args[2])
  if args[3] and #args[3] > 0 then
    headers["Authorization"] = "Bearer " .. args[3]
  end
  counter = tid * 1000003  -- each wrk thread starts at another bucket
end

function request()
  counter = counter + 1
  local bucket = counter % buckets
  if mode == "peer" then
    local body = '{"metadata":{"bucket":"' .. bucket .. '"},"limit":20}'
    return wrk.format("POST", "/threads/search", headers, body)
  end
  return wrk.format("GET", "/api/v1/threads?metadata.bucket=" .. bucket .. "&limit=20", headers)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
