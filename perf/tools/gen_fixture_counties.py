#!/usr/bin/env python3
"""Write seeds/fixtures/counties.geojson: the real US county polygons that the fixture
utilities (src/demo/) use as their service territories.

The fixture library embeds the output with include_str!, so the demo binary and the tests
need no data files at run time. Rerun this only when the county list below changes (and
keep it in sync with the FIPS codes used in src/demo/scenario.rs; a unit test checks that
every code the scenario uses is present).

Input: tests/data/us-counties-10m.geojson.gz (US Census 2017 cartographic boundaries via
us-atlas, public domain; features with top-level `id` = 5-digit FIPS and
`properties.name`). Geometries are copied unchanged, so answers agree with the
point-in-polygon oracle that ships beside the input.

Usage: python3 perf/tools/gen_fixture_counties.py [INPUT] [OUTPUT]
"""

import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_INPUT = os.path.join(REPO, "tests", "data", "us-counties-10m.geojson.gz")
DEFAULT_OUTPUT = os.path.join(REPO, "seeds", "fixtures", "counties.geojson")

# FIPS code -> which fixture territory uses it (documentation only).
COUNTIES = {
    # Sierra Gas & Electric (California): electric = San Benito, Monterey, Santa Cruz;
    # natural gas = Monterey, Fresno.
    "06069": "Sierra Gas & Electric",
    "06053": "Sierra Gas & Electric",
    "06087": "Sierra Gas & Electric",
    "06019": "Sierra Gas & Electric",
    # Lone Star Power Cooperative (Texas).
    "48453": "Lone Star Power Cooperative",
    "48491": "Lone Star Power Cooperative",
    "48209": "Lone Star Power Cooperative",
    "48021": "Lone Star Power Cooperative",
    # Old Dominion Water (Virginia).
    "51003": "Old Dominion Water",
    "51065": "Old Dominion Water",
    "51079": "Old Dominion Water",
    # Great Lakes Electric / Great Lakes Gas (Michigan).
    "26161": "Great Lakes Electric",
    "26093": "Great Lakes Electric",
    "26065": "Great Lakes Gas",
    "26075": "Great Lakes Gas",
    # Prairie State Energy Data Hub (Illinois), one entry per county.
    "17019": "Prairie State Energy Data Hub",
    "17113": "Prairie State Energy Data Hub",
    "17167": "Prairie State Energy Data Hub",
    "17143": "Prairie State Energy Data Hub",
    "17115": "Prairie State Energy Data Hub",
    "17183": "Prairie State Energy Data Hub",
    "17147": "Prairie State Energy Data Hub",
    # Looping Listing Utility (Ohio).
    "39049": "Looping Listing Utility",
    "39041": "Looping Listing Utility",
    # Flaky Utility (Nevada).
    "32510": "Flaky Utility",
    # Slow Utility (Colorado).
    "08013": "Slow Utility",
    # Green Mountain Aggregator (Vermont).
    "50007": "Green Mountain Aggregator",
    "50023": "Green Mountain Aggregator",
    "50015": "Green Mountain Aggregator",
    # Covered by no fixture: a point here must find nobody.
    "20173": "(uncovered)",
}


def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_INPUT
    dst = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUTPUT
    opener = gzip.open if src.endswith(".gz") else open
    with opener(src, "rt", encoding="utf-8") as f:
        data = json.load(f)
    by_id = {feat["id"]: feat for feat in data["features"]}
    missing = [c for c in COUNTIES if c not in by_id]
    if missing:
        sys.exit(f"counties not found in {src}: {missing}")
    features = []
    for fips in sorted(COUNTIES):
        feat = by_id[fips]
        features.append(
            {
                "type": "Feature",
                "id": fips,
                "properties": {"name": feat["properties"]["name"]},
                "geometry": feat["geometry"],
            }
        )
    out = {
        "type": "FeatureCollection",
        "features": features,
    }
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(features)} counties to {dst} ({os.path.getsize(dst)} bytes)")


if __name__ == "__main__":
    main()
