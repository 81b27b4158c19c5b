//! Coverage entries as read back: per server for the API, with territories for the
//! search index, and the `authoritative` claims for the cross-server check.

use std::collections::HashMap;

use futures::{Stream, TryStreamExt};
use serde::Serialize;
use sqlx::{FromRow, Row};

use super::rows::{entry_cols, searchable, JsonDoc, JsonList};
use super::sql::{rows_per_statement, Marks, SQLITE_MAX_BINDS};
use super::{Result, Store};
use crate::cds::CoverageEntry;

/// A stored coverage entry. Serialised like the search rows: `id` is the registry's id,
/// `entry_id` the entry's own `id` on its server (a flattened `CoverageEntry` would emit
/// two `id` keys).
#[derive(Debug, Clone, FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub server_id: i64,
    pub page_url: String,
    #[sqlx(flatten)]
    pub entry: CoverageEntry,
    pub territory_id: Option<i64>,
    /// The entry exactly as the server published it (extension fields included).
    #[sqlx(rename = "raw_json", try_from = "JsonDoc")]
    pub raw: serde_json::Value,
}

impl Serialize for EntryRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut v = serde_json::to_value(&self.entry).map_err(S::Error::custom)?;
        if let Some(o) = v.as_object_mut() {
            let entry_id = o.remove("id").unwrap_or_default();
            o.insert("id".into(), self.id.into());
            o.insert("entry_id".into(), entry_id);
            o.insert("server_id".into(), self.server_id.into());
            o.insert("page_url".into(), self.page_url.clone().into());
            o.insert("territory_id".into(), self.territory_id.into());
            o.insert("raw".into(), self.raw.clone());
        }
        v.serialize(s)
    }
}

/// One coverage entry with its territory, as the search index loads it.
#[derive(Debug, Clone, FromRow)]
pub struct IndexRow {
    #[sqlx(rename = "id")]
    pub key: i64,
    pub server_id: i64,
    pub server_url: String,
    pub server_name: String,
    #[sqlx(flatten)]
    pub entry: CoverageEntry,
    pub territory_id: Option<i64>,
    pub wkb: Option<Vec<u8>>,
}

/// One `authoritative` coverage entry, as [`Store::authoritative_claims`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthoritativeClaimRow {
    pub server_id: i64,
    pub server_url: String,
    /// `coverage_entries.id`.
    pub entry_key: i64,
    pub page_url: String,
    /// Position in the server's whole listing (all pages).
    pub position: i64,
    /// Index in its page's `coverage_entries`: the entry is at `/coverage_entries/<page_index>`.
    pub page_index: i64,
    pub entry_id: String,
    pub country: String,
    pub capabilities: Vec<String>,
    /// `[min_lon, min_lat, max_lon, max_lat]` of the territory, when it has one. The
    /// territory itself is read only for the claims that need it
    /// ([`Store::territory_wkbs`]).
    pub bbox: Option<[f64; 4]>,
}

/// The searchable entries of one server (`0`: of every server) with their territories'
/// WKB, in key order.
fn index_rows_query(
    server_id: i64,
) -> sqlx::query::QueryAs<'static, sqlx::Any, IndexRow, sqlx::any::AnyArguments<'static>> {
    sqlx::query_as(concat!(
        "SELECT e.id, e.server_id, e.territory_id, ",
        entry_cols!(),
        ", s.url AS server_url, s.name AS server_name, t.wkb FROM coverage_entries e \
         JOIN servers s ON s.id = e.server_id LEFT JOIN territories t ON t.id = e.territory_id \
         WHERE ",
        searchable!(),
        " AND ($1 = 0 OR s.id = $1) ORDER BY e.id"
    ))
    .bind(server_id)
}

impl Store {
    /// The entry ids stored for the server at `server_url` (none when it is new).
    pub async fn stored_entry_ids(&self, server_url: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT e.entry_id FROM coverage_entries e JOIN servers s ON s.id = e.server_id \
             WHERE s.url = $1",
        )
        .bind(server_url)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The stored entries of the server at `server_url`: entry id -> content hash (the
    /// hash of its JSON and its territory's, see `EntryRecord::content_hash`).
    pub async fn stored_entry_hashes(
        &self,
        server_url: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT e.entry_id, e.content_hash FROM coverage_entries e \
             JOIN servers s ON s.id = e.server_id WHERE s.url = $1",
        )
        .bind(server_url)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn server_entries(&self, server_id: i64) -> Result<Vec<EntryRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT e.id, e.server_id, e.page_url, e.territory_id, e.raw_json, ",
            entry_cols!(),
            " FROM coverage_entries e WHERE e.server_id = $1 ORDER BY e.position"
        ))
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every entry of every searchable server (active or stale), with territory WKB.
    pub async fn index_rows(&self) -> Result<Vec<IndexRow>> {
        self.index_rows_of(0).await
    }

    /// [`Store::index_rows`] one row at a time, in key order, for a caller that turns
    /// each row into something smaller before the next arrives. An API replica's full
    /// load does: all 100,000 rows of the scale fixture at once, WKB included, are
    /// ~300 MB held until the last is converted (docs/PERFORMANCE.md, "Scale").
    pub fn index_rows_stream(&self) -> impl Stream<Item = Result<IndexRow>> + Send + '_ {
        index_rows_query(0).fetch(&self.pool).map_err(Into::into)
    }

    /// The searchable entries of one server (`0`: of every server), for reloading only
    /// what changed.
    pub async fn index_rows_of(&self, server_id: i64) -> Result<Vec<IndexRow>> {
        Ok(index_rows_query(server_id).fetch_all(&self.pool).await?)
    }

    /// The searchable entries of one server with these entry ids (those that still
    /// exist), for applying a change of a few entries of a large server without reading
    /// the rest of it.
    pub async fn index_rows_of_entries(
        &self,
        server_id: i64,
        entry_ids: &[&str],
    ) -> Result<Vec<IndexRow>> {
        let marks = Marks::for_backend(self.backend);
        let mut out = Vec::with_capacity(entry_ids.len());
        for chunk in entry_ids.chunks(rows_per_statement(SQLITE_MAX_BINDS, 1) - 1) {
            let sql = format!(
                concat!(
                    "SELECT e.id, e.server_id, e.territory_id, ",
                    entry_cols!(),
                    ", s.url AS server_url, s.name AS server_name, t.wkb FROM coverage_entries e \
                     JOIN servers s ON s.id = e.server_id LEFT JOIN territories t ON t.id = e.territory_id \
                     WHERE ",
                    searchable!(),
                    " AND e.entry_id IN ({}) AND e.server_id = {} ORDER BY e.id"
                ),
                marks.list(chunk.len()),
                marks.at(chunk.len() + 1)
            );
            let mut q = sqlx::query_as::<_, IndexRow>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            out.extend(q.bind(server_id).fetch_all(&self.pool).await?);
        }
        out.sort_by_key(|r| r.key);
        Ok(out)
    }

    /// Every `authoritative` coverage entry of every searchable server (active or stale),
    /// with its territory, for the cross-server check XS-AUTH-CONFLICT (WG1-01 §4: only one
    /// server should be authoritative for the same coverage and capability).
    pub async fn authoritative_claims(&self) -> Result<Vec<AuthoritativeClaimRow>> {
        // `page_index`: positions run over the whole listing, so an entry's index in its
        // page is its position minus the smallest position stored for that page. (When the
        // first entry of a page repeated an earlier id it was not stored, and the index is
        // off by the number of such entries; COV-DUP-ID already reports that listing.)
        // The first position of each page comes from one grouped scan, not a subquery per
        // row: with no index on (server_id, page_url) that subquery scanned the server's
        // entries once per entry, ~1 s for 2,000 entries and quadratic (issue 17).
        let first: HashMap<(i64, String), i64> = sqlx::query_as::<_, (i64, String, i64)>(
            "SELECT server_id, page_url, MIN(position) AS first_position FROM coverage_entries \
             GROUP BY server_id, page_url",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(server, page, position)| ((server, page), position))
        .collect();
        let rows = sqlx::query(concat!(
            "SELECT e.id, e.server_id, s.url AS server_url, e.page_url, e.position, \
             e.entry_id, e.country, e.capabilities, t.min_lon, t.min_lat, t.max_lon, t.max_lat \
             FROM coverage_entries e JOIN servers s ON s.id = e.server_id \
             LEFT JOIN territories t ON t.id = e.territory_id WHERE ",
            searchable!(),
            " AND e.role = 'authoritative' ORDER BY e.server_id, e.position"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let corner = |c: &str| r.try_get::<Option<f64>, _>(c);
                let bbox = match (
                    corner("min_lon")?,
                    corner("min_lat")?,
                    corner("max_lon")?,
                    corner("max_lat")?,
                ) {
                    (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                    _ => None,
                };
                let server_id: i64 = r.try_get("server_id")?;
                let page_url: String = r.try_get("page_url")?;
                let position: i64 = r.try_get("position")?;
                let page_first = first
                    .get(&(server_id, page_url.clone()))
                    .copied()
                    .unwrap_or(position);
                Ok(AuthoritativeClaimRow {
                    server_id,
                    server_url: r.try_get("server_url")?,
                    entry_key: r.try_get("id")?,
                    page_url,
                    position,
                    page_index: position - page_first,
                    entry_id: r.try_get("entry_id")?,
                    country: r.try_get("country")?,
                    capabilities: r.try_get::<JsonList, _>("capabilities")?.into(),
                    bbox,
                })
            })
            .collect()
    }

    /// The territories (WKB MultiPolygon) of these coverage entries (`coverage_entries.id`),
    /// by entry; entries without one are absent.
    pub async fn territory_wkbs(&self, entry_keys: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
        let marks = Marks::for_backend(self.backend);
        let mut out = HashMap::with_capacity(entry_keys.len());
        for chunk in entry_keys.chunks(rows_per_statement(SQLITE_MAX_BINDS, 1)) {
            let sql = format!(
                "SELECT e.id, t.wkb FROM coverage_entries e JOIN territories t ON t.id = e.territory_id \
                 WHERE e.id IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(&sql);
            for k in chunk {
                q = q.bind(*k);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }
}
