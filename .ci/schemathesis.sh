#!/usr/bin/env bash
# Fuzz the HTTP API with schemathesis against its own OpenAPI document (/openapi.json).
#
#   .ci/schemathesis.sh           # from the repository root (or anywhere)
#
# 1. Installs schemathesis 4.x from PyPI into target/st-venv (once).
# 2. Builds the binary and starts `cds-registry demo` (fixture utilities on loopback,
#    crawled into a fresh SQLite file) on a free port; waits until /readyz answers.
#    Every operation is fuzzed there; the write endpoints answer 403 (the demo has no
#    admin token), so:
# 3. starts `cds-registry serve` on an empty database with an admin token and fuzzes the
#    `hosts` operations (POST/DELETE /v1/hosts) with `Authorization: Bearer`.
#
# Exits non-zero when schemathesis reports a failure of the gating checks: a 5xx
# (not_a_server_error), a response body that does not match its schema, or an
# undocumented content type. Bounded: ST_MAX_EXAMPLES (default 25) cases per operation.
#
# Environment:
#   ST_MAX_EXAMPLES  cases per operation and phase (default 25)
#   ST_CHECKS        checks to run (default: not_a_server_error,
#                    response_schema_conformance,content_type_conformance; `all` for an
#                    audit that also flags documentation gaps such as undocumented 400s)
#   ST_SEED          schemathesis seed, to replay a run
#   ST_NO_BUILD=1    use target/debug/cds-registry as it is
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MAX_EXAMPLES="${ST_MAX_EXAMPLES:-25}"
CHECKS="${ST_CHECKS:-not_a_server_error,response_schema_conformance,content_type_conformance}"
VENV="$ROOT/target/st-venv"
BIN="$ROOT/target/debug/cds-registry"
REPORTS="$ROOT/target/schemathesis"

if [ ! -x "$VENV/bin/st" ]; then
    echo "== installing schemathesis into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
"$VENV/bin/st" --version

if [ "${ST_NO_BUILD:-}" != 1 ]; then
    echo "== cargo build"
    cargo build --quiet --bin cds-registry
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for_base LOG PID SED_EXPR: the base URL printed in LOG, once /readyz answers.
wait_for_base() {
    local log="$1" pid="$2" expr="$3" base=""
    for _ in $(seq 1 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the server exited early:" >&2
            cat "$log" >&2
            return 1
        fi
        base="$(sed -n "$expr" "$log" | head -n 1)"
        if [ -n "$base" ] && curl -fsS -o /dev/null "$base/readyz"; then
            echo "$base"
            return 0
        fi
        sleep 0.2
    done
    echo "the server did not become ready in 120 s:" >&2
    cat "$log" >&2
    return 1
}

run_st() {
    local name="$1"
    shift
    local args=(
        --checks "$CHECKS"
        --max-examples "$MAX_EXAMPLES"
        # The API rate-limits each client (50/s, burst 200 by default): stay below it.
        --rate-limit 40/s
        --request-timeout 30
        --generation-database none
        --no-color
        --report junit
        --report-junit-path "$REPORTS/$name.xml"
    )
    if [ -n "${ST_SEED:-}" ]; then
        args+=(--seed "$ST_SEED")
    fi
    echo "== schemathesis: $name"
    # Run from the work directory so nothing is left in the repository.
    (cd "$WORK" && "$VENV/bin/st" run "${args[@]}" "$@")
}

mkdir -p "$REPORTS"
status=0

# ---- 1. the demo: every operation, on crawled data ----
"$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
PIDS+=($!)
# The banner line is `  page:     http://127.0.0.1:PORT/`.
BASE="$(wait_for_base "$WORK/demo.log" "${PIDS[0]}" 's|^  page: *\(http://[^ ]*\)/$|\1|p')"
echo "== demo at $BASE"
# The change stream never ends by design (Server-Sent Events); its handler is covered by
# tests/workers.rs instead of waiting out a request timeout per generated case.
run_st demo "$BASE/openapi.json" --exclude-operation-id stream_changes || status=1

# ---- 2. the write endpoints, with the admin token ----
TOKEN="st-$RANDOM-$RANDOM-$RANDOM"
CDS_REGISTRY_DATABASE_URL="sqlite://$WORK/serve/registry.db" \
    CDS_REGISTRY_LISTEN=127.0.0.1:0 \
    CDS_REGISTRY_ADMIN_TOKEN="$TOKEN" \
    CDS_REGISTRY_CRAWL__SCHEDULED=false \
    "$BIN" serve >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
# `cds-registry[ (role)] listening on http://127.0.0.1:PORT`
WBASE="$(wait_for_base "$WORK/serve.log" "${PIDS[1]}" 's|^cds-registry.* listening on \(http://[^ ]*\)$|\1|p')"
echo "== serve (admin token) at $WBASE"
run_st writes "$WBASE/openapi.json" --include-tag hosts -H "Authorization: Bearer $TOKEN" || status=1

if [ "$status" -ne 0 ]; then
    echo "== schemathesis found failures (JUnit reports in $REPORTS)" >&2
else
    echo "== schemathesis: no failures (JUnit reports in $REPORTS)"
fi
exit "$status"
