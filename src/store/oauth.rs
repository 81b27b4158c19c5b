//! The `oauth` capability's storage (WG1-02 §3): a server's authorization server metadata
//! and scopes, written in the server's commit transaction with `scope` change rows, and
//! read back per coverage entry for the search index.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use sqlx::{Any, FromRow, Row, Transaction};

use super::changes::ChangeLog;
use super::rows::{searchable, JsonList};
use super::sql::to_json_list;
use super::{Result, Store};
pub use crate::cds::oauth::OAuthOffer;
use crate::cds::oauth::{OAuthMetadata, OfferedScope, ScopeDescription};
use crate::model::ChangeOp;

/// A server's OAuth metadata document, committed with its state ([`super::ServerCommit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthRecord {
    /// Where the document was finally fetched from (its row in `documents`).
    pub url: String,
    pub raw_json: String,
    pub metadata: OAuthMetadata,
}

/// A server's stored OAuth metadata, as [`Store::server_oauth`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OAuthRow {
    pub server_id: i64,
    pub url: String,
    #[serde(flatten)]
    pub metadata: OAuthMetadata,
}

/// A stored scope (`oauth_scopes`), with the coverage entry ids it is offered for.
#[derive(FromRow)]
struct ScopeRow {
    scope: String,
    scope_type: Option<String>,
    name: Option<String>,
    description: Option<String>,
    documentation: Option<String>,
    #[sqlx(try_from = "JsonList")]
    grant_types: Vec<String>,
    #[sqlx(try_from = "JsonList")]
    coverages: Vec<String>,
}

impl ScopeRow {
    fn description(self) -> ScopeDescription {
        ScopeDescription {
            id: self.scope,
            scope_type: self.scope_type,
            name: self.name,
            description: self.description,
            documentation: self.documentation,
            grant_types: self.grant_types,
            coverages: self.coverages,
        }
    }

    fn offered(self) -> ScopeCoverage {
        let scope = OfferedScope {
            id: self.scope,
            scope_type: self.scope_type,
            name: self.name,
            description: self.description,
            documentation: self.documentation,
            grant_types: self.grant_types,
        };
        (scope, self.coverages)
    }
}

const SCOPE_COLS: &str =
    "o.scope, o.scope_type, o.name, o.description, o.documentation, o.grant_types, o.coverages";

/// `scope@entry_id` -> the scope's type, for every scope offered at an entry that exists.
fn pairs(
    scopes: impl IntoIterator<Item = (String, Option<String>, Vec<String>)>,
    entries: &HashSet<&str>,
) -> BTreeMap<String, Option<String>> {
    scopes
        .into_iter()
        .flat_map(|(scope, scope_type, coverages)| {
            coverages
                .into_iter()
                .filter(|c| entries.contains(c.as_str()))
                .map(move |c| (format!("{scope}@{c}"), scope_type.clone()))
        })
        .collect()
}

/// Replace a server's OAuth metadata and scopes inside its commit transaction, and write a
/// `scope` change row (`added` / `removed`, ref `scope@entry_id`) for every pair of scope
/// and existing coverage entry that appeared or disappeared, so the change feed shows
/// where a scope stopped or started being offered; a pair whose scope changed its `type`
/// is `updated`. Every such row carries the scope's type (`scope_type`, the new one for
/// `added`/`updated`, the old one for `removed`): clients match scopes by type (WG1-02
/// §3.3). Pairs naming no entry are left out on both sides: they are not searchable
/// (OAUTH-COVERAGE-UNKNOWN reports them).
pub(super) async fn commit_oauth<'e>(
    tx: &mut Transaction<'_, Any>,
    log: &mut ChangeLog,
    run_id: i64,
    server_id: i64,
    oauth: Option<&OAuthRecord>,
    old_entries: impl IntoIterator<Item = &'e String>,
    new_entries: &HashSet<String>,
) -> Result<()> {
    let old_rows: Vec<(String, Option<String>, JsonList)> = sqlx::query_as(
        "SELECT scope, scope_type, coverages FROM oauth_scopes WHERE server_id = $1",
    )
    .bind(server_id)
    .fetch_all(&mut **tx)
    .await?;
    let old_rows = old_rows.into_iter().map(|(s, t, c)| (s, t, c.0));
    let old_entries: HashSet<&str> = old_entries.into_iter().map(String::as_str).collect();
    let new_entries: HashSet<&str> = new_entries.iter().map(String::as_str).collect();
    let before = pairs(old_rows, &old_entries);

    sqlx::query("DELETE FROM oauth_scopes WHERE server_id = $1")
        .bind(server_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM oauth_metadata WHERE server_id = $1")
        .bind(server_id)
        .execute(&mut **tx)
        .await?;
    let after = match oauth {
        Some(o) => {
            insert_oauth(tx, server_id, o).await?;
            let scopes = o.metadata.scopes.iter();
            pairs(
                scopes.map(|s| (s.id.clone(), s.scope_type.clone(), s.coverages.clone())),
                &new_entries,
            )
        }
        None => BTreeMap::new(),
    };
    for (pair, old_type) in &before {
        if !after.contains_key(pair) {
            log.scope(run_id, ChangeOp::Removed, server_id, pair, old_type.clone());
        }
    }
    for (pair, new_type) in &after {
        let op = match before.get(pair) {
            None => ChangeOp::Added,
            Some(old_type) if old_type != new_type => ChangeOp::Updated,
            Some(_) => continue,
        };
        log.scope(run_id, op, server_id, pair, new_type.clone());
    }
    Ok(())
}

/// Write a server's OAuth metadata document and its scopes (the old rows are deleted).
async fn insert_oauth(
    tx: &mut Transaction<'_, Any>,
    server_id: i64,
    o: &OAuthRecord,
) -> Result<()> {
    let m = &o.metadata;
    sqlx::query(
        "INSERT INTO oauth_metadata (server_id, url, issuer, registration_endpoint, human_registration, raw_json) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(server_id)
    .bind(&o.url)
    .bind(&m.issuer)
    .bind(&m.registration_endpoint)
    .bind(&m.human_registration)
    .bind(&o.raw_json)
    .execute(&mut **tx)
    .await?;
    for (pos, s) in m.scopes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO oauth_scopes (server_id, scope, position, name, description, documentation, \
             grant_types, coverages, scope_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(server_id)
        .bind(&s.id)
        .bind(pos as i64)
        .bind(&s.name)
        .bind(&s.description)
        .bind(&s.documentation)
        .bind(to_json_list(&s.grant_types))
        .bind(to_json_list(&s.coverages))
        .bind(&s.scope_type)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A scope and the coverage entry ids it is offered for.
type ScopeCoverage = (OfferedScope, Vec<String>);

impl Store {
    /// Fill in `oauth_scopes.scope_type` (migration 0006) from the stored OAuth documents
    /// for scopes stored before types were: a crawl that finds a server's documents
    /// unchanged does not rewrite its scopes, so without this their types would stay
    /// unknown, and unsearchable, until the server next changes something. Only rows
    /// whose type is NULL are read, and only types the document gives are written; a
    /// scope whose description has no `type` stays NULL (and is looked at again on the
    /// next start, which costs one parse of its server's document).
    pub async fn backfill_scope_types(&self) -> Result<u64> {
        let docs = sqlx::query(
            "SELECT m.server_id, m.raw_json FROM oauth_metadata m WHERE EXISTS \
             (SELECT 1 FROM oauth_scopes o WHERE o.server_id = m.server_id AND o.scope_type IS NULL)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut filled = 0;
        for r in &docs {
            let server_id: i64 = r.try_get("server_id")?;
            let raw: String = r.try_get("raw_json")?;
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(&raw) else {
                continue;
            };
            for s in OAuthMetadata::from_value(&doc).scopes {
                let Some(t) = s.scope_type else { continue };
                filled += sqlx::query(
                    "UPDATE oauth_scopes SET scope_type = $1 \
                     WHERE server_id = $2 AND scope = $3 AND scope_type IS NULL",
                )
                .bind(t)
                .bind(server_id)
                .bind(&s.id)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
        }
        Ok(filled)
    }

    /// A server's stored OAuth metadata, scopes in document order; `None` when it has none.
    pub async fn server_oauth(&self, server_id: i64) -> Result<Option<OAuthRow>> {
        let Some(r) = sqlx::query(
            "SELECT url, issuer, registration_endpoint, human_registration FROM oauth_metadata \
             WHERE server_id = $1",
        )
        .bind(server_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let scopes: Vec<ScopeRow> = sqlx::query_as(&format!(
            "SELECT {SCOPE_COLS} FROM oauth_scopes o WHERE o.server_id = $1 ORDER BY o.position"
        ))
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        let scopes = scopes.into_iter().map(ScopeRow::description).collect();
        Ok(Some(OAuthRow {
            server_id,
            url: r.try_get("url")?,
            metadata: OAuthMetadata {
                issuer: r.try_get("issuer")?,
                registration_endpoint: r.try_get("registration_endpoint")?,
                human_registration: r.try_get("human_registration")?,
                scopes,
            },
        }))
    }

    /// What each coverage entry of a searchable server (active or stale) offers over OAuth,
    /// by `coverage_entries.id`: every entry of a server with stored OAuth metadata gets
    /// the server's registration links and the scopes whose `coverages_supported` list its
    /// id. Entries of servers without OAuth metadata are absent.
    pub async fn oauth_offers(&self) -> Result<HashMap<i64, OAuthOffer>> {
        self.oauth_offers_where(None).await
    }

    /// [`Store::oauth_offers`] for the entries of one server (an API replica reloading
    /// the servers a crawl changed reads only theirs).
    pub async fn oauth_offers_of(&self, server_id: i64) -> Result<HashMap<i64, OAuthOffer>> {
        self.oauth_offers_where(Some(server_id)).await
    }

    async fn oauth_offers_where(&self, server: Option<i64>) -> Result<HashMap<i64, OAuthOffer>> {
        // One statement text for every server (`$1` = 0: all of them), so it is prepared
        // once instead of once per id; registry ids start at 1.
        let server = server.unwrap_or(0);
        let servers = sqlx::query(concat!(
            "SELECT m.server_id, m.registration_endpoint, m.human_registration FROM oauth_metadata m \
             JOIN servers s ON s.id = m.server_id WHERE ",
            searchable!(),
            " AND ($1 = 0 OR s.id = $1)"
        ))
        .bind(server)
        .fetch_all(&self.pool)
        .await?;
        // Per server: its registration links, and its scopes with their coverage ids.
        let mut by_server: HashMap<i64, (OAuthOffer, Vec<ScopeCoverage>)> = HashMap::new();
        for r in &servers {
            by_server.insert(
                r.try_get("server_id")?,
                (
                    OAuthOffer {
                        registration_endpoint: r.try_get("registration_endpoint")?,
                        human_registration: r.try_get("human_registration")?,
                        scopes: Vec::new(),
                    },
                    Vec::new(),
                ),
            );
        }
        if by_server.is_empty() {
            return Ok(HashMap::new());
        }
        let scopes = sqlx::query(&format!(
            concat!(
                "SELECT o.server_id, {} FROM oauth_scopes o JOIN servers s ON s.id = o.server_id WHERE ",
                searchable!(),
                " AND ($1 = 0 OR s.id = $1) ORDER BY o.server_id, o.position"
            ),
            SCOPE_COLS
        ))
        .bind(server)
        .fetch_all(&self.pool)
        .await?;
        for r in &scopes {
            let server_id: i64 = r.try_get("server_id")?;
            if let Some((_, list)) = by_server.get_mut(&server_id) {
                list.push(ScopeRow::from_row(r)?.offered());
            }
        }
        let entries = sqlx::query(concat!(
            "SELECT e.id, e.server_id, e.entry_id FROM coverage_entries e \
             JOIN servers s ON s.id = e.server_id WHERE ",
            searchable!(),
            " AND ($1 = 0 OR s.id = $1)"
        ))
        .bind(server)
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::new();
        for r in &entries {
            let server_id: i64 = r.try_get("server_id")?;
            let Some((base, scopes)) = by_server.get(&server_id) else {
                continue;
            };
            let entry_id: String = r.try_get("entry_id")?;
            let mut offer = base.clone();
            offer.scopes = scopes
                .iter()
                .filter(|(_, coverages)| coverages.contains(&entry_id))
                .map(|(s, _)| s.clone())
                .collect();
            out.insert(r.try_get::<i64, _>("id")?, offer);
        }
        Ok(out)
    }
}
