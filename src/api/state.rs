//! Shared state of the API: the store, the in-memory index (swapped atomically), config.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::crawl::Crawler;
use crate::index::{IndexEntry, SearchIndex};
use crate::store::{now_ms, Store};
use crate::territory;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub crawler: Option<Arc<Crawler>>,
    index: Arc<ArcSwap<SearchIndex>>,
    index_built_ms: Arc<AtomicI64>,
    /// Bumped on every swap; part of the search responses' ETag.
    index_generation: Arc<AtomicI64>,
    /// Woken on every swap (change streams read the change log then).
    index_swapped: Arc<tokio::sync::Notify>,
}

impl AppState {
    pub fn new(store: Store, config: Arc<Config>, crawler: Option<Arc<Crawler>>) -> AppState {
        AppState {
            store,
            config,
            crawler,
            index: Arc::new(ArcSwap::from_pointee(SearchIndex::build(Vec::new()))),
            index_built_ms: Arc::new(AtomicI64::new(0)),
            index_generation: Arc::new(AtomicI64::new(0)),
            index_swapped: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The current index. Readers hold their snapshot for the whole request, so a swap in
    /// the middle never shows them half an update.
    pub fn index(&self) -> Arc<SearchIndex> {
        self.index.load_full()
    }

    pub fn index_generation(&self) -> i64 {
        self.index_generation.load(Ordering::Acquire)
    }

    /// Notified whenever a new index is swapped in.
    pub fn index_swapped(&self) -> Arc<tokio::sync::Notify> {
        self.index_swapped.clone()
    }

    pub fn index_built_ms(&self) -> i64 {
        self.index_built_ms.load(Ordering::Relaxed)
    }

    /// Rebuild the index from the store and swap it in. On a database error the old index
    /// keeps answering.
    pub async fn reload_index(&self) -> anyhow::Result<usize> {
        let rows = self.store.index_rows().await?;
        let offers = self.store.oauth_offers().await?;
        let index =
            tokio::task::spawn_blocking(move || SearchIndex::build(to_entries(rows, offers)))
                .await?;
        Ok(self.swap_in(index))
    }

    /// Reload only the entries of `servers` (issue: API replicas follow changes): their
    /// rows are read again, every other entry — parsed territories included — is reused
    /// from the current index, and the merged index is swapped in.
    pub async fn reload_servers(&self, servers: &[i64]) -> anyhow::Result<usize> {
        let mut rows = Vec::new();
        let mut offers = std::collections::HashMap::new();
        for &id in servers {
            rows.extend(self.store.index_rows_of(id).await?);
            offers.extend(self.store.oauth_offers_of(id).await?);
        }
        let current = self.index();
        let servers: std::collections::HashSet<i64> = servers.iter().copied().collect();
        let index = tokio::task::spawn_blocking(move || {
            let mut entries: Vec<IndexEntry> = current
                .entries()
                .iter()
                .filter(|e| !servers.contains(&e.server_id))
                .cloned()
                .collect();
            entries.extend(to_entries(rows, offers));
            SearchIndex::build(entries)
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
                oauth: oauth.map(Arc::new),
            }
        })
        .collect()
}
