# Sourced by the scripts of perf/bench (compare.sh, scale.sh, http_ab.sh, replica_rss.sh,
# …): the repository root as the working directory (ROOT), the local Postgres they
# measure against (PGHOST, PGPORT, PGUSER, exported for psql), `log`, which names the
# script on each line, and `start_serve`.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# The value of the first `KEY=value` line a starting fixture prints into FILE, waiting up
# to 10 s for it; when it never comes, prints ERRLOG and fails (the caller's `set -e` stops).
wait_for_value() {
    local key=$1 file=$2 errlog=$3 v=
    for _ in $(seq 1 100); do
        v=$(sed -n "s/^$key=//p" "$file" 2>/dev/null || true)
        [ -n "$v" ] && break
        sleep 0.1
    done
    [ -n "$v" ] || { log "fixture did not start"; cat "$errlog" >&2; exit 1; }
    printf '%s' "$v"
}

# Start `BIN --config CONFIG serve` on 127.0.0.1:PORT with the per-IP rate limit off (all
# benchmark traffic comes from one address), its output into LOG, and wait up to 60 s for
# /readyz. Sets SERVE_PID; fails (printing LOG) when it never gets ready.
start_serve() {
    local bin=$1 config=$2 port=$3 out=$4
    CDS_REGISTRY_LISTEN=127.0.0.1:$port CDS_REGISTRY_API__RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn \
        "$bin" --config "$config" serve >"$out" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "$bin did not get ready"
    cat "$out" >&2
    kill "$SERVE_PID" 2>/dev/null || true
    exit 1
}
