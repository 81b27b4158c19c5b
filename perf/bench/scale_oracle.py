#!/usr/bin/env python3
"""GEOS (Shapely 2) against a running registry, on what it actually crawled and indexed.

    python scale_oracle.py --base http://127.0.0.1:PORT [--points 10000] [--seed 7]

Reads every territory the registry serves (`GET /v1/export?format=ndjson`, unsimplified),
draws `--points` uniform points in the box (default: the contiguous US, where the scale
fixture's cells lie), asks the registry who serves each (`POST /v1/lookup`, batches of
10,000) and Shapely which territories contain each (an STRtree, predicate `within`, so a
point on a boundary is in neither, as in the registry). Prints one JSON line: points,
agreements, disagreements, and how many of those are ties (the point lies within 1e-9
degrees of a boundary of a territory one side names, where float rounding decides).
Exit 1 when a disagreement is not a tie. Used by perf/bench/scale.sh; traffic stays on the
given base URL (loopback in the script).
"""

import argparse
import json
import random
import sys
import urllib.request

import shapely
from shapely.geometry import Point, shape

TIE = 1e-9


def export(base):
    ids, geoms = [], []
    with urllib.request.urlopen(f"{base}/v1/export?format=ndjson", timeout=600) as r:
        for line in r:
            f = json.loads(line)
            if f.get("geometry"):
                ids.append(f["id"])
                geoms.append(shape(f["geometry"]))
    return ids, geoms


def lookup(base, points):
    out = []
    for i in range(0, len(points), 10_000):
        body = json.dumps({"points": points[i : i + 10_000]}).encode()
        req = urllib.request.Request(
            f"{base}/v1/lookup", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            out.extend(set(m) for m in json.load(r)["matches"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--box", default="-125,24,-66,50")
    a = ap.parse_args()
    x0, y0, x1, y1 = map(float, a.box.split(","))
    rng = random.Random(a.seed)
    points = [[rng.uniform(x0, x1), rng.uniform(y0, y1)] for _ in range(a.points)]

    ids, geoms = export(a.base)
    tree = shapely.STRtree(geoms)
    registry = lookup(a.base, points)
    pts = shapely.points(points)
    # `within`: the point (the query geometry) lies in the interior of the territory;
    # a point on a boundary is within neither, as in the registry.
    p_idx, g_idx = tree.query(pts, predicate="within")
    geos = [set() for _ in points]
    for p, g in zip(p_idx, g_idx):
        geos[p].add(ids[g])

    by_id = dict(zip(ids, geoms))
    agree = disagree = ties = 0
    worst = []
    for i, (r, g) in enumerate(zip(registry, geos)):
        if r == g:
            agree += 1
            continue
        disagree += 1
        pt = Point(points[i])
        d = min(by_id[k].boundary.distance(pt) for k in r ^ g if k in by_id)
        if d <= TIE:
            ties += 1
        elif len(worst) < 5:
            worst.append({"point": points[i], "registry": sorted(r), "geos": sorted(g), "distance": d})
    print(
        json.dumps(
            {
                "territories": len(ids),
                "points": len(points),
                "agree": agree,
                "disagree": disagree,
                "ties_within_1e-9": ties,
                "served_points": sum(1 for g in geos if g),
                "not_ties": worst,
            }
        )
    )
    sys.exit(0 if disagree == ties else 1)


if __name__ == "__main__":
    main()
