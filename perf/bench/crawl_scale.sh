#!/usr/bin/env bash
# Crawl at scale: a fixture web of HOSTS hosts (default 10,000) served by ONE process with
# LATENCY_MS (50) of injected latency per response, crawled into Postgres by 1 and then by
# 2 `cds-registry crawl` processes with the default crawl settings (docs/PERFORMANCE.md,
# "Crawl at scale").
#
#   perf/bench/crawl_scale.sh                         # 10,000 hosts, 1 and 2 workers, re-crawl
#   HOSTS=1000 perf/bench/crawl_scale.sh              # quick check
#
# What it does (rerunnable):
#   1. `cargo build --release`; installs GNU time (apt) when /usr/bin/time is missing;
#   2. starts `crawl-scale fixtures` under `/usr/bin/time -v` (one listener on 0.0.0.0,
#      loopback peers only; hosts 127.10.x.y:PORT told apart by the Host header);
#   3. `crawl-scale prepare` writes the seeds file and a TOML config (allow_http for every
#      host:port, allow_private 127.0.0.0/8; every other setting at its default);
#   4. for each scenario: drops and recreates the scratch database `cds_scale`, runs
#      `cds-registry seed`, then starts the worker processes at the same moment (the first
#      opens the run, the others join it) under `/usr/bin/time -v`, and times them from
#      start to the last exit;
#   5. a third measurement re-crawls the 1-worker database (every document answers 304);
#   6. prints a Markdown table and per-run timings from the database (host durations);
#   7. stops the fixture process (SIGTERM to its pid).
#
# Environment: HOSTS (10000), LATENCY_MS (50), PGHOST (127.0.0.1), PGPORT (5432), PGUSER
# (postgres), SCALE_DB (cds_scale), CRAWL_TIMEOUT (600 s per scenario), SKIP_BUILD=1 to use
# the binaries already in target/release, SCENARIOS (default "fresh1 recrawl1 fresh2") to run
# only some of the three.
# All traffic stays on 127.0.0.0/8.

set -euo pipefail

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
HOSTS=${HOSTS:-10000}
LATENCY_MS=${LATENCY_MS:-50}
SCALE_DB=${SCALE_DB:-cds_scale}
CRAWL_TIMEOUT=${CRAWL_TIMEOUT:-600}
WORK=$ROOT/target/crawl-scale
BIN=$ROOT/target/release
CONCURRENCY=64 # the default crawl.concurrency (not overridden below)


mkdir -p "$WORK"
rm -f "$WORK"/*.time "$WORK"/*.log "$WORK"/*.out

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    cargo build --release 2>&1 | tail -n 3 >&2
fi

if [ ! -x /usr/bin/time ]; then
    log "installing GNU time"
    apt-get install -y time >/dev/null
fi

# Connections: one per host stays pooled in each worker (30 s idle timeout), and the
# fixture holds the other end of all of them.
ulimit -n "$(ulimit -Hn)" || true
log "open files limit: $(ulimit -n)"

FIXTURE_TIME_PID=
FIXTURE_PID=
stop_fixture() {
    if [ -n "$FIXTURE_PID" ] && kill -0 "$FIXTURE_PID" 2>/dev/null; then
        kill -TERM "$FIXTURE_PID" 2>/dev/null || true
    fi
    if [ -n "$FIXTURE_TIME_PID" ]; then
        for _ in $(seq 1 50); do
            kill -0 "$FIXTURE_TIME_PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
    FIXTURE_PID=
}
trap stop_fixture EXIT

log "starting the fixture web: $HOSTS hosts, ${LATENCY_MS} ms per response"
/usr/bin/time -v -o "$WORK/fixture.time" \
    "$BIN/crawl-scale" fixtures --hosts "$HOSTS" --latency-ms "$LATENCY_MS" \
    >"$WORK/fixture.out" 2>"$WORK/fixture.log" &
FIXTURE_TIME_PID=$!
PORT=$(wait_for_value port "$WORK/fixture.out" "$WORK/fixture.log")
FIXTURE_PID=$(pgrep -P "$FIXTURE_TIME_PID" -f crawl-scale | head -n 1)
log "fixture pid $FIXTURE_PID on port $PORT ($(sed -n 2p "$WORK/fixture.out"))"

"$BIN/crawl-scale" prepare --hosts "$HOSTS" --port "$PORT" \
    --seeds "$WORK/seeds.txt" --config "$WORK/config.toml"
export CDS_REGISTRY_CONFIG=$WORK/config.toml
export CDS_REGISTRY_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$SCALE_DB"

fresh_db() {
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $SCALE_DB" >/dev/null
    psql -q -d postgres -c "CREATE DATABASE $SCALE_DB" >/dev/null
    "$BIN/cds-registry" seed "$WORK/seeds.txt" >&2
}

ROWS=()
# run_workers LABEL N: start N crawl processes at once, wait for all, record a row.
run_workers() {
    local label=$1 n=$2 pids=() times=() t0 t1 wall docs i
    t0=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        /usr/bin/time -v -o "$WORK/$label-$i.time" \
            timeout "$CRAWL_TIMEOUT" "$BIN/cds-registry" crawl \
            >"$WORK/$label-$i.out" 2>"$WORK/$label-$i.log" &
        pids+=($!)
        times+=("$WORK/$label-$i.time")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || log "$label worker $((i + 1)) exited with $?: $(tail -c 300 "$WORK/$label-$((i + 1)).out")"
    done
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc -l)
    for i in $(seq 1 "$n"); do
        log "$label worker $i: $(head -c 300 "$WORK/$label-$i.out")"
    done
    docs=$(psql -At -d "$SCALE_DB" -c \
        "SELECT docs_fetched + docs_unchanged FROM crawl_runs ORDER BY id DESC LIMIT 1")
    ROWS+=("$("$BIN/crawl-scale" report --label "$label" --hosts "$HOSTS" \
        --latency-ms "$LATENCY_MS" --concurrency "$CONCURRENCY" --workers "$n" \
        --wall "$wall" --docs "$docs" --time "${times[@]}")")
    # Where the time went, from the database: per-host durations (fetch + commit) and
    # the effective number of hosts in flight over the run.
    psql -d "$SCALE_DB" -c "
        WITH r AS (SELECT * FROM crawl_runs ORDER BY id DESC LIMIT 1),
             o AS (SELECT o.* FROM crawl_outcomes o JOIN r ON o.run_id = r.id)
        SELECT '$label' AS scenario,
               (SELECT status FROM r) AS run_status,
               count(*) AS outcomes,
               count(*) FILTER (WHERE outcome = 'ok') AS ok,
               string_agg(DISTINCT outcome, ',') AS classes,
               round(avg(finished_ms - started_ms)) AS host_ms_avg,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY finished_ms - started_ms) AS p50,
               percentile_disc(0.95) WITHIN GROUP (ORDER BY finished_ms - started_ms) AS p95,
               max(finished_ms - started_ms) AS max,
               round((max(finished_ms) - min(started_ms)) / 1000.0, 1) AS span_s,
               round(sum(finished_ms - started_ms)::numeric
                     / nullif(max(finished_ms) - min(started_ms), 0), 1) AS in_flight_avg,
               round(((SELECT finished_ms FROM r) - (SELECT started_ms FROM r)) / 1000.0, 1)
                   AS run_s
        FROM o" >&2
}

SCENARIOS=${SCENARIOS:-fresh1 recrawl1 fresh2}
for scenario in $SCENARIOS; do
    case $scenario in
    fresh1)
        log "scenario: one worker, fresh database"
        fresh_db
        run_workers "1-worker" 1
        ;;
    recrawl1)
        # Re-crawls whatever the previous scenario left (a fresh crawl when run alone).
        log "scenario: re-crawl by one worker (conditional requests, 304)"
        run_workers "1-worker-recrawl" 1
        ;;
    fresh2)
        log "scenario: two workers, fresh database"
        fresh_db
        run_workers "2-workers" 2
        ;;
    *) log "unknown scenario $scenario (fresh1, recrawl1, fresh2)"; exit 2 ;;
    esac
done

stop_fixture
trap - EXIT
FIX_RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$WORK/fixture.time")
log "fixture: $(tail -n 1 "$WORK/fixture.out")"

echo
echo "Crawl at scale: $HOSTS hosts x 3 documents, ${LATENCY_MS} ms per response, default crawl settings (concurrency $CONCURRENCY per worker), Postgres"
echo
echo "| scenario | workers | hosts | documents | wall s | documents/s | ideal s | ideal/actual | peak RSS MiB per worker |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "fixture process (all scenarios): peak RSS $FIX_RSS MiB; $(tail -n 1 "$WORK/fixture.out")"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; $(date -u '+%Y-%m-%d %H:%M UTC')"
