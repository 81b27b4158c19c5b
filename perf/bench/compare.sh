#!/usr/bin/env bash
# Benchmarks side by side: the registry's point lookup (in process and over HTTP) vs PostGIS
# and Shapely 2 on the 3,231 US counties, measured interleaved in one run.
#
#   perf/bench/compare.sh            # full run: ~4 minutes once built (the release build alone
#                               # takes 5-8 minutes on 2 shared cores)
#   ROUNDS=2 DURATION=3 perf/bench/compare.sh   # quick check
#
# What it does (idempotent, rerunnable):
#   1. installs what is missing: PostGIS 3 for PostgreSQL 15 and wrk (apt), Shapely 2 in a
#      venv under target/bench-venv (pip);
#   2. creates the scratch database `cds_bench` with the postgis extension;
#   3. builds the release binaries (cds-registry, cds-bench);
#   4. runs `cds-bench compare`, which loads PostGIS, crawls the counties into a registry
#      (SQLite under target/bench), starts `cds-registry serve` on loopback with the per-IP
#      rate limit disabled, runs every measurement in rounds and writes the report into
#      docs/PERFORMANCE.md (between the cds-bench markers) and target/bench/report.md.
#
# Environment: ROUNDS (5), DURATION (10, seconds per wrk/pgbench run), PGHOST (127.0.0.1),
# PGPORT (5432), PGUSER (postgres), BENCH_DB (cds_bench), NO_DOC=1 to leave the doc alone.
# CELLS=100000: the same comparison on the synthetic national aggregator's territories
# (perf/examples/scale_fixture.rs, seed 7: jittered cells with holes and islands over the
# same box) instead of the counties; its scratch directory is target/bench-cells-N and it
# never rewrites the doc block (that block is the counties' run).
# All traffic stays on 127.0.0.0/8.

set -euo pipefail

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
BENCH_DB=${BENCH_DB:-cds_bench}
WORK=$ROOT/target/bench
DATA_LABEL="US counties (\`tests/data/us-counties-10m.geojson.gz\`)"
if [ -n "${CELLS:-}" ]; then
  WORK=$ROOT/target/bench-cells-$CELLS
  NO_DOC=1
  mkdir -p "$WORK"
  COUNTIES=$WORK/cells.geojson
  if [ ! -f "$COUNTIES" ]; then
    log "generating $CELLS territories into $COUNTIES"
    cargo run --release -p cds-perf --example scale_fixture -- \
      --entries "$CELLS" --seed 7 --dump-features "$COUNTIES"
  fi
  DATA_LABEL="territories of the synthetic national aggregator (\`perf/examples/scale_fixture.rs --entries $CELLS --seed 7\`)"
fi
# The vendored counties (tests/data/README.md), decompressed once into the scratch dir.
if [ -z "${COUNTIES:-}" ]; then
  mkdir -p "$WORK"
  COUNTIES=$WORK/us-counties-10m.geojson
  [ -f "$COUNTIES" ] || gzip -dc "$ROOT/tests/data/us-counties-10m.geojson.gz" > "$COUNTIES"
fi
VENV=$ROOT/target/bench-venv
PG_MAJOR=15


[ -f "$COUNTIES" ] || { log "missing $COUNTIES"; exit 1; }

# --- 1. tools ----------------------------------------------------------------------------
need_apt=()
[ -f "/usr/share/postgresql/$PG_MAJOR/extension/postgis.control" ] || need_apt+=("postgresql-$PG_MAJOR-postgis-3")
command -v wrk >/dev/null || need_apt+=(wrk)
command -v pgbench >/dev/null || need_apt+=("postgresql-client-$PG_MAJOR")
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need_apt[@]}"
fi
if ! "$VENV/bin/python" -c 'import shapely, numpy; assert shapely.__version__ >= "2"' 2>/dev/null; then
  log "creating $VENV with Shapely 2"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'shapely>=2'
fi

# --- 2. scratch database ------------------------------------------------------------------
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
fi
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER")
if [ "$("${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$BENCH_DB'")" != 1 ]; then
  log "creating database $BENCH_DB"
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $BENCH_DB"
fi
"${PSQL[@]}" -d "$BENCH_DB" -c 'CREATE EXTENSION IF NOT EXISTS postgis'

# --- 3. build -----------------------------------------------------------------------------
log "cargo build --release (cds-registry, cds-bench)"
cargo build --release --bin cds-registry --bin cds-bench

# --- 4. run -------------------------------------------------------------------------------
mkdir -p "$WORK"
DOC_ARGS=(--doc "$ROOT/docs/PERFORMANCE.md")
[ "${NO_DOC:-}" = 1 ] && DOC_ARGS=()
INVOKED="perf/bench/compare.sh"
[ "$ROUNDS" = 5 ] && [ "$DURATION" = 10 ] || INVOKED="ROUNDS=$ROUNDS DURATION=$DURATION perf/bench/compare.sh"
[ -z "${CELLS:-}" ] || INVOKED="CELLS=$CELLS $INVOKED"
# The whole run is bounded (about 4 minutes with the defaults, 25 at most).
timeout 1500 "$ROOT/target/release/cds-bench" compare \
  --counties "$COUNTIES" \
  --registry-bin "$ROOT/target/release/cds-registry" \
  --work-dir "$WORK" \
  --bench-dir "$ROOT/perf/bench" \
  --pg-host "$PGHOST" --pg-port "$PGPORT" --pg-user "$PGUSER" --pg-db "$BENCH_DB" \
  --python "$VENV/bin/python" \
  --rounds "$ROUNDS" --duration "$DURATION" \
  --invoked-as "$INVOKED" \
  --data-label "$DATA_LABEL" \
  "${DOC_ARGS[@]}"
log "raw numbers: $WORK/results.json, report: $WORK/report.md"
