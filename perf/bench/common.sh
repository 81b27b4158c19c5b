# Sourced by compare.sh, crawl_scale.sh and scale.sh: the repository root as the working
# directory (ROOT), the local Postgres they measure against (PGHOST, PGPORT, PGUSER,
# exported for psql), and `log`, which names the script on each line.
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
