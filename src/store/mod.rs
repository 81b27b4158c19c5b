//! Storage: every SQL statement of the registry, one code path for SQLite and Postgres.
//!
//! We use `sqlx::AnyPool` with a portable schema (integers, doubles, text, blobs; times as
//! epoch milliseconds, JSON as text) and `$n` placeholders, which both drivers accept
//! (CRATES.md). The schema lives in `migrations/sqlite` and `migrations/postgres`, kept
//! identical but for the id, blob and double types (`tests/migrations.rs`). Statements that only Postgres has (issue 9:
//! `FOR UPDATE SKIP LOCKED`, `LISTEN/NOTIFY`) are chosen by [`Backend`].

mod changes;
mod commit;
mod documents;
mod entries;
mod findings;
mod hosts;
mod oauth;
mod rows;
mod runs;
mod servers;
mod sql;

pub use changes::{ChangeRow, CHANGE_LOG_LOCK};
pub use commit::{CommitSummary, DocumentRecord, EntryRecord, ServerCommit, TerritoryRecord};
pub use documents::Validators;
pub use entries::{AuthoritativeClaimRow, EntryRow, IndexRow};
pub use findings::{FindingFilter, FindingRow};
pub use hosts::{HostRow, OutcomeRecord};
pub use oauth::{OAuthOffer, OAuthRecord, OAuthRow};
pub use runs::{Leased, OutcomeRow, RunRow, RunTotals};
pub use servers::{Counts, ServerDetail, ServerRef, ServerRow};
pub use sql::{POSTGRES_MAX_BINDS, SQLITE_MAX_BINDS};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Storage errors, converted from `sqlx::Error` at this boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
    /// The database could not be opened: the message names it and says what to check.
    #[error("{0}")]
    Unreachable(String),
}

/// Where a database URL points, for messages: `database "db" on host:port`, or the
/// SQLite file. Never includes a password.
fn describe_database(url: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SQLite file {}",
            url.trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default()
        ),
        Backend::Postgres => match url::Url::parse(url) {
            Ok(u) => format!(
                "Postgres database {:?} on {}:{}",
                u.path().trim_start_matches('/'),
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(5432)
            ),
            Err(_) => "the Postgres database in database_url".to_owned(),
        },
    }
}

/// One sentence for a failed connection: which database, the cause once, and what to do.
fn connect_error(url: &str, backend: Backend, e: &sqlx::Error) -> StoreError {
    let what = describe_database(url, backend);
    let (cause, hint) = match e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => (
            "it does not exist".to_owned(),
            "create it (`createdb NAME`) or fix database_url",
        ),
        sqlx::Error::Database(d)
            if d.code().as_deref() == Some("28P01") || d.code().as_deref() == Some("28000") =>
        {
            (
                d.message().to_owned(),
                "check the user and password in database_url",
            )
        }
        sqlx::Error::Io(io) => (
            io.to_string(),
            "is the server running and listening there? (database_url / CDS_REGISTRY_DATABASE_URL)",
        ),
        sqlx::Error::PoolTimedOut => (
            "no connection within 30 s".to_owned(),
            "is the server running and reachable? (database_url / CDS_REGISTRY_DATABASE_URL)",
        ),
        sqlx::Error::Database(d) => (d.message().to_owned(), "check database_url"),
        other => (other.to_string(), "check database_url"),
    };
    StoreError::Unreachable(format!("cannot open the {what}: {cause}; {hint}"))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The registry's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connect (creating the SQLite file and its directory if needed) and apply migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store> {
        Store::open_with(url, max_connections, Duration::from_secs(30)).await
    }

    /// [`Store::open`] with the time an operation waits for a connection: while the
    /// database is unreachable (connection refused) sqlx retries until then, so this is
    /// how long each operation takes to fail during an outage.
    pub async fn open_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Other(format!(
                "unsupported database_url {url:?}: use sqlite://PATH or postgres://..."
            )));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        // One direct attempt first: a pool retries a refused connection until its acquire
        // timeout (30 s) and then reports only that it timed out; this says why at once.
        {
            use sqlx::{AnyConnection, Connection};
            let conn = AnyConnection::connect_with(&opts)
                .await
                .map_err(|e| connect_error(&url, backend, &e))?;
            let _ = conn.close().await;
        }
        let pool = AnyPoolOptions::new()
            // One writer at a time is all SQLite has; more connections only add lock waits.
            .max_connections(match backend {
                Backend::Sqlite => max_connections.clamp(1, 4),
                Backend::Postgres => max_connections.max(1),
            })
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| connect_error(&url, backend, &e))?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        // Data step of migration 0006 (scope types), portable unlike SQL JSON functions.
        self.backfill_scope_types().await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://data/x.db` → make sure `data/` exists and the file is created on first use.
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Other(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
    }
    let mut q = query.to_owned();
    if !q.contains("mode=") {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{q}"))
}
