//! Servers (crawled metadata documents) as the API shows them, and the status changes
//! that do not come with a commit: retiring unlisted children, noting failures.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::changes::ChangeLog;
use super::rows::{JsonDoc, JsonList};
use super::runs::{outcome_cols, OutcomeRow};
use super::{now_ms, EntryRow, FindingFilter, FindingRow, Result, Store, StoreError};
use crate::model::{ChangeOp, ServerStatus};

/// One crawled metadata document (a CDS server).
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
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
    #[schema(value_type = String)]
    pub status: ServerStatus,
    pub name: String,
    #[sqlx(try_from = "JsonList")]
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
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct ServerRef {
    pub id: i64,
    pub url: String,
    pub name: String,
    #[schema(value_type = String)]
    pub status: ServerStatus,
}

/// Counts, for tests and the crawl summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct Counts {
    pub hosts: i64,
    pub servers: i64,
    pub active_servers: i64,
    pub entries: i64,
    pub territories: i64,
    pub findings: i64,
    pub changes: i64,
}

/// The columns of [`ServerRow`] in `servers s`.
macro_rules! server_cols {
    () => {
        "s.id, s.url, s.host_id, s.parent_id, s.depth, s.status, s.name, s.capabilities, \
         s.first_seen_ms, s.last_success_ms, s.last_changed_ms, s.last_failure_ms, s.last_failure, \
         (SELECT COUNT(*) FROM coverage_entries e WHERE e.server_id = s.id) AS entries"
    };
}

impl Store {
    pub async fn list_servers(&self) -> Result<Vec<ServerRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            server_cols!(),
            " FROM servers s ORDER BY s.id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn server_detail(&self, id: i64) -> Result<ServerDetail> {
        let r = sqlx::query(concat!(
            "SELECT ",
            server_cols!(),
            ", s.metadata_json FROM servers s WHERE s.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let server = ServerRow::from_row(&r)?;
        let metadata = sqlx::Row::try_get::<JsonDoc, _>(&r, "metadata_json")?.0;
        let parent_url = match server.parent_id {
            Some(p) => {
                sqlx::query_scalar("SELECT url FROM servers WHERE id = $1")
                    .bind(p)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => None,
        };
        let related = sqlx::query_as(
            "SELECT id, url, name, status FROM servers WHERE parent_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let findings = FindingFilter {
            server_id: Some(id),
            limit: 10_000,
            ..Default::default()
        };
        let crawl_history = sqlx::query_as(concat!(
            "SELECT ",
            outcome_cols!(),
            " FROM crawl_outcomes o WHERE o.host_id = $1 ORDER BY o.id DESC LIMIT 50"
        ))
        .bind(server.host_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(ServerDetail {
            oauth: self.server_oauth(id).await?,
            coverage: self.server_entries(id).await?,
            findings: self.list_findings(&findings).await?,
            server,
            metadata,
            parent_url,
            related,
            crawl_history,
        })
    }

    pub async fn counts(&self) -> Result<Counts> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM hosts) AS hosts, (SELECT COUNT(*) FROM servers) AS servers, \
             (SELECT COUNT(*) FROM servers WHERE status = $1) AS active_servers, \
             (SELECT COUNT(*) FROM coverage_entries) AS entries, (SELECT COUNT(*) FROM territories) AS territories, \
             (SELECT COUNT(*) FROM findings) AS findings, (SELECT COUNT(*) FROM changes) AS changes",
        )
        .bind(ServerStatus::Active)
        .fetch_one(&self.pool)
        .await?)
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
        let children: Vec<(i64, String)> = sqlx::query_as(
            "SELECT c.id, c.url FROM servers c JOIN servers p ON c.parent_id = p.id \
             WHERE p.url = $1 AND c.status <> $2",
        )
        .bind(parent_url)
        .bind(ServerStatus::Gone)
        .fetch_all(&self.pool)
        .await?;
        let retire: Vec<_> = children
            .into_iter()
            .filter(|(_, url)| !listed.contains(url))
            .collect();
        if retire.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut log = ChangeLog::default();
        for (id, url) in &retire {
            let hit = sqlx::query("UPDATE servers SET status = $1 WHERE id = $2 AND status <> $1")
                .bind(ServerStatus::Gone)
                .bind(*id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if hit > 0 {
                let why = Some("no longer in related_metadata".to_owned());
                log.server(Some(run_id), ChangeOp::Gone, *id, url, why);
            }
        }
        let n = log.len();
        self.commit_logged(tx, log).await?;
        Ok(n)
    }
}
