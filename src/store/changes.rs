//! The change log (`GET /v1/changes`): rows recorded during a transaction and written,
//! in order, just before it commits, under a lock that makes `seq` order the commit order.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::sql::{MultiRow, SQLITE_MAX_BINDS};
use super::{now_ms, Backend, Result, Store};
use crate::model::{ChangeEntity, ChangeOp};

/// Postgres advisory lock key that orders change-log writers ([`Store::commit_logged`]);
/// any other writer of `changes` must take it too. ("CDSCHG" in ASCII.)
pub const CHANGE_LOG_LOCK: i64 = 0x4344_5343_4847;

/// One row of the change log (`GET /v1/changes`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Change)]
pub struct ChangeRow {
    pub seq: i64,
    pub at_ms: i64,
    pub run_id: Option<i64>,
    #[schema(value_type = String)]
    pub entity: ChangeEntity,
    #[schema(value_type = String)]
    pub op: ChangeOp,
    pub server_id: Option<i64>,
    #[serde(rename = "ref")]
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub detail: Option<String>,
    /// `scope` rows: the type of the scope (WG1-02 §3.3), when it has one; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_type: Option<String>,
}

/// Change-log rows of one transaction, written together just before it commits
/// ([`Store::commit_logged`]).
#[derive(Debug, Default)]
pub(super) struct ChangeLog(Vec<ChangeRow>);

impl ChangeLog {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    fn push(
        &mut self,
        run_id: Option<i64>,
        entity: ChangeEntity,
        op: ChangeOp,
        reference: &str,
    ) -> &mut ChangeRow {
        self.0.push(ChangeRow {
            seq: 0,
            at_ms: now_ms(),
            run_id,
            entity,
            op,
            server_id: None,
            reference: reference.to_owned(),
            detail: None,
            scope_type: None,
        });
        self.0.last_mut().expect("just pushed")
    }

    /// A `server` row (ref: the server's URL, or its id where the URL is not at hand).
    pub(super) fn server(
        &mut self,
        run_id: Option<i64>,
        op: ChangeOp,
        server_id: i64,
        reference: &str,
        detail: Option<String>,
    ) {
        let c = self.push(run_id, ChangeEntity::Server, op, reference);
        c.server_id = Some(server_id);
        c.detail = detail;
    }

    /// An `entry` row (ref: the entry's own id on its server).
    pub(super) fn entry(&mut self, run_id: i64, op: ChangeOp, server_id: i64, entry_id: &str) {
        self.push(Some(run_id), ChangeEntity::Entry, op, entry_id)
            .server_id = Some(server_id);
    }

    /// A `scope` row (ref `scope@entry_id`) that also names the scope's type, so a client
    /// following the feed can match it by type as WG1-02 §3.3 requires.
    pub(super) fn scope(
        &mut self,
        run_id: i64,
        op: ChangeOp,
        server_id: i64,
        pair: &str,
        scope_type: Option<String>,
    ) {
        let c = self.push(Some(run_id), ChangeEntity::Scope, op, pair);
        c.server_id = Some(server_id);
        c.scope_type = scope_type;
    }

    /// A `host` row: the host (ref: its id) moved to `to`.
    pub(super) fn host_moved(&mut self, run_id: i64, host_id: i64, to: Option<String>) {
        let reference = host_id.to_string();
        self.push(
            Some(run_id),
            ChangeEntity::Host,
            ChangeOp::Moved,
            &reference,
        )
        .detail = to;
    }
}

/// Multi-row, in log order: each backend numbers `seq` in the order of the VALUES rows,
/// so the feed keeps the order the changes were recorded in. Sized to the lower (SQLite)
/// parameter limit, which holds on both backends.
async fn insert_changes(tx: &mut Transaction<'_, Any>, log: ChangeLog) -> Result<()> {
    MultiRow {
        head: "INSERT INTO changes (at_ms, run_id, entity, op, server_id, ref, detail, scope_type)",
        cols: 8,
        tail: "",
    }
    .write(tx, SQLITE_MAX_BINDS, &log.0, |q, c| {
        q.bind(c.at_ms)
            .bind(c.run_id)
            .bind(c.entity)
            .bind(c.op)
            .bind(c.server_id)
            .bind(c.reference.as_str())
            .bind(c.detail.as_deref())
            .bind(c.scope_type.as_deref())
    })
    .await
}

impl Store {
    /// Commit a transaction and, on Postgres, notify `cds_changes` (delivered at commit,
    /// collapsed per transaction), so API replicas refresh their index at once instead of
    /// at their next periodic check. Transactions that logged no change commit without
    /// it ([`Store::commit_logged`]): a re-crawl where every document answers 304 would
    /// otherwise wake every replica once per host for nothing.
    pub(super) async fn commit_notify(&self, mut tx: Transaction<'_, Any>) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify('cds_changes', '')")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Commit a transaction with its change-log rows, which are written last.
    ///
    /// Readers of the change feed (`GET /v1/changes`, API replicas catching up) keep the
    /// highest `seq` they have seen and ask for what follows, so a row must never become
    /// visible after a row with a higher `seq`. With concurrent writers it could: a
    /// sequence number is taken at insert, visibility comes at commit, and two
    /// transactions can commit in the other order. On Postgres the rows are therefore
    /// inserted under a transaction-level advisory lock held until commit, which makes
    /// `seq` order the commit order; only the insert, the notification and the commit run
    /// under it, so commits wait for each other for about one WAL flush. SQLite has one
    /// writer at a time already.
    pub(super) async fn commit_logged(
        &self,
        mut tx: Transaction<'_, Any>,
        log: ChangeLog,
    ) -> Result<()> {
        if log.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGE_LOG_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        insert_changes(&mut tx, log).await?;
        self.commit_notify(tx).await
    }

    /// The change feed after `after` (exclusive), oldest first.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        Ok(sqlx::query_as(
            "SELECT seq, at_ms, run_id, entity, op, server_id, ref, detail, scope_type FROM changes \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest change-log sequence number (0 when empty).
    pub async fn max_change_seq(&self) -> Result<i64> {
        let r = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) AS m FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("m")?)
    }

    /// When the first and the newest change-log rows were written (ms since the epoch);
    /// `None` while the log is empty. The published metadata's `created` and `updated`.
    /// Both read one row by primary key, however long the log.
    pub async fn change_span_ms(&self) -> Result<Option<(i64, i64)>> {
        let r = sqlx::query(
            "SELECT (SELECT at_ms FROM changes ORDER BY seq ASC LIMIT 1) AS first_ms, \
                    (SELECT at_ms FROM changes ORDER BY seq DESC LIMIT 1) AS last_ms",
        )
        .fetch_one(&self.pool)
        .await?;
        let first: Option<i64> = r.try_get("first_ms")?;
        let last: Option<i64> = r.try_get("last_ms")?;
        Ok(first.zip(last))
    }

    /// Server ids touched by changes after `after` (None: a change without a server,
    /// e.g. a host moved — the caller reloads everything then).
    pub async fn changed_servers_after(&self, after: i64) -> Result<Vec<Option<i64>>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT server_id FROM changes WHERE seq > $1")
                .bind(after)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
