//! Configuration: defaults, then a TOML file (`--config`), then `CDS_REGISTRY_*`
//! environment variables (the environment wins). Nested keys use `__` in the environment:
//! `CDS_REGISTRY_CRAWL__CONCURRENCY=64`.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Default SQLite database: a file under `./data/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/cds-registry.db";

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://path` (default, embedded) or `postgres://...`.
    pub database_url: String,
    /// Maximum pooled database connections.
    pub database_max_connections: u32,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Bearer token for write endpoints. Unset = write endpoints disabled (403).
    pub admin_token: Option<Secret>,
    pub api: ApiConfig,
    pub crawl: CrawlConfig,
    /// Optional geocoder for `GET /v1/lookup?address=` (off without `url`).
    pub geocoder: crate::geocode::GeocoderConfig,
    /// The registry as a CDS server itself (aggregator role): off unless `enabled`.
    pub publish: crate::publish::PublishConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Sustained requests per second per client IP on the public read endpoints
    /// (0 = no limit). Over the limit: 429 with `Retry-After`.
    pub rate_limit_per_second: u32,
    /// Requests a client may burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// Wall-clock budget of one `POST /v1/lookup` (a geometry, or a batch of points), in
    /// milliseconds, counted from when it gets a slot. Over it: 422, "simplify or split".
    pub lookup_budget_ms: u64,
    /// Most work one geometry lookup may do against the indexed territories, in units of
    /// vertices scanned plus segment pairs compared (see docs/PERFORMANCE.md, "Geometry
    /// lookups under load"). Over it: 422, "simplify or split".
    pub max_geometry_work: u64,
    /// Expensive requests (`POST /v1/lookup`) computed at once, on the blocking pool; 0 =
    /// one less than the CPUs (at least 1), so a core stays free for probes and
    /// point lookups. Others wait up to `lookup_budget_ms` for a slot, then get 503 with
    /// `Retry-After`.
    pub expensive_concurrency: usize,
    /// Exports (`GET /v1/export`) streaming at once; more get 503 with `Retry-After`.
    pub max_exports: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            rate_limit_per_second: 50,
            rate_limit_burst: 200,
            lookup_budget_ms: 2_000,
            max_geometry_work: 100_000_000,
            expensive_concurrency: 0,
            max_exports: 4,
        }
    }
}

impl ApiConfig {
    /// `expensive_concurrency` with 0 resolved against this machine.
    pub fn expensive_slots(&self) -> usize {
        if self.expensive_concurrency > 0 {
            return self.expensive_concurrency;
        }
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_max_connections: 8,
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            admin_token: None,
            api: ApiConfig::default(),
            crawl: CrawlConfig::default(),
            geocoder: Default::default(),
            publish: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrawlConfig {
    /// 6-field cron expression (seconds first) for scheduled crawls in `serve`.
    pub schedule: String,
    /// Whether `serve` runs the scheduler at all.
    pub scheduled: bool,
    /// Hosts crawled at once.
    pub concurrency: usize,
    /// Requests in flight to one host at once (territory downloads).
    pub per_host_concurrency: usize,
    pub connect_timeout_ms: u64,
    /// Time allowed until the response headers arrive.
    pub first_byte_timeout_ms: u64,
    /// Time allowed for one whole response, body included (stops slow drips).
    pub total_timeout_ms: u64,
    pub max_metadata_bytes: u64,
    pub max_coverage_page_bytes: u64,
    pub max_geojson_bytes: u64,
    /// Positions one GeoJSON document may hold; more is finding `GEO-TOO-LARGE` and no
    /// territory (counted while reading, so the read stops there).
    pub max_territory_vertices: usize,
    /// Time one GeoJSON document may take to read and validate (off the async runtime);
    /// more is finding `GEO-TOO-COSTLY` and no territory.
    pub geojson_budget_ms: u64,
    pub max_oauth_bytes: u64,
    /// How long a territory is used without asking its server again when none of the
    /// entries linking it changed (same entry JSON, same stored territory): an unchanged
    /// re-crawl of a 100,000-entry aggregator then reads its pages, not 100,000 GeoJSON
    /// documents. Past it, the territory is revalidated with a conditional request. 0:
    /// every crawl revalidates every territory.
    pub territory_max_age_secs: u64,
    /// Coverage pages followed per listing before the listing counts as endless
    /// (`COV-PAGE-CAP`). The default admits a 100,000-entry aggregator on pages of 100.
    pub max_pages: usize,
    /// How deep `related_metadata` is followed from a seeded document.
    pub max_related_depth: usize,
    /// Documents fetched per host per crawl, all kinds together, that any host may use
    /// whatever it declares. A host whose documents declare more (entries linking
    /// territories, pages, related metadata, OAuth metadata) may fetch as many as it
    /// declares, up to `max_documents_ceiling`.
    pub max_documents_per_host: usize,
    /// The hard ceiling of documents per host per crawl, however many the host declares:
    /// a listing that declares more is refused (outcome `limit`, nothing of it committed).
    /// The default admits 100,000 entries with one territory each, their pages and
    /// related documents, with room to spare.
    pub max_documents_ceiling: usize,
    /// Response body bytes one host's crawl may download, all documents together; more
    /// is outcome `limit` and nothing of it committed. Each document is also bounded by
    /// its own `max_*_bytes`.
    pub max_bytes_per_host: u64,
    pub max_redirects: usize,
    /// Hosts (`name` or `name:port`) that may be fetched over plain http.
    pub allow_http: Vec<String>,
    /// Host names or CIDR networks that may be fetched although they resolve to
    /// loopback/private/link-local addresses.
    pub allow_private: Vec<String>,
    pub user_agent: String,
    /// A worker's lease on a host lasts this long unless renewed (it renews every third
    /// of it while working); a dead worker's hosts are taken over after it.
    pub lease_secs: u64,
    /// How often a crawler worker looks for leasable hosts in `serve`.
    pub poll_secs: u64,
    /// Time one host's crawl (all its documents, before the commit) may take; after it the
    /// crawl is abandoned, nothing of it is committed, and the host is recorded `timeout`.
    /// A worker renews a host's lease for at most twice this after taking it.
    pub host_budget_secs: u64,
    /// Expired leases of one host (its worker killed or stuck before recording an
    /// outcome) after which the host is recorded `timeout` instead of being crawled again.
    pub max_lease_expiries: i64,
    /// First back-off delay after a failure; doubles per consecutive failure.
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
    /// Consecutive failures after which a host's servers are `stale`.
    pub stale_after_failures: i64,
    /// Time since the last success after which a failing host's servers are `gone`.
    pub gone_after_secs: u64,
    /// This registry's own published metadata URL ([`PublishConfig::metadata_url`]), set
    /// from `[publish]` by [`Config::crawl_config`], not configured: entries that name it
    /// in their `cds_registry_origin.via` came back through this registry and are not
    /// imported again (DESIGN.md, "Federation").
    #[serde(skip)]
    pub self_metadata_url: Option<String>,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            schedule: "0 0 */6 * * *".to_owned(),
            scheduled: true,
            concurrency: 64,
            per_host_concurrency: 4,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 15_000,
            total_timeout_ms: 60_000,
            max_metadata_bytes: 1 << 20,
            max_coverage_page_bytes: 8 << 20,
            max_geojson_bytes: 64 << 20,
            max_territory_vertices: 1_000_000,
            geojson_budget_ms: 10_000,
            max_oauth_bytes: 1 << 20,
            territory_max_age_secs: 24 * 3600,
            max_pages: 1_000,
            max_related_depth: 4,
            max_documents_per_host: 5_000,
            max_documents_ceiling: 250_000,
            max_bytes_per_host: 4 << 30,
            max_redirects: 5,
            allow_http: Vec::new(),
            allow_private: Vec::new(),
            user_agent: format!(
                "cds-registry/{} (+https://github.com/cds-registry/cds-registry)",
                env!("CARGO_PKG_VERSION")
            ),
            lease_secs: 60,
            poll_secs: 5,
            // 100,000 territories at 20 ms each, 4 at a time, take ~500 s: the budget
            // leaves such an aggregator more than three times that.
            host_budget_secs: 1_800,
            max_lease_expiries: 3,
            backoff_base_secs: 60,
            backoff_max_secs: 24 * 3600,
            stale_after_failures: 3,
            gone_after_secs: 30 * 24 * 3600,
            self_metadata_url: None,
        }
    }
}

impl Config {
    /// Load defaults → optional TOML file → `CDS_REGISTRY_*` environment, then check the
    /// values that only fail later otherwise (the cron schedule).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        if let Some(path) = file {
            if !path.is_file() {
                anyhow::bail!(
                    "configuration file {} does not exist (--config / CDS_REGISTRY_CONFIG)",
                    path.display()
                );
            }
        }
        let cfg: Config = Self::figment(file).extract().map_err(config_error)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks no type can express.
    pub fn check(&self) -> anyhow::Result<()> {
        check_schedule(&self.crawl.schedule)?;
        self.geocoder.check()?;
        self.publish.check(self.listen)?;
        if self.crawl.max_documents_ceiling < self.crawl.max_documents_per_host {
            anyhow::bail!(
                "crawl.max_documents_ceiling ({}) is below crawl.max_documents_per_host ({}); \
                 the ceiling bounds what a host may declare above the per-host allowance",
                self.crawl.max_documents_ceiling,
                self.crawl.max_documents_per_host
            );
        }
        Ok(())
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            f = f.merge(Toml::file_exact(path));
        }
        // CDS_REGISTRY_CONFIG names the file itself (see main.rs), it is not a key.
        f.merge(
            Env::prefixed("CDS_REGISTRY_")
                .split("__")
                .ignore(&["config"]),
        )
    }

    /// The crawler's settings, with what it must know of the rest: the registry's own
    /// published URL, so it does not import its own entries back (DESIGN.md, "Federation").
    pub fn crawl_config(&self) -> CrawlConfig {
        CrawlConfig {
            self_metadata_url: self.publish.at(self.listen).metadata_url(),
            ..self.crawl.clone()
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }
}

/// The 6-field cron format, for messages.
pub const CRON_FORMAT: &str = "6 fields, seconds first: `sec min hour day-of-month month \
day-of-week`, e.g. `0 0 */6 * * *` (every 6 hours) or `0 30 2 * * *` (02:30 every day)";

/// Parse the schedule the way the scheduler will, so a typo fails at start (and in
/// `migrate`), not at the first tick.
fn check_schedule(schedule: &str) -> anyhow::Result<()> {
    tokio_cron_scheduler::Job::new(schedule, |_, _| {})
        .map(drop)
        .map_err(|e| anyhow::anyhow!("crawl.schedule {schedule:?} is not a valid cron schedule ({e}); it takes {CRON_FORMAT}"))
}

/// Every configuration error on its own line, with the key as the operator writes it
/// (`crawl.concurrency`, not figment's profile-qualified `default.crawl.concurrency`).
fn config_error(e: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect();
    anyhow::anyhow!("configuration error: {}", lines.join("; "))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:9000\"\nadmin_token = \"s3cret\"\n[crawl]\nconcurrency = 7\nallow_http = [\"a.example:8080\"]\n",
            )?;
            jail.set_env("CDS_REGISTRY_CRAWL__CONCURRENCY", "9");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.crawl.concurrency, 9, "environment wins over the file");
            assert_eq!(c.crawl.allow_http, vec!["a.example:8080".to_owned()]);
            assert_eq!(c.crawl.max_redirects, 5, "defaults fill the rest");
            assert!(!format!("{c:?}").contains("s3cret"), "secrets are redacted");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[crawl]\nconcurency = 7\n")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("concurency"), "{e}");
            assert!(!e.contains("default."), "no figment profile prefix: {e}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_schedule_fails_at_load_with_the_format() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CDS_REGISTRY_CRAWL__SCHEDULE", "0 */6 * * *");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("crawl.schedule") && e.contains("seconds first"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_document_ceiling_below_the_per_host_allowance_fails_at_load() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CDS_REGISTRY_CRAWL__MAX_DOCUMENTS_CEILING", "100");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("crawl.max_documents_ceiling") && e.contains("max_documents_per_host"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_defaults_admit_a_100000_entry_aggregator() {
        let c = CrawlConfig::default();
        // 100,000 territories, 100 pages and the metadata, twice over.
        assert!(c.max_documents_ceiling > 2 * 100_000 + 100);
        assert!(c.max_pages >= 100);
        // ~5 M vertices of GeoJSON text, about 40 bytes a vertex, with room to spare.
        assert!(c.max_bytes_per_host >= 1 << 30);
        // 100,000 documents at 20 ms, `per_host_concurrency` at a time.
        let secs = 100_000 * 20 / 1000 / c.per_host_concurrency as u64;
        assert!(c.host_budget_secs >= 2 * secs, "{} s", c.host_budget_secs);
    }

    #[test]
    fn a_missing_file_is_one_line() {
        let e = Config::load(Some(Path::new("/nonexistent/cds.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/cds.toml") && !e.contains('\n'),
            "{e}"
        );
    }
}
