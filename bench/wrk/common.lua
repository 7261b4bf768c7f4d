-- Shared by the wrk scripts: load ids written by bench/run.py, the bearer token, latency percentiles as JSON.
local M = {}

function M.lines(path)
  local list = {}
  for line in io.lines(path) do
    if #line > 0 then list[#list + 1] = line end
  end
  return list
end

-- every request carries the benchmark client's token (BENCH_TOKEN), through the gate like any client's
M.bearer = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.headers["Authorization"] = M.bearer

-- headers for a request with a body: the given ones plus the token
function M.with_auth(headers)
  local all = { ["Authorization"] = M.bearer }
  for k, v in pairs(headers) do all[k] = v end
  return all
end

function M.report(name)
  return function(summary, latency, requests)
    local errors = summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout
    io.write(string.format(
      'WRK_JSON {"workload":"%s","requests":%d,"duration_s":%.3f,"req_per_s":%.1f,'
      .. '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
      name, summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, errors, summary.errors.status))
  end
end

return M
