//! The `oauth` capability's storage (WG1-02 §3): a server's authorization server metadata
//! and scopes, written in the server's commit transaction with `scope` change rows, and
//! read back per coverage entry for the search index.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::{Result, Store};
pub use crate::cds::oauth::OAuthOffer;
use crate::cds::oauth::{OAuthMetadata, OfferedScope, ScopeDescription};

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

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// `scope@entry_id` for every scope offered at an entry that exists.
fn pairs(
    scopes: impl IntoIterator<Item = (String, Vec<String>)>,
    entries: &HashSet<&str>,
) -> BTreeSet<String> {
    scopes
        .into_iter()
        .flat_map(|(scope, coverages)| {
            coverages
                .into_iter()
                .filter(|c| entries.contains(c.as_str()))
                .map(move |c| format!("{scope}@{c}"))
        })
        .collect()
}

/// Replace a server's OAuth metadata and scopes inside its commit transaction, and write a
/// `scope` change row (`added` / `removed`, ref `scope@entry_id`) for every pair of scope
/// and existing coverage entry that appeared or disappeared, so the change feed shows
/// where a scope stopped or started being offered. Pairs naming no entry are left out on
/// both sides: they are not searchable (OAUTH-COVERAGE-UNKNOWN reports them).
pub(super) async fn commit_oauth<'e>(
    tx: &mut Transaction<'_, Any>,
    log: &mut super::commit::ChangeLog,
    run_id: i64,
    server_id: i64,
    oauth: Option<&OAuthRecord>,
    old_entries: impl IntoIterator<Item = &'e String>,
    new_entries: &HashSet<String>,
) -> Result<()> {
    let old_rows = sqlx::query("SELECT scope, coverages FROM oauth_scopes WHERE server_id = $1")
        .bind(server_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("scope")?,
                json_list(&r.try_get::<String, _>("coverages")?),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
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
    let mut after = BTreeSet::new();
    if let Some(o) = oauth {
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
                 grant_types, coverages) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(server_id)
            .bind(&s.id)
            .bind(pos as i64)
            .bind(&s.name)
            .bind(&s.description)
            .bind(&s.documentation)
            .bind(to_json(&s.grant_types))
            .bind(to_json(&s.coverages))
            .execute(&mut **tx)
            .await?;
        }
        after = pairs(
            m.scopes.iter().map(|s| (s.id.clone(), s.coverages.clone())),
            &new_entries,
        );
    }
    for (op, set) in [
        ("removed", before.difference(&after)),
        ("added", after.difference(&before)),
    ] {
        for pair in set {
            super::commit::change(log, Some(run_id), "scope", op, Some(server_id), pair, None);
        }
    }
    Ok(())
}

/// A scope and the coverage entry ids it is offered for.
type ScopeCoverage = (OfferedScope, Vec<String>);

impl Store {
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
        let scopes = sqlx::query(
            "SELECT scope, name, description, documentation, grant_types, coverages FROM oauth_scopes \
             WHERE server_id = $1 ORDER BY position",
        )
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|s| {
            Ok(ScopeDescription {
                id: s.try_get("scope")?,
                // Not stored yet: the scope-type column is the "scope" helper's (issue 15).
                scope_type: None,
                name: s.try_get("name")?,
                description: s.try_get("description")?,
                documentation: s.try_get("documentation")?,
                grant_types: json_list(&s.try_get::<String, _>("grant_types")?),
                coverages: json_list(&s.try_get::<String, _>("coverages")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
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
        // An integer, formatted by us: nothing from outside reaches the SQL text.
        let searchable = match server {
            None => "s.status IN ('active', 'stale')".to_owned(),
            Some(id) => format!("s.status IN ('active', 'stale') AND s.id = {id}"),
        };
        let searchable = searchable.as_str();
        let servers = sqlx::query(&format!(
            "SELECT m.server_id, m.registration_endpoint, m.human_registration FROM oauth_metadata m \
             JOIN servers s ON s.id = m.server_id WHERE {searchable}"
        ))
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
            "SELECT o.server_id, o.scope, o.name, o.description, o.documentation, o.grant_types, o.coverages \
             FROM oauth_scopes o JOIN servers s ON s.id = o.server_id WHERE {searchable} \
             ORDER BY o.server_id, o.position"
        ))
        .fetch_all(&self.pool)
        .await?;
        for r in &scopes {
            let server_id: i64 = r.try_get("server_id")?;
            if let Some((_, list)) = by_server.get_mut(&server_id) {
                list.push((
                    OfferedScope {
                        id: r.try_get("scope")?,
                        name: r.try_get("name")?,
                        description: r.try_get("description")?,
                        documentation: r.try_get("documentation")?,
                        grant_types: json_list(&r.try_get::<String, _>("grant_types")?),
                    },
                    json_list(&r.try_get::<String, _>("coverages")?),
                ));
            }
        }
        let entries = sqlx::query(&format!(
            "SELECT e.id, e.server_id, e.entry_id FROM coverage_entries e \
             JOIN servers s ON s.id = e.server_id WHERE {searchable}"
        ))
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
