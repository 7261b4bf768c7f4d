-- ITI-67 searches of bench/dsp_mhd.py: the query mix it writes (BENCH_DATA/dsp_queries.txt), in order, one after
-- the other on each connection, with the caller's token (BENCH_TOKEN).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
local common = require("common")
local queries = common.lines(os.getenv("BENCH_DATA") .. "/dsp_queries.txt")
local next_query = 0

request = function()
  next_query = next_query % #queries + 1
  return wrk.format("GET", "/fhir/DocumentReference?" .. queries[next_query])
end

done = common.report("dsp-iti67")
