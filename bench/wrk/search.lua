-- Searches: token (code + subject), date range on a code, and a chain (subject.identifier).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
local common = require("common")
local dir = os.getenv("BENCH_DATA")
local patients = common.lines(dir .. "/patients.txt")
local idents = common.lines(dir .. "/identifiers.txt")
local codes = { "29463-7", "8480-6", "8462-4", "8310-5", "2339-0" }

request = function()
  local r = math.random(3)
  local code = codes[math.random(#codes)]
  if r == 1 then
    return wrk.format("GET", "/fhir/Observation?code=http://loinc.org|" .. code
      .. "&subject=Patient/" .. patients[math.random(#patients)])
  elseif r == 2 then
    local month = math.random(1, 11)
    return wrk.format("GET", string.format(
      "/fhir/Observation?code=http://loinc.org|%s&date=ge2024-%02d-01&date=lt2024-%02d-01&_count=10&_total=none",
      code, month, month + 1))
  else
    return wrk.format("GET", "/fhir/Observation?subject.identifier=urn:oid:1.3.182.2.4.2|"
      .. idents[math.random(#idents)] .. "&_count=10")
  end
end

done = common.report("search")
