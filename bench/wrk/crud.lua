-- CRUD mix on Patient, Observation and DocumentReference:
--   25% read Patient, 15% read Observation, 15% read DocumentReference,
--   10% create Observation, 5% create DocumentReference, 10% update Patient,
--   10% search Patient by identifier (token), 10% search DocumentReference by patient + type.
-- Ids come from files written by bench/run.py.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
local common = require("common")
local dir = os.getenv("BENCH_DATA")
local patients = common.lines(dir .. "/patients.txt")
local observations = common.lines(dir .. "/observations.txt")
local documents = common.lines(dir .. "/documents.txt")
local idents = common.lines(dir .. "/identifiers.txt")
local json_headers = common.with_auth({ ["Content-Type"] = "application/fhir+json" })
local counter = 0

request = function()
  counter = counter + 1
  local r = math.random(100)
  if r <= 25 then
    return wrk.format("GET", "/fhir/Patient/" .. patients[math.random(#patients)])
  elseif r <= 40 then
    return wrk.format("GET", "/fhir/Observation/" .. observations[math.random(#observations)])
  elseif r <= 55 then
    return wrk.format("GET", "/fhir/DocumentReference/" .. documents[math.random(#documents)])
  elseif r <= 65 then
    local pid = patients[math.random(#patients)]
    local body = '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org",'
      .. '"code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/' .. pid .. '"},'
      .. '"effectiveDateTime":"2024-05-0' .. (counter % 9 + 1) .. '","valueQuantity":{"value":' .. (50 + counter % 60)
      .. ',"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'
    return wrk.format("POST", "/fhir/Observation", json_headers, body)
  elseif r <= 70 then
    local pid = patients[math.random(#patients)]
    local body = '{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":'
      .. '"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/' .. pid .. '"},'
      .. '"date":"2024-06-01T10:00:00Z","content":[{"attachment":{"contentType":"application/pdf",'
      .. '"url":"Binary/bench-document","size":2048}}]}'
    return wrk.format("POST", "/fhir/DocumentReference", json_headers, body)
  elseif r <= 80 then
    local i = math.random(#patients)
    local pid = patients[i]
    local body = '{"resourceType":"Patient","id":"' .. pid .. '","active":true,"identifier":[{"system":'
      .. '"urn:oid:1.3.182.2.4.2","value":"' .. idents[i] .. '"}],"name":[{"family":"Bench' .. (counter % 97)
      .. '","given":["Update"]}],"gender":"unknown","birthDate":"1970-01-01"}'
    return wrk.format("PUT", "/fhir/Patient/" .. pid, json_headers, body)
  elseif r <= 90 then
    return wrk.format("GET", "/fhir/Patient?identifier=urn:oid:1.3.182.2.4.2|" .. idents[math.random(#idents)])
  else
    return wrk.format("GET", "/fhir/DocumentReference?patient=Patient/" .. patients[math.random(#patients)]
      .. "&type=http://loinc.org|11488-4")
  end
end

done = common.report("crud")
