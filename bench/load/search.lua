-- wrk script for bench/load: POST /search with a different realistic query
-- body on every request (bodies come from the file in BENCH_BODIES, one JSON
-- object per line), and a summary line with p50/p95/p99 and errors.
local bodies = {}
local n = 0
local i = 0

function init(args)
  local path = os.getenv("BENCH_BODIES")
  for line in io.lines(path) do
    n = n + 1
    bodies[n] = line
  end
  -- Each wrk thread starts at a different place in the list.
  i = math.random(n)
end

function request()
  i = i % n + 1
  return wrk.format("POST", "/search", {["Content-Type"] = "application/json"}, bodies[i])
end

-- detail= names the kinds of errors (e.g. timeout:12,status:3; "none"): no
-- spaces, so bench/load/run can cut it out of the line. Requests still
-- unanswered when the run ends count neither as requests nor as errors.
function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local kinds = {}
  for _, k in ipairs({"connect", "read", "write", "status", "timeout"}) do
    if e[k] > 0 then kinds[#kinds + 1] = k .. ":" .. e[k] end
  end
  local detail = #kinds > 0 and table.concat(kinds, ",") or "none"
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f errors=%d detail=%s\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, errors, detail))
end
