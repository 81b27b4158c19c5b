#!/usr/bin/env bash
# Issue 16: no non-test source file of the service over 600 lines. A file's test part
# starts at its first top-level `#[cfg(test)]`; unit-test files (`tests.rs`, `tests/`)
# are exempt. The function limit (80 lines) is clippy's `too_many_lines` (src/lib.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=600
over=0
while IFS= read -r f; do
    n=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$f")
    if [ "$n" -gt "$LIMIT" ]; then
        echo "$f: $n lines before its tests (limit $LIMIT)" >&2
        over=1
    fi
done < <(find src -name '*.rs' ! -name 'tests.rs' ! -path '*/tests/*' | sort)
exit "$over"
