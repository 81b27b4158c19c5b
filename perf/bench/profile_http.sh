#!/usr/bin/env bash
# Where the time of one HTTP request goes in `cds-registry serve`: callgrind instruction
# counts per request for GET /v1/lookup and for the trivial GET /healthz, same process,
# same client (curl, one keep-alive connection). Instruction counts do not depend on what
# else the machine is doing, unlike the wall-clock numbers of perf/bench/compare.sh.
#
#   perf/bench/profile_http.sh          # needs a previous perf/bench/compare.sh run (target/bench/)
#   N=1000 perf/bench/profile_http.sh
#   BIN=/tmp/other/cds-registry perf/bench/profile_http.sh   # another build (default: target/release)
#
# Only user-space instructions are counted: the kernel's loopback TCP work (about a third
# of the CPU per request, see docs/PERFORMANCE.md) is not in these numbers.

set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=target/bench
N=${N:-2000}
BIN=${BIN:-target/release/cds-registry}
[ -f "$WORK/registry.toml" ] && [ -f "$WORK/paths.txt" ] || { echo "run perf/bench/compare.sh first" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
# The functions shown (inclusive instructions per request).
PATTERN='search::lookup|search::row$|Serialize for cds_registry|api::etag::etag|params::parse|metrics::|SearchIndex::lookup$|sha2::sha256::compress256$|api::healthz|ratelimit::limit|cors::.*Service.*::call$|Vary::to_header|trace::service::Trace.*::call$|compression::service::Compression.*::call$|Router<S>::call_with_state|Http1Transaction>::(parse|encode)$|Buffered<T,B>::poll_(flush|read_from_io)$|Conn<I,B,T>::poll_read_head|^malloc$|^free$|^realloc$'

for route in lookup healthz; do
  out=$WORK/callgrind.$route.out
  rm -f "$out"
  CDS_REGISTRY_API__RATE_LIMIT_PER_SECOND=0 CDS_REGISTRY_LISTEN=127.0.0.1:$PORT RUST_LOG=warn \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$BIN" --config "$WORK/registry.toml" serve >"$WORK/callgrind.$route.log" 2>&1 &
  pid=$!
  ready=
  for _ in $(seq 1 600); do
    if curl -sf "$BASE/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "serve under valgrind did not get ready" >&2; kill "$pid"; exit 1; }
  urls=$WORK/callgrind.$route.curl
  if [ "$route" = lookup ]; then
    head -n "$N" "$WORK/paths.txt" | sed "s|^|url = \"$BASE|; s|\$|\"\\noutput = \"/dev/null\"|" >"$urls"
  else
    for _ in $(seq 1 "$N"); do printf 'url = "%s/healthz"\noutput = "/dev/null"\n' "$BASE"; done >"$urls"
  fi
  # warm-up over the same connection pattern, then measure exactly N requests
  # The whole list once: every row the measured requests return is rendered by then (the
  # index keeps rendered rows), as in a server that has been up for a while.
  timeout 600 curl -s -K "$urls" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  timeout 600 curl -s -K "$urls" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  echo "== GET /$route: $N requests, $((total / N)) instructions per request (user space)"
  # Inclusive instructions per request by function, for the functions that tell the story.
  # Inlining splits a function into one row per source file; the row of its own file
  # carries the inclusive cost (the largest row), the others only inlined pieces.
  callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$out" 2>/dev/null | awk -v n="$N" '
    /^ *[0-9,]+ +\(/ {
      c = $1; gsub(",", "", c); c += 0
      line = $0; sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", line); sub(/ \[[^]]*\]$/, "", line)
      i = index(line, ":"); fn = substr(line, i + 1)
      if (c > best[fn]) best[fn] = c
    }
    END { for (f in best) printf "%9d  %s\n", best[f] / n, f }' \
    | grep -E "$PATTERN" | sort -rn | cut -c1-170 | sed -n '1,40p' || true
done
