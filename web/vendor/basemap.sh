#!/usr/bin/env bash
# Fetch the basemap packages the map page embeds (web/vendor/, see web/vendor/README.md)
# from the npm registry and compare them with the committed copies; `--update` overwrites
# the committed copies instead. Needs npm and network access to the registry.
#
#   web/vendor/basemap.sh            # exit 1 when a committed file differs
#   web/vendor/basemap.sh --update   # take the registry's files
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
update=0
[ "${1:-}" = "--update" ] && update=1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# package@version  then  file-in-package:folder-under-web/vendor pairs
fetch() {
    local pkg="$1"
    shift
    (cd "$tmp" && npm pack "$pkg" --silent >/dev/null)
    local tgz
    tgz="$(ls "$tmp"/*.tgz)"
    mkdir -p "$tmp/x"
    tar xzf "$tgz" -C "$tmp/x"
    rm -f "$tgz"
    local status=0
    for pair in "$@"; do
        local src="${pair%%:*}" dest="$root/web/vendor/${pair#*:}"
        if [ "$update" = 1 ]; then
            mkdir -p "$(dirname "$dest")"
            cp "$tmp/x/package/$src" "$dest"
        elif ! cmp -s "$tmp/x/package/$src" "$dest"; then
            echo "differs from $pkg: web/vendor/${pair#*:}" >&2
            status=1
        fi
    done
    rm -rf "$tmp/x"
    return "$status"
}

rc=0
fetch topojson-client@3.1.0 \
    dist/topojson-client.min.js:topojson-client/topojson-client.min.js \
    LICENSE:topojson-client/LICENSE || rc=1
fetch world-atlas@2.0.2 \
    countries-110m.json:world-atlas/countries-110m.json \
    countries-50m.json:world-atlas/countries-50m.json \
    LICENSE:world-atlas/LICENSE || rc=1
fetch us-atlas@3.0.1 \
    states-10m.json:us-atlas/states-10m.json \
    LICENSE:us-atlas/LICENSE || rc=1
[ "$rc" = 0 ] && echo "web/vendor basemap files match the registry's packages"
exit "$rc"
