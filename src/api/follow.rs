//! API replicas follow the crawlers' commits: on Postgres they `LISTEN cds_changes`
//! (the store notifies in every committing transaction) and also check the change log's
//! newest sequence number periodically, which catches notifications missed while the
//! listener reconnected — and is the only mechanism on SQLite. Only the servers named by
//! the new change rows are reloaded, and the index is updated incrementally
//! ([`AppState::catch_up`]).

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
        match state.catch_up().await {
            Ok(Some((seq, entries))) => info!(seq, entries, "index caught up with the change log"),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "following changes failed; index kept"),
        }
    }
}
