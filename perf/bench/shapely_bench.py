#!/usr/bin/env python3
"""Shapely 2 side of bench/compare.sh, driven by `cds-bench compare` over stdin/stdout.

    shapely_bench.py COUNTIES.geojson POINTS.csv

Loads the counties into a Shapely 2 STRtree and the benchmark points (the CSV written by
cds-bench: `i,lon,lat`, doubles in shortest round-trip form), then answers one JSON line per
command line on stdin, so the driver can interleave Shapely with the other systems in rounds:

    info                  versions and STRtree build time
    single START COUNT    per-point `tree.query(Point, predicate="within")`, one timing (ns)
                          per point of points[START:START+COUNT]
    vector                vectorised `tree.query(points, predicate="within")` on all points
    vector_prepared       vectorised bbox query + `shapely.contains_xy` on prepared polygons
    agree                 the county ids of every point (vectorised `within`), for agreement
    quit

`within` is strict (a point on a boundary is not within), as ST_Contains and our lookup.
"""

import json
import sys
import time

import numpy as np
import shapely
from shapely import STRtree


def load(counties_path, points_path):
    with open(counties_path, encoding="utf-8") as f:
        fc = json.load(f)
    ids = [str(feat["id"]) for feat in fc["features"]]
    geoms = np.array(
        [shapely.from_geojson(json.dumps(feat["geometry"])) for feat in fc["features"]]
    )
    xs, ys = [], []
    with open(points_path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            _, lon, lat = line.rstrip("\n").split(",")
            xs.append(float(lon))
            ys.append(float(lat))
    return ids, geoms, np.array(xs), np.array(ys)


def main():
    counties_path, points_path = sys.argv[1], sys.argv[2]
    ids, geoms, xs, ys = load(counties_path, points_path)
    pts = shapely.points(xs, ys)
    t = time.perf_counter()
    tree = STRtree(geoms)
    tree.query(pts[0])  # make sure the tree is built
    build_s = time.perf_counter() - t
    prepared = geoms.copy()
    shapely.prepare(prepared)

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "info":
            reply(
                {
                    "shapely": shapely.__version__,
                    "geos": shapely.geos_version_string,
                    "numpy": np.__version__,
                    "python": sys.version.split()[0],
                    "strtree_build_s": build_s,
                    "points": len(pts),
                    "geometries": len(geoms),
                }
            )
        elif cmd[0] == "single":
            start, count = int(cmd[1]), int(cmd[2])
            clock = time.perf_counter_ns
            query = tree.query
            ns = []
            for p in pts[start : start + count]:
                t0 = clock()
                query(p, predicate="within")
                ns.append(clock() - t0)
            reply({"ns": ns})
        elif cmd[0] == "vector":
            t0 = time.perf_counter()
            pairs = tree.query(pts, predicate="within")
            secs = time.perf_counter() - t0
            reply({"secs": secs, "pairs": int(pairs.shape[1])})
        elif cmd[0] == "vector_prepared":
            t0 = time.perf_counter()
            cand = tree.query(pts)
            inside = shapely.contains_xy(prepared[cand[1]], xs[cand[0]], ys[cand[0]])
            secs = time.perf_counter() - t0
            reply({"secs": secs, "pairs": int(inside.sum())})
        elif cmd[0] == "agree":
            pairs = tree.query(pts, predicate="within")
            out = [[] for _ in range(len(pts))]
            for i, g in zip(pairs[0].tolist(), pairs[1].tolist()):
                out[i].append(ids[g])
            reply({"ids": out})
        else:
            reply({"error": f"unknown command {cmd[0]!r}"})


if __name__ == "__main__":
    main()
