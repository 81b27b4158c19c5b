-- wrk script for bench/compare.sh: GET /v1/lookup cycling through the benchmark points.
-- Usage: wrk -t2 -c4 -d10s -s bench/lookup.lua http://127.0.0.1:PORT -- PATHS_FILE
-- (the trivial-route run uses it too, with a file holding only `/healthz`, and so does the
-- bare hyper floor, so every HTTP run pays the same per-request Lua cost in wrk)
-- PATHS_FILE (written by cds-bench) holds one request path per line
-- (`/v1/lookup?lat=..&lon=..`); each wrk thread starts at its own offset.
--
-- Every request is formatted once, in init, and request() hands back the ready string.
-- Formatting it per request made a new Lua string each time, which Lua hashes, interns and
-- later collects: wrk spent 6.6-9.6 us of user CPU per lookup against 5.2 with the
-- requests ready, on the two cores it shares with the server (the /healthz run formats the
-- same string every time, so it paid less of that: 3.5-4.5 against 1.5-2.2 us).
-- docs/PERFORMANCE.md, "The load generator's own work".

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

local requests = {}
local n = 0
local next_i = 0

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s lookup.lua URL -- PATHS_FILE")
  end
  for line in io.lines(file) do
    n = n + 1
    requests[n] = wrk.format("GET", line)
  end
  if n == 0 then
    error("no paths in " .. file)
  end
  next_i = ((thread_no or 0) * 49999) % n
end

function request()
  next_i = next_i + 1
  if next_i > n then
    next_i = 1
  end
  return requests[next_i]
end
