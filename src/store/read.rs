//! Reads: hosts to crawl, conditional-GET validators, and the views the API serves.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use super::{Result, Store, StoreError};
use crate::cds::CoverageEntry;

/// A host the registry crawls, with its crawl state (`GET /v1/hosts`).
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
#[schema(as = Host)]
pub struct HostRow {
    pub id: i64,
    /// `name`, `name:port` or a metadata URL, as seeded.
    pub seed: String,
    /// The metadata document URL, when known (seeded URL or found by crawling).
    pub metadata_url: Option<String>,
    /// `seed`, `admin` or `discovered`.
    pub source: String,
    /// `active`, `moved`, `stale`, `gone` or `removed`.
    pub status: String,
    /// Where the well-known URL redirected permanently to.
    pub moved_to: Option<String>,
    /// Epoch milliseconds.
    pub created_ms: i64,
    pub last_crawl_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// Classified outcome of the last crawl (`ok`, `dns`, `timeout`, `http_status`, ...).
    pub last_outcome: Option<String>,
    pub last_detail: Option<String>,
    pub consecutive_failures: i64,
    /// When the next scheduled crawl is due (epoch milliseconds).
    pub next_due_ms: i64,
    /// The scheme an origin seed asked for (`https://host/`, `http://host:port/`); null
    /// for a bare host name.
    pub scheme: Option<String>,
    /// The host as people read it: `seed` with internationalised names in unicode.
    pub display: String,
}

impl HostRow {
    /// The seed this row was stored from.
    pub fn to_seed(&self) -> crate::seeds::Seed {
        crate::seeds::Seed::from_stored(
            &self.seed,
            self.metadata_url.as_deref(),
            self.scheme.as_deref(),
        )
    }
}

const HOST_COLS: &str =
    "id, seed, metadata_url, source, status, moved_to, created_ms, last_crawl_ms, \
    last_success_ms, last_outcome, last_detail, consecutive_failures, next_due_ms, scheme";

pub(super) fn host_row(r: &AnyRow) -> Result<HostRow> {
    let seed: String = r.try_get("seed")?;
    Ok(HostRow {
        id: r.try_get("id")?,
        display: crate::seeds::display_host(&seed),
        seed,
        metadata_url: r.try_get("metadata_url")?,
        source: r.try_get("source")?,
        status: r.try_get("status")?,
        moved_to: r.try_get("moved_to")?,
        created_ms: r.try_get("created_ms")?,
        last_crawl_ms: r.try_get("last_crawl_ms")?,
        last_success_ms: r.try_get("last_success_ms")?,
        last_outcome: r.try_get("last_outcome")?,
        last_detail: r.try_get("last_detail")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        next_due_ms: r.try_get("next_due_ms")?,
        scheme: r.try_get("scheme")?,
    })
}

/// Validators of a stored document, for conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_hash: String,
}

/// One crawled metadata document (a CDS server).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Server)]
pub struct ServerRow {
    pub id: i64,
    /// The URL the metadata document was finally fetched from (after redirects).
    pub url: String,
    pub host_id: i64,
    /// The server whose `related_metadata` led here.
    pub parent_id: Option<i64>,
    /// `related_metadata` hops from a seeded host (0 = seeded).
    pub depth: i64,
    /// `active`, `stale` (failing, still searchable) or `gone` (out of search).
    pub status: String,
    pub name: String,
    pub capabilities: Vec<String>,
    /// Number of coverage entries.
    pub entries: i64,
    /// Epoch milliseconds.
    pub first_seen_ms: i64,
    pub last_success_ms: i64,
    pub last_changed_ms: i64,
    pub last_failure_ms: Option<i64>,
    pub last_failure: Option<String>,
}

/// A conformance finding as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Finding)]
pub struct FindingRow {
    pub id: i64,
    pub server_id: Option<i64>,
    pub host_id: Option<i64>,
    pub run_id: i64,
    /// Rule id, e.g. `COV-COUNTRY` or `META-REQUIRED:name` (see the README's rule table).
    pub rule: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// What to fix.
    pub message: String,
    /// The document the finding is about.
    pub url: String,
    /// RFC 6901 JSON pointer inside that document (`""` = the whole document).
    pub pointer: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// A stored coverage entry. Serialised like the search rows: `id` is the registry's id,
/// `entry_id` the entry's own `id` on its server (a flattened `CoverageEntry` would emit
/// two `id` keys).
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub id: i64,
    pub server_id: i64,
    pub page_url: String,
    pub entry: CoverageEntry,
    pub territory_id: Option<i64>,
    /// The entry exactly as the server published it (extension fields included).
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

/// The outcome of one crawl of a host.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CrawlOutcome)]
pub struct OutcomeRow {
    pub run_id: i64,
    pub host_id: i64,
    /// `ok`, `partial`, `dns`, `connect`, `tls`, `timeout`, `http_status`, `too_large`,
    /// `invalid_json`, `blocked`, `too_many_redirects`, `invalid`, `limit` or
    /// `store_error`.
    pub outcome: String,
    pub detail: Option<String>,
    pub http_status: Option<i64>,
    pub url: Option<String>,
    /// Epoch milliseconds.
    pub started_ms: i64,
    pub finished_ms: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
}

/// A server with its metadata, coverage entries, findings, crawl history and related
/// servers (`GET /v1/servers/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub server: ServerRow,
    /// The metadata document as published.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// URL of the parent server (`parent_id`).
    pub parent_url: Option<String>,
    /// Servers whose parent this one is.
    pub related: Vec<ServerRef>,
    /// The stored coverage entries: the WG1-01 §4 fields plus `entry_id`, `server_id`,
    /// `page_url`, `territory_id` and `raw` (the entry exactly as published).
    #[schema(value_type = Vec<Object>)]
    pub coverage: Vec<EntryRow>,
    pub findings: Vec<FindingRow>,
    /// The last 50 crawls of the server's host, newest first.
    pub crawl_history: Vec<OutcomeRow>,
    /// The server's OAuth authorization-server metadata as stored (RFC 8414 with the
    /// WG1-02 §3 fields: registration links, scopes and the coverage each serves); null
    /// when the server publishes none.
    #[schema(value_type = Option<Object>)]
    pub oauth: Option<super::OAuthRow>,
}

/// A server linked through `related_metadata`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerRef {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub status: String,
}

/// One coverage entry with its territory, as the search index loads it.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub key: i64,
    pub server_id: i64,
    pub server_url: String,
    pub server_name: String,
    pub entry: CoverageEntry,
    pub territory_id: Option<i64>,
    pub wkb: Option<Vec<u8>>,
}

/// Counts, for tests and the crawl summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub hosts: i64,
    pub servers: i64,
    pub active_servers: i64,
    pub entries: i64,
    pub territories: i64,
    pub findings: i64,
    pub changes: i64,
}

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn entry_from_row(r: &AnyRow) -> Result<CoverageEntry> {
    Ok(CoverageEntry {
        id: r.try_get("entry_id")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        entity_name: r.try_get("entity_name")?,
        entity_abbreviation: r.try_get("entity_abbreviation")?,
        country: r.try_get("country")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        kind: r.try_get("entry_type")?,
        role: r.try_get("role")?,
        infrastructure_types: json_list(&r.try_get::<String, _>("infrastructure_types")?),
        commodity_types: json_list(&r.try_get::<String, _>("commodity_types")?),
        capabilities: json_list(&r.try_get::<String, _>("capabilities")?),
        map_resource: r.try_get("map_resource")?,
        map_content_type: r.try_get("map_content_type")?,
        geojson_resource: r.try_get("geojson_resource")?,
    })
}

const ENTRY_COLS: &str = "e.id, e.server_id, e.page_url, e.entry_id, e.created, e.updated, e.entity_name, \
    e.entity_abbreviation, e.country, e.name, e.description, e.entry_type, e.role, e.infrastructure_types, \
    e.commodity_types, e.capabilities, e.map_resource, e.map_content_type, e.geojson_resource, e.territory_id, e.raw_json";

const SERVER_COLS: &str =
    "s.id, s.url, s.host_id, s.parent_id, s.depth, s.status, s.name, s.capabilities, \
    s.first_seen_ms, s.last_success_ms, s.last_changed_ms, s.last_failure_ms, s.last_failure, \
    (SELECT COUNT(*) FROM coverage_entries e WHERE e.server_id = s.id) AS entries";

fn server_row(r: &AnyRow) -> Result<ServerRow> {
    Ok(ServerRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        host_id: r.try_get("host_id")?,
        parent_id: r.try_get("parent_id")?,
        depth: r.try_get("depth")?,
        status: r.try_get("status")?,
        name: r.try_get("name")?,
        capabilities: json_list(&r.try_get::<String, _>("capabilities")?),
        entries: r.try_get("entries")?,
        first_seen_ms: r.try_get("first_seen_ms")?,
        last_success_ms: r.try_get("last_success_ms")?,
        last_changed_ms: r.try_get("last_changed_ms")?,
        last_failure_ms: r.try_get("last_failure_ms")?,
        last_failure: r.try_get("last_failure")?,
    })
}

fn finding_row(r: &AnyRow) -> Result<FindingRow> {
    Ok(FindingRow {
        id: r.try_get("id")?,
        server_id: r.try_get("server_id")?,
        host_id: r.try_get("host_id")?,
        run_id: r.try_get("run_id")?,
        rule: r.try_get("rule")?,
        severity: r.try_get("severity")?,
        message: r.try_get("message")?,
        url: r.try_get("url")?,
        pointer: r.try_get("pointer")?,
        expected: r.try_get("expected")?,
        actual: r.try_get("actual")?,
    })
}

/// Filters of `GET /v1/findings`.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub server_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

impl Store {
    pub async fn list_hosts(&self) -> Result<Vec<HostRow>> {
        let sql = format!("SELECT {HOST_COLS} FROM hosts ORDER BY id");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(host_row)
            .collect()
    }

    pub async fn validators(&self) -> Result<HashMap<String, Validators>> {
        let rows = sqlx::query("SELECT url, etag, last_modified, content_hash FROM documents")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("url")?,
                    Validators {
                        etag: r.try_get("etag")?,
                        last_modified: r.try_get("last_modified")?,
                        content_hash: r.try_get("content_hash")?,
                    },
                ))
            })
            .collect()
    }

    /// The stored body of a document (after a 304).
    pub async fn document_body(&self, url: &str) -> Result<Option<(String, String)>> {
        let r = sqlx::query("SELECT body, content_hash FROM documents WHERE url = $1")
            .bind(url)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => {
                let body: Option<String> = r.try_get("body")?;
                Ok(body.map(|b| (b, r.try_get("content_hash").unwrap_or_default())))
            }
            None => Ok(None),
        }
    }

    /// The content hash of a stored territory source whose territory row exists (after a 304).
    pub async fn territory_hash_for(&self, source_url: &str) -> Result<Option<String>> {
        let r = sqlx::query(
            "SELECT d.content_hash FROM documents d JOIN territories t \
             ON t.source_url = d.url AND t.source_hash = d.content_hash WHERE d.url = $1",
        )
        .bind(source_url)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| r.try_get("content_hash")).transpose()?)
    }

    /// [`Store::territory_hash_for`] for many URLs at once (one query per chunk of the
    /// parameter limit): the crawler asks for every territory URL of a server it holds
    /// validators for before fetching, instead of one round trip per 304 (issue 17).
    pub async fn territory_hashes_for(
        &self,
        source_urls: &[&str],
    ) -> Result<HashMap<String, String>> {
        let marks = super::commit::Marks::for_backend(self.backend);
        let per = super::commit::rows_per_statement(super::commit::SQLITE_MAX_BINDS, 1);
        let mut out = HashMap::with_capacity(source_urls.len());
        for chunk in source_urls.chunks(per) {
            let sql = format!(
                "SELECT d.url, d.content_hash FROM documents d JOIN territories t \
                 ON t.source_url = d.url AND t.source_hash = d.content_hash WHERE d.url IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q.bind(*u);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.try_get("url")?, r.try_get("content_hash")?);
            }
        }
        Ok(out)
    }

    pub async fn list_servers(&self) -> Result<Vec<ServerRow>> {
        let sql = format!("SELECT {SERVER_COLS} FROM servers s ORDER BY s.id");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(server_row)
            .collect()
    }

    pub async fn server_detail(&self, id: i64) -> Result<ServerDetail> {
        let sql = format!("SELECT {SERVER_COLS}, s.metadata_json FROM servers s WHERE s.id = $1");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let server = server_row(&r)?;
        let metadata: serde_json::Value =
            serde_json::from_str(&r.try_get::<String, _>("metadata_json")?).unwrap_or_default();
        let parent_url = match server.parent_id {
            Some(p) => sqlx::query("SELECT url FROM servers WHERE id = $1")
                .bind(p)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("url"))
                .transpose()?,
            None => None,
        };
        let related = sqlx::query(
            "SELECT id, url, name, status FROM servers WHERE parent_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ServerRef {
                id: r.try_get("id")?,
                url: r.try_get("url")?,
                name: r.try_get("name")?,
                status: r.try_get("status")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let coverage = self.server_entries(id).await?;
        let findings = self
            .list_findings(&FindingFilter {
                server_id: Some(id),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let crawl_history = sqlx::query(
            "SELECT run_id, host_id, outcome, detail, http_status, url, started_ms, finished_ms, docs_fetched, \
             docs_unchanged, bytes FROM crawl_outcomes WHERE host_id = $1 ORDER BY id DESC LIMIT 50",
        )
        .bind(server.host_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(OutcomeRow {
                run_id: r.try_get("run_id")?,
                host_id: r.try_get("host_id")?,
                outcome: r.try_get("outcome")?,
                detail: r.try_get("detail")?,
                http_status: r.try_get("http_status")?,
                url: r.try_get("url")?,
                started_ms: r.try_get("started_ms")?,
                finished_ms: r.try_get("finished_ms")?,
                docs_fetched: r.try_get("docs_fetched")?,
                docs_unchanged: r.try_get("docs_unchanged")?,
                bytes: r.try_get("bytes")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let oauth = self.server_oauth(id).await?;
        Ok(ServerDetail {
            oauth,
            server,
            metadata,
            parent_url,
            related,
            coverage,
            findings,
            crawl_history,
        })
    }

    /// The entry ids stored for the server at `server_url` (none when it is new).
    pub async fn stored_entry_ids(&self, server_url: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT e.entry_id FROM coverage_entries e JOIN servers s ON s.id = e.server_id \
             WHERE s.url = $1",
        )
        .bind(server_url)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("entry_id")?)).collect()
    }

    pub async fn server_entries(&self, server_id: i64) -> Result<Vec<EntryRow>> {
        let sql = format!("SELECT {ENTRY_COLS} FROM coverage_entries e WHERE e.server_id = $1 ORDER BY e.position");
        sqlx::query(&sql)
            .bind(server_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(EntryRow {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    page_url: r.try_get("page_url")?,
                    entry: entry_from_row(r)?,
                    territory_id: r.try_get("territory_id")?,
                    raw: serde_json::from_str(&r.try_get::<String, _>("raw_json")?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn list_findings(&self, f: &FindingFilter) -> Result<Vec<FindingRow>> {
        // Fixed SQL with "match anything" sentinels keeps one static statement for both
        // backends (no dynamic placeholders, see CRATES.md).
        let rows = sqlx::query(
            "SELECT id, server_id, host_id, run_id, rule, severity, message, url, pointer, expected, actual \
             FROM findings WHERE ($1 = '' OR severity = $1) AND ($2 = '' OR rule = $2) \
             AND ($3 = 0 OR server_id = $3) AND id > $4 ORDER BY id LIMIT $5",
        )
        .bind(f.severity.clone().unwrap_or_default())
        .bind(f.rule.clone().unwrap_or_default())
        .bind(f.server_id.unwrap_or(0))
        .bind(f.after_id)
        .bind(f.limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_row).collect()
    }

    /// Every entry of every searchable server (active or stale), with territory WKB.
    pub async fn index_rows(&self) -> Result<Vec<IndexRow>> {
        self.index_rows_of(0).await
    }

    /// The searchable entries of one server (`0`: of every server), for reloading only
    /// what changed.
    pub async fn index_rows_of(&self, server_id: i64) -> Result<Vec<IndexRow>> {
        let sql = format!(
            "SELECT {ENTRY_COLS}, s.url AS server_url, s.name AS server_name, t.wkb FROM coverage_entries e \
             JOIN servers s ON s.id = e.server_id LEFT JOIN territories t ON t.id = e.territory_id \
             WHERE s.status IN ('active', 'stale') AND ($1 = 0 OR s.id = $1) ORDER BY e.id"
        );
        sqlx::query(&sql)
            .bind(server_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(IndexRow {
                    key: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    server_url: r.try_get("server_url")?,
                    server_name: r.try_get("server_name")?,
                    entry: entry_from_row(r)?,
                    territory_id: r.try_get("territory_id")?,
                    wkb: r.try_get("wkb")?,
                })
            })
            .collect()
    }

    pub async fn counts(&self) -> Result<Counts> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM hosts) AS hosts, (SELECT COUNT(*) FROM servers) AS servers, \
             (SELECT COUNT(*) FROM servers WHERE status = 'active') AS active_servers, \
             (SELECT COUNT(*) FROM coverage_entries) AS entries, (SELECT COUNT(*) FROM territories) AS territories, \
             (SELECT COUNT(*) FROM findings) AS findings, (SELECT COUNT(*) FROM changes) AS changes",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Counts {
            hosts: r.try_get("hosts")?,
            servers: r.try_get("servers")?,
            active_servers: r.try_get("active_servers")?,
            entries: r.try_get("entries")?,
            territories: r.try_get("territories")?,
            findings: r.try_get("findings")?,
            changes: r.try_get("changes")?,
        })
    }

    /// Outcomes of one run, by host seed (tests and the CLI summary).
    pub async fn run_outcomes(&self, run_id: i64) -> Result<Vec<(String, OutcomeRow)>> {
        sqlx::query(
            "SELECT h.seed, o.run_id, o.host_id, o.outcome, o.detail, o.http_status, o.url, o.started_ms, \
             o.finished_ms, o.docs_fetched, o.docs_unchanged, o.bytes FROM crawl_outcomes o \
             JOIN hosts h ON h.id = o.host_id WHERE o.run_id = $1 ORDER BY o.id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("seed")?,
                OutcomeRow {
                    run_id: r.try_get("run_id")?,
                    host_id: r.try_get("host_id")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    http_status: r.try_get("http_status")?,
                    url: r.try_get("url")?,
                    started_ms: r.try_get("started_ms")?,
                    finished_ms: r.try_get("finished_ms")?,
                    docs_fetched: r.try_get("docs_fetched")?,
                    docs_unchanged: r.try_get("docs_unchanged")?,
                    bytes: r.try_get("bytes")?,
                },
            ))
        })
        .collect()
    }

    /// The change feed after `after` (exclusive), oldest first.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        sqlx::query(
            "SELECT seq, at_ms, run_id, entity, op, server_id, ref, detail, scope_type FROM changes \
             WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ChangeRow {
                seq: r.try_get("seq")?,
                at_ms: r.try_get("at_ms")?,
                run_id: r.try_get("run_id")?,
                entity: r.try_get("entity")?,
                op: r.try_get("op")?,
                server_id: r.try_get("server_id")?,
                reference: r.try_get("ref")?,
                detail: r.try_get("detail")?,
                scope_type: r.try_get("scope_type")?,
            })
        })
        .collect()
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
        let mut first: HashMap<(i64, String), i64> = HashMap::new();
        for r in sqlx::query(
            "SELECT server_id, page_url, MIN(position) AS first_position FROM coverage_entries \
             GROUP BY server_id, page_url",
        )
        .fetch_all(&self.pool)
        .await?
        {
            first.insert(
                (r.try_get("server_id")?, r.try_get("page_url")?),
                r.try_get("first_position")?,
            );
        }
        let rows = sqlx::query(
            "SELECT e.id, e.server_id, s.url AS server_url, e.page_url, e.position, \
             e.entry_id, e.country, e.capabilities, t.wkb, t.min_lon, t.min_lat, t.max_lon, t.max_lat \
             FROM coverage_entries e JOIN servers s ON s.id = e.server_id \
             LEFT JOIN territories t ON t.id = e.territory_id \
             WHERE s.status IN ('active', 'stale') AND e.role = 'authoritative' \
             ORDER BY e.server_id, e.position",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let bbox = match (
                    r.try_get::<Option<f64>, _>("min_lon")?,
                    r.try_get::<Option<f64>, _>("min_lat")?,
                    r.try_get::<Option<f64>, _>("max_lon")?,
                    r.try_get::<Option<f64>, _>("max_lat")?,
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
                    capabilities: json_list(&r.try_get::<String, _>("capabilities")?),
                    bbox,
                    wkb: r.try_get("wkb")?,
                })
            })
            .collect()
    }
}

/// One row of the change log (`GET /v1/changes`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Change)]
pub struct ChangeRow {
    pub seq: i64,
    pub at_ms: i64,
    pub run_id: Option<i64>,
    pub entity: String,
    pub op: String,
    pub server_id: Option<i64>,
    #[serde(rename = "ref")]
    pub reference: String,
    pub detail: Option<String>,
    /// `scope` rows: the type of the scope (WG1-02 §3.3), when it has one; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_type: Option<String>,
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
    /// `[min_lon, min_lat, max_lon, max_lat]` of the territory, when it has one.
    pub bbox: Option<[f64; 4]>,
    /// The territory (WKB MultiPolygon), when it has one.
    pub wkb: Option<Vec<u8>>,
}
