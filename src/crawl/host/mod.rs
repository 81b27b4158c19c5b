//! The per-host pipeline: well-known discovery (current path, then legacy), redirects and
//! migration, related_metadata (bounded, cycle-safe), paginated coverage, territories.
//!
//! Nothing here writes to the database: a host crawl produces one [`ServerCommit`] per
//! server whose metadata was fetched, and the caller commits each in one transaction.
//! A server whose crawl failed transiently (timeout, reset, DNS, 5xx, 429) produces no
//! commit, so its stored state stays the last known good one (DESIGN.md, "Last known
//! good"). A linked document that fails permanently (404/410, not JSON, too large, a
//! refused URL) is the server's defect: it becomes a finding and the rest of the server
//! is committed (CDS-SPEC-NOTES §5a).

mod coverage;
mod discovery;
mod oauth;
mod server;
mod territories;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use url::Url;

use super::fetch::{DocKind, FailureClass, FetchError, Fetched, Fetcher};
use crate::cds::validate::rules;
use crate::cds::{Finding, Severity};
use crate::config::CrawlConfig;
use crate::store::{ServerCommit, Store, Validators};

pub use discovery::{plan, SeedPlan, Start};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Shared state of one crawl run.
pub struct RunContext {
    pub run_id: i64,
    /// `None` for `validate`, which stores nothing (and so never sends conditional
    /// requests: a 304 always has a stored copy behind it).
    pub store: Option<Store>,
    pub fetcher: Fetcher,
    pub cfg: CrawlConfig,
    /// Stored validators (URL → ETag/Last-Modified) loaded at the start of the run.
    pub validators: HashMap<String, Validators>,
    /// Server URLs already claimed in this run, with the host that claimed each: a server
    /// reached twice (a migrated host and its target, a related document listed by two
    /// parents) is crawled once. A host attempt that ends without recording its outcome
    /// (cancelled, abandoned, store error) releases its claims, so the retry crawls and
    /// commits the servers instead of skipping them as already done (issue 19).
    pub claimed: Mutex<HashMap<String, i64>>,
}

impl RunContext {
    fn claim(&self, url: &str, host_id: i64) -> bool {
        match self
            .claimed
            .lock()
            .expect("claim lock")
            .entry(url.to_owned())
        {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(host_id);
                true
            }
        }
    }

    /// Forget every claim of `host_id` (its attempt ended without an outcome).
    pub fn release_claims(&self, host_id: i64) {
        self.claimed
            .lock()
            .expect("claim lock")
            .retain(|_, h| *h != host_id);
    }

    /// Forget the claim on one server (its commit failed, so it was not crawled).
    pub fn release_claim(&self, url: &str) {
        self.claimed.lock().expect("claim lock").remove(url);
    }

    fn validator_fn(&self) -> impl Fn(&str) -> Option<Validators> + Send + Sync + '_ {
        move |u: &str| self.validators.get(u).cloned()
    }
}

/// Counters of one host crawl.
#[derive(Debug, Default)]
pub struct HostStats {
    pub docs_fetched: AtomicU64,
    pub docs_unchanged: AtomicU64,
    pub bytes: AtomicU64,
    pub documents: AtomicU64,
}

/// A server crawled completely, ready to commit.
#[derive(Debug)]
pub struct ServerResult {
    pub commit: ServerCommit,
    /// Related metadata URLs it lists (for retiring children no longer listed).
    pub related: Vec<String>,
}

/// Everything a host crawl produced.
#[derive(Debug, Default)]
pub struct HostCrawl {
    pub servers: Vec<ServerResult>,
    /// Related servers that failed (their stored state is kept).
    pub failed_servers: Vec<(String, FetchError)>,
    /// Failure of the host's own metadata document (no server could be crawled).
    pub failure: Option<FetchError>,
    pub moved_to: Option<String>,
    pub host_findings: Vec<Finding>,
    /// Servers whose coverage listing was not read to its end (page cap, a page that
    /// failed permanently): committed, but the outcome says why it is partial.
    pub incomplete: Vec<String>,
    pub stats: HostStats,
}

/// Whether a linked document's failure is permanent, i.e. the server's defect to report
/// (CDS-SPEC-NOTES §5a: 404/410 and other client errors, a body that is not JSON, over the
/// size limit, a URL refused or unusable). Timeouts, resets, DNS, TLS, 5xx, 408 and 429
/// are transient: the server's last known good state is kept whole.
pub fn is_permanent(e: &FetchError) -> bool {
    match e.class {
        FailureClass::Blocked
        | FailureClass::TooLarge
        | FailureClass::InvalidJson
        | FailureClass::Invalid
        | FailureClass::TooManyRedirects => true,
        FailureClass::HttpStatus => {
            matches!(e.status, Some(s) if (400..500).contains(&s) && s != 408 && s != 429)
        }
        _ => false,
    }
}

struct HostCrawler<'a> {
    ctx: &'a RunContext,
    host_id: i64,
    out: HostCrawl,
    /// Documents the host's own documents declare so far: each read metadata document
    /// declares itself, its coverage listing, OAuth metadata and related documents; each
    /// read coverage page its entries' territories and its next page. The document
    /// allowance grows with it up to `crawl.max_documents_ceiling` (issue 17).
    declared: AtomicU64,
}

/// Crawl one host. Never fails: every problem is in the returned [`HostCrawl`].
pub async fn crawl_host(ctx: &RunContext, host_id: i64, start: Start) -> HostCrawl {
    let mut hc = HostCrawler {
        ctx,
        host_id,
        out: HostCrawl::default(),
        declared: AtomicU64::new(0),
    };
    hc.run(start).await;
    hc.out
}

impl HostCrawler<'_> {
    /// Whether a linked document's failure becomes a finding with the rest of the server
    /// kept (§5a), rather than failing the server. Always for `validate` (no store): it
    /// reports every finding it can compute, whatever failed.
    fn degrades(&self, e: &FetchError) -> bool {
        self.ctx.store.is_none() || is_permanent(e)
    }

    /// Note `n` more documents declared by a document just read.
    fn declare(&self, n: usize) {
        self.declared.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Documents this host may fetch now: the per-host allowance, or what its documents
    /// declare when that is more, never above the ceiling.
    fn document_allowance(&self) -> (u64, &'static str) {
        let cfg = &self.ctx.cfg;
        let base = cfg.max_documents_per_host as u64;
        let ceiling = (cfg.max_documents_ceiling as u64).max(base);
        let declared = self.declared.load(Ordering::Relaxed);
        if declared <= base {
            (base, "crawl.max_documents_per_host")
        } else if declared <= ceiling {
            (declared, "declared by the host's documents")
        } else {
            (ceiling, "crawl.max_documents_ceiling")
        }
    }

    fn count_doc(&self) -> Result<(), FetchError> {
        self.count_docs(1)
    }

    /// Count `k` documents about to be fetched; over the allowance the crawl stops with
    /// `limit` before any of them is requested.
    fn count_docs(&self, k: usize) -> Result<(), FetchError> {
        let n = self
            .out
            .stats
            .documents
            .fetch_add(k as u64, Ordering::Relaxed)
            + k as u64;
        let (max, why) = self.document_allowance();
        if n > max {
            return Err(FetchError::for_target(
                FailureClass::Limit,
                "",
                format!(
                    "the host needs at least {n} documents, more than the {max} allowed ({why}); \
                     refused, nothing of this crawl committed"
                ),
            ));
        }
        Ok(())
    }

    async fn stored_body(
        &self,
        url: &str,
    ) -> Result<Option<(String, String)>, crate::store::StoreError> {
        match &self.ctx.store {
            Some(s) => s.document_body(url).await,
            None => Ok(None),
        }
    }
    async fn fetch(&self, url: &Url, kind: DocKind) -> Result<Fetched, FetchError> {
        fetch_counted(self.ctx, &self.out.stats, url, kind).await
    }
}

/// What a failed linked document adds to its server's content hash: the failure is part
/// of the server's state (its finding), and stays the same while the failure does.
fn failure_marker(url: &str, e: &FetchError) -> String {
    format!(
        "failed\u{0}{url}\u{0}{}\u{0}{}",
        e.class.as_str(),
        e.status.unwrap_or(0)
    )
}

async fn fetch_counted(
    ctx: &RunContext,
    stats: &HostStats,
    url: &Url,
    kind: DocKind,
) -> Result<Fetched, FetchError> {
    let vf = ctx.validator_fn();
    let t0 = std::time::Instant::now();
    let r = ctx.fetcher.get(url, kind, &vf).await;
    let (result, n) = match &r {
        Ok(f) => match &f.body {
            Some(b) => ("ok", b.len() as u64),
            None => ("not_modified", 0),
        },
        Err(e) => (e.class.as_str(), 0),
    };
    crate::metrics::fetch(kind.as_str(), result, n, t0.elapsed());
    if let Ok(f) = &r {
        match &f.body {
            Some(b) => {
                stats.docs_fetched.fetch_add(1, Ordering::Relaxed);
                let total =
                    stats.bytes.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
                // Each body is bounded by its kind's `max_*_bytes`, so the overshoot is
                // at most one document.
                let max = ctx.cfg.max_bytes_per_host;
                if total > max {
                    return Err(FetchError::new(
                        FailureClass::Limit,
                        url,
                        format!(
                            "the host's documents exceed {max} bytes (crawl.max_bytes_per_host); \
                             refused, nothing of this crawl committed"
                        ),
                    ));
                }
            }
            None => {
                stats.docs_unchanged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    r
}

/// A URL in a document that the guard refused (CDS-SPEC-NOTES §7: every URL is
/// untrusted). Never requested.
fn blocked_finding(url: &str, pointer: &str, e: &FetchError) -> Finding {
    Finding::new(
        rules::URL_BLOCKED,
        Severity::Error,
        url,
        pointer,
        format!("refused to fetch {}: {}", e.url, e.detail),
    )
    .actual(e.url.clone())
}

/// The same finding twice (e.g. one rule reached from two paths) is reported once.
fn dedup_findings(mut f: Vec<Finding>) -> Vec<Finding> {
    let mut seen = HashSet::new();
    f.retain(|x| seen.insert((x.rule.clone(), x.url.clone(), x.pointer.clone())));
    f
}

/// Shared counters handle for callers that want totals.
pub type SharedStats = Arc<HostStats>;
