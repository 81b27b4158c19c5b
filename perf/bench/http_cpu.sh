#!/usr/bin/env bash
# Per-request CPU of one HTTP server under wrk, split into user and kernel time, plus
# context switches: what `serve`'s middleware costs against /healthz and the bare hyper
# floor (`cds-bench floor`). The server must already run on loopback.
#
#   perf/bench/http_cpu.sh PID BASE PATHS_FILE [SECONDS=8]
#   e.g. perf/bench/http_cpu.sh "$(pgrep -f 'cds-registry .* serve')" http://127.0.0.1:8080 \
#          target/bench/healthz_paths.txt 6
#
# wrk -t2 -c4 with perf/bench/lookup.lua (cycles through the paths file), as cds-bench.
# CPU from /proc/PID/stat (utime, stime; USER_HZ 100) before and after; switches summed
# over /proc/PID/task/*/status.
set -euo pipefail
PID=$1 BASE=$2 PATHS=$3 SECS=${4:-8}
case "$BASE" in http://127.*) ;; *) echo "loopback servers only: $BASE" >&2; exit 2 ;; esac
cpu() { awk '{print $14, $15}' "/proc/$PID/stat"; }
switches() { cat /proc/"$PID"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
read -r u0 s0 < <(cpu); c0=$(switches)
out=$(wrk -t2 -c4 -d"${SECS}s" -s "$(dirname "$0")/lookup.lua" "$BASE" -- "$PATHS")
read -r u1 s1 < <(cpu); c1=$(switches)
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
reqs=$(awk '/requests in/ {print $1}' <<<"$out")
python3 - "$PATHS" "$rps" "$reqs" "$u0" "$u1" "$s0" "$s1" "$c0" "$c1" <<'PY'
import sys
paths, rps, reqs, u0, u1, s0, s1, c0, c1 = sys.argv[1:]
n = float(reqs)
print(f"{paths}: {float(rps):,.0f} req/s, server CPU per request: user "
      f"{(int(u1) - int(u0)) * 1e4 / n:.1f} us, kernel {(int(s1) - int(s0)) * 1e4 / n:.1f} us, "
      f"{(int(c1) - int(c0)) / n:.2f} context switches")
PY
