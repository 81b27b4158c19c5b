//! Conformance findings as stored: per server (replaced with its documents), per host
//! (replaced with its outcome) and cross-server (replaced after each run).

use serde::Serialize;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use super::sql::{MultiRow, SQLITE_MAX_BINDS};
use super::{now_ms, Result, Store};
use crate::cds::validate::rules;
use crate::cds::Finding;
use crate::model::Severity;

/// A conformance finding as stored.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[schema(as = Finding)]
pub struct FindingRow {
    pub id: i64,
    pub server_id: Option<i64>,
    pub host_id: Option<i64>,
    pub run_id: i64,
    /// Rule id, e.g. `COV-COUNTRY` or `META-REQUIRED:name` (see the README's rule table).
    pub rule: String,
    /// `error`, `warning` or `info`.
    #[schema(value_type = String)]
    pub severity: Severity,
    /// What to fix.
    pub message: String,
    /// The document the finding is about.
    pub url: String,
    /// RFC 6901 JSON pointer inside that document (`""` = the whole document).
    pub pointer: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// Filters of `GET /v1/findings`.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub severity: Option<Severity>,
    pub rule: Option<String>,
    pub server_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

/// Who a set of findings belongs to: a server, or a host (findings about no server).
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner {
    Server(i64),
    Host(i64),
}

impl Owner {
    /// `(server_id, host_id)` of its rows.
    fn ids(self) -> (Option<i64>, Option<i64>) {
        match self {
            Owner::Server(id) => (Some(id), None),
            Owner::Host(id) => (None, Some(id)),
        }
    }
}

/// Replace the findings of `owner` with `findings`, inside the caller's transaction:
/// findings describe the current documents, so they are replaced as a whole.
pub(super) async fn replace_findings(
    tx: &mut Transaction<'_, Any>,
    owner: Owner,
    run_id: i64,
    findings: &[Finding],
) -> Result<()> {
    let delete = match owner {
        Owner::Server(id) => sqlx::query("DELETE FROM findings WHERE server_id = $1").bind(id),
        Owner::Host(id) => {
            sqlx::query("DELETE FROM findings WHERE host_id = $1 AND server_id IS NULL").bind(id)
        }
    };
    delete.execute(&mut **tx).await?;
    insert_findings(tx, owner, run_id, findings).await
}

async fn insert_findings(
    tx: &mut Transaction<'_, Any>,
    owner: Owner,
    run_id: i64,
    findings: &[Finding],
) -> Result<()> {
    let (server_id, host_id) = owner.ids();
    let now = now_ms();
    MultiRow {
        head: "INSERT INTO findings (server_id, host_id, run_id, rule, severity, message, url, pointer, \
               expected, actual, created_ms)",
        cols: 11,
        tail: "",
    }
    .write(tx, SQLITE_MAX_BINDS, findings, |q, f| {
        q.bind(server_id)
            .bind(host_id)
            .bind(run_id)
            .bind(f.rule.as_str())
            .bind(f.severity)
            .bind(f.message.as_str())
            .bind(f.url.as_str())
            .bind(f.pointer.as_str())
            .bind(f.expected.as_deref())
            .bind(f.actual.as_deref())
            .bind(now)
    })
    .await
}

impl Store {
    pub async fn list_findings(&self, f: &FindingFilter) -> Result<Vec<FindingRow>> {
        // Fixed SQL with "match anything" sentinels keeps one static statement for both
        // backends (no dynamic placeholders, see CRATES.md).
        Ok(sqlx::query_as(
            "SELECT id, server_id, host_id, run_id, rule, severity, message, url, pointer, expected, actual \
             FROM findings WHERE ($1 = '' OR severity = $1) AND ($2 = '' OR rule = $2) \
             AND ($3 = 0 OR server_id = $3) AND id > $4 ORDER BY id LIMIT $5",
        )
        .bind(f.severity.map(Severity::as_str).unwrap_or_default())
        .bind(f.rule.clone().unwrap_or_default())
        .bind(f.server_id.unwrap_or(0))
        .bind(f.after_id)
        .bind(f.limit.max(1))
        .fetch_all(&self.pool)
        .await?)
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
            let owner = Owner::Server(*server_id);
            insert_findings(&mut tx, owner, run_id, std::slice::from_ref(f)).await?;
        }
        self.commit_notify(tx).await?;
        Ok(())
    }
}
