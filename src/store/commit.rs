//! Writes: hosts, crawl runs and outcomes, and the one-transaction commit of a server's
//! new state (metadata + entries + territories + findings + documents + change log).

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::{now_ms, Result, Store, StoreError};
use crate::cds::validate::rules;
use crate::cds::{CoverageEntry, Finding};
use crate::seeds::Seed;

/// A fetched document to remember for conditional GET and history.
#[derive(Debug, Clone)]
pub struct DocumentRecord {
    pub url: String,
    pub kind: &'static str,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_hash: String,
    pub http_status: u16,
    pub size: i64,
    /// Kept for metadata and coverage pages (needed when the next fetch is a 304);
    /// territories are stored as WKB instead.
    pub body: Option<String>,
}

/// A territory to store (deduplicated by source URL + content hash).
#[derive(Debug, Clone)]
pub struct TerritoryRecord {
    pub source_url: String,
    pub source_hash: String,
    pub wkb: Vec<u8>,
    pub bbox: [f64; 4],
    pub vertex_count: i64,
}

/// One coverage entry of a server's new state.
#[derive(Debug, Clone)]
pub struct EntryRecord {
    pub entry: CoverageEntry,
    pub raw_json: String,
    pub page_url: String,
    pub content_hash: String,
    /// (source_url, source_hash) of its territory, when it has one.
    pub territory: Option<(String, String)>,
}

/// A server's complete new state, committed atomically by [`Store::commit_server`].
#[derive(Debug, Clone)]
pub struct ServerCommit {
    pub url: String,
    pub host_id: i64,
    pub parent_url: Option<String>,
    pub depth: i64,
    pub name: String,
    pub metadata_json: String,
    pub capabilities: Vec<String>,
    /// Hash over every document of the server: equal hash = nothing changed.
    pub content_hash: String,
    pub entries: Vec<EntryRecord>,
    pub territories: Vec<TerritoryRecord>,
    pub findings: Vec<Finding>,
    pub documents: Vec<DocumentRecord>,
    /// The OAuth metadata of a server with the `oauth` capability (WG1-02 §3); `None`
    /// when it has none (or its URL was refused), which removes any stored one.
    pub oauth: Option<super::OAuthRecord>,
    /// `false` when the coverage listing was not read to its end (a page failed, or the
    /// page cap was reached): `entries` are then only those of the pages read, so stored
    /// entries missing from them are kept as they are, not removed (CDS-SPEC-NOTES §5a).
    pub listing_complete: bool,
}

/// What a commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitSummary {
    pub server_id: i64,
    pub changed: bool,
    pub entries_added: usize,
    pub entries_updated: usize,
    pub entries_removed: usize,
}

/// Per-host result of one crawl, recorded with [`Store::record_outcome`].
#[derive(Debug, Clone, Default)]
pub struct OutcomeRecord {
    pub host_id: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub http_status: Option<i64>,
    pub url: Option<String>,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
    pub servers_ok: i64,
    pub servers_failed: i64,
    /// When the host may be tried again (back-off / Retry-After); `None` = next schedule.
    pub next_due_ms: Option<i64>,
    pub moved_to: Option<String>,
    /// Host-level findings (no server), e.g. WK-AUTH.
    pub host_findings: Vec<Finding>,
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunTotals {
    pub hosts_total: i64,
    pub hosts_ok: i64,
    pub hosts_failed: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
    pub findings: i64,
}

/// Change-log rows of one transaction, written together just before it commits
/// ([`Store::commit_logged`]).
#[derive(Debug, Default)]
pub(super) struct ChangeLog(Vec<PendingChange>);

#[derive(Debug)]
struct PendingChange {
    at_ms: i64,
    run_id: Option<i64>,
    entity: &'static str,
    op: String,
    server_id: Option<i64>,
    reference: String,
    detail: Option<String>,
    /// `scope` rows: the scope's `type` (WG1-02 §3.3), set by [`scope_change`].
    scope_type: Option<String>,
}

impl ChangeLog {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Record a change (written at commit, see [`Store::commit_logged`]).
pub(super) fn change(
    log: &mut ChangeLog,
    run_id: Option<i64>,
    entity: &'static str,
    op: &str,
    server_id: Option<i64>,
    reference: &str,
    detail: Option<String>,
) {
    log.0.push(PendingChange {
        at_ms: now_ms(),
        run_id,
        entity,
        op: op.to_owned(),
        server_id,
        reference: reference.to_owned(),
        detail,
        scope_type: None,
    });
}

/// A `scope` change row (ref `scope@entry_id`) that also names the scope's type, so a
/// client following the feed can match it by type as WG1-02 §3.3 requires.
pub(super) fn scope_change(
    log: &mut ChangeLog,
    run_id: i64,
    op: &str,
    server_id: i64,
    reference: &str,
    scope_type: Option<String>,
) {
    change(
        log,
        Some(run_id),
        "scope",
        op,
        Some(server_id),
        reference,
        None,
    );
    if let Some(c) = log.0.last_mut() {
        c.scope_type = scope_type;
    }
}

pub(super) async fn insert_changes(tx: &mut Transaction<'_, Any>, log: ChangeLog) -> Result<()> {
    // Multi-row, in log order: each backend numbers `seq` in the order of the VALUES
    // rows, so the feed keeps the order the changes were recorded in. Sized to the lower
    // (SQLite) parameter limit, which holds on both backends.
    const COLS: usize = 8;
    let marks = Marks::of(tx);
    for chunk in log.0.chunks(rows_per_statement(SQLITE_MAX_BINDS, COLS)) {
        let sql = format!(
            "INSERT INTO changes (at_ms, run_id, entity, op, server_id, ref, detail, scope_type) VALUES {}",
            marks.rows(chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = q
                .bind(c.at_ms)
                .bind(c.run_id)
                .bind(c.entity)
                .bind(c.op.as_str())
                .bind(c.server_id)
                .bind(c.reference.as_str())
                .bind(c.detail.as_deref())
                .bind(c.scope_type.as_deref());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_findings(
    tx: &mut Transaction<'_, Any>,
    server_id: Option<i64>,
    host_id: Option<i64>,
    run_id: i64,
    findings: &[Finding],
) -> Result<()> {
    const COLS: usize = 11;
    let marks = Marks::of(tx);
    let now = now_ms();
    for chunk in findings.chunks(rows_per_statement(SQLITE_MAX_BINDS, COLS)) {
        let sql = format!(
            "INSERT INTO findings (server_id, host_id, run_id, rule, severity, message, url, pointer, \
             expected, actual, created_ms) VALUES {}",
            marks.rows(chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = q
                .bind(server_id)
                .bind(host_id)
                .bind(run_id)
                .bind(f.rule.as_str())
                .bind(f.severity.as_str())
                .bind(f.message.as_str())
                .bind(f.url.as_str())
                .bind(f.pointer.as_str())
                .bind(f.expected.as_deref())
                .bind(f.actual.as_deref())
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Bind parameters one statement may carry: SQLite's `SQLITE_MAX_VARIABLE_NUMBER`
/// (32,766 since 3.32) and Postgres' 16-bit parameter count (65,535). Large writes go in
/// multi-row statements sized to it, not one round trip per row (issue 17).
pub const SQLITE_MAX_BINDS: usize = 32_766;
pub const POSTGRES_MAX_BINDS: usize = 65_535;

/// Rows of `cols` parameters that fit one statement of at most `max_binds` parameters.
pub(super) fn rows_per_statement(max_binds: usize, cols: usize) -> usize {
    (max_binds / cols).max(1)
}

/// How one backend writes placeholders: Postgres numbers them (`$1`); SQLite gets plain
/// `?`, bound in order. SQLite treats `$N` as a *named* parameter and finds each name by
/// a linear scan, so a statement of 30,000 `$N` took seconds to prepare; `?` is O(1).
#[derive(Clone, Copy)]
pub(super) struct Marks {
    numbered: bool,
}

impl Marks {
    pub(super) fn for_backend(b: super::Backend) -> Marks {
        Marks {
            numbered: b == super::Backend::Postgres,
        }
    }

    fn of(tx: &Transaction<'_, Any>) -> Marks {
        Marks {
            numbered: !tx.backend_name().eq_ignore_ascii_case("sqlite"),
        }
    }

    fn push(self, out: &mut String, i: usize) {
        if self.numbered {
            out.push('$');
            out.push_str(&i.to_string());
        } else {
            out.push('?');
        }
    }

    /// `($1, $2), ($3, $4)`: `rows` groups of `cols` placeholders.
    fn rows(self, rows: usize, cols: usize) -> String {
        let mut out = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..cols {
                if c > 0 {
                    out.push_str(", ");
                }
                self.push(&mut out, r * cols + c + 1);
            }
            out.push(')');
        }
        out
    }

    /// `$1, $2, …, $n`, for an `IN (…)` list.
    pub(super) fn list(self, n: usize) -> String {
        let mut out = String::with_capacity(n * 6);
        for i in 1..=n {
            if i > 1 {
                out.push_str(", ");
            }
            self.push(&mut out, i);
        }
        out
    }
}

impl Store {
    /// Add seeds as hosts; existing ones are left as they are. Returns how many were new.
    pub async fn add_hosts(&self, seeds: &[Seed], source: &str) -> Result<usize> {
        let mut added = 0;
        let now = now_ms();
        for s in seeds {
            let r = sqlx::query(
                "INSERT INTO hosts (seed, metadata_url, scheme, source, created_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seed) DO NOTHING",
            )
            .bind(s.key())
            .bind(s.metadata_url())
            .bind(s.scheme().map(|x| x.as_str()))
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
            added += r.rows_affected() as usize;
        }
        Ok(added)
    }

    /// Register a host found through `related_metadata`; returns its id.
    pub async fn discovered_host(&self, seed: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO hosts (seed, source, created_ms) VALUES ($1, 'discovered', $2) \
             ON CONFLICT (seed) DO UPDATE SET seed = excluded.seed RETURNING id",
        )
        .bind(seed)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Record one host's outcome and move its crawl state (failures, back-off, status).
    ///
    /// Only the lease holder records: if `worker` lost its lease (it expired and another
    /// worker took the host), nothing is written and `false` is returned, so every host
    /// has exactly one outcome per run.
    pub async fn record_outcome(
        &self,
        run_id: i64,
        worker: &str,
        o: &OutcomeRecord,
        stale_after_failures: i64,
        gone_after_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Releasing the lease also reads the host's previous crawl state (RETURNING gives
        // the row after the update, and none of those columns change here): one round trip
        // instead of two on the path every host takes. An outcome ends the host's run of
        // lease expiries (work.rs counts them to give up on poison hosts).
        let Some(prev) = sqlx::query(
            "UPDATE hosts SET run_id = NULL, lease_owner = NULL, lease_until_ms = NULL, \
             lease_taken_ms = NULL, lease_expiries = 0 WHERE id = $1 AND run_id = $2 AND lease_owner = $3 \
             RETURNING consecutive_failures, last_success_ms, created_ms, status, moved_to",
        )
        .bind(o.host_id)
        .bind(run_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.rollback().await?;
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO crawl_outcomes (run_id, host_id, outcome, detail, http_status, url, started_ms, \
             finished_ms, docs_fetched, docs_unchanged, bytes, servers_ok, servers_failed, worker) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(run_id)
        .bind(o.host_id)
        .bind(&o.outcome)
        .bind(&o.detail)
        .bind(o.http_status)
        .bind(&o.url)
        .bind(o.started_ms)
        .bind(o.finished_ms)
        .bind(o.docs_fetched)
        .bind(o.docs_unchanged)
        .bind(o.bytes)
        .bind(o.servers_ok)
        .bind(o.servers_failed)
        .bind(worker)
        .execute(&mut *tx)
        .await?;

        let ok = o.outcome == "ok" || o.outcome == "partial";
        let failures: i64 = prev.try_get("consecutive_failures")?;
        let last_success: Option<i64> = prev.try_get("last_success_ms")?;
        let created: i64 = prev.try_get("created_ms")?;
        let old_status: String = prev.try_get("status")?;
        let old_moved: Option<String> = prev.try_get("moved_to")?;
        let mut log = ChangeLog::default();
        let now = o.finished_ms;
        let (failures, status) = if ok {
            let status = if o.moved_to.is_some() {
                "moved"
            } else {
                "active"
            };
            (0, status.to_owned())
        } else {
            let f = failures + 1;
            let since = now - last_success.unwrap_or(created);
            // Stale: still searchable but flagged; gone: out of search, history kept.
            let status = if since >= gone_after_ms && f >= stale_after_failures {
                "gone"
            } else if f >= stale_after_failures {
                "stale"
            } else if old_status == "moved" {
                "moved"
            } else {
                "active"
            };
            (f, status.to_owned())
        };
        sqlx::query(
            "UPDATE hosts SET last_crawl_ms = $1, last_success_ms = CASE WHEN $2 = 1 THEN $1 ELSE last_success_ms END, \
             last_outcome = $3, last_detail = $4, consecutive_failures = $5, next_due_ms = $6, status = $7, \
             moved_to = CASE WHEN $2 = 1 THEN $8 ELSE moved_to END WHERE id = $9",
        )
        .bind(now)
        .bind(ok as i64)
        .bind(&o.outcome)
        .bind(&o.detail)
        .bind(failures)
        .bind(o.next_due_ms.unwrap_or(0))
        .bind(&status)
        .bind(&o.moved_to)
        .bind(o.host_id)
        .execute(&mut *tx)
        .await?;

        if ok && o.moved_to.is_some() && o.moved_to != old_moved {
            change(
                &mut log,
                Some(run_id),
                "host",
                "moved",
                None,
                &o.host_id.to_string(),
                o.moved_to.clone(),
            );
        }
        // The host's servers follow its lifecycle (stale → still searchable, gone → not).
        if status != old_status
            && (status == "stale" || status == "gone" || (ok && old_status != "moved"))
        {
            let server_status = if ok { "active" } else { status.as_str() };
            let ids: Vec<i64> =
                sqlx::query("SELECT id FROM servers WHERE host_id = $1 AND status <> $2")
                    .bind(o.host_id)
                    .bind(server_status)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<_, _>>()?;
            for id in ids {
                sqlx::query("UPDATE servers SET status = $1 WHERE id = $2")
                    .bind(server_status)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                change(
                    &mut log,
                    Some(run_id),
                    "server",
                    server_status,
                    Some(id),
                    &id.to_string(),
                    None,
                );
            }
        }
        sqlx::query("DELETE FROM findings WHERE host_id = $1 AND server_id IS NULL")
            .bind(o.host_id)
            .execute(&mut *tx)
            .await?;
        insert_findings(&mut tx, None, Some(o.host_id), run_id, &o.host_findings).await?;
        self.commit_logged(tx, log).await?;
        Ok(true)
    }

    /// Record a failed crawl of a server whose host otherwise answered: its stored state
    /// stays as it was (last known good); only the failure is noted.
    pub async fn note_server_failure(&self, url: &str, detail: &str) -> Result<()> {
        sqlx::query("UPDATE servers SET last_failure_ms = $1, last_failure = $2 WHERE url = $3")
            .bind(now_ms())
            .bind(detail)
            .bind(url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Commit a server's new state in one transaction. Nothing is written when the
    /// transaction fails, so the previous state stays intact.
    pub async fn commit_server(&self, run_id: i64, c: &ServerCommit) -> Result<CommitSummary> {
        let max_binds = match self.backend {
            super::Backend::Sqlite => SQLITE_MAX_BINDS,
            super::Backend::Postgres => POSTGRES_MAX_BINDS,
        };
        self.commit_server_with_binds(run_id, c, max_binds).await
    }

    /// [`Store::commit_server`] with multi-row statements of at most `max_binds`
    /// parameters (at least one row each). Tests commit with a tiny limit, which writes
    /// one row per statement, to check that the batched writes store the same rows.
    #[doc(hidden)]
    pub async fn commit_server_with_binds(
        &self,
        run_id: i64,
        c: &ServerCommit,
        max_binds: usize,
    ) -> Result<CommitSummary> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut summary = CommitSummary::default();
        let mut log = ChangeLog::default();
        let marks = Marks::of(&tx);

        // A URL recorded twice (two links that end at one document) keeps the place of
        // its first record and the content of its last, as row-by-row upserts did: one
        // multi-row upsert may touch a row only once (Postgres refuses otherwise).
        let mut by_url: HashMap<&str, usize> = HashMap::new();
        let mut docs: Vec<&DocumentRecord> = Vec::with_capacity(c.documents.len());
        for d in &c.documents {
            match by_url.get(d.url.as_str()) {
                Some(&i) => docs[i] = d,
                None => {
                    by_url.insert(&d.url, docs.len());
                    docs.push(d);
                }
            }
        }
        const DOC_COLS: usize = 9;
        for chunk in docs.chunks(rows_per_statement(max_binds, DOC_COLS)) {
            let sql = format!(
                "INSERT INTO documents (url, kind, etag, last_modified, content_hash, http_status, size, fetched_ms, body) \
                 VALUES {} ON CONFLICT (url) DO UPDATE SET kind = excluded.kind, \
                 etag = excluded.etag, last_modified = excluded.last_modified, content_hash = excluded.content_hash, \
                 http_status = excluded.http_status, size = excluded.size, fetched_ms = excluded.fetched_ms, body = excluded.body",
                marks.rows(chunk.len(), DOC_COLS)
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q
                    .bind(d.url.as_str())
                    .bind(d.kind)
                    .bind(d.etag.as_deref())
                    .bind(d.last_modified.as_deref())
                    .bind(d.content_hash.as_str())
                    .bind(d.http_status as i64)
                    .bind(d.size)
                    .bind(now)
                    .bind(d.body.as_deref());
            }
            q.execute(&mut *tx).await?;
        }
        // History: the first content seen for (url, hash) stays; every record is offered
        // in order, duplicates included, which DO NOTHING resolves as row-by-row did.
        const VERSION_COLS: usize = 6;
        for chunk in c
            .documents
            .chunks(rows_per_statement(max_binds, VERSION_COLS))
        {
            let sql = format!(
                "INSERT INTO document_versions (url, kind, content_hash, size, body, first_seen_ms) \
                 VALUES {} ON CONFLICT (url, content_hash) DO NOTHING",
                marks.rows(chunk.len(), VERSION_COLS)
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q
                    .bind(d.url.as_str())
                    .bind(d.kind)
                    .bind(d.content_hash.as_str())
                    .bind(d.size)
                    .bind(d.body.as_deref())
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }

        let parent_id: Option<i64> = match &c.parent_url {
            Some(p) => sqlx::query("SELECT id FROM servers WHERE url = $1")
                .bind(p)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?,
            None => None,
        };
        let existing = sqlx::query("SELECT id, content_hash, status FROM servers WHERE url = $1")
            .bind(&c.url)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = &existing {
            let id: i64 = row.try_get("id")?;
            let hash: String = row.try_get("content_hash")?;
            let status: String = row.try_get("status")?;
            summary.server_id = id;
            if hash == c.content_hash {
                sqlx::query(
                    "UPDATE servers SET last_success_ms = $1, status = 'active', host_id = $2, parent_id = $3, \
                     depth = $4, last_failure = NULL WHERE id = $5",
                )
                .bind(now)
                .bind(c.host_id)
                .bind(parent_id)
                .bind(c.depth)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if status != "active" {
                    change(
                        &mut log,
                        Some(run_id),
                        "server",
                        "active",
                        Some(id),
                        &c.url,
                        None,
                    );
                }
                self.commit_logged(tx, log).await?;
                return Ok(summary);
            }
        }
        summary.changed = true;
        let row = sqlx::query(
            "INSERT INTO servers (url, host_id, parent_id, depth, status, name, metadata_json, capabilities, \
             content_hash, first_seen_ms, last_success_ms, last_changed_ms) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $9, $9) \
             ON CONFLICT (url) DO UPDATE SET host_id = excluded.host_id, parent_id = excluded.parent_id, \
             depth = excluded.depth, status = 'active', name = excluded.name, metadata_json = excluded.metadata_json, \
             capabilities = excluded.capabilities, content_hash = excluded.content_hash, \
             last_success_ms = excluded.last_success_ms, last_changed_ms = excluded.last_changed_ms, last_failure = NULL \
             RETURNING id",
        )
        .bind(&c.url)
        .bind(c.host_id)
        .bind(parent_id)
        .bind(c.depth)
        .bind(&c.name)
        .bind(&c.metadata_json)
        .bind(json_list(&c.capabilities))
        .bind(&c.content_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let server_id: i64 = row.try_get("id")?;
        summary.server_id = server_id;
        let op = if existing.is_some() {
            "updated"
        } else {
            "added"
        };
        change(
            &mut log,
            Some(run_id),
            "server",
            op,
            Some(server_id),
            &c.url,
            Some(c.name.clone()),
        );

        // Territories: content-addressed, so an unchanged file is stored once.
        const TERRITORY_COLS: usize = 9;
        for chunk in c
            .territories
            .chunks(rows_per_statement(max_binds, TERRITORY_COLS))
        {
            let sql = format!(
                "INSERT INTO territories (source_url, source_hash, wkb, min_lon, min_lat, max_lon, max_lat, \
                 vertex_count, created_ms) VALUES {} ON CONFLICT (source_url, source_hash) DO NOTHING",
                marks.rows(chunk.len(), TERRITORY_COLS)
            );
            let mut q = sqlx::query(&sql);
            for t in chunk {
                q = q
                    .bind(t.source_url.as_str())
                    .bind(t.source_hash.as_str())
                    .bind(t.wkb.as_slice())
                    .bind(t.bbox[0])
                    .bind(t.bbox[1])
                    .bind(t.bbox[2])
                    .bind(t.bbox[3])
                    .bind(t.vertex_count)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        // The ids of every territory the entries use, looked up by source URL in chunks
        // (one URL may have older versions stored; only the wanted hashes are kept).
        let wanted: std::collections::HashSet<&(String, String)> = c
            .entries
            .iter()
            .filter_map(|e| e.territory.as_ref())
            .collect();
        let mut urls: Vec<&str> = wanted.iter().map(|k| k.0.as_str()).collect();
        urls.sort_unstable();
        urls.dedup();
        let mut territory_ids: HashMap<(String, String), i64> = HashMap::new();
        for chunk in urls.chunks(rows_per_statement(max_binds, 1)) {
            let sql = format!(
                "SELECT id, source_url, source_hash FROM territories WHERE source_url IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q.bind(*u);
            }
            for r in q.fetch_all(&mut *tx).await? {
                let key = (
                    r.try_get::<String, _>("source_url")?,
                    r.try_get::<String, _>("source_hash")?,
                );
                if wanted.contains(&key) {
                    territory_ids.insert(key, r.try_get("id")?);
                }
            }
        }
        if let Some(key) = wanted.iter().find(|k| !territory_ids.contains_key(**k)) {
            return Err(StoreError::Other(format!(
                "territory {} ({}) missing",
                key.0, key.1
            )));
        }

        let old: HashMap<String, (i64, String)> = sqlx::query(
            "SELECT id, entry_id, content_hash FROM coverage_entries WHERE server_id = $1",
        )
        .bind(server_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| -> Result<_> {
            Ok((
                r.try_get::<String, _>("entry_id")?,
                (
                    r.try_get::<i64, _>("id")?,
                    r.try_get::<String, _>("content_hash")?,
                ),
            ))
        })
        .collect::<Result<_>>()?;
        let mut seen = std::collections::HashSet::new();
        // COV-DUP-ID is reported by the validator; the first occurrence is kept, at its
        // position in the listing.
        let rows: Vec<(usize, &EntryRecord)> = c
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(e.entry.id.clone()))
            .collect();
        const ENTRY_COLS: usize = 22;
        for chunk in rows.chunks(rows_per_statement(max_binds, ENTRY_COLS)) {
            let sql = format!(
                "INSERT INTO coverage_entries (server_id, entry_id, position, page_url, created, updated, entity_name, \
                 entity_abbreviation, country, name, description, entry_type, role, infrastructure_types, \
                 commodity_types, capabilities, map_resource, map_content_type, geojson_resource, territory_id, \
                 raw_json, content_hash) VALUES {} ON CONFLICT (server_id, entry_id) DO UPDATE SET \
                 position = excluded.position, page_url = excluded.page_url, created = excluded.created, \
                 updated = excluded.updated, entity_name = excluded.entity_name, \
                 entity_abbreviation = excluded.entity_abbreviation, country = excluded.country, name = excluded.name, \
                 description = excluded.description, entry_type = excluded.entry_type, role = excluded.role, \
                 infrastructure_types = excluded.infrastructure_types, commodity_types = excluded.commodity_types, \
                 capabilities = excluded.capabilities, map_resource = excluded.map_resource, \
                 map_content_type = excluded.map_content_type, geojson_resource = excluded.geojson_resource, \
                 territory_id = excluded.territory_id, raw_json = excluded.raw_json, content_hash = excluded.content_hash",
                marks.rows(chunk.len(), ENTRY_COLS)
            );
            let mut q = sqlx::query(&sql);
            for (pos, e) in chunk {
                let territory_id = e
                    .territory
                    .as_ref()
                    .and_then(|k| territory_ids.get(k).copied());
                let en = &e.entry;
                q = q
                    .bind(server_id)
                    .bind(en.id.as_str())
                    .bind(*pos as i64)
                    .bind(e.page_url.as_str())
                    .bind(en.created.as_deref())
                    .bind(en.updated.as_deref())
                    .bind(en.entity_name.as_str())
                    .bind(en.entity_abbreviation.as_deref())
                    .bind(en.country.as_str())
                    .bind(en.name.as_str())
                    .bind(en.description.as_deref())
                    .bind(en.kind.as_str())
                    .bind(en.role.as_str())
                    .bind(json_list(&en.infrastructure_types))
                    .bind(json_list(&en.commodity_types))
                    .bind(json_list(&en.capabilities))
                    .bind(en.map_resource.as_deref())
                    .bind(en.map_content_type.as_deref())
                    .bind(en.geojson_resource.as_deref())
                    .bind(territory_id)
                    .bind(e.raw_json.as_str())
                    .bind(e.content_hash.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        for (_, e) in &rows {
            let en = &e.entry;
            match old.get(&en.id) {
                None => {
                    summary.entries_added += 1;
                    change(
                        &mut log,
                        Some(run_id),
                        "entry",
                        "added",
                        Some(server_id),
                        &en.id,
                        None,
                    );
                }
                Some((_, h)) if *h != e.content_hash => {
                    summary.entries_updated += 1;
                    change(
                        &mut log,
                        Some(run_id),
                        "entry",
                        "updated",
                        Some(server_id),
                        &en.id,
                        None,
                    );
                }
                Some(_) => {}
            }
        }
        // An incomplete listing says nothing about the entries it did not reach: they keep
        // their last known good state and stay part of the server (CDS-SPEC-NOTES §5a).
        if !c.listing_complete {
            seen.extend(old.keys().cloned());
        }
        // In the order they were stored in (row id), so the feed's order of removals
        // does not depend on a hash map's.
        let mut removed: Vec<(i64, &String)> = old
            .iter()
            .filter(|(entry_id, _)| !seen.contains(*entry_id))
            .map(|(entry_id, (id, _))| (*id, entry_id))
            .collect();
        removed.sort_unstable();
        for chunk in removed.chunks(rows_per_statement(max_binds, 1)) {
            let sql = format!(
                "DELETE FROM coverage_entries WHERE id IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for (_, entry_id) in &removed {
            summary.entries_removed += 1;
            change(
                &mut log,
                Some(run_id),
                "entry",
                "removed",
                Some(server_id),
                entry_id,
                None,
            );
        }

        super::oauth::commit_oauth(
            &mut tx,
            &mut log,
            run_id,
            server_id,
            c.oauth.as_ref(),
            old.keys(),
            &seen,
        )
        .await?;

        // Findings describe the current documents: replaced as a whole when they change.
        sqlx::query("DELETE FROM findings WHERE server_id = $1")
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        insert_findings(&mut tx, Some(server_id), None, run_id, &c.findings).await?;
        self.commit_logged(tx, log).await?;
        Ok(summary)
    }

    /// Servers that a parent no longer lists in `related_metadata` leave search (history kept).
    ///
    /// Every committed server comes through here, and almost none has a child to retire, so
    /// the children are read first outside a transaction: the common case costs one query
    /// and no commit. The update re-checks the status, so a concurrent change is not undone.
    pub async fn retire_unlisted_children(
        &self,
        run_id: i64,
        parent_url: &str,
        listed: &[String],
    ) -> Result<usize> {
        let mut retire = Vec::new();
        for r in sqlx::query(
            "SELECT c.id, c.url FROM servers c JOIN servers p ON c.parent_id = p.id \
             WHERE p.url = $1 AND c.status <> 'gone'",
        )
        .bind(parent_url)
        .fetch_all(&self.pool)
        .await?
        {
            let id: i64 = r.try_get("id")?;
            let url: String = r.try_get("url")?;
            if !listed.contains(&url) {
                retire.push((id, url));
            }
        }
        if retire.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut log = ChangeLog::default();
        let mut n = 0;
        for (id, url) in retire {
            let hit = sqlx::query(
                "UPDATE servers SET status = 'gone' WHERE id = $1 AND status <> 'gone'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if hit == 0 {
                continue;
            }
            change(
                &mut log,
                Some(run_id),
                "server",
                "gone",
                Some(id),
                &url,
                Some("no longer in related_metadata".into()),
            );
            n += 1;
        }
        self.commit_logged(tx, log).await?;
        Ok(n)
    }

    /// Remove a host: it is no longer crawled and its servers leave search; rows and
    /// history are kept (an operator can add it again).
    pub async fn remove_host(&self, host_id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut log = ChangeLog::default();
        let r = sqlx::query("UPDATE hosts SET status = 'removed' WHERE id = $1")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let ids: Vec<(i64, String)> =
            sqlx::query("SELECT id, url FROM servers WHERE host_id = $1 AND status <> 'gone'")
                .bind(host_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("url")?)))
                .collect::<Result<_>>()?;
        for (id, url) in ids {
            sqlx::query("UPDATE servers SET status = 'gone' WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            change(
                &mut log,
                None,
                "server",
                "gone",
                Some(id),
                &url,
                Some("host removed".into()),
            );
        }
        self.commit_logged(tx, log).await?;
        Ok(())
    }

    /// Replace every cross-server finding (XS-AUTH-CONFLICT) with `findings`, each stored
    /// against its `server_id`, in one transaction: readers see the old set or the new one,
    /// never a mix. These findings depend on several servers at once, so they are recomputed
    /// as a whole after each run instead of being committed with one server's state.
    pub async fn replace_cross_server_findings(
        &self,
        run_id: i64,
        findings: &[(i64, Finding)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM findings WHERE rule = $1")
            .bind(rules::XS_AUTH_CONFLICT)
            .execute(&mut *tx)
            .await?;
        for (server_id, f) in findings {
            insert_findings(
                &mut tx,
                Some(*server_id),
                None,
                run_id,
                std::slice::from_ref(f),
            )
            .await?;
        }
        self.commit_notify(tx).await?;
        Ok(())
    }
}
