#!/usr/bin/env bash
# Scale: one synthetic national aggregator (perf/examples/scale_fixture.rs) with ENTRIES coverage
# entries, each with its own ~50-vertex territory, crawled by `cds-registry crawl` into SQLite
# and into Postgres (docs/PERFORMANCE.md, "Scale: a 100,000-territory aggregator (issue 17)").
#
#   perf/bench/scale.sh                              # 100,000 entries, 100 pages, 20 ms, release
#   ENTRIES=10000 perf/bench/scale.sh                # 10 pages of 1,000
#   ENTRIES=2000 PROFILE=dev BACKENDS=sqlite perf/bench/scale.sh   # quick check
#
# Per backend (a fresh SQLite file; the scratch Postgres database SCALE_DB, dropped at the end):
#   1. first crawl            (fixture generation 0)
#   2. unchanged re-crawl     (same fixture: pages answer 304; territories whose entries did
#                              not change are not asked for, crawl.territory_max_age_secs)
#   then an API replica (`serve --role api`) starts on the crawled store: start -> /readyz
#   (index loaded from the store and built), its RSS and CPU then;
#   3. update re-crawl        (fixture restarted on the same port with --generation 1:
#                              CHANGED_PERCENT of the entries changed, geometry and fields)
#   and the replica's catch-up: from the crawler's "host crawled" line (after the commit) to
#   the replica's next index swap (/readyz index_built_ms), and the replica CPU it took;
#   UPDATE_ROUNDS > 1 repeats step 3 on the same replica, the fixture's generations
#   alternating (1, 0, 1, ...: each round changes the same 1 % back or forth), and reports
#   every round's catch-up and their median;
#   then GEOS (Shapely 2, venv under target/bench-venv) checks the replica's answers on
#   ORACLE_POINTS (10000) random points against every territory it serves
#   (perf/bench/scale_oracle.py; ORACLE_POINTS=0 skips it).
# and for each: wall time (process start to exit), requests the fixture answered (200/304),
# the ideal time (requests × latency / per-host concurrency 4, the default), peak RSS and CPU
# of the crawler (/usr/bin/time -v), the bytes of the crawl summary, and where the wall time
# went: until the fixture's last response (fetching), from it to the crawler's "host crawled"
# log line (the server's commit and the outcome record: the crawl logs no commit time of
# their own, so this is an upper bound of the commit), and from there to the exit (the run's
# end effects: cross-server findings), with the time of the statements sqlx logged as slow
# (over 1 s).
#
# Limits: today's defaults refuse a listing this size (max_documents_per_host = 5000 counted
# before fetching, max_pages = 200, host_budget_secs = 600), so unless OVERRIDES=0 the script
# sets, through the environment:
#   CDS_REGISTRY_CRAWL__MAX_DOCUMENTS_PER_HOST=200000
#   CDS_REGISTRY_CRAWL__MAX_PAGES=1000
#   CDS_REGISTRY_CRAWL__HOST_BUDGET_SECS=7200
# Always set (loopback fixture over plain http): CDS_REGISTRY_CRAWL__ALLOW_HTTP=[ADDR],
# CDS_REGISTRY_CRAWL__ALLOW_PRIVATE=[127.0.0.0/8]. Everything else is at its default.
#
# Environment: ENTRIES (100000), PAGE_SIZE (1000), LATENCY_MS (20), SEED (7),
# CHANGED_PERCENT (1), UPDATE_ROUNDS (1), BACKENDS ("sqlite postgres"),
# PROFILE (release | dev), SKIP_BUILD=1,
# BIN_DIR (release binaries from elsewhere: a copy, so that builds can go on meanwhile),
# OVERRIDES (1), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), SCALE_DB (cds_scale),
# CRAWL_TIMEOUT (7200 s per crawl). Results: a Markdown table on stdout and in
# target/scale/results.md. All traffic stays on 127.0.0.1; every wait loop is bounded.

set -euo pipefail

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
ENTRIES=${ENTRIES:-100000}
PAGE_SIZE=${PAGE_SIZE:-1000}
LATENCY_MS=${LATENCY_MS:-20}
SEED=${SEED:-7}
CHANGED_PERCENT=${CHANGED_PERCENT:-1}
UPDATE_ROUNDS=${UPDATE_ROUNDS:-1}
BACKENDS=${BACKENDS:-sqlite postgres}
PROFILE=${PROFILE:-release}
OVERRIDES=${OVERRIDES:-1}
SCALE_DB=${SCALE_DB:-cds_scale}
CRAWL_TIMEOUT=${CRAWL_TIMEOUT:-7200}
ORACLE_POINTS=${ORACLE_POINTS:-10000}
VENV=$ROOT/target/bench-venv
PER_HOST=4 # the default crawl.per_host_concurrency (not overridden)
WORK=$ROOT/target/scale

case $PROFILE in
release) BIN=${BIN_DIR:-$ROOT/target/release}; BUILD=(cargo build --release) ;;
dev) BIN=$ROOT/target/debug; BUILD=(cargo build) ;;
*) echo "PROFILE must be release or dev" >&2; exit 2 ;;
esac


mkdir -p "$WORK"
rm -f "$WORK"/*.time "$WORK"/*.log "$WORK"/*.out "$WORK"/scale.db*

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building ($PROFILE): cds-registry and perf/examples/scale_fixture"
    "${BUILD[@]}" --bin cds-registry --example scale_fixture 2>&1 | tail -n 2 >&2
fi

FIXTURE_PID=
ADDR=
# Stop the child with pid $1, if any, and wait for it (the fixture and the replica).
stop_child() {
    if [ -n "$1" ]; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
stop_fixture() {
    stop_child "$FIXTURE_PID"
    FIXTURE_PID=
}
PG_CREATED=
cleanup() {
    stop_replica
    stop_fixture
    if [ -n "$PG_CREATED" ]; then
        psql -q -d postgres -c "DROP DATABASE IF EXISTS $SCALE_DB WITH (FORCE)" >/dev/null || true
    fi
}
trap cleanup EXIT

# start_fixture GENERATION: on ADDR when known (restarts keep the port), else any free port.
start_fixture() {
    local gen=$1 out="$WORK/fixture-gen$1.out"
    "$BIN/examples/scale_fixture" --entries "$ENTRIES" --page-size "$PAGE_SIZE" \
        --latency-ms "$LATENCY_MS" --seed "$SEED" --changed-percent "$CHANGED_PERCENT" \
        --generation "$gen" --listen "${ADDR:-127.0.0.1:0}" >"$out" 2>&1 &
    FIXTURE_PID=$!
    ADDR=$(wait_for_value listen "$out" "$out")
    log "fixture pid $FIXTURE_PID on $ADDR: $(sed -n 2p "$out")"
}

stats() { curl -sf "http://$ADDR/__fixture/stats"; }

ROWS=()
# run_crawl BACKEND SCENARIO: one `cds-registry crawl` process, measured.
run_crawl() {
    local backend=$1 scenario=$2 label="$1-$2" s0 s1 t0 t1 rc=0
    s0=$(stats)
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$WORK/$label.time" timeout "$CRAWL_TIMEOUT" \
        "$BIN/cds-registry" crawl >"$WORK/$label.out" 2>"$WORK/$label.log" || rc=$?
    t1=$(date +%s.%N)
    s1=$(stats)
    [ "$rc" = 0 ] || log "$label: crawl exited with $rc"
    log "$label: $(head -c 400 "$WORK/$label.out")"
    local wall requests ok nm fbytes sbytes rss cpu ideal last_ms crawled_ms fetch_s commit_s after_s slow
    wall=$(echo "$t1 - $t0" | bc -l)
    requests=$(($(jq .requests <<<"$s1") - $(jq .requests <<<"$s0")))
    ok=$(($(jq .ok <<<"$s1") - $(jq .ok <<<"$s0")))
    nm=$(($(jq .not_modified <<<"$s1") - $(jq .not_modified <<<"$s0")))
    fbytes=$(($(jq .bytes <<<"$s1") - $(jq .bytes <<<"$s0")))
    sbytes=$(grep -o '[0-9]* bytes' "$WORK/$label.out" | head -n 1 | cut -d' ' -f1 || true)
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$WORK/$label.time")
    cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.1f", u + s}' "$WORK/$label.time")
    ideal=$(echo "$requests * $LATENCY_MS / 1000 / $PER_HOST" | bc -l)
    # Phases: the fixture's last response, then the "host crawled" line (logged after the
    # server's transaction committed and the outcome was recorded).
    last_ms=$(jq .last_response_ms <<<"$s1")
    crawled_ms=$(grep '"host crawled"' "$WORK/$label.log" | tail -n 1 | jq -r .timestamp 2>/dev/null |
        xargs -r -I{} date -d {} +%s%3N || true)
    fetch_s=$(echo "$last_ms / 1000 - $t0" | bc -l)
    if [ -n "$crawled_ms" ]; then
        commit_s=$(echo "($crawled_ms - $last_ms) / 1000" | bc -l)
        after_s=$(echo "$t1 - $crawled_ms / 1000" | bc -l)
    else
        commit_s="?"; after_s="?"
    fi
    # sqlx's slow-statement warnings (statements over 1 s), summed: where the end goes.
    slow=$({ grep '"slow statement' "$WORK/$label.log" || true; } | jq -r '.fields.elapsed_secs // 0' |
        awk '{s += $1} END {printf "%.1f", s}')
    ROWS+=("$(printf '| %s | %s | %s (%s / %s) | %.1f | %.1f | %.2f | %s | %s | %s | %s | %.1f | %s | %s | %s |' \
        "$backend" "$scenario" "$requests" "$ok" "$nm" "$wall" "$ideal" \
        "$(echo "$ideal / $wall" | bc -l)" "$rss" "$cpu" "${sbytes:-?}" "$fbytes" "$fetch_s" \
        "$(printf '%.2f' "$commit_s" 2>/dev/null || echo "$commit_s")" \
        "$(printf '%.2f' "$after_s" 2>/dev/null || echo "$after_s")" "$slow")")
    # Does the crawl log a commit time of its own?
    if grep -qi 'commit' "$WORK/$label.log"; then
        log "$label: log lines mentioning commit: $(grep -ci commit "$WORK/$label.log")"
    fi
}

REPLICA_PID=
REPLICA_ADDR=
REPLICA_ROWS=()
READY_CPU=
stop_replica() {
    stop_child "$REPLICA_PID"
    REPLICA_PID=
}
readyz() { curl -sf "http://$REPLICA_ADDR/readyz"; }
# utime + stime of a process, in seconds.
cpu_ticks() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Minor page faults of a process so far (memory it touched for the first time).
minor_faults() { awk '{print $10}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
vertices() {
    case $1 in
    sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT SUM(vertex_count) FROM territories').fetchone()[0])" "$WORK/scale.db" ;;
    postgres) psql -tA -d "$SCALE_DB" -c "SELECT SUM(vertex_count) FROM territories" ;;
    esac
}

# start_replica BACKEND: an API replica on the crawled store; time until /readyz answers 200.
start_replica() {
    local port t0 t1 rss verts
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    REPLICA_ADDR=127.0.0.1:$port
    t0=$(date +%s.%N)
    CDS_REGISTRY_LISTEN=$REPLICA_ADDR CDS_REGISTRY_API__RATE_LIMIT_PER_SECOND=0 \
        "$BIN/cds-registry" serve --role api >"$WORK/replica-$1.out" 2>"$WORK/replica-$1.log" &
    REPLICA_PID=$!
    for _ in $(seq 1 3000); do
        readyz >/dev/null 2>&1 && break
        kill -0 "$REPLICA_PID" 2>/dev/null || { log "replica exited"; cat "$WORK/replica-$1.log" >&2; exit 1; }
        sleep 0.1
    done
    t1=$(date +%s.%N)
    READY_CPU=$(cpu_ticks "$REPLICA_PID")
    rss=$(rss_mib "$REPLICA_PID")
    verts=$(vertices "$1")
    log "$1: replica ready in $(echo "$t1 - $t0" | bc -l) s, $(readyz | jq -c .)"
    REPLICA_ROWS+=("$(printf '| %s | %s | %s | %.2f | %s | %s | %s | %.1f |' "$1" \
        "$(readyz | jq .index_entries)" "$verts" "$(echo "$t1 - $t0" | bc -l)" "$READY_CPU" "$rss" \
        "$(echo "$verts * 16 / 1048576" | bc -l | xargs printf '%.0f')" \
        "$(echo "$rss * 1048576 / ($verts * 16)" | bc -l)")")
}

CATCHUP_ROWS=()
CATCHUP_PCT=()
# replica_caught_up BACKEND BUILT_BEFORE TICKS_BEFORE ROUND FAULTS_BEFORE: wait (bounded) for
# the replica's next index swap after the update crawl of ROUND; commit -> visible, and the
# CPU and minor page faults the catch-up took (round 1 also goes into the replica's row).
replica_caught_up() {
    local built=$2 round=$4 now crawled_ms ticks visible cpu pct
    for _ in $(seq 1 600); do
        now=$(readyz | jq .index_built_ms)
        [ "$now" != "$built" ] && break
        sleep 0.1
    done
    # Let a swap in progress settle, then read the CPU.
    sleep 3
    now=$(readyz | jq .index_built_ms)
    ticks=$(cpu_ticks "$REPLICA_PID")
    crawled_ms=$(grep '"host crawled"' "$WORK/$1-$(update_label "$round").log" | tail -n 1 |
        jq -r .timestamp | xargs -r -I{} date -d {} +%s%3N)
    log "$1: replica swapped at $now, host crawled at $crawled_ms"
    visible=$(printf '%.2f' "$(echo "($now - $crawled_ms) / 1000" | bc -l)")
    cpu=$(printf '%.2f' "$(echo "$ticks - $3" | bc -l)")
    pct=$(printf '%.1f' "$(echo "100 * ($ticks - $3) / $READY_CPU" | bc -l)")
    [ "$round" = 1 ] && REPLICA_ROWS[-1]+=" $visible | $cpu | $pct % |"
    CATCHUP_ROWS+=("| $1 | $round | $visible | $cpu | $pct % | $(($(minor_faults "$REPLICA_PID") - $5)) |")
    CATCHUP_PCT+=("$1 $pct")
}
# The crawl label of update round N: "update", then "update-2", "update-3", ...
update_label() { if [ "$1" = 1 ]; then echo update; else echo "update-$1"; fi; }

ORACLE_ROWS=()
# geos_check BACKEND: the replica's lookups against Shapely's on random points.
geos_check() {
    [ "$ORACLE_POINTS" -gt 0 ] || return 0
    if ! "$VENV/bin/python" -c 'import shapely; assert shapely.__version__ >= "2"' 2>/dev/null; then
        log "installing shapely into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet 'shapely>=2'
    fi
    local out="$WORK/oracle-$1.json" rc=0
    "$VENV/bin/python" "$ROOT/perf/bench/scale_oracle.py" --base "http://$REPLICA_ADDR" \
        --points "$ORACLE_POINTS" --seed "$SEED" >"$out" || rc=$?
    log "$1: GEOS check (exit $rc): $(head -c 300 "$out")"
    ORACLE_ROWS+=("$(jq -r --arg b "$1" '"| \($b) | \(.territories) | \(.points) | \(.served_points) | \(.agree) | \(.disagree) | \(.["ties_within_1e-9"]) |"' "$out")")
}

fresh_db() {
    case $1 in
    sqlite)
        rm -f "$WORK"/scale.db*
        export CDS_REGISTRY_DATABASE_URL="sqlite://$WORK/scale.db"
        ;;
    postgres)
        psql -q -d postgres -c "DROP DATABASE IF EXISTS $SCALE_DB WITH (FORCE)" >/dev/null
        psql -q -d postgres -c "CREATE DATABASE $SCALE_DB" >/dev/null
        PG_CREATED=1
        export CDS_REGISTRY_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$SCALE_DB"
        ;;
    *) log "unknown backend $1 (sqlite, postgres)"; exit 2 ;;
    esac
    echo "$ADDR" >"$WORK/seeds.txt"
    "$BIN/cds-registry" seed "$WORK/seeds.txt" >&2 2>"$WORK/seed-$1.log"
}

unset CDS_REGISTRY_CONFIG
export RUST_LOG=${RUST_LOG:-info,sqlx=warn,geo=error}
for backend in $BACKENDS; do
    start_fixture 0
    export CDS_REGISTRY_CRAWL__ALLOW_HTTP="[$ADDR]"
    export CDS_REGISTRY_CRAWL__ALLOW_PRIVATE="[127.0.0.0/8]"
    if [ "$OVERRIDES" = 1 ]; then
        export CDS_REGISTRY_CRAWL__MAX_DOCUMENTS_PER_HOST=200000
        export CDS_REGISTRY_CRAWL__MAX_PAGES=1000
        export CDS_REGISTRY_CRAWL__HOST_BUDGET_SECS=7200
    fi
    fresh_db "$backend"
    log "$backend: first crawl"
    run_crawl "$backend" first
    log "$backend: unchanged re-crawl"
    run_crawl "$backend" unchanged
    start_replica "$backend"
    for round in $(seq 1 "$UPDATE_ROUNDS"); do
        stop_fixture
        start_fixture $((round % 2))
        log "$backend: re-crawl after a ${CHANGED_PERCENT} % update (round $round)"
        built_before=$(readyz | jq .index_built_ms)
        ticks_before=$(cpu_ticks "$REPLICA_PID")
        faults_before=$(minor_faults "$REPLICA_PID")
        run_crawl "$backend" "$(update_label "$round")"
        replica_caught_up "$backend" "$built_before" "$ticks_before" "$round" "$faults_before"
    done
    geos_check "$backend"
    stop_replica
    stop_fixture
done

{
    echo "Scale: one aggregator, $ENTRIES entries on $(((ENTRIES + PAGE_SIZE - 1) / PAGE_SIZE)) pages of $PAGE_SIZE, ${LATENCY_MS} ms per response, seed $SEED, update ${CHANGED_PERCENT} %; $PROFILE build; overrides: $([ "$OVERRIDES" = 1 ] && echo "max_documents_per_host=200000 max_pages=1000 host_budget_secs=7200" || echo none)"
    echo
    echo "| backend | crawl | requests (200 / 304) | wall s | ideal s | ideal/wall | peak RSS MiB | CPU s | summary bytes | fixture body bytes | until last response s | last response → host crawled s | → exit s | slow SQL s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "$r"; done
    echo
    echo "API replica (\`serve --role api\` on the crawled store): start -> /readyz (load + index build), its CPU and RSS then, the raw coordinate bytes (16 per vertex), and the update's catch-up: the crawler's \"host crawled\" (after the commit) -> the replica's next index swap, and the replica CPU from the update crawl's start to 3 s after the swap (as a share of its start-up CPU: load + full build)."
    echo
    echo "| backend | entries | vertices | start -> /readyz s | CPU s | RSS MiB | raw coords MiB | RSS / raw | commit -> visible s | catch-up CPU s | of start-up CPU |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${REPLICA_ROWS[@]}"; do echo "$r"; done
    echo
    if [ "$UPDATE_ROUNDS" -gt 1 ]; then
        echo "Catch-up per update round (same replica; fixture generations alternate):"
        echo
        echo "| backend | round | commit -> visible s | catch-up CPU s | of start-up CPU | minor page faults |"
        echo "|---|---|---|---|---|---|"
        for r in "${CATCHUP_ROWS[@]}"; do echo "$r"; done
        echo
        for backend in $BACKENDS; do
            printf '%s\n' "${CATCHUP_PCT[@]}" | awk -v b="$backend" '$1 == b {print $2}' | sort -n |
                awk -v b="$backend" '{v[NR] = $1} END {if (NR) printf "%s: median catch-up %.1f %% of start-up CPU over %d rounds (%.1f-%.1f %%)\n", b, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR, v[1], v[NR]}'
        done
        echo
    fi
    echo "GEOS (Shapely $("$VENV/bin/python" -c 'import shapely; print(shapely.__version__, "/ GEOS", shapely.geos_version_string)' 2>/dev/null)) against the replica after the update, $ORACLE_POINTS uniform points (seed $SEED):"
    echo
    echo "| backend | territories | points | points served | agree | disagree | of which ties within 1e-9° |"
    echo "|---|---|---|---|---|---|---|"
    for r in "${ORACLE_ROWS[@]}"; do echo "$r"; done
    echo
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; $(date -u '+%Y-%m-%d %H:%M UTC')"
} | tee "$WORK/results.md"
