#!/usr/bin/env bash
# Where a first crawl of one large aggregator keeps its memory: `cds-registry crawl` of the
# scale fixture (perf/examples/scale_fixture.rs) under heaptrack, on a fresh SQLite store,
# then heaptrack_print's peak and the allocation sites holding the most at the peak.
#
#   perf/bench/crawl_heap.sh                      # 20,000 entries, 1 ms per response
#   ENTRIES=100000 perf/bench/crawl_heap.sh
#
# Needs heaptrack (Debian: apt-get install heaptrack) and a release build
# (`cargo build --release --bin cds-registry --example scale_fixture`). heaptrack slows
# the crawl several times; the numbers to quote are bytes, not seconds. Loopback only.

set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
# Defaults: the fixture's size and speed (the 100,000-entry scale run uses 20 ms).
: "${ENTRIES:=20000}" "${PAGE_SIZE:=1000}" "${LATENCY_MS:=1}" "${SEED:=7}"
WORK=$ROOT/target/crawl-heap
BIN=$ROOT/target/release
command -v heaptrack >/dev/null || { log "needs heaptrack (apt-get install heaptrack)"; exit 1; }
mkdir -p "$WORK"
rm -f "$WORK"/*

FIXTURE_PID=
trap '[ -z "$FIXTURE_PID" ] || { kill -TERM "$FIXTURE_PID" 2>/dev/null; wait "$FIXTURE_PID" 2>/dev/null; } || true' EXIT
"$BIN/examples/scale_fixture" --entries "$ENTRIES" --page-size "$PAGE_SIZE" \
    --latency-ms "$LATENCY_MS" --seed "$SEED" --listen 127.0.0.1:0 >"$WORK/fixture.out" 2>&1 &
FIXTURE_PID=$!
ADDR=$(wait_for_value listen "$WORK/fixture.out" "$WORK/fixture.out")

unset CDS_REGISTRY_CONFIG
export RUST_LOG=${RUST_LOG:-warn}
export CDS_REGISTRY_DATABASE_URL="sqlite://$WORK/heap.db"
export CDS_REGISTRY_CRAWL__ALLOW_HTTP="[$ADDR]"
export CDS_REGISTRY_CRAWL__ALLOW_PRIVATE="[127.0.0.0/8]"
echo "$ADDR" >"$WORK/seeds.txt"
"$BIN/cds-registry" seed "$WORK/seeds.txt" >/dev/null 2>"$WORK/seed.log"
log "crawling $ENTRIES entries from $ADDR under heaptrack"
heaptrack -o "$WORK/crawl" "$BIN/cds-registry" crawl >"$WORK/crawl.out" 2>"$WORK/crawl.log"
head -c 300 "$WORK/crawl.out" >&2; echo >&2
data=$(find "$WORK" -maxdepth 1 -name 'crawl.*' \( -name '*.zst' -o -name '*.gz' \) | head -n 1)
heaptrack_print -f "$data" --print-peaks 1 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 --peak-limit 25 --sub-peak-limit 0 >"$WORK/report.txt" 2>/dev/null || true
grep -E '^(peak heap memory consumption|peak RSS)' "$WORK/report.txt" || true
echo
# The allocation sites by memory held at the peak (heaptrack's own ranking; its header is
# "PEAK MEMORY CONSUMERS" in the heaptrack 1.4 Debian ships, "MOST MEMORY CONSUMING
# ALLOCATIONS" in older ones).
# No match is no error: the peak lines above are the result either way.
sed -n '/^\(PEAK MEMORY CONSUMERS\|MOST MEMORY CONSUMING ALLOCATIONS\)/,/^\(MOST TEMPORARY\|MOST CALLS\)/p' \
    "$WORK/report.txt" | grep -E '^[0-9.]+[KMG]?B? peak memory consumed|^  at |^  in ' |
    head -n 120 || true
log "full report: $WORK/report.txt"
