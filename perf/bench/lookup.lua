-- wrk script for bench/compare.sh: GET /v1/lookup cycling through the benchmark points.
-- Usage: wrk -t2 -c4 -d10s -s bench/lookup.lua http://127.0.0.1:PORT -- PATHS_FILE
-- (the trivial-route run uses it too, with a file holding only `/healthz`, so both runs
-- pay the same per-request Lua cost in wrk)
-- PATHS_FILE (written by cds-bench) holds one request path per line
-- (`/v1/lookup?lat=..&lon=..`); each wrk thread starts at its own offset.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

local paths = {}
local n = 0
local next_i = 0

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s lookup.lua URL -- PATHS_FILE")
  end
  for line in io.lines(file) do
    n = n + 1
    paths[n] = line
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
  return wrk.format("GET", paths[next_i])
end
