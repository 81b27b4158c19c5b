#!/usr/bin/env bash
# Builds of `cds-registry serve` side by side on the counties store of a compare run:
# per round, each build in turn is started, warmed with 2 s of lookups, then measured by
# http_cpu.sh on GET /v1/lookup and on /healthz (req/s, user and kernel CPU per request).
# Builds alternate within every round, so the machine's drift hits them alike.
#
#   perf/bench/http_ab.sh ROUNDS SECONDS BIN...    # needs a previous perf/bench/compare.sh run
#   e.g. perf/bench/http_ab.sh 4 5 /tmp/before/cds-registry target/release/cds-registry
#
# All traffic stays on loopback; every wrk run is bounded by SECONDS.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
ROUNDS=$1 SECS=$2
shift 2
WORK=target/bench
[ -f "$WORK/registry.toml" ] && [ -f "$WORK/paths.txt" ] || { echo "run perf/bench/compare.sh first" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    start_serve "$bin" "$WORK/registry.toml" "$PORT" "$WORK/http_ab.log"
    pid=$SERVE_PID
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    wrk -t2 -c4 -d2s -s perf/bench/lookup.lua "$BASE" -- "$WORK/paths.txt" >/dev/null
    lookup=$(perf/bench/http_cpu.sh "$pid" "$BASE" "$WORK/paths.txt" "$SECS")
    healthz=$(perf/bench/http_cpu.sh "$pid" "$BASE" "$WORK/healthz_paths.txt" "$SECS")
    echo "round $round $bin | lookup: ${lookup#*: } | healthz: ${healthz#*: }"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done
