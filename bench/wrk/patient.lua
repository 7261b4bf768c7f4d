-- Patients on their own record (each request with the token of one of 1,000 patients, so the policy restricts
-- every answer to that patient's compartment, in SQL for searches):
--   40% read own Patient, 40% search own Observations by code, 20% search own DocumentReferences.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
local common = require("common")
local rows = common.lines(os.getenv("BENCH_DATA") .. "/patient_tokens.txt")
local patients, tokens = {}, {}
for i, row in ipairs(rows) do
  local pid, token = row:match("([^\t]+)\t(.+)")
  patients[i] = pid
  tokens[i] = "Bearer " .. token
end
local codes = { "29463-7", "8480-6", "8462-4", "8310-5", "2339-0" }

request = function()
  local i = math.random(#patients)
  local headers = { ["Authorization"] = tokens[i] }
  local r = math.random(100)
  if r <= 40 then
    return wrk.format("GET", "/fhir/Patient/" .. patients[i], headers)
  elseif r <= 80 then
    return wrk.format("GET", "/fhir/Observation?code=http://loinc.org|" .. codes[math.random(#codes)], headers)
  else
    return wrk.format("GET", "/fhir/DocumentReference?_count=10", headers)
  end
end

done = common.report("patient")
