//! Shared state of the API: the store, the live index (see [`crate::index::live`]),
//! config, and the slots that bound expensive work.

use std::sync::Arc;
use std::time::Duration;

use super::ApiError;
use crate::config::Config;
use crate::crawl::Crawler;
use crate::index::live::LiveIndex;
use crate::index::SearchIndex;
use crate::store::Store;

/// What every handler and middleware shares. Cloned for each request several times
/// (router, `State` extractors, stateful middleware), so it is one `Arc`: one reference
/// count to bump instead of one per field. With a field per `Arc`, the two worker
/// threads bounced ~15 shared counters between their caches on every request, and
/// cloning and dropping the state was 18 % of `serve`'s CPU under `wrk` on `/healthz`
/// (perf, docs/PERFORMANCE.md "HTTP at 100,000 territories").
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub crawler: Option<Arc<Crawler>>,
    /// The index, kept current by reloads and the change log.
    pub live: LiveIndex,
    /// `GET /v1/lookup?address=` (unconfigured: every address is a 400 saying so).
    pub geocoder: crate::geocode::Geocoder,
    /// Slots for expensive requests (`api.expensive_concurrency`); see [`AppState::expensive_slot`].
    expensive: Arc<tokio::sync::Semaphore>,
    /// Slots for streaming exports (`api.max_exports`).
    exports: Arc<tokio::sync::Semaphore>,
    /// The published CDS documents of the current index (`[publish]`).
    pub(super) publish_cache: Arc<super::publish::PublishCache>,
}

/// The configured geocoder. `Config::check` has vetted `[geocoder]` at load; a
/// configuration built in code that fails the same checks leaves `address=` off, loudly.
fn geocoder(config: &Config) -> crate::geocode::Geocoder {
    crate::geocode::Geocoder::new(&config.geocoder, &config.crawl.user_agent).unwrap_or_else(|e| {
        tracing::error!(error = %e, "geocoder not started; `address=` lookups are refused");
        crate::geocode::Geocoder::disabled()
    })
}

impl AppState {
    pub fn new(store: Store, config: Arc<Config>, crawler: Option<Arc<Crawler>>) -> AppState {
        let expensive = Arc::new(tokio::sync::Semaphore::new(config.api.expensive_slots()));
        let exports = Arc::new(tokio::sync::Semaphore::new(config.api.max_exports.max(1)));
        let geocoder = geocoder(&config);
        AppState(Arc::new(Shared {
            expensive,
            exports,
            live: LiveIndex::new(store.clone()),
            geocoder,
            store,
            config,
            crawler,
            publish_cache: Default::default(),
        }))
    }

    /// A state over a fresh SQLite file in `dir`, default configuration, no crawler: for
    /// unit tests of the router.
    #[cfg(test)]
    pub async fn empty_for_tests(dir: &std::path::Path) -> AppState {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = Store::open(&url, 1).await.unwrap();
        AppState::new(store, Arc::new(Config::default()), None)
    }

    /// The current index. Readers hold their snapshot for the whole request, so a swap in
    /// the middle never shows them half an update.
    pub fn index(&self) -> Arc<SearchIndex> {
        self.live.index()
    }

    /// A slot for an expensive request, waited for up to `api.lookup_budget_ms`; then 503
    /// with `Retry-After`. The caller moves the permit into its blocking task, so the slot
    /// stays taken until the CPU work ends, also when the client has gone.
    pub async fn expensive_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let wait = Duration::from_millis(self.config.api.lookup_budget_ms);
        match tokio::time::timeout(wait, self.expensive.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::Busy(
                "every slot for expensive requests is taken; retry shortly".into(),
            )),
        }
    }

    /// A slot for a streaming export, or 503 with `Retry-After` at once (an export holds
    /// its slot for as long as the client reads, so waiting in line could be long).
    pub fn export_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.exports
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy("too many exports are streaming; retry shortly".into()))
    }

    /// Swap in an index built elsewhere (benchmarks and tests that serve a fixed index).
    pub fn set_index(&self, index: SearchIndex) -> usize {
        self.live.set_index(index)
    }

    pub fn index_generation(&self) -> i64 {
        self.live.index_generation()
    }

    /// The newest change-log `seq`, for a change stream to wait on
    /// ([`LiveIndex::change_seq`]).
    pub fn change_seq(&self) -> tokio::sync::watch::Receiver<i64> {
        self.live.change_seq()
    }

    pub fn index_built_ms(&self) -> i64 {
        self.live.index_built_ms()
    }

    /// Rebuild the index from the store ([`LiveIndex::reload_index`]).
    pub async fn reload_index(&self) -> anyhow::Result<usize> {
        self.live.reload_index().await
    }

    /// Bring the index up to the change log ([`LiveIndex::catch_up`]).
    pub async fn catch_up(&self) -> anyhow::Result<Option<(i64, usize)>> {
        self.live.catch_up().await
    }

    /// Reload only the entries of `servers` ([`LiveIndex::reload_servers`]).
    pub async fn reload_servers(&self, servers: &[i64]) -> anyhow::Result<usize> {
        self.live.reload_servers(servers).await
    }
}
