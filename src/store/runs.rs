//! Work distribution through the database: runs, leases, and the one-run-at-a-time lock.
//!
//! A run marks the hosts it wants crawled (`hosts.run_id`). Any number of workers, in any
//! number of processes, lease marked hosts: on Postgres with `FOR UPDATE SKIP LOCKED`, so
//! two workers never take the same host; on SQLite the single writer serialises the same
//! statement. A lease expires unless renewed, so a dead worker's hosts are picked up by
//! another. The outcome is recorded — and the host released — only by the lease holder,
//! in one transaction, so each host has exactly one outcome per run.
//!
//! A worker renews only the hosts it has in hand, for a bounded time after taking them,
//! and each takeover of an expired lease is counted (`hosts.lease_expiries`, reset by the
//! outcome): the crawler records a host that keeps losing its workers as `timeout` rather
//! than crawling it again, so no host holds a run open forever.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};
use utoipa::ToSchema;

use super::hosts::{host_cols, host_row};
use super::rows::data_kept;
use super::{now_ms, Backend, HostRow, Result, Store, StoreError};
use crate::model::{HostSource, HostStatus, Outcome, RunStatus};

/// A leased host, with the run that wants it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub host: HostRow,
    pub run_id: i64,
    /// Expired leases taken over since the host's last recorded outcome, this one
    /// included: how often a worker took the host and never finished it.
    pub lease_expiries: i64,
}

/// A crawl run as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
#[schema(as = CrawlRun)]
pub struct RunRow {
    pub id: i64,
    pub trigger: String,
    #[schema(value_type = String)]
    pub status: RunStatus,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    #[sqlx(skip)]
    pub duration_ms: Option<i64>,
    pub hosts_total: i64,
    /// Hosts not crawled yet (live while running).
    #[sqlx(rename = "pending")]
    pub hosts_pending: i64,
    #[sqlx(rename = "ok")]
    pub hosts_ok: i64,
    #[sqlx(rename = "failed")]
    pub hosts_failed: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
    pub findings: i64,
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunTotals {
    pub hosts_total: i64,
    pub hosts_ok: i64,
    pub hosts_failed: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
    pub findings: i64,
}

/// The outcome of one crawl of a host.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(as = CrawlOutcome)]
pub struct OutcomeRow {
    pub run_id: i64,
    pub host_id: i64,
    /// `ok`, `partial`, `dns`, `connect`, `tls`, `timeout`, `http_status`, `too_large`,
    /// `invalid_json`, `blocked`, `too_many_redirects`, `invalid`, `limit`,
    /// `store_error` or `other` (checked against [`Outcome`] by a test).
    #[schema(value_type = String)]
    pub outcome: Outcome,
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

/// The columns of [`OutcomeRow`] in `crawl_outcomes o`.
macro_rules! outcome_cols {
    () => {
        "o.run_id, o.host_id, o.outcome, o.detail, o.http_status, o.url, o.started_ms, \
         o.finished_ms, o.docs_fetched, o.docs_unchanged, o.bytes"
    };
}
pub(super) use outcome_cols;

/// Take over a lease when it is free or expired (its holder died or got stuck before
/// recording an outcome), which counts one expiry: the SET expressions see the row as it
/// was before the update, so `lease_until_ms IS NOT NULL` means some worker held the host
/// and never released it. `$lock` is empty on SQLite (one writer at a time) and
/// `FOR UPDATE SKIP LOCKED` on Postgres, which lets concurrent workers pass each other's
/// rows by.
macro_rules! lease_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE hosts SET lease_owner = $1, lease_until_ms = $2, lease_taken_ms = $3, \
             lease_expiries = lease_expiries + CASE WHEN lease_until_ms IS NULL THEN 0 ELSE 1 END WHERE id IN (\
             SELECT id FROM hosts WHERE run_id IS NOT NULL AND (lease_until_ms IS NULL OR lease_until_ms < $3) \
             ORDER BY id LIMIT $4",
            $lock,
            ") RETURNING ",
            host_cols!(),
            ", run_id, lease_expiries"
        )
    };
}
const LEASE_SQLITE: &str = lease_sql!("");
const LEASE_POSTGRES: &str = lease_sql!(" FOR UPDATE SKIP LOCKED");

fn run_row(r: &AnyRow) -> Result<RunRow> {
    let mut run = RunRow::from_row(r)?;
    run.duration_ms = run.finished_ms.map(|f| f - run.started_ms);
    Ok(run)
}

// Live counts come from the outcomes and the marked hosts, so progress is visible while
// any worker (in any process) is still crawling.
const RUN_COLS: &str = concat!(
    "r.id, r.trigger, r.status, r.started_ms, r.finished_ms, r.hosts_total, r.findings, \
    (SELECT COUNT(*) FROM hosts h WHERE h.run_id = r.id) AS pending, \
    (SELECT COUNT(*) FROM crawl_outcomes o WHERE o.run_id = r.id AND o.outcome IN ",
    data_kept!(),
    ") AS ok, (SELECT COUNT(*) FROM crawl_outcomes o WHERE o.run_id = r.id AND o.outcome NOT IN ",
    data_kept!(),
    ") AS failed, \
    CAST((SELECT COALESCE(SUM(o.docs_fetched), 0) FROM crawl_outcomes o WHERE o.run_id = r.id) AS BIGINT) AS docs_fetched, \
    CAST((SELECT COALESCE(SUM(o.docs_unchanged), 0) FROM crawl_outcomes o WHERE o.run_id = r.id) AS BIGINT) AS docs_unchanged, \
    CAST((SELECT COALESCE(SUM(o.bytes), 0) FROM crawl_outcomes o WHERE o.run_id = r.id) AS BIGINT) AS bytes"
);

impl Store {
    /// Start a run unless one is running: mark the named hosts (by seed), or every due
    /// host. Returns `None` when another run holds the lock.
    /// The change-log `seq` of the newest cross-server refresh (`None`: never).
    pub async fn last_cross_seq(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT cross_seq FROM crawl_runs WHERE cross_seq IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Record that run `run_id` computed the cross-server findings at change-log `seq`.
    pub async fn set_cross_seq(&self, run_id: i64, seq: i64) -> Result<()> {
        sqlx::query("UPDATE crawl_runs SET cross_seq = $1 WHERE id = $2")
            .bind(seq)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn begin_run(&self, trigger: &str, named: &[String]) -> Result<Option<(i64, i64)>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO crawl_runs (trigger, status, started_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(trigger)
        .bind(RunStatus::Running)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let run_id: i64 = row.try_get("id")?;
        // Concurrent triggers serialise on this row; the loser sees run_id set and backs off.
        let got = sqlx::query("UPDATE crawl_lock SET run_id = $1 WHERE id = 1 AND run_id IS NULL")
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if got == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let marked = if named.is_empty() {
            sqlx::query(
                "UPDATE hosts SET run_id = $1 WHERE source <> $3 AND status <> $4 AND next_due_ms <= $2",
            )
            .bind(run_id)
            .bind(now)
            .bind(HostSource::Discovered)
            .bind(HostStatus::Removed)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            let mut n = 0;
            for seed in named {
                n += sqlx::query("UPDATE hosts SET run_id = $1 WHERE LOWER(seed) = LOWER($2)")
                    .bind(run_id)
                    .bind(seed)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            n
        } as i64;
        sqlx::query("UPDATE crawl_runs SET hosts_total = $1, hosts_pending = $1 WHERE id = $2")
            .bind(marked)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if marked == 0 {
            self.maybe_finish_run(run_id).await?;
        }
        Ok(Some((run_id, marked)))
    }

    /// Lease up to `n` marked hosts for `worker` until `until_ms`.
    pub async fn lease_hosts(&self, worker: &str, n: usize, until_ms: i64) -> Result<Vec<Leased>> {
        let sql = match self.backend {
            Backend::Sqlite => LEASE_SQLITE,
            Backend::Postgres => LEASE_POSTGRES,
        };
        let rows = sqlx::query(sql)
            .bind(worker)
            .bind(until_ms)
            .bind(now_ms())
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Leased {
                    host: host_row(r)?,
                    run_id: r.try_get("run_id")?,
                    lease_expiries: r.try_get("lease_expiries")?,
                })
            })
            .collect()
    }

    /// Extend `worker`'s leases on `host_ids` (the hosts it has in hand), as far as it took
    /// them at or after `taken_after_ms` (called while it works).
    ///
    /// A host whose attempt ended without an outcome (recording failed) is no longer in
    /// hand, so its lease lapses within `lease_secs` and the host is crawled again. A host
    /// held longer than the cut-off is not renewed either: another worker takes it over
    /// (counted in `lease_expiries`), so a crawl stuck where its time budget cannot stop
    /// it still holds the host, and the run, for a bounded time only.
    pub async fn renew_leases(
        &self,
        worker: &str,
        until_ms: i64,
        taken_after_ms: i64,
        host_ids: &[i64],
    ) -> Result<u64> {
        if host_ids.is_empty() {
            return Ok(0);
        }
        let list = (0..host_ids.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE hosts SET lease_until_ms = $1 WHERE lease_owner = $2 AND run_id IS NOT NULL \
             AND lease_taken_ms >= $3 AND id IN ({list})"
        );
        let mut q = sqlx::query(&sql)
            .bind(until_ms)
            .bind(worker)
            .bind(taken_after_ms);
        for id in host_ids {
            q = q.bind(*id);
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    /// Finish `run_id` when no host is left for it; releases the run lock. Idempotent and
    /// safe to call from any worker at any time.
    pub async fn maybe_finish_run(&self, run_id: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE crawl_runs SET status = $3, finished_ms = $2, hosts_pending = 0 \
             WHERE id = $1 AND status = $4 AND NOT EXISTS (SELECT 1 FROM hosts WHERE run_id = $1)",
        )
        .bind(run_id)
        .bind(now_ms())
        .bind(RunStatus::Finished)
        .bind(RunStatus::Running)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            let t = sqlx::query(&format!(
                "SELECT {RUN_COLS} FROM crawl_runs r WHERE r.id = $1"
            ))
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)
            .and_then(|r| run_row(&r))?;
            sqlx::query(
                "UPDATE crawl_runs SET hosts_ok = $1, hosts_failed = $2, docs_fetched = $3, docs_unchanged = $4, \
                 bytes = $5 WHERE id = $6",
            )
            .bind(t.hosts_ok)
            .bind(t.hosts_failed)
            .bind(t.docs_fetched)
            .bind(t.docs_unchanged)
            .bind(t.bytes)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE crawl_lock SET run_id = NULL WHERE id = 1 AND run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The run holding the lock, if any.
    pub async fn running_run(&self) -> Result<Option<i64>> {
        let r = sqlx::query("SELECT run_id FROM crawl_lock WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("run_id")?)
    }

    /// Add to a run's findings total (cross-server findings are computed after the hosts).
    pub async fn add_run_findings(&self, run_id: i64, n: i64) -> Result<()> {
        sqlx::query("UPDATE crawl_runs SET findings = findings + $1 WHERE id = $2")
            .bind(n)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn run(&self, id: i64) -> Result<RunRow> {
        let r = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM crawl_runs r WHERE r.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        run_row(&r)
    }

    /// Runs, newest first, before `before_id` (exclusive; 0 = from the newest).
    pub async fn list_runs(&self, before_id: i64, limit: i64) -> Result<Vec<RunRow>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM crawl_runs r WHERE ($1 = 0 OR r.id < $1) ORDER BY r.id DESC LIMIT $2"
        ))
        .bind(before_id)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_row)
        .collect()
    }

    /// Totals of a run from its recorded outcomes.
    pub async fn run_totals(&self, run_id: i64) -> Result<RunTotals> {
        let r = self.run(run_id).await?;
        Ok(RunTotals {
            hosts_total: r.hosts_total,
            hosts_ok: r.hosts_ok,
            hosts_failed: r.hosts_failed,
            docs_fetched: r.docs_fetched,
            docs_unchanged: r.docs_unchanged,
            bytes: r.bytes,
            findings: r.findings,
        })
    }

    /// Outcomes of one run, by host seed (tests and the CLI summary).
    pub async fn run_outcomes(&self, run_id: i64) -> Result<Vec<(String, OutcomeRow)>> {
        sqlx::query(concat!(
            "SELECT h.seed, ",
            outcome_cols!(),
            " FROM crawl_outcomes o JOIN hosts h ON h.id = o.host_id WHERE o.run_id = $1 ORDER BY o.id"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("seed")?, OutcomeRow::from_row(r)?)))
        .collect()
    }

    /// Hosts currently leased, by worker (for metrics).
    pub async fn lease_counts(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query(
            "SELECT lease_owner, COUNT(*) AS n FROM hosts WHERE run_id IS NOT NULL AND lease_owner IS NOT NULL \
             AND lease_until_ms >= $1 GROUP BY lease_owner ORDER BY lease_owner",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("lease_owner")?, r.try_get("n")?)))
        .collect()
    }
}
