-- WSE eligibility checks: each request takes the next prepared body (BENCH_DATA/wse_bodies.ndjson) and POSTs it to
-- CoverageEligibilityRequest/$check, or GETs the check with its query (WSE_METHOD=GET, wse_queries.txt).
local common = dofile(os.getenv("BENCH_DIR") .. "/wrk/common.lua")
local method = os.getenv("WSE_METHOD") or "POST"
local items
if method == "GET" then
  items = common.lines(os.getenv("BENCH_DATA") .. "/wse_queries.txt")
else
  items = common.lines(os.getenv("BENCH_DATA") .. "/wse_bodies.ndjson")
end
local counter = 0
local headers = common.with_auth({ ["Content-Type"] = "application/fhir+json" })

function request()
  counter = counter + 1
  local item = items[(counter % #items) + 1]
  if method == "GET" then
    return wrk.format("GET", "/fhir/CoverageEligibilityRequest/$check?" .. item, headers)
  end
  return wrk.format("POST", "/fhir/CoverageEligibilityRequest/$check", headers, item)
end

done = common.report(os.getenv("WSE_WORKLOAD") or "wse-check")
