-- A merge PATCH of one metadata key, a new value every request (so that every request is a real
-- change: a no-op would write nothing and measure nothing).
--   wrk ... -s bench/wrk/patch.lua URL -- IDS_FILE PATH_PREFIX [API_KEY]
-- IDS_FILE holds one thread id a line; the requests go round them. Prints one JSON line at the end.

local threads = {}
local counter = 0
local ids = {}
local prefix = ""
local headers = {["Content-Type"] = "application/json"}
non2xx = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(ids, line) end
  end
  prefix = args[2]
  if args[3] and #args[3] > 0 then
    headers["Authorization"] = "Bearer " .. args[3]
  end
  counter = tid * 1000003  -- each wrk thread starts somewhere else in the id list
end

function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  local body = '{"metadata":{"bench":"' .. tid .. '-' .. counter .. '"}}'
  return wrk.format("PATCH", prefix .. id, headers, body)
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
