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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::fetch::{DocKind, FailureClass, FetchError, Fetched, Fetcher};
use crate::cds::lenient::{self, Parsed};
use crate::cds::oauth::{self, OAuthContext, OAuthMetadata};
use crate::cds::validate::{self, rules, EntryRef, MetadataContext};
use crate::cds::{CoverageEntry, Finding, MetadataView, Severity, CAP_COVERAGE};
use crate::cds::{CAP_OAUTH, LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH};
use crate::config::CrawlConfig;
use crate::seeds::{Scheme, Seed};
use crate::store::{
    DocumentRecord, EntryRecord, OAuthRecord, ServerCommit, Store, TerritoryRecord, Validators,
};
use crate::territory;

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

/// How far a coverage listing was read.
enum Listing {
    /// To the end (or to a loop, where every page was read).
    Complete,
    /// Not to the end; the reason, for the host's outcome.
    Incomplete(String),
}

/// How a host's metadata is found.
pub enum Start {
    /// Try `WELL_KNOWN_PATH`, then `LEGACY_WELL_KNOWN_PATH` on 404/410, at `host[:port]`
    /// over https, or over plain http where `allow_http` names the host.
    Host(String),
    /// The same discovery at an origin the operator wrote with its scheme.
    Origin(Scheme, String),
    Url(Url),
}

impl Start {
    pub fn for_seed(seed: &Seed) -> Result<Start, String> {
        Ok(match seed {
            Seed::Host(h) => Start::Host(h.clone()),
            Seed::Origin { scheme, host } => Start::Origin(*scheme, host.clone()),
            Seed::Url(u) => Start::Url(Url::parse(u).map_err(|e| e.to_string())?),
        })
    }
}

/// What the crawler will do with a seed, for `seed --dry-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPlan {
    /// The normalised host (IDNs in unicode, punycode in brackets).
    pub host: String,
    /// The first URL requested.
    pub first_url: String,
    /// How `crawl.allow_http` applies.
    pub http: String,
    /// How `crawl.allow_private` applies.
    pub private: String,
}

/// The plan for one seed under the operator's policy; requests nothing, resolves nothing.
pub fn plan(seed: &Seed, guard: &super::guard::Guard) -> SeedPlan {
    let (first, upgraded) = match seed {
        Seed::Url(u) => (Url::parse(u).ok(), false),
        Seed::Host(h) | Seed::Origin { host: h, .. } => {
            match well_known(h, seed.scheme(), WELL_KNOWN_PATH, |u| guard.http_allowed(u)) {
                Ok((u, up)) => (Some(u), up),
                Err(_) => (None, false),
            }
        }
    };
    let display = crate::seeds::display_host(seed.key());
    let host = match first.as_ref().and_then(|u| u.host_str()) {
        Some(_) if display != seed.key() => format!("{display} [{}]", seed.key()),
        Some(_) => display,
        None => seed.key().to_owned(),
    };
    let http = match (&first, upgraded) {
        (_, true) => "no: not in crawl.allow_http, upgraded to https".to_owned(),
        (Some(u), _) if u.scheme() == "http" && guard.http_allowed(u) => {
            "yes: plain http".to_owned()
        }
        (Some(u), _) if u.scheme() == "http" => {
            "no: plain http is refused (add the host to crawl.allow_http)".to_owned()
        }
        _ => "not needed (https)".to_owned(),
    };
    let private = match first.as_ref().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Ipv4(ip)) => guard.describe_ip(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => guard.describe_ip(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => guard.describe_name(&d),
        None => "-".to_owned(),
    };
    SeedPlan {
        host,
        first_url: first.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
        http,
        private,
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

/// The well-known URL at `host` for `path`, and whether an `http://` seed had to be
/// upgraded to https.
fn well_known(
    host: &str,
    scheme: Option<Scheme>,
    path: &str,
    guard_http: impl Fn(&Url) -> bool,
) -> Result<(Url, bool), String> {
    let https = Url::parse(&format!("https://{host}{path}")).map_err(|e| e.to_string())?;
    if scheme == Some(Scheme::Https) {
        return Ok((https, false));
    }
    // Plain http only where the operator allowed it for this host (CDS-SPEC-NOTES §1).
    let http = Url::parse(&format!("http://{host}{path}")).map_err(|e| e.to_string())?;
    Ok(if guard_http(&http) {
        (http, false)
    } else {
        (https, scheme == Some(Scheme::Http))
    })
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
            return Err(FetchError {
                class: FailureClass::Limit,
                url: String::new(),
                detail: format!(
                    "the host needs at least {n} documents, more than the {max} allowed ({why}); \
                     refused, nothing of this crawl committed"
                ),
                status: None,
                retry_after: None,
            });
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

    async fn stored_territory_hash(
        &self,
        url: &str,
    ) -> Result<Option<String>, crate::store::StoreError> {
        match &self.ctx.store {
            Some(s) => s.territory_hash_for(url).await,
            None => Ok(None),
        }
    }

    /// The stored territory hashes of every URL in `urls` that this run holds
    /// validators for (the only ones a 304 can answer, and the ones a failure may keep a
    /// territory for), in one query per chunk instead of one per document.
    async fn prefetch_territory_hashes(
        &self,
        urls: &[(String, Url)],
    ) -> Result<StoredHashes, FetchError> {
        let mut out = StoredHashes::default();
        let Some(store) = &self.ctx.store else {
            return Ok(out);
        };
        let known: Vec<&str> = urls
            .iter()
            .map(|(_, u)| u.as_str())
            .filter(|u| self.ctx.validators.contains_key(*u))
            .collect();
        if known.is_empty() {
            return Ok(out);
        }
        out.hashes = store.territory_hashes_for(&known).await.map_err(|e| {
            FetchError::new(
                FailureClass::Other,
                &urls[0].1,
                format!("reading the stored territories failed: {e}"),
            )
        })?;
        out.asked = known.into_iter().map(str::to_owned).collect();
        Ok(out)
    }

    async fn fetch(&self, url: &Url, kind: DocKind) -> Result<Fetched, FetchError> {
        fetch_counted(self.ctx, &self.out.stats, url, kind).await
    }

    async fn run(&mut self, start: Start) {
        // Borrowed through the context, not cloned: the policy holds every `allow_http`
        // entry, and a per-host copy made the crawl quadratic in their number (10,000
        // entries in the crawl-scale benchmark).
        let ctx = self.ctx;
        let guard = ctx.fetcher.guard();
        let mut extra = Vec::new();
        let (first, legacy) = match start {
            Start::Url(u) => (u, None),
            Start::Host(_) | Start::Origin(..) => {
                let (h, scheme) = match start {
                    Start::Origin(s, h) => (h, Some(s)),
                    Start::Host(h) => (h, None),
                    Start::Url(_) => unreachable!("matched above"),
                };
                let allowed = |u: &Url| guard.http_allowed(u);
                let current = well_known(&h, scheme, WELL_KNOWN_PATH, allowed);
                let legacy = well_known(&h, scheme, LEGACY_WELL_KNOWN_PATH, allowed);
                match (current, legacy) {
                    (Ok((c, upgraded)), Ok((l, _))) => {
                        if upgraded {
                            let seeded = format!("http://{}/", crate::seeds::display_host(&h));
                            extra.push(validate::finding_http_upgraded(&seeded, c.as_str()));
                        }
                        (c, Some(l))
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        self.out.failure = Some(FetchError {
                            class: FailureClass::Invalid,
                            url: h,
                            detail: format!("bad host: {e}"),
                            status: None,
                            retry_after: None,
                        });
                        return;
                    }
                }
            }
        };
        if let Err(e) = self.count_doc() {
            self.out.failure = Some(e);
            return;
        }
        let mut via_legacy = false;
        let mut fetched = self.fetch(&first, DocKind::Metadata).await;
        if let (Err(e), Some(legacy)) = (&fetched, &legacy) {
            if matches!(e.status, Some(404) | Some(410)) {
                via_legacy = true;
                fetched = self.fetch(legacy, DocKind::Metadata).await;
            }
        }
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                // WG1-01: the well-known URL must not require authentication.
                if e.class == FailureClass::Blocked {
                    self.out
                        .host_findings
                        .push(blocked_finding(first.as_str(), "", &e));
                }
                if matches!(e.status, Some(401) | Some(403)) {
                    self.out.host_findings.push(validate::finding_auth_required(
                        &e.url,
                        e.status.unwrap_or(401),
                    ));
                }
                // An upgraded http seed explains why https was tried; keep it with the failure.
                self.out.host_findings.append(&mut extra);
                self.out.failure = Some(e);
                return;
            }
        };
        // A 301/302 on the well-known URL means the server moved (CDS-SPEC-NOTES §1); a
        // 307/308 is followed the same way (308 like 301, 307 like 302) and reported.
        if fetched
            .redirects
            .iter()
            .any(|h| matches!(h.status, 301 | 302 | 307 | 308))
        {
            self.out.moved_to = Some(fetched.final_url.to_string());
        }
        for h in fetched
            .redirects
            .iter()
            .filter(|h| matches!(h.status, 307 | 308))
        {
            extra.push(validate::finding_redirect(
                h.from.as_str(),
                h.status,
                h.to.as_str(),
            ));
        }
        if via_legacy {
            extra.push(validate::finding_legacy_path(fetched.final_url.as_str()));
        }
        let mut visited = HashSet::new();
        match self.server(fetched, None, 0, extra, &mut visited).await {
            Ok(()) => {}
            Err(e) => self.out.failure = Some(e),
        }
    }

    /// Crawl one server from its fetched metadata, then its related documents (depth-first,
    /// bounded by `max_related_depth`, each URL once).
    fn server<'s>(
        &'s mut self,
        meta: Fetched,
        parent: Option<String>,
        depth: usize,
        mut findings: Vec<Finding>,
        visited: &'s mut HashSet<String>,
    ) -> futures::future::BoxFuture<'s, Result<(), FetchError>> {
        Box::pin(async move {
            let url = meta.final_url.to_string();
            visited.insert(meta.requested.to_string());
            visited.insert(url.clone());
            if !self.ctx.claim(&url, self.host_id) {
                // Another host (or another path of this one) already crawls this server.
                return Ok(());
            }
            let mut docs = Vec::new();
            let (doc, meta_hash) = self
                .json_doc(&meta, DocKind::Metadata, &mut docs, &mut findings)
                .await?;
            if !doc.is_object() {
                return Err(FetchError::new(
                    FailureClass::Invalid,
                    &meta.final_url,
                    "metadata document is not a JSON object",
                ));
            }
            if meta.final_url.scheme() == "http" {
                let allowed = self.ctx.fetcher.guard().http_allowed(&meta.final_url);
                findings.push(validate::finding_plain_http(&url, allowed));
            }
            findings.extend(validate::validate_metadata(
                &doc,
                &MetadataContext { fetched_url: &url },
            ));
            let view = MetadataView::from_value(&doc);
            // Itself, its coverage listing's first page, its OAuth metadata, its related
            // documents: what this server asks the crawler to read.
            self.declare(
                1 + usize::from(view.has_capability(CAP_COVERAGE))
                    + usize::from(view.has_capability(CAP_OAUTH))
                    + view.related_metadata.len(),
            );

            let mut hasher = Sha256::new();
            hasher.update(meta_hash.as_bytes());

            // Coverage listing, all pages (WG1-01 §3).
            let mut pages: Vec<(String, Value)> = Vec::new();
            let mut listing = Listing::Complete;
            if view.has_capability(CAP_COVERAGE) {
                if let Some(cov) = view
                    .coverage
                    .as_deref()
                    .and_then(|c| meta.final_url.join(c).ok())
                {
                    listing = self
                        .walk_pages(cov, &mut pages, &mut docs, &mut findings, &mut hasher)
                        .await?;
                }
            }
            if let Listing::Incomplete(why) = &listing {
                self.out.incomplete.push(format!("{url}: {why}"));
            }
            // Borrowed from the pages, not copied: an aggregator lists 100,000 entries.
            let mut refs = Vec::new();
            for (page_url, page) in &pages {
                let Some(list) = page.get("coverage_entries").and_then(Value::as_array) else {
                    continue;
                };
                for (i, entry) in list.iter().enumerate() {
                    refs.push(EntryRef {
                        page_url,
                        index: i,
                        entry,
                    });
                }
            }
            findings.extend(validate::validate_server(&doc, &url, &refs));

            // The `oauth` capability (WG1-02 §3): its authorization server metadata is
            // part of the server's state, so its hash is part of the server's hash (a
            // scope change is a server change) and a failed fetch fails the server.
            let mut oauth = None;
            if view.has_capability(CAP_OAUTH) {
                if let Some(ou) = view
                    .oauth_metadata
                    .as_deref()
                    .and_then(|o| meta.final_url.join(o).ok())
                {
                    let mut coverage_ids: HashSet<String> = refs
                        .iter()
                        .filter_map(|r| r.entry.get("id").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect();
                    // An incomplete listing keeps its stored entries (§5a), so a scope may
                    // name one of them: it is no unknown coverage.
                    if let (Listing::Incomplete(_), Some(store)) = (&listing, &self.ctx.store) {
                        match store.stored_entry_ids(&url).await {
                            Ok(ids) => coverage_ids.extend(ids),
                            Err(e) => {
                                return Err(FetchError::new(
                                    FailureClass::Other,
                                    &meta.final_url,
                                    format!("reading the stored entries failed: {e}"),
                                ))
                            }
                        }
                    }
                    oauth = self
                        .oauth(
                            &url,
                            ou,
                            &coverage_ids,
                            &mut docs,
                            &mut findings,
                            &mut hasher,
                        )
                        .await?;
                }
            }

            // Territories (one download per distinct URL).
            // A set, not a scan of the list: linear in the entries (a scan was quadratic,
            // 5·10⁹ comparisons for 100,000 entries).
            let mut geo_urls: Vec<(String, Url)> = Vec::new();
            let mut geo_seen: HashSet<&str> = HashSet::new();
            for r in &refs {
                if let Some(g) = r.entry.get("geojson_resource").and_then(Value::as_str) {
                    if geo_seen.contains(g) {
                        continue;
                    }
                    if let Ok(u) = Url::parse(r.page_url).and_then(|p| p.join(g)) {
                        geo_seen.insert(g);
                        geo_urls.push((g.to_owned(), u));
                    }
                }
            }
            drop(geo_seen);
            let mut territories = self
                .territories(&geo_urls, &mut docs, &mut findings)
                .await?;
            let mut entries = Vec::new();
            let mut new_territories = Vec::new();
            let mut new_keys: HashSet<(String, String)> = HashSet::new();
            for r in &refs {
                let entry = CoverageEntry::from_value(r.entry);
                let raw = serde_json::to_string(r.entry).unwrap_or_default();
                let doc = entry
                    .geojson_resource
                    .as_ref()
                    .and_then(|g| territories.get_mut(g));
                if let (Some(d), Some(g)) = (&doc, &entry.geojson_resource) {
                    if let Some(e) = &d.failed {
                        // Reported on each entry that links the document (§5a).
                        findings.push(validate::finding_geo_fetch(
                            r.page_url,
                            &format!("{}/geojson_resource", r.pointer()),
                            g,
                            (e.class.as_str(), e.status, &e.detail),
                            d.territory.is_some(),
                        ));
                    }
                }
                let territory = doc.and_then(|d| d.territory.as_mut());
                let key = territory.map(|t| {
                    // Moved, not cloned: a WKB can be megabytes, and every server's are
                    // held until its commit.
                    if let Some(rec) = t.record.take() {
                        if new_keys.insert((rec.source_url.clone(), rec.source_hash.clone())) {
                            new_territories.push(rec);
                        }
                    }
                    (t.source_url.clone(), t.source_hash.clone())
                });
                entries.push(EntryRecord {
                    content_hash: sha256_hex(
                        format!(
                            "{raw}\u{0}{}",
                            key.as_ref().map(|k| k.1.as_str()).unwrap_or("")
                        )
                        .as_bytes(),
                    ),
                    entry,
                    raw_json: raw,
                    page_url: r.page_url.to_owned(),
                    territory: key,
                });
            }
            // In listing order: a HashMap's order would change the hash from run to run.
            // Every GeoJSON document counts, also one that gave no territory: its
            // findings change with it.
            for (raw, _) in &geo_urls {
                let Some(d) = territories.get(raw) else {
                    continue;
                };
                if let Some(h) = &d.hash {
                    hasher.update(h.as_bytes());
                }
                if let Some(e) = &d.failed {
                    // A failure is part of the state: its finding must replace the
                    // stored ones, and the recovery must be seen as a change.
                    hasher.update(failure_marker(raw, e).as_bytes());
                }
            }
            let content_hash = hex::encode(hasher.finalize());
            drop(refs);

            let related: Vec<String> = view.related_metadata.clone();
            let my_index = self.out.servers.len();
            self.out.servers.push(ServerResult {
                commit: ServerCommit {
                    url: url.clone(),
                    host_id: self.host_id,
                    parent_url: parent,
                    depth: depth as i64,
                    name: view.name.clone().unwrap_or_else(|| url.clone()),
                    metadata_json: serde_json::to_string(&doc).unwrap_or_default(),
                    capabilities: view.capabilities.clone(),
                    content_hash,
                    entries,
                    territories: new_territories,
                    findings: dedup_findings(findings),
                    documents: docs,
                    oauth,
                    listing_complete: matches!(listing, Listing::Complete),
                },
                related: related.clone(),
            });

            // related_metadata: other documents of the same organisation (WG1-01 §2).
            if depth >= self.ctx.cfg.max_related_depth {
                return Ok(());
            }
            for r in related {
                let Ok(ru) = meta.final_url.join(&r) else {
                    continue;
                };
                if !visited.insert(ru.to_string()) {
                    continue; // a cycle back to a document this host already crawled
                }
                if let Err(e) = self.count_doc() {
                    self.out.failed_servers.push((ru.to_string(), e));
                    break;
                }
                match self.fetch(&ru, DocKind::Metadata).await {
                    Ok(f) => {
                        let u = f.final_url.to_string();
                        if let Err(e) = self
                            .server(f, Some(url.clone()), depth + 1, Vec::new(), visited)
                            .await
                        {
                            self.out.failed_servers.push((u, e));
                        }
                    }
                    Err(e) if e.class == FailureClass::Blocked => {
                        // The parent named a URL we refuse to fetch: that is the parent's
                        // defect, reported on it; nothing was requested.
                        self.out.servers[my_index]
                            .commit
                            .findings
                            .push(blocked_finding(&url, "/related_metadata", &e));
                    }
                    Err(e) => self.out.failed_servers.push((ru.to_string(), e)),
                }
            }
            Ok(())
        })
    }

    /// Parse a fetched JSON document (or the stored copy after a 304), record it, and add
    /// the lenient-JSON finding when needed.
    async fn json_doc(
        &self,
        f: &Fetched,
        kind: DocKind,
        docs: &mut Vec<DocumentRecord>,
        findings: &mut Vec<Finding>,
    ) -> Result<(Value, String), FetchError> {
        let url = f.final_url.to_string();
        let (text, hash) = match &f.body {
            Some(b) => (String::from_utf8_lossy(b).into_owned(), sha256_hex(b)),
            None => match self.stored_body(&url).await {
                Ok(Some(x)) => x,
                // A 304 for a document we never stored (validators from elsewhere): refetch.
                _ => {
                    return Err(FetchError::new(
                        FailureClass::Other,
                        &f.final_url,
                        "304 without a stored copy",
                    ))
                }
            },
        };
        let (value, parsed) = lenient::parse(text.as_bytes())
            .map_err(|e| FetchError::new(FailureClass::InvalidJson, &f.final_url, e.to_string()))?;
        if parsed == Parsed::Lenient {
            findings.push(validate::finding_lenient_json(&url));
        }
        docs.push(DocumentRecord {
            url,
            kind,
            etag: f.etag.clone(),
            last_modified: f.last_modified.clone(),
            content_hash: hash.clone(),
            http_status: f.status,
            size: text.len() as i64,
            body: Some(text),
        });
        Ok((value, hash))
    }

    /// Fetch, check and read the OAuth metadata at `url` for the server at `server_url`.
    /// A URL the guard refuses is the server's defect (URL-BLOCKED on `/oauth_metadata`)
    /// and leaves it without OAuth metadata; any other failure fails the server, so its
    /// stored state stays the last known good one.
    async fn oauth(
        &self,
        server_url: &str,
        url: Url,
        coverage_ids: &HashSet<String>,
        docs: &mut Vec<DocumentRecord>,
        findings: &mut Vec<Finding>,
        hasher: &mut Sha256,
    ) -> Result<Option<OAuthRecord>, FetchError> {
        self.count_doc()?;
        // A permanent failure leaves the server without OAuth offers and is reported
        // (OAUTH-FETCH, CDS-SPEC-NOTES §5a); a transient one fails the server, so its
        // stored state (offers included) stays the last known good one.
        let failed = |e: FetchError, findings: &mut Vec<Finding>, hasher: &mut Sha256| {
            if e.class == FailureClass::Blocked {
                findings.push(blocked_finding(server_url, "/oauth_metadata", &e));
            }
            findings.push(validate::finding_oauth_fetch(
                server_url,
                url.as_str(),
                (e.class.as_str(), e.status, &e.detail),
            ));
            hasher.update(failure_marker(url.as_str(), &e).as_bytes());
        };
        let f = match self.fetch(&url, DocKind::OAuth).await {
            Ok(f) => f,
            Err(e) if self.degrades(&e) => {
                failed(e, findings, hasher);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (value, hash) = match self.json_doc(&f, DocKind::OAuth, docs, findings).await {
            Ok(x) => x,
            Err(e) if self.degrades(&e) => {
                failed(e, findings, hasher);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        hasher.update(hash.as_bytes());
        let fetched_url = f.final_url.to_string();
        let guard = self.ctx.fetcher.guard();
        let http_allowed = |u: &Url| guard.http_allowed(u);
        findings.extend(oauth::validate_oauth(
            &value,
            &OAuthContext {
                fetched_url: &fetched_url,
                coverage_ids,
                http_allowed: &http_allowed,
            },
        ));
        if !value.is_object() {
            return Ok(None);
        }
        Ok(Some(OAuthRecord {
            url: fetched_url,
            raw_json: serde_json::to_string(&value).unwrap_or_default(),
            metadata: OAuthMetadata::from_value(&value),
        }))
    }

    async fn walk_pages(
        &self,
        first: Url,
        pages: &mut Vec<(String, Value)>,
        docs: &mut Vec<DocumentRecord>,
        findings: &mut Vec<Finding>,
        hasher: &mut Sha256,
    ) -> Result<Listing, FetchError> {
        let mut seen = HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                // WG1-01 §3: `next` must lead to the end; a repeat is a loop.
                findings.push(validate::finding_page_loop(url.as_str()));
                break;
            }
            let max = self.ctx.cfg.max_pages;
            if pages.len() >= max {
                // Our limit, not the server's defect (CDS-SPEC-NOTES §3): reported, and
                // the unread pages' entries keep their last known good state.
                let last = pages.last().map_or(url.as_str(), |(u, _)| u.as_str());
                findings.push(validate::finding_page_cap(last, max));
                hasher.update(format!("page-cap\u{0}{url}").as_bytes());
                return Ok(Listing::Incomplete(format!(
                    "coverage listing longer than {max} pages (crawl.max_pages); the rest was not read"
                )));
            }
            self.count_doc()?;
            let read = match self.fetch(&url, DocKind::CoveragePage).await {
                Ok(f) => self
                    .json_doc(&f, DocKind::CoveragePage, docs, findings)
                    .await
                    .map(|x| (f, x)),
                Err(e) => Err(e),
            };
            let (f, (page, hash)) = match read {
                Ok(x) => x,
                Err(e) if self.degrades(&e) => {
                    // §5a: the listing is incomplete; no entry is taken as removed.
                    findings.push(validate::finding_page_fetch(
                        url.as_str(),
                        e.class.as_str(),
                        e.status,
                        &e.detail,
                    ));
                    hasher.update(failure_marker(url.as_str(), &e).as_bytes());
                    return Ok(Listing::Incomplete(format!(
                        "coverage page {url} failed ({}); the listing is incomplete",
                        e.class.as_str()
                    )));
                }
                Err(e) => return Err(e),
            };
            hasher.update(hash.as_bytes());
            findings.extend(validate::validate_coverage_page(
                &page,
                f.final_url.as_str(),
            ));
            next = page
                .get("next")
                .and_then(Value::as_str)
                .and_then(|n| f.final_url.join(n).ok());
            let listed = page
                .get("coverage_entries")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            // One territory per entry at most, and the next page.
            self.declare(listed + usize::from(next.is_some()));
            pages.push((f.final_url.to_string(), page));
        }
        Ok(Listing::Complete)
    }

    /// Download and parse every territory, `per_host_concurrency` at a time. Each body is
    /// read as soon as it arrives, off the async runtime ([`read_geojson`]), and only the
    /// result (WKB and facts) is kept: memory stays near one body per download in flight.
    async fn territories(
        &self,
        urls: &[(String, Url)],
        docs: &mut Vec<DocumentRecord>,
        findings: &mut Vec<Finding>,
    ) -> Result<HashMap<String, GeoDoc>, FetchError> {
        self.count_docs(urls.len())?;
        let stored = self.prefetch_territory_hashes(urls).await?;
        let mut results = stream::iter(urls.iter().cloned())
            .map(|(raw, url)| async move {
                let r = match self.fetch(&url, DocKind::GeoJson).await {
                    Ok(mut f) => match f.body.take() {
                        Some(body) => {
                            let final_url = f.final_url.to_string();
                            read_geojson(body, final_url, &self.ctx.cfg)
                                .await
                                .map(|g| (f, Some(g)))
                        }
                        None => Ok((f, None)),
                    },
                    Err(e) => Err(e),
                };
                (raw, url, r)
            })
            .buffer_unordered(self.ctx.cfg.per_host_concurrency.max(1));
        let mut out = HashMap::new();
        while let Some((raw, url, r)) = results.next().await {
            let (f, read) = match r {
                Ok(x) => x,
                Err(e) if self.degrades(&e) => {
                    // The server's defect (§5a): its entries are stored without this
                    // territory, or keep the one last read from the same URL, and each
                    // gets COV-GEO-FETCH; the server's other entries still count.
                    if e.class == FailureClass::Blocked {
                        findings.push(blocked_finding(url.as_str(), "", &e));
                    }
                    let kept = match stored.get(self, url.as_str()).await {
                        Ok(h) => h,
                        Err(se) => {
                            return Err(FetchError::new(
                                FailureClass::Other,
                                &url,
                                format!("reading the stored territory failed: {se}"),
                            ))
                        }
                    };
                    out.insert(
                        raw,
                        GeoDoc {
                            hash: None,
                            territory: kept.map(|h| TerritoryOut {
                                source_url: url.to_string(),
                                source_hash: h,
                                record: None,
                            }),
                            failed: Some(e),
                        },
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let final_url = f.final_url.to_string();
            match read {
                None => {
                    // 304: the stored territory for this URL is still current.
                    match stored.get(self, &final_url).await {
                        Ok(Some(hash)) => {
                            let v = self
                                .ctx
                                .validators
                                .get(&final_url)
                                .cloned()
                                .unwrap_or_default();
                            docs.push(DocumentRecord {
                                url: final_url.clone(),
                                kind: DocKind::GeoJson,
                                etag: f.etag.clone().or(v.etag),
                                last_modified: f.last_modified.clone().or(v.last_modified),
                                content_hash: hash.clone(),
                                http_status: 304,
                                size: 0,
                                body: None,
                            });
                            out.insert(
                                raw,
                                GeoDoc {
                                    hash: Some(hash.clone()),
                                    failed: None,
                                    territory: Some(TerritoryOut {
                                        source_url: final_url,
                                        source_hash: hash,
                                        record: None,
                                    }),
                                },
                            );
                        }
                        _ => {
                            return Err(FetchError::new(
                                FailureClass::Other,
                                &url,
                                "304 for a territory we do not have",
                            ))
                        }
                    }
                }
                Some(g) => {
                    // A document that gave no territory keeps no validators: a 304 for it
                    // next time would leave nothing to use, so it is fetched (and its
                    // findings reported) in full again.
                    let usable = g.territory.is_some();
                    docs.push(DocumentRecord {
                        url: final_url.clone(),
                        kind: DocKind::GeoJson,
                        etag: f.etag.clone().filter(|_| usable),
                        last_modified: f.last_modified.clone().filter(|_| usable),
                        content_hash: g.hash.clone(),
                        http_status: f.status,
                        size: g.size as i64,
                        body: None,
                    });
                    findings.extend(g.findings);
                    let territory = g.territory.map(|(wkb, bbox, vertex_count)| TerritoryOut {
                        source_url: final_url.clone(),
                        source_hash: g.hash.clone(),
                        record: Some(TerritoryRecord {
                            source_url: final_url.clone(),
                            source_hash: g.hash.clone(),
                            wkb,
                            bbox,
                            vertex_count: vertex_count as i64,
                        }),
                    });
                    out.insert(
                        raw,
                        GeoDoc {
                            hash: Some(g.hash),
                            territory,
                            failed: None,
                        },
                    );
                }
            }
        }
        Ok(out)
    }
}

/// Stored territory hashes fetched ahead for a server's territory URLs.
#[derive(Default)]
struct StoredHashes {
    /// The URLs asked for: an absent hash for one of them means none is stored.
    asked: HashSet<String>,
    hashes: HashMap<String, String>,
}

impl StoredHashes {
    /// The stored hash for `url`; a URL not asked ahead (a redirect's target) is looked
    /// up on its own.
    async fn get(
        &self,
        crawler: &HostCrawler<'_>,
        url: &str,
    ) -> Result<Option<String>, crate::store::StoreError> {
        if self.asked.contains(url) {
            return Ok(self.hashes.get(url).cloned());
        }
        crawler.stored_territory_hash(url).await
    }
}

/// One GeoJSON document read: what is kept of it.
struct GeoRead {
    hash: String,
    size: usize,
    /// (WKB, bbox, vertex count) when the document gave a territory.
    territory: Option<(Vec<u8>, [f64; 4], usize)>,
    findings: Vec<Finding>,
}

/// Reading GeoJSON jobs running at once in this process: one per core. The jobs run on
/// tokio's blocking threads, so the runtime's workers (every other host of the crawl, the
/// API) keep running, and at most this many bodies are being expanded at once.
fn geojson_permits() -> Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    PERMITS
        .get_or_init(|| {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get());
            Arc::new(tokio::sync::Semaphore::new(n))
        })
        .clone()
}

/// Hash, read and validate one GeoJSON body off the async runtime, within
/// `crawl.max_territory_vertices` and `crawl.geojson_budget_ms` (the clock starts when
/// the job does, not while it waits for a permit). A blocking job cannot be cancelled, so
/// the reader itself stops at the deadline; the permit stays with the job until then,
/// even if the crawl that asked for it was dropped.
async fn read_geojson(
    body: bytes::Bytes,
    url: String,
    cfg: &CrawlConfig,
) -> Result<GeoRead, FetchError> {
    let permit = geojson_permits()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let max_vertices = cfg.max_territory_vertices;
    let budget_ms = cfg.geojson_budget_ms;
    let job_url = url.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let limits = territory::GeoLimits {
            max_vertices,
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(budget_ms)),
            budget_ms,
        };
        let hash = sha256_hex(&body);
        let size = body.len();
        let read = territory::read_document(&body, &job_url, limits);
        drop(body);
        read.map(|(t, findings)| GeoRead {
            hash,
            size,
            territory: t.map(|t| (territory::to_wkb(&t.geometry), t.bbox, t.vertex_count)),
            findings,
        })
    });
    match job.await {
        Ok(Ok(g)) => Ok(g),
        // Not JSON: a permanent failure of this document (§5a), like a 404.
        Ok(Err(not_json)) => Err(FetchError {
            class: FailureClass::InvalidJson,
            url,
            detail: not_json,
            status: None,
            retry_after: None,
        }),
        Err(e) => Err(FetchError {
            class: FailureClass::Other,
            url: url.clone(),
            detail: format!("reading the GeoJSON failed: {e}"),
            status: None,
            retry_after: None,
        }),
    }
}

/// One GeoJSON URL of a server after the crawl.
struct GeoDoc {
    /// Content hash of the document (`None`: failed or refused, not read).
    hash: Option<String>,
    territory: Option<TerritoryOut>,
    /// Why the document could not be used (a permanent failure, §5a); `territory` is
    /// then the one last read from the same URL, if any.
    failed: Option<FetchError>,
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

struct TerritoryOut {
    source_url: String,
    source_hash: String,
    /// `None` after a 304: the row exists already.
    record: Option<TerritoryRecord>,
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
                    return Err(FetchError {
                        class: FailureClass::Limit,
                        url: url.to_string(),
                        detail: format!(
                            "the host's documents exceed {max} bytes (crawl.max_bytes_per_host); \
                             refused, nothing of this crawl committed"
                        ),
                        status: None,
                        retry_after: None,
                    });
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
