//! PostGIS: loading the counties and points, and the single-lookup loops.

use crate::data::{feature_id, features};
use anyhow::{bail, Result};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use std::collections::BTreeSet;
use std::time::Instant;

pub(crate) struct PgInfo {
    pub(crate) postgres: String,
    pub(crate) postgis: String,
    pub(crate) geos: String,
}

/// (Re)create `counties` (GiST-indexed) and `bench_points` in the scratch database.
pub(crate) async fn load_postgis(
    pg: &mut PgConnection,
    counties: &Value,
    points: &[[f64; 2]],
) -> Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(&mut *pg)
        .await?;
    sqlx::query("DROP TABLE IF EXISTS counties, bench_points")
        .execute(&mut *pg)
        .await?;
    sqlx::query(
        "CREATE TABLE counties (id text PRIMARY KEY, name text NOT NULL, \
         geom geometry(MultiPolygon, 4326) NOT NULL)",
    )
    .execute(&mut *pg)
    .await?;
    let (mut ids, mut names, mut geoms) = (Vec::new(), Vec::new(), Vec::new());
    for f in features(counties) {
        ids.push(feature_id(f)?);
        names.push(
            f["properties"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        geoms.push(serde_json::to_string(&f["geometry"])?);
    }
    // ST_GeomFromGeoJSON per feature, in one statement.
    sqlx::query(
        "INSERT INTO counties (id, name, geom) \
         SELECT id, name, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(g), 4326)) \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, name, g)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&geoms)
    .execute(&mut *pg)
    .await?;
    sqlx::query("CREATE INDEX counties_geom_gist ON counties USING gist (geom)")
        .execute(&mut *pg)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_points (i integer PRIMARY KEY, pt geometry(Point, 4326) NOT NULL)",
    )
    .execute(&mut *pg)
    .await?;
    let is: Vec<i32> = (0..points.len() as i32).collect();
    let xs: Vec<f64> = points.iter().map(|p| p[0]).collect();
    let ys: Vec<f64> = points.iter().map(|p| p[1]).collect();
    sqlx::query(
        "INSERT INTO bench_points (i, pt) \
         SELECT i, ST_SetSRID(ST_MakePoint(x, y), 4326) \
         FROM unnest($1::int4[], $2::float8[], $3::float8[]) AS t(i, x, y)",
    )
    .bind(&is)
    .bind(&xs)
    .bind(&ys)
    .execute(&mut *pg)
    .await?;
    sqlx::query("VACUUM ANALYZE counties")
        .execute(&mut *pg)
        .await?;
    sqlx::query("VACUUM ANALYZE bench_points")
        .execute(&mut *pg)
        .await?;
    let n: i64 = sqlx::query("SELECT count(*) FROM counties")
        .fetch_one(&mut *pg)
        .await?
        .get(0);
    if n as usize != features(counties).len() {
        bail!("PostGIS holds {n} counties");
    }
    Ok(())
}

pub(crate) async fn pg_info(pg: &mut PgConnection) -> Result<PgInfo> {
    let r = sqlx::query(
        "SELECT current_setting('server_version'), postgis_lib_version(), postgis_geos_version()",
    )
    .fetch_one(&mut *pg)
    .await?;
    Ok(PgInfo {
        postgres: r.get(0),
        postgis: r.get(1),
        geos: r.get(2),
    })
}

pub(crate) const PG_LOOKUP: &str =
    "SELECT id FROM counties WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))";

pub(crate) async fn pg_single(pg: &mut PgConnection, pts: &[[f64; 2]]) -> Result<Vec<u64>> {
    let mut ns = Vec::with_capacity(pts.len());
    for &[lon, lat] in pts {
        let t = Instant::now();
        let rows = sqlx::query(PG_LOOKUP)
            .bind(lon)
            .bind(lat)
            .fetch_all(&mut *pg)
            .await?;
        ns.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(rows);
    }
    Ok(ns)
}

/// The protocol floor: a prepared `SELECT 1` per point, same connection.
pub(crate) async fn pg_select1(pg: &mut PgConnection, n: usize) -> Result<Vec<u64>> {
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let v: i32 = sqlx::query("SELECT 1").fetch_one(&mut *pg).await?.get(0);
        ns.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(v);
    }
    Ok(ns)
}

/// Every point's counties from PostGIS, in one bulk join (the agreement's reference).
pub(crate) async fn pg_answers(pg: &mut PgConnection, n: usize) -> Result<Vec<BTreeSet<String>>> {
    let mut pg_ans = vec![BTreeSet::new(); n];
    for row in sqlx::query(
        "SELECT p.i, c.id FROM bench_points p JOIN counties c ON ST_Contains(c.geom, p.pt)",
    )
    .fetch_all(&mut *pg)
    .await?
    {
        let i: i32 = row.get(0);
        pg_ans[i as usize].insert(row.get::<String, _>(1));
    }
    Ok(pg_ans)
}
