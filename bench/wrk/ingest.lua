-- Ingest: POST transaction Bundles of 100 resources (10 patients x (1 + 9 observations)), pre-built.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
local common = require("common")
local f = io.open(os.getenv("BENCH_DATA") .. "/bundle.json", "r")
local body = f:read("*a")
f:close()
local headers = common.with_auth({ ["Content-Type"] = "application/fhir+json", ["Prefer"] = "return=minimal" })

request = function()
  return wrk.format("POST", "/fhir", headers, body)
end

done = common.report("ingest")
