//! Keeping the index current: full reloads, per-server reloads, catching up with the
//! change log (API replicas following the crawlers' commits), and the change watcher that
//! change streams wait on. The one place the index meets the store; the HTTP layer
//! ([`crate::api::AppState`]) holds a [`LiveIndex`] and delegates to it.
//!
//! API replicas follow the crawlers' commits ([`follow`]): on Postgres they `LISTEN
//! cds_changes` (the store notifies in every committing transaction) and also check the
//! change log's newest sequence number periodically, which catches notifications missed
//! while the listener reconnected — and is the only mechanism on SQLite. Only the servers
//! named by the new change rows are reloaded, and the index is updated incrementally
//! ([`LiveIndex::catch_up`]).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{info, warn};

use super::{IndexEntry, SearchIndex};
use crate::config::Config;
use crate::store::{now_ms, Store};
use crate::territory;

/// The current index and where it stands in the change log. Cloning shares it.
#[derive(Clone)]
pub struct LiveIndex {
    store: Store,
    index: Arc<ArcSwap<SearchIndex>>,
    index_built_ms: Arc<AtomicI64>,
    /// The change-log `seq` the current index includes every change up to, once known.
    /// The lock also keeps reloads one at a time, so an update never starts from an index
    /// that another reload is about to replace.
    index_seq: Arc<tokio::sync::Mutex<Option<i64>>>,
    /// Bumped on every swap; part of the search responses' ETag.
    index_generation: Arc<AtomicI64>,
    /// Woken on every swap (the change watcher reads the change log then).
    index_swapped: Arc<tokio::sync::Notify>,
    /// The newest change-log `seq` this process has seen, while change streams are open.
    change_seq: Arc<tokio::sync::watch::Sender<i64>>,
    /// Whether the task that keeps `change_seq` current is running.
    change_watcher: Arc<AtomicBool>,
}

/// Above this many changed servers a catch-up reloads the whole index instead.
const INCREMENTAL_MAX_SERVERS: usize = 200;

/// How often the change watcher reads the newest `seq` while streams are open (it also
/// reads it right after each index swap, i.e. right after a commit this process heard of).
const CHANGE_POLL: Duration = Duration::from_secs(1);

/// How often a follower checks the change log even without notifications.
const CHECK_EVERY: Duration = Duration::from_secs(2);

impl LiveIndex {
    /// An empty index over `store`, to be loaded by [`LiveIndex::reload_index`] or
    /// [`LiveIndex::catch_up`].
    pub fn new(store: Store) -> LiveIndex {
        LiveIndex {
            store,
            index: Arc::new(ArcSwap::from_pointee(SearchIndex::build(Vec::new()))),
            index_built_ms: Arc::new(AtomicI64::new(0)),
            index_seq: Arc::new(tokio::sync::Mutex::new(None)),
            index_generation: Arc::new(AtomicI64::new(0)),
            index_swapped: Arc::new(tokio::sync::Notify::new()),
            change_seq: Arc::new(tokio::sync::watch::channel(0).0),
            change_watcher: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The current index. Readers hold their snapshot for the whole request, so a swap in
    /// the middle never shows them half an update.
    pub fn index(&self) -> Arc<SearchIndex> {
        self.index.load_full()
    }

    /// Swap in an index built elsewhere (benchmarks and tests that serve a fixed index).
    pub fn set_index(&self, index: SearchIndex) -> usize {
        self.swap_in(index)
    }

    pub fn index_generation(&self) -> i64 {
        self.index_generation.load(Ordering::Acquire)
    }

    pub fn index_built_ms(&self) -> i64 {
        self.index_built_ms.load(Ordering::Relaxed)
    }

    /// The newest change-log `seq`, for a change stream to wait on. One watcher task per
    /// process reads it (after each index swap, and every second) and only while someone
    /// holds a receiver: idle streams cost no queries, and a thousand of them cost what one
    /// does. The task starts with the first receiver and ends after the last is dropped.
    pub fn change_seq(&self) -> tokio::sync::watch::Receiver<i64> {
        let rx = self.change_seq.subscribe();
        if self
            .change_watcher
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tokio::spawn(watch_changes(
                self.store.clone(),
                self.change_seq.clone(),
                self.index_swapped.clone(),
                self.change_watcher.clone(),
            ));
        }
        rx
    }

    /// Rebuild the index from the store and swap it in. On a database error the old index
    /// keeps answering.
    pub async fn reload_index(&self) -> anyhow::Result<usize> {
        let mut seq = self.index_seq.lock().await;
        // Read before the rows: a change committed in between is in the rows and is
        // applied once more by the next catch-up, which is harmless.
        let newest = self.store.max_change_seq().await?;
        let n = self.rebuild_index().await?;
        *seq = Some(newest);
        Ok(n)
    }

    async fn rebuild_index(&self) -> anyhow::Result<usize> {
        let rows = self.store.index_rows().await?;
        let offers = self.store.oauth_offers().await?;
        let index =
            tokio::task::spawn_blocking(move || SearchIndex::build(to_entries(rows, offers)))
                .await?;
        Ok(self.swap_in(index))
    }

    /// Bring the index up to the change log (API replicas following the crawlers, and the
    /// all-in-one process after its own commits): only the servers named by change rows
    /// newer than the index are read again and applied incrementally; a change without a
    /// server, or more than `INCREMENTAL_MAX_SERVERS` servers, reloads everything, and so
    /// does the first call when no full load recorded its position yet. Returns the new
    /// position and the entry count, `None` when nothing changed.
    pub async fn catch_up(&self) -> anyhow::Result<Option<(i64, usize)>> {
        let mut seq = self.index_seq.lock().await;
        let max = self.store.max_change_seq().await?;
        let Some(seen) = *seq else {
            let n = self.rebuild_index().await?;
            *seq = Some(max);
            return Ok(Some((max, n)));
        };
        if max <= seen {
            return Ok(None);
        }
        let changed = self.store.changed_servers_after(seen).await?;
        // Past a few hundred servers one bulk read beats a few queries per server (a first
        // crawl of a large seed list changes every server at once).
        let n = if changed.iter().any(Option::is_none) || changed.len() > INCREMENTAL_MAX_SERVERS {
            self.rebuild_index().await?
        } else {
            let ids: Vec<i64> = changed.into_iter().flatten().collect();
            self.update_servers(&ids).await?
        };
        *seq = Some(max);
        Ok(Some((max, n)))
    }

    /// Reload only the entries of `servers` (issue: API replicas follow changes): their
    /// rows are read again and the current index is updated incrementally
    /// ([`SearchIndex::update`]): every other entry, and every territory whose geometry
    /// did not change, is reused, so the CPU cost follows the change, not the index.
    pub async fn reload_servers(&self, servers: &[i64]) -> anyhow::Result<usize> {
        let _seq = self.index_seq.lock().await;
        self.update_servers(servers).await
    }

    async fn update_servers(&self, servers: &[i64]) -> anyhow::Result<usize> {
        let mut rows = Vec::new();
        let mut offers = std::collections::HashMap::new();
        for &id in servers {
            rows.extend(self.store.index_rows_of(id).await?);
            offers.extend(self.store.oauth_offers_of(id).await?);
        }
        let current = self.index();
        let servers: std::collections::HashSet<i64> = servers.iter().copied().collect();
        let index = tokio::task::spawn_blocking(move || {
            current.update(|e| servers.contains(&e.server_id), to_entries(rows, offers))
        })
        .await?;
        Ok(self.swap_in(index))
    }

    fn swap_in(&self, index: SearchIndex) -> usize {
        let n = index.len();
        self.index.store(Arc::new(index));
        self.index_built_ms.store(now_ms(), Ordering::Relaxed);
        self.index_generation.fetch_add(1, Ordering::AcqRel);
        self.index_swapped.notify_waiters();
        n
    }
}

/// Keep `seq` at the change log's newest `seq` while it has receivers; see
/// [`LiveIndex::change_seq`].
async fn watch_changes(
    store: Store,
    seq: Arc<tokio::sync::watch::Sender<i64>>,
    swapped: Arc<tokio::sync::Notify>,
    running: Arc<AtomicBool>,
) {
    loop {
        // Armed before the read, so a swap during the read is not missed.
        let woken = swapped.notified();
        if seq.receiver_count() == 0 {
            // Stand down, unless a receiver arrived after the count was read and found the
            // flag still set (it then relies on this task going on).
            running.store(false, Ordering::Release);
            if seq.receiver_count() == 0
                || running
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return;
            }
        }
        match store.max_change_seq().await {
            Ok(newest) => {
                seq.send_if_modified(|v| {
                    let newer = newest > *v;
                    if newer {
                        *v = newest;
                    }
                    newer
                });
            }
            Err(e) => tracing::warn!(error = %e, "change watcher: reading the change log failed"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(CHANGE_POLL) => {}
        }
    }
}

/// Store rows (+ the OAuth offers by entry key) → index entries, territories decoded.
fn to_entries(
    rows: Vec<crate::store::IndexRow>,
    mut offers: std::collections::HashMap<i64, crate::store::OAuthOffer>,
) -> Vec<IndexEntry> {
    rows.into_iter()
        .map(|r| {
            let oauth = offers.remove(&r.key);
            IndexEntry {
                key: r.key,
                server_id: r.server_id,
                server_url: r.server_url,
                server_name: r.server_name,
                entry: r.entry,
                territory_id: r.territory_id,
                territory: r
                    .wkb
                    .as_deref()
                    .and_then(|w| territory::from_wkb(w).ok())
                    .map(Arc::new),
                // WG1-02 §3: the scopes whose `coverages_supported` list this entry.
                scopes: oauth.as_ref().map(|o| o.scope_ids()).unwrap_or_default(),
                scope_types: oauth.as_ref().map(|o| o.scope_types()).unwrap_or_default(),
                oauth: oauth.map(Arc::new),
            }
        })
        .collect()
}

/// Keep `live` following the change log until `stop` changes; see the module docs.
pub async fn follow(
    live: LiveIndex,
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
        match live.catch_up().await {
            Ok(Some((seq, entries))) => info!(seq, entries, "index caught up with the change log"),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "following changes failed; index kept"),
        }
    }
}
