#!/usr/bin/env bash
# Browser test of the map page: installs the pinned playwright-core (no browser download),
# makes sure the system Chromium and the binary exist, and runs `node --test tests/browser/`.
# Exits non-zero when anything fails. Screenshots: target/browser/*.png.
#
#   tests/browser/run.sh
#   CDS_REGISTRY_BIN=target/release/cds-registry tests/browser/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

command -v node >/dev/null || { echo "run.sh: node (>= 20) is required" >&2; exit 1; }

cd "$here"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing Debian chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  [ -x "$chromium" ] || { echo "run.sh: $chromium is missing (apt-get install chromium)" >&2; exit 1; }
fi

cd "$root"
bin="${CDS_REGISTRY_BIN:-target/debug/cds-registry}"
if [ -z "${CDS_REGISTRY_BIN:-}" ]; then
  # The page is embedded in the binary: let cargo decide whether it is current (a no-op
  # when it is). A binary that exists is still tested when the build fails, with a warning.
  if ! cargo build --bin cds-registry; then
    [ -x "$bin" ] || { echo "run.sh: cargo build failed and there is no $bin" >&2; exit 1; }
    echo "run.sh: WARNING: cargo build failed; testing the existing $bin" >&2
  fi
elif [ ! -x "$bin" ]; then
  echo "run.sh: CDS_REGISTRY_BIN=$bin is not an executable" >&2
  exit 1
fi
export CDS_REGISTRY_BIN="$bin"

# Node 20 finds the *.test.mjs files in a directory; Node 21+ takes glob patterns instead.
if [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 21 ]; then
  exec node --test 'tests/browser/**/*.test.mjs'
fi
exec node --test tests/browser/
