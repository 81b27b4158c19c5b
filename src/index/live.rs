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

use std::collections::{HashMap, HashSet};

// The sets `reread`'s filter asks once per indexed entry (100,000 times in a catch-up of
// a large aggregator): foldhash, seeded per process, costs a fraction of SipHash there.
use foldhash::{HashMap as FastMap, HashSet as FastSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::TryStreamExt;
use tracing::{info, warn};

use super::{entry_id_hash, EntryRef, IndexBuilder, IndexEntry, SearchIndex};
use crate::config::Config;
use crate::heap::release_free_heap;
use crate::model::{ChangeEntity, ChangeOp};
use crate::store::{now_ms, ChangeRow, Store};
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

/// How often a follower checks the change log even without notifications. On SQLite,
/// which has none, this bounds commit -> visible in a replica: up to 1 s of waiting plus
/// the catch-up itself (0.3–0.6 s for a 1 % update of a 100,000-entry server), within
/// the 2 s of issue 17; one `SELECT max(seq)` a second is the price.
const CHECK_EVERY: Duration = Duration::from_secs(1);

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
        // The rows are read on the thread that builds from them, not on a runtime worker:
        // glibc gives each thread its own arena, and when the load still held every row
        // (~300 MB at 100,000 entries) in a worker's arena and built the index in another,
        // a Postgres replica kept ~140 MiB more resident after its start (397-404 against
        // 259-260 MiB, docs/PERFORMANCE.md "Scale").
        let store = self.store.clone();
        let runtime = tokio::runtime::Handle::current();
        let index = tokio::task::spawn_blocking(move || {
            runtime.block_on(async {
                // Each row is packed into its index slot as it arrives (its WKB decoded,
                // its entry's own strings freed) before the next is read: the rows are
                // never all held at once, and no short-lived entry sits on the heap between
                // the index's long-lived data (SQLite replica 278-286 -> 225-226 MiB).
                let mut to_entry = ToEntry::new(store.oauth_offers().await?);
                let mut builder = IndexBuilder::default();
                let mut rows = std::pin::pin!(store.index_rows_stream());
                while let Some(row) = rows.try_next().await? {
                    builder.push(to_entry.entry(row));
                }
                let index = builder.build();
                release_free_heap();
                anyhow::Ok(index)
            })
        })
        .await??;
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
            self.apply_changes(seen, &ids).await?
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
        self.reread(servers.iter().copied().collect(), FastMap::default())
            .await
    }

    /// Apply the change rows after `seen`, which name `servers`: a server whose rows
    /// touch only entries ([`plan`]) has just those entries read again, any other is read
    /// whole. A 1 % update of a 100,000-entry aggregator reads 1,000 rows, not 100,000.
    async fn apply_changes(&self, seen: i64, servers: &[i64]) -> anyhow::Result<usize> {
        let log = self
            .store
            .changes_after(seen, ENTRY_LEVEL_MAX_ROWS as i64 + 1)
            .await?;
        let mut plan = if log.len() > ENTRY_LEVEL_MAX_ROWS {
            HashMap::new()
        } else {
            plan(&log, &self.index())
        };
        let mut whole: FastSet<i64> = FastSet::default();
        let mut some: FastMap<i64, FastSet<String>> = FastMap::default();
        for &s in servers {
            match plan.remove(&s) {
                Some(Apply::Entries(ids)) => {
                    some.insert(s, ids);
                }
                _ => {
                    whole.insert(s);
                }
            }
        }
        tracing::debug!(
            whole = whole.len(),
            by_entry = some.len(),
            entries = some.values().map(HashSet::len).sum::<usize>(),
            "index catch-up: servers read whole, servers read entry by entry"
        );
        self.reread(whole, some).await
    }

    /// Read again every entry of the `whole` servers and the named entries of the `some`
    /// servers (those gone are dropped), and update the index with them incrementally.
    async fn reread(
        &self,
        whole: FastSet<i64>,
        some: FastMap<i64, FastSet<String>>,
    ) -> anyhow::Result<usize> {
        let mut rows = Vec::new();
        let mut offers = HashMap::new();
        for &s in &whole {
            rows.extend(self.store.index_rows_of(s).await?);
            offers.extend(self.store.oauth_offers_of(s).await?);
        }
        for (&s, ids) in &some {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let read = self.store.index_rows_of_entries(s, &ids).await?;
            if !read.is_empty() {
                let keys: HashSet<i64> = read.iter().map(|r| r.key).collect();
                let mut o = self.store.oauth_offers_of(s).await?;
                o.retain(|k, _| keys.contains(k));
                offers.extend(o);
            }
            rows.extend(read);
        }
        let current = self.index();
        let index = tokio::task::spawn_blocking(move || {
            // Entries are matched by the hash of their id first, which their slot keeps:
            // only a match reads the id (docs/PERFORMANCE.md, "Scale").
            let some: FastMap<i64, (FastSet<u64>, FastSet<String>)> = some
                .into_iter()
                .map(|(s, ids)| (s, (ids.iter().map(|id| entry_id_hash(id)).collect(), ids)))
                .collect();
            let drop = |e: EntryRef<'_>| {
                let s = e.server_id();
                whole.contains(&s)
                    || some.get(&s).is_some_and(|(hashes, ids)| {
                        hashes.contains(&e.id_hash()) && ids.contains(e.id())
                    })
            };
            current.update(drop, to_entries(rows, offers))
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

/// Most change rows [`LiveIndex::catch_up`] reads to apply a change entry by entry;
/// past it (a first crawl of a large server), the changed servers are read whole.
const ENTRY_LEVEL_MAX_ROWS: usize = 20_000;

/// How a catch-up applies one changed server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Apply {
    /// Read all of its entries again.
    Whole,
    /// Read only these entries again (by their own `id`); those gone are dropped.
    Entries(FastSet<String>),
}

/// Per server named in `log`: [`Apply::Entries`] when its rows are entry rows plus the
/// `server updated` row every changing commit writes, and that row names the URL and
/// name the index already has for it; else (a new, moved, stale or gone server, a new
/// name, OAuth scope changes) [`Apply::Whole`]. A server the index has no entry of is
/// read whole too: there is nothing to compare its row with, and little to read.
fn plan(log: &[ChangeRow], index: &SearchIndex) -> HashMap<i64, Apply> {
    let mut out: HashMap<i64, Apply> = HashMap::new();
    // The URL and name the index has for the servers the log names (a handful): one pass
    // that stops when all are found, instead of a map of every entry's server (that map
    // was 5 % of a replica's catch-up CPU at 100,000 entries; docs/PERFORMANCE.md).
    let mut known: FastMap<i64, Option<(&str, &str)>> = log
        .iter()
        .filter_map(|r| r.server_id)
        .map(|s| (s, None))
        .collect();
    let mut missing = known.len();
    for e in index.entries() {
        if missing == 0 {
            break;
        }
        if let Some(k @ None) = known.get_mut(&e.server_id()) {
            *k = Some((e.server_url(), e.server_name()));
            missing -= 1;
        }
    }
    for row in log {
        let Some(s) = row.server_id else { continue };
        let apply = out
            .entry(s)
            .or_insert_with(|| Apply::Entries(FastSet::default()));
        let Apply::Entries(ids) = apply else { continue };
        match (row.entity, row.op) {
            (ChangeEntity::Entry, _) => {
                ids.insert(row.reference.clone());
            }
            (ChangeEntity::Server, ChangeOp::Updated)
                if known.get(&s).copied().flatten().is_some_and(|(url, name)| {
                    url == row.reference && Some(name) == row.detail.as_deref()
                }) => {}
            _ => *apply = Apply::Whole,
        }
    }
    out
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
    offers: HashMap<i64, crate::store::OAuthOffer>,
) -> Vec<IndexEntry> {
    let mut to_entry = ToEntry::new(offers);
    rows.into_iter().map(|r| to_entry.entry(r)).collect()
}

/// Turns store rows into index entries one at a time: a server's URL and name are one
/// shared copy for all of its entries, and each entry takes its OAuth offer.
struct ToEntry {
    offers: HashMap<i64, crate::store::OAuthOffer>,
    servers: HashMap<i64, (Arc<str>, Arc<str>)>,
}

impl ToEntry {
    fn new(offers: HashMap<i64, crate::store::OAuthOffer>) -> ToEntry {
        ToEntry {
            offers,
            servers: HashMap::new(),
        }
    }

    fn entry(&mut self, r: crate::store::IndexRow) -> IndexEntry {
        let oauth = self.offers.remove(&r.key);
        let (server_url, server_name) = self
            .servers
            .entry(r.server_id)
            .or_insert_with(|| (r.server_url.into(), r.server_name.into()))
            .clone();
        IndexEntry {
            key: r.key,
            server_id: r.server_id,
            server_url,
            server_name,
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
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        server: i64,
        entity: ChangeEntity,
        op: ChangeOp,
        reference: &str,
        detail: Option<&str>,
    ) -> ChangeRow {
        ChangeRow {
            seq: 0,
            at_ms: 0,
            run_id: Some(1),
            entity,
            op,
            server_id: Some(server),
            reference: reference.into(),
            detail: detail.map(str::to_owned),
            scope_type: None,
        }
    }

    fn index_of(servers: &[(i64, &str, &str)]) -> SearchIndex {
        SearchIndex::build(
            servers
                .iter()
                .enumerate()
                .map(|(k, &(id, url, name))| {
                    crate::index::tests::entry(k as i64 + 1, |e| {
                        e.server_id = id;
                        e.server_url = url.into();
                        e.server_name = name.into();
                        e.entry.id = format!("e{k}");
                    })
                })
                .collect(),
        )
    }

    #[test]
    fn only_entry_changes_of_a_known_server_are_applied_entry_by_entry() {
        use ChangeEntity as E;
        use ChangeOp as O;
        let index = index_of(&[
            (1, "https://a/m", "A"),
            (2, "https://b/m", "B"),
            (3, "https://c/m", "C"),
        ]);
        let log = [
            // Server 1: entries only, and the server row with the URL and name it had.
            row(1, E::Server, O::Updated, "https://a/m", Some("A")),
            row(1, E::Entry, O::Updated, "e1", None),
            row(1, E::Entry, O::Removed, "e2", None),
            // Server 2: renamed: every entry shows the server's name, so all are read.
            row(2, E::Server, O::Updated, "https://b/m", Some("B2")),
            row(2, E::Entry, O::Added, "x", None),
            // Server 3: an OAuth scope changed.
            row(3, E::Entry, O::Updated, "e0", None),
            row(3, E::Scope, O::Added, "s@e0", None),
            // Server 4: new to the index.
            row(4, E::Server, O::Added, "https://d/m", Some("D")),
        ];
        let p = plan(&log, &index);
        let ids = |v: &[&str]| Apply::Entries(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(p[&1], ids(&["e1", "e2"]));
        assert_eq!(p[&2], Apply::Whole);
        assert_eq!(p[&3], Apply::Whole);
        assert_eq!(p[&4], Apply::Whole);
        // A status change (stale, gone, active again) reads the server whole.
        let stale = [
            row(1, E::Entry, O::Updated, "e1", None),
            row(1, E::Server, O::Stale, "https://a/m", Some("A")),
        ];
        assert_eq!(plan(&stale, &index)[&1], Apply::Whole);
    }
}
