#!/usr/bin/env bash
# A replica's memory in steady state: RSS of one `cds-registry serve` right after /readyz,
# after a wrk run of GET /v1/lookup cycling through the benchmark points (what the request
# path allocates and frees, in every thread that serves), and after an idle pause.
#
#   CELLS=100000 perf/bench/compare.sh && perf/bench/replica_rss.sh    # the 100,000 cells
#   WORK=target/bench perf/bench/replica_rss.sh                         # the counties
#
# Environment: WORK (target/bench-cells-100000: a compare.sh scratch directory, whose
# registry.toml and paths.txt it reuses), BIN (target/release/cds-registry), DURATION (20 s
# of load), IDLE (15 s). All traffic stays on 127.0.0.1.

set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
WORK=${WORK:-$ROOT/target/bench-cells-100000}
BIN=${BIN:-$ROOT/target/release/cds-registry}
DURATION=${DURATION:-20}
IDLE=${IDLE:-15}
[ -f "$WORK/registry.toml" ] && [ -f "$WORK/paths.txt" ] || { log "run perf/bench/compare.sh first"; exit 1; }
command -v wrk >/dev/null || { log "needs wrk (compare.sh installs it)"; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_serve "$BIN" "$WORK/registry.toml" "$PORT" "$WORK/replica_rss.log"
pid=$SERVE_PID
trap 'kill "$pid" 2>/dev/null || true' EXIT
rss() {
  awk -v what="$1" '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{printf "| %s | %d MiB | %d MiB |\n", what, r/1024, h/1024}' "/proc/$pid/status"
}
echo "| moment | VmRSS | VmHWM |"
echo "|---|---|---|"
rss "right after /readyz"
rate=$(wrk -t2 -c4 -d"${DURATION}s" -s "$ROOT/perf/bench/lookup.lua" "http://127.0.0.1:$PORT" -- "$WORK/paths.txt" |
  awk '/Requests\/sec/{print $2}')
rss "after ${DURATION} s of GET /v1/lookup ($rate req/s)"
sleep "$IDLE"
rss "after ${IDLE} s idle"
