//! API replicas follow the crawlers' commits: on Postgres they `LISTEN cds_changes`
//! (the store notifies in every committing transaction) and also check the change log's
//! newest sequence number periodically, which catches notifications missed while the
//! listener reconnected — and is the only mechanism on SQLite. Only the servers named by
//! the new change rows are reloaded.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::AppState;
use crate::config::Config;

/// How often the change log is checked even without notifications.
const CHECK_EVERY: Duration = Duration::from_secs(2);

pub async fn follow(
    state: AppState,
    cfg: Arc<Config>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = state.store.max_change_seq().await.unwrap_or(0);
    let mut listener = if cfg.is_postgres() {
        match sqlx::postgres::PgListener::connect(&cfg.database_url).await {
            Ok(mut l) => match l.listen("cds_changes").await {
                Ok(()) => Some(l),
                Err(e) => {
                    warn!(error = %e, "LISTEN failed; following by periodic checks only");
                    None
                }
            },
            Err(e) => {
                warn!(error = %e, "listener connection failed; following by periodic checks only");
                None
            }
        }
    } else {
        None
    };
    loop {
        let wake = async {
            match listener.as_mut() {
                Some(l) => {
                    // recv() reconnects by itself after a dropped connection.
                    let _ = tokio::time::timeout(CHECK_EVERY, l.recv()).await;
                    // Let a burst of commits settle into one reload.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                None => tokio::time::sleep(CHECK_EVERY).await,
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = stop.changed() => return,
        }
        match catch_up(&state, seen).await {
            Ok(Some(s)) => seen = s,
            Ok(None) => {}
            Err(e) => warn!(error = %e, "following changes failed; index kept"),
        }
    }
}

/// Above this many changed servers a replica reloads the whole index instead.
const INCREMENTAL_MAX_SERVERS: usize = 200;

/// Reload what changed after `seen`; returns the new high-water mark if anything did.
pub async fn catch_up(state: &AppState, seen: i64) -> anyhow::Result<Option<i64>> {
    let max = state.store.max_change_seq().await?;
    if max <= seen {
        return Ok(None);
    }
    let changed = state.store.changed_servers_after(seen).await?;
    // Past a few hundred servers one bulk read beats a few queries per server (a first
    // crawl of a large seed list changes every server at once).
    let n = if changed.iter().any(Option::is_none) || changed.len() > INCREMENTAL_MAX_SERVERS {
        state.reload_index().await?
    } else {
        let ids: Vec<i64> = changed.into_iter().flatten().collect();
        state.reload_servers(&ids).await?
    };
    info!(
        seq = max,
        entries = n,
        "index caught up with the change log"
    );
    Ok(Some(max))
}
