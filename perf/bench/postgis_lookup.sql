-- pgbench script for bench/compare.sh: one point-in-county lookup per transaction, points
-- uniform in the same box as the benchmark points (lon -125..-66, lat 24..50).
-- pgbench -n -M prepared -c 4 -j 2 -T 10 -f bench/postgis_lookup.sql cds_bench
\set lon -125.0 + random(0, 58999999) / 1000000.0
\set lat 24.0 + random(0, 25999999) / 1000000.0
SELECT id FROM counties WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326));
