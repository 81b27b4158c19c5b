//! Hosts: adding and removing them, and recording each crawl's outcome, which moves the
//! host through its lifecycle ([`crate::crawl::lifecycle`]).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Row, Transaction};
use utoipa::ToSchema;

use super::changes::ChangeLog;
use super::findings::{replace_findings, Owner};
use super::{now_ms, Result, Store, StoreError};
use crate::cds::Finding;
use crate::crawl::lifecycle::{Attempt, HostState, Lifecycle, Transition};
use crate::model::{ChangeOp, HostSource, HostStatus, Outcome, ServerStatus};
use crate::seeds::Seed;

/// A host the registry crawls, with its crawl state (`GET /v1/hosts`).
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema, FromRow)]
#[schema(as = Host)]
pub struct HostRow {
    pub id: i64,
    /// `name`, `name:port` or a metadata URL, as seeded.
    pub seed: String,
    /// The metadata document URL, when known (seeded URL or found by crawling).
    pub metadata_url: Option<String>,
    /// `seed`, `admin` or `discovered`.
    #[schema(value_type = String)]
    pub source: HostSource,
    /// `active`, `moved`, `stale`, `gone` or `removed`.
    #[schema(value_type = String)]
    pub status: HostStatus,
    /// Where the well-known URL redirected permanently to.
    pub moved_to: Option<String>,
    /// Epoch milliseconds.
    pub created_ms: i64,
    pub last_crawl_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// Classified outcome of the last crawl (`ok`, `dns`, `timeout`, `http_status`, ...).
    #[schema(value_type = Option<String>)]
    pub last_outcome: Option<Outcome>,
    pub last_detail: Option<String>,
    pub consecutive_failures: i64,
    /// When the next scheduled crawl is due (epoch milliseconds).
    pub next_due_ms: i64,
    /// The scheme an origin seed asked for (`https://host/`, `http://host:port/`); null
    /// for a bare host name.
    pub scheme: Option<String>,
    /// The host as people read it: `seed` with internationalised names in unicode.
    #[sqlx(skip)]
    pub display: String,
}

impl HostRow {
    /// The seed this row was stored from.
    pub fn to_seed(&self) -> Seed {
        Seed::from_stored(
            &self.seed,
            self.metadata_url.as_deref(),
            self.scheme.as_deref(),
        )
    }
}

/// The columns of [`HostRow`], for every statement that reads hosts (a macro, so that
/// `concat!` can build whole statements from it).
macro_rules! host_cols {
    () => {
        "id, seed, metadata_url, source, status, moved_to, created_ms, last_crawl_ms, \
         last_success_ms, last_outcome, last_detail, consecutive_failures, next_due_ms, scheme"
    };
}
pub(super) use host_cols;

pub(super) fn host_row(r: &AnyRow) -> Result<HostRow> {
    let mut h = HostRow::from_row(r)?;
    h.display = crate::seeds::display_host(&h.seed);
    Ok(h)
}

/// Per-host result of one crawl, recorded with [`Store::record_outcome`].
#[derive(Debug, Clone, Default)]
pub struct OutcomeRecord {
    pub host_id: i64,
    pub outcome: Outcome,
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
        Ok(sqlx::query_scalar(
            "INSERT INTO hosts (seed, source, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (seed) DO UPDATE SET seed = excluded.seed RETURNING id",
        )
        .bind(seed)
        .bind(HostSource::Discovered)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn list_hosts(&self) -> Result<Vec<HostRow>> {
        sqlx::query(concat!("SELECT ", host_cols!(), " FROM hosts ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(host_row)
            .collect()
    }

    /// Remove a host: it is no longer crawled and its servers leave search; rows and
    /// history are kept (an operator can add it again).
    pub async fn remove_host(&self, host_id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut log = ChangeLog::default();
        let r = sqlx::query("UPDATE hosts SET status = $1 WHERE id = $2")
            .bind(HostStatus::Removed)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let servers: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, url FROM servers WHERE host_id = $1 AND status <> $2")
                .bind(host_id)
                .bind(ServerStatus::Gone)
                .fetch_all(&mut *tx)
                .await?;
        for (id, url) in servers {
            sqlx::query("UPDATE servers SET status = $1 WHERE id = $2")
                .bind(ServerStatus::Gone)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            log.server(None, ChangeOp::Gone, id, &url, Some("host removed".into()));
        }
        self.commit_logged(tx, log).await?;
        Ok(())
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
        let Some(prev) = release_lease(&mut tx, run_id, worker, o.host_id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        insert_outcome(&mut tx, run_id, worker, o).await?;
        let lifecycle = Lifecycle {
            stale_after_failures,
            gone_after_ms,
        };
        let attempt = Attempt {
            outcome: o.outcome,
            moved_to: o.moved_to.as_deref(),
            at_ms: o.finished_ms,
        };
        let t = lifecycle.transition(&prev, attempt);
        let mut log = ChangeLog::default();
        persist_transition(&mut tx, &mut log, run_id, o, &t).await?;
        replace_findings(&mut tx, Owner::Host(o.host_id), run_id, &o.host_findings).await?;
        self.commit_logged(tx, log).await?;
        Ok(true)
    }
}

/// Release `worker`'s lease on the host and read its previous crawl state, or `None`
/// when the worker no longer holds it.
///
/// One round trip instead of two on the path every host takes: RETURNING gives the row
/// after the update, and none of the columns read change here. An outcome ends the
/// host's run of lease expiries (`runs.rs` counts them to give up on poison hosts).
async fn release_lease(
    tx: &mut Transaction<'_, Any>,
    run_id: i64,
    worker: &str,
    host_id: i64,
) -> Result<Option<HostState>> {
    let Some(r) = sqlx::query(
        "UPDATE hosts SET run_id = NULL, lease_owner = NULL, lease_until_ms = NULL, \
         lease_taken_ms = NULL, lease_expiries = 0 WHERE id = $1 AND run_id = $2 AND lease_owner = $3 \
         RETURNING consecutive_failures, last_success_ms, created_ms, status, moved_to",
    )
    .bind(host_id)
    .bind(run_id)
    .bind(worker)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(HostState {
        status: r.try_get("status")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        last_success_ms: r.try_get("last_success_ms")?,
        created_ms: r.try_get("created_ms")?,
        moved_to: r.try_get("moved_to")?,
    }))
}

async fn insert_outcome(
    tx: &mut Transaction<'_, Any>,
    run_id: i64,
    worker: &str,
    o: &OutcomeRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crawl_outcomes (run_id, host_id, outcome, detail, http_status, url, started_ms, \
         finished_ms, docs_fetched, docs_unchanged, bytes, servers_ok, servers_failed, worker) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(run_id)
    .bind(o.host_id)
    .bind(o.outcome)
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Write a host's [`Transition`]: its crawl state, and its servers' status when they
/// follow it (stale: still searchable, gone: not).
async fn persist_transition(
    tx: &mut Transaction<'_, Any>,
    log: &mut ChangeLog,
    run_id: i64,
    o: &OutcomeRecord,
    t: &Transition,
) -> Result<()> {
    sqlx::query(
        "UPDATE hosts SET last_crawl_ms = $1, last_success_ms = CASE WHEN $2 = 1 THEN $1 ELSE last_success_ms END, \
         last_outcome = $3, last_detail = $4, consecutive_failures = $5, next_due_ms = $6, status = $7, \
         moved_to = CASE WHEN $2 = 1 THEN $8 ELSE moved_to END WHERE id = $9",
    )
    .bind(o.finished_ms)
    .bind(t.succeeded as i64)
    .bind(o.outcome)
    .bind(&o.detail)
    .bind(t.consecutive_failures)
    .bind(o.next_due_ms.unwrap_or(0))
    .bind(t.status)
    .bind(&o.moved_to)
    .bind(o.host_id)
    .execute(&mut **tx)
    .await?;
    if t.moved {
        log.host_moved(run_id, o.host_id, o.moved_to.clone());
    }
    let Some(server_status) = t.servers else {
        return Ok(());
    };
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM servers WHERE host_id = $1 AND status <> $2")
            .bind(o.host_id)
            .bind(server_status)
            .fetch_all(&mut **tx)
            .await?;
    for id in ids {
        sqlx::query("UPDATE servers SET status = $1 WHERE id = $2")
            .bind(server_status)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        log.server(
            Some(run_id),
            server_status.into(),
            id,
            &id.to_string(),
            None,
        );
    }
    Ok(())
}
