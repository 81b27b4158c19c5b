//! The one-transaction commit of a server's new state: documents, the server row,
//! territories, the entry diff, OAuth, findings and the change log, as named steps.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::{Any, Transaction};

use super::changes::ChangeLog;
use super::findings::{replace_findings, Owner};
use super::sql::{rows_per_statement, to_json_list, Marks, MultiRow};
use super::sql::{POSTGRES_MAX_BINDS, SQLITE_MAX_BINDS};
use super::{now_ms, Backend, Result, Store, StoreError};
use crate::cds::{CoverageEntry, Finding};
use crate::model::{ChangeOp, DocKind, ServerStatus};

/// A fetched document to remember for conditional GET and history.
#[derive(Debug, Clone)]
pub struct DocumentRecord {
    pub url: String,
    pub kind: DocKind,
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

/// One coverage entry of a server's new state. Its fields are read from `raw_json` when
/// the commit writes them ([`EntryRecord::entry`]), not held parsed beside it from the
/// listing to the commit: for a 100,000-entry listing that copy was ~90 MB for the whole
/// territory phase (docs/PERFORMANCE.md "Scale").
#[derive(Debug, Clone)]
pub struct EntryRecord {
    /// The entry's `id` ([`CoverageEntry::id_of`]): the key of the commit's diff.
    pub id: String,
    /// Its `geojson_resource`, as listed.
    pub geojson_resource: Option<String>,
    /// The entry's JSON as the server published it (extension fields included).
    pub raw_json: String,
    pub page_url: String,
    pub content_hash: String,
    /// (source_url, source_hash) of its territory, when it has one: one shared copy for
    /// all the entries that link the territory and the crawl's own note of it (100,000
    /// owned pairs were ~11 MB of a first crawl's peak, docs/PERFORMANCE.md "Scale").
    pub territory: Option<Arc<(String, String)>>,
}

impl EntryRecord {
    /// A record of the entry `v` (its JSON serialised as `raw_json`), listed on `page_url`;
    /// `content_hash` empty and `territory` unset until the territories are known.
    pub fn of(v: &serde_json::Value, page_url: String) -> EntryRecord {
        let mut raw = serde_json::to_string(v).unwrap_or_default();
        // Serializing grows the string by doubling: up to half of it spare, held until
        // the commit.
        raw.shrink_to_fit();
        EntryRecord {
            id: CoverageEntry::id_of(v),
            geojson_resource: CoverageEntry::geojson_resource_of(v),
            raw_json: raw,
            page_url,
            content_hash: String::new(),
            territory: None,
        }
    }

    /// The entry's fields, read from `raw_json` (as [`CoverageEntry::from_value`]); a
    /// `raw_json` that is not JSON (only a hand-made record can have one) reads as empty
    /// fields with the record's `id`.
    pub fn entry(&self) -> CoverageEntry {
        match serde_json::from_str::<serde_json::Value>(&self.raw_json) {
            Ok(v) => CoverageEntry::from_value(&v),
            Err(_) => CoverageEntry {
                id: self.id.clone(),
                geojson_resource: self.geojson_resource.clone(),
                ..CoverageEntry::default()
            },
        }
    }
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

/// One commit's transaction and what it needs at every step.
struct Commit<'c> {
    tx: Transaction<'static, Any>,
    log: ChangeLog,
    run_id: i64,
    now: i64,
    max_binds: usize,
    c: &'c ServerCommit,
}

impl Store {
    /// Commit a server's new state in one transaction. Nothing is written when the
    /// transaction fails, so the previous state stays intact.
    pub async fn commit_server(&self, run_id: i64, c: &ServerCommit) -> Result<CommitSummary> {
        let max_binds = match self.backend {
            Backend::Sqlite => SQLITE_MAX_BINDS,
            Backend::Postgres => POSTGRES_MAX_BINDS,
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
        let mut w = Commit {
            tx: self.pool.begin().await?,
            log: ChangeLog::default(),
            run_id,
            now: now_ms(),
            max_binds,
            c,
        };
        w.documents().await?;
        let parent_id = w.parent_id().await?;
        let mut summary = CommitSummary::default();
        let existing = w.existing_server().await?;
        if let Some((id, hash, status)) = &existing {
            if *hash == c.content_hash {
                w.touch_unchanged(*id, *status, parent_id).await?;
                summary.server_id = *id;
                self.commit_logged(w.tx, w.log).await?;
                return Ok(summary);
            }
        }
        summary.changed = true;
        let server_id = w.upsert_server(parent_id, existing.is_some()).await?;
        summary.server_id = server_id;
        let territory_ids = w.territories().await?;
        let old = w.stored_entries(server_id).await?;
        let seen = w
            .entries(server_id, &territory_ids, &old, &mut summary)
            .await?;
        super::oauth::commit_oauth(
            &mut w.tx,
            &mut w.log,
            run_id,
            server_id,
            c.oauth.as_ref(),
            old.keys(),
            &seen,
        )
        .await?;
        replace_findings(&mut w.tx, Owner::Server(server_id), run_id, &c.findings).await?;
        self.commit_logged(w.tx, w.log).await?;
        Ok(summary)
    }
}

/// Stored entries of a server: entry id -> (row id, content hash).
type StoredEntries = HashMap<String, (i64, String)>;

impl Commit<'_> {
    /// Documents (for conditional GET) and their history.
    async fn documents(&mut self) -> Result<()> {
        let (now, c) = (self.now, self.c);
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
        MultiRow {
            head: "INSERT INTO documents (url, kind, etag, last_modified, content_hash, http_status, size, \
                   fetched_ms, body)",
            cols: 9,
            tail: "ON CONFLICT (url) DO UPDATE SET kind = excluded.kind, \
                   etag = excluded.etag, last_modified = excluded.last_modified, content_hash = excluded.content_hash, \
                   http_status = excluded.http_status, size = excluded.size, fetched_ms = excluded.fetched_ms, \
                   body = excluded.body",
        }
        .write(&mut self.tx, self.max_binds, &docs, |q, d| {
            q.bind(d.url.as_str())
                .bind(d.kind)
                .bind(d.etag.as_deref())
                .bind(d.last_modified.as_deref())
                .bind(d.content_hash.as_str())
                .bind(d.http_status as i64)
                .bind(d.size)
                .bind(now)
                .bind(d.body.as_deref())
        })
        .await?;
        // History: the first content seen for (url, hash) stays; every record is offered
        // in order, duplicates included, which DO NOTHING resolves as row-by-row did.
        MultiRow {
            head: "INSERT INTO document_versions (url, kind, content_hash, size, body, first_seen_ms)",
            cols: 6,
            tail: "ON CONFLICT (url, content_hash) DO NOTHING",
        }
        .write(&mut self.tx, self.max_binds, &c.documents, |q, d| {
            q.bind(d.url.as_str())
                .bind(d.kind)
                .bind(d.content_hash.as_str())
                .bind(d.size)
                .bind(d.body.as_deref())
                .bind(now)
        })
        .await
    }

    async fn parent_id(&mut self) -> Result<Option<i64>> {
        let Some(p) = &self.c.parent_url else {
            return Ok(None);
        };
        Ok(sqlx::query_scalar("SELECT id FROM servers WHERE url = $1")
            .bind(p)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    /// The stored server at this URL: (id, content hash, status).
    async fn existing_server(&mut self) -> Result<Option<(i64, String, ServerStatus)>> {
        Ok(
            sqlx::query_as("SELECT id, content_hash, status FROM servers WHERE url = $1")
                .bind(&self.c.url)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    /// The server is stored with the same content hash, so nothing of it changed: only
    /// its crawl state is touched, and it is active again.
    async fn touch_unchanged(
        &mut self,
        id: i64,
        status: ServerStatus,
        parent_id: Option<i64>,
    ) -> Result<()> {
        let c = self.c;
        sqlx::query(
            "UPDATE servers SET last_success_ms = $1, status = $2, host_id = $3, parent_id = $4, \
             depth = $5, last_failure = NULL WHERE id = $6",
        )
        .bind(self.now)
        .bind(ServerStatus::Active)
        .bind(c.host_id)
        .bind(parent_id)
        .bind(c.depth)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        if status != ServerStatus::Active {
            self.log
                .server(Some(self.run_id), ChangeOp::Active, id, &c.url, None);
        }
        Ok(())
    }

    /// Insert or update the server row (it changed); returns its id.
    async fn upsert_server(&mut self, parent_id: Option<i64>, existed: bool) -> Result<i64> {
        let c = self.c;
        let server_id: i64 = sqlx::query_scalar(
            "INSERT INTO servers (url, host_id, parent_id, depth, status, name, metadata_json, capabilities, \
             content_hash, first_seen_ms, last_success_ms, last_changed_ms) \
             VALUES ($1, $2, $3, $4, $10, $5, $6, $7, $8, $9, $9, $9) \
             ON CONFLICT (url) DO UPDATE SET host_id = excluded.host_id, parent_id = excluded.parent_id, \
             depth = excluded.depth, status = excluded.status, name = excluded.name, \
             metadata_json = excluded.metadata_json, capabilities = excluded.capabilities, \
             content_hash = excluded.content_hash, last_success_ms = excluded.last_success_ms, \
             last_changed_ms = excluded.last_changed_ms, last_failure = NULL \
             RETURNING id",
        )
        .bind(&c.url)
        .bind(c.host_id)
        .bind(parent_id)
        .bind(c.depth)
        .bind(&c.name)
        .bind(&c.metadata_json)
        .bind(to_json_list(&c.capabilities))
        .bind(&c.content_hash)
        .bind(self.now)
        .bind(ServerStatus::Active)
        .fetch_one(&mut *self.tx)
        .await?;
        let op = if existed {
            ChangeOp::Updated
        } else {
            ChangeOp::Added
        };
        self.log.server(
            Some(self.run_id),
            op,
            server_id,
            &c.url,
            Some(c.name.clone()),
        );
        Ok(server_id)
    }

    /// Territories: content-addressed, so an unchanged file is stored once. Returns the
    /// ids of every territory the entries use.
    async fn territories(&mut self) -> Result<HashMap<(String, String), i64>> {
        let (now, c) = (self.now, self.c);
        MultiRow {
            head: "INSERT INTO territories (source_url, source_hash, wkb, min_lon, min_lat, max_lon, max_lat, \
                   vertex_count, created_ms)",
            cols: 9,
            tail: "ON CONFLICT (source_url, source_hash) DO NOTHING",
        }
        .write(&mut self.tx, self.max_binds, &c.territories, |q, t| {
            q.bind(t.source_url.as_str())
                .bind(t.source_hash.as_str())
                .bind(t.wkb.as_slice())
                .bind(t.bbox[0])
                .bind(t.bbox[1])
                .bind(t.bbox[2])
                .bind(t.bbox[3])
                .bind(t.vertex_count)
                .bind(now)
        })
        .await?;
        // Looked up by source URL in chunks (one URL may have older versions stored; only
        // the wanted hashes are kept).
        let wanted: HashSet<&(String, String)> = c
            .entries
            .iter()
            .filter_map(|e| e.territory.as_deref())
            .collect();
        let mut urls: Vec<&str> = wanted.iter().map(|k| k.0.as_str()).collect();
        urls.sort_unstable();
        urls.dedup();
        let marks = Marks::of(&self.tx);
        let mut ids: HashMap<(String, String), i64> = HashMap::new();
        for chunk in urls.chunks(rows_per_statement(self.max_binds, 1)) {
            let sql = format!(
                "SELECT source_url, source_hash, id FROM territories WHERE source_url IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql);
            for u in chunk {
                q = q.bind(*u);
            }
            for (url, hash, id) in q.fetch_all(&mut *self.tx).await? {
                let key = (url, hash);
                if wanted.contains(&key) {
                    ids.insert(key, id);
                }
            }
        }
        if let Some(key) = wanted.iter().find(|k| !ids.contains_key(**k)) {
            return Err(StoreError::Other(format!(
                "territory {} ({}) missing",
                key.0, key.1
            )));
        }
        Ok(ids)
    }

    async fn stored_entries(&mut self, server_id: i64) -> Result<StoredEntries> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT entry_id, id, content_hash FROM coverage_entries WHERE server_id = $1",
        )
        .bind(server_id)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(entry_id, id, hash)| (entry_id, (id, hash)))
            .collect())
    }

    /// The entry diff: upsert the listed entries, remove those no longer listed, and log
    /// each added, updated and removed entry. Returns the entry ids the server now has.
    async fn entries(
        &mut self,
        server_id: i64,
        territory_ids: &HashMap<(String, String), i64>,
        old: &StoredEntries,
        summary: &mut CommitSummary,
    ) -> Result<HashSet<String>> {
        let c = self.c;
        let mut seen = HashSet::new();
        // COV-DUP-ID is reported by the validator; the first occurrence is kept, at its
        // position in the listing.
        let rows: Vec<(usize, &EntryRecord)> = c
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(e.id.clone()))
            .collect();
        self.upsert_entries(server_id, territory_ids, &rows).await?;
        for (_, e) in &rows {
            let op = match old.get(&e.id) {
                None => ChangeOp::Added,
                Some((_, h)) if *h != e.content_hash => ChangeOp::Updated,
                Some(_) => continue,
            };
            match op {
                ChangeOp::Added => summary.entries_added += 1,
                _ => summary.entries_updated += 1,
            }
            self.log.entry(self.run_id, op, server_id, &e.id);
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
        let marks = Marks::of(&self.tx);
        for chunk in removed.chunks(rows_per_statement(self.max_binds, 1)) {
            let sql = format!(
                "DELETE FROM coverage_entries WHERE id IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *self.tx).await?;
        }
        for (_, entry_id) in &removed {
            summary.entries_removed += 1;
            self.log
                .entry(self.run_id, ChangeOp::Removed, server_id, entry_id);
        }
        Ok(seen)
    }

    /// Insert or update entries, each at its position in the listing.
    async fn upsert_entries(
        &mut self,
        server_id: i64,
        territory_ids: &HashMap<(String, String), i64>,
        rows: &[(usize, &EntryRecord)],
    ) -> Result<()> {
        MultiRow {
            head: "INSERT INTO coverage_entries (server_id, entry_id, position, page_url, created, updated, \
                   entity_name, entity_abbreviation, country, name, description, entry_type, role, \
                   infrastructure_types, commodity_types, capabilities, map_resource, map_content_type, \
                   geojson_resource, territory_id, raw_json, content_hash, origin)",
            cols: 23,
            tail: "ON CONFLICT (server_id, entry_id) DO UPDATE SET \
                   position = excluded.position, page_url = excluded.page_url, created = excluded.created, \
                   updated = excluded.updated, entity_name = excluded.entity_name, \
                   entity_abbreviation = excluded.entity_abbreviation, country = excluded.country, name = excluded.name, \
                   description = excluded.description, entry_type = excluded.entry_type, role = excluded.role, \
                   infrastructure_types = excluded.infrastructure_types, commodity_types = excluded.commodity_types, \
                   capabilities = excluded.capabilities, map_resource = excluded.map_resource, \
                   map_content_type = excluded.map_content_type, geojson_resource = excluded.geojson_resource, \
                   territory_id = excluded.territory_id, raw_json = excluded.raw_json, content_hash = excluded.content_hash, \
                   origin = excluded.origin",
        }
        .write(&mut self.tx, self.max_binds, rows, |q, (pos, e)| {
            let territory_id = e
                .territory
                .as_ref()
                .and_then(|k| territory_ids.get(&**k).copied());
            let en = e.entry();
            let origin = en
                .origin
                .as_ref()
                .map(|o| serde_json::to_string(o).unwrap_or_default());
            q.bind(server_id)
                .bind(e.id.as_str())
                .bind(*pos as i64)
                .bind(e.page_url.as_str())
                .bind(en.created)
                .bind(en.updated)
                .bind(en.entity_name)
                .bind(en.entity_abbreviation)
                .bind(en.country)
                .bind(en.name)
                .bind(en.description)
                .bind(en.kind)
                .bind(en.role)
                .bind(to_json_list(&en.infrastructure_types))
                .bind(to_json_list(&en.commodity_types))
                .bind(to_json_list(&en.capabilities))
                .bind(en.map_resource)
                .bind(en.map_content_type)
                .bind(e.geojson_resource.as_deref())
                .bind(territory_id)
                .bind(e.raw_json.as_str())
                .bind(e.content_hash.as_str())
                .bind(origin)
        })
        .await
    }
}
