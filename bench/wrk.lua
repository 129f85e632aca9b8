-- The load of bench/small.py, for wrk (Debian's package): `wrk ... -s wrk.lua URL -- get|put`.
-- get: the URL as given, on every connection.
-- put: one check-in to URL .. "put-NNNN", cycling through 1,000 ids, each request with a
--      new `extra` so that every PUT changes its record (none is counted unchanged).
-- When done, one line of JSON: requests, duration, errors, and latency percentiles in µs.

local mode = "get"
local sent = 0

function init(args)
  mode = args[1] or "get"
end

function request()
  if mode ~= "put" then
    return wrk.request()
  end
  sent = sent + 1
  local body = string.format(
    '{"checked_in_at":"2025-06-01T12:00:00.000000+00:00","location_id":"loc-nyc",' ..
    '"membership_id":null,"user_id":"u-00001","extra":{"n":"%d"}}', sent)
  return wrk.format("PUT", string.format("%sput-%04d", wrk.path, sent % 1000), nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
