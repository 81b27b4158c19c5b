//! A server's territories: every GeoJSON document its entries link, downloaded
//! `per_host_concurrency` at a time and read off the async runtime, then joined to the
//! entries that link them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::server::Gathered;
use super::{blocked_finding, failure_marker, sha256_hex, HostCrawler};
use crate::cds::validate;
use crate::cds::Finding;
use crate::config::CrawlConfig;
use crate::crawl::fetch::{DocKind, FailureClass, FetchError, Fetched};
use crate::store::{DocumentRecord, EntryRecord, TerritoryRecord};
use crate::territory;

impl HostCrawler<'_> {
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

    /// Download and parse every territory, `per_host_concurrency` at a time. Each body is
    /// read as soon as it arrives, off the async runtime ([`read_geojson`]), and only the
    /// result (WKB and facts) is kept: memory stays near one body per download in flight.
    ///
    /// A territory still fresh ([`HostCrawler::fresh_territories`]) is not asked for at
    /// all: the stored one is used as it is.
    pub(super) async fn territories(
        &self,
        urls: &[(String, Url)],
        listed: &Listed,
        server_url: &str,
        g: &mut Gathered,
    ) -> Result<HashMap<String, GeoDoc>, FetchError> {
        let stored = self.prefetch_territory_hashes(urls).await?;
        let mut out = self
            .fresh_territories(urls, listed, server_url, &stored)
            .await?;
        let urls: Vec<(String, Url)> = urls
            .iter()
            .filter(|(raw, _)| !out.contains_key(raw))
            .cloned()
            .collect();
        self.count_docs(urls.len())?;
        let mut results = stream::iter(urls)
            .map(|(raw, url)| async move {
                let r = self.fetch_territory(&url).await;
                (raw, url, r)
            })
            .buffer_unordered(self.ctx.cfg.per_host_concurrency.max(1));
        while let Some((raw, url, r)) = results.next().await {
            let doc = match r {
                Ok((f, None)) => self.unchanged_territory(&url, f, &stored, g).await?,
                Ok((f, Some(read))) => read_territory(&f, read, g),
                Err(e) if self.degrades(&e) => self.failed_territory(&url, e, &stored, g).await?,
                Err(e) => return Err(e),
            };
            out.insert(raw, doc);
        }
        Ok(out)
    }

    /// The territories that need no request this crawl: fetched or revalidated within
    /// `crawl.territory_max_age_secs`, and linked only by entries whose JSON is exactly
    /// what is stored with that very territory (the entry's stored content hash covers
    /// both). The stored territory stands as it is, and its document keeps its fetch time,
    /// so it is revalidated once it is older than the limit. Anything else (a changed or new
    /// entry, a territory that failed last time, a redirected URL) is fetched.
    async fn fresh_territories(
        &self,
        urls: &[(String, Url)],
        listed: &Listed,
        server_url: &str,
        stored: &StoredHashes,
    ) -> Result<HashMap<String, GeoDoc>, FetchError> {
        let max_age = self.ctx.cfg.territory_max_age_secs as i64 * 1000;
        let mut out = HashMap::new();
        let (Some(store), true) = (&self.ctx.store, max_age > 0) else {
            return Ok(out);
        };
        let since = crate::store::now_ms() - max_age;
        // Raw `geojson_resource` -> (resolved URL, stored territory hash) of the fresh ones.
        let mut fresh: HashMap<&str, (&Url, &String)> = urls
            .iter()
            .filter_map(|(raw, url)| {
                let v = self.ctx.validators.get(url.as_str())?;
                let hash = stored.hashes.get(url.as_str())?;
                (v.fetched_ms > since && v.content_hash == *hash)
                    .then_some((raw.as_str(), (url, hash)))
            })
            .collect();
        if fresh.is_empty() {
            return Ok(out);
        }
        let entries = store.stored_entry_hashes(server_url).await.map_err(|e| {
            FetchError::new(
                FailureClass::Other,
                &urls[0].1,
                format!("reading the stored entries failed: {e}"),
            )
        })?;
        for r in &listed.records {
            let Some(raw) = r.geojson_resource.as_deref() else {
                continue;
            };
            let Some((_, hash)) = fresh.get(raw) else {
                continue;
            };
            let unchanged = entries
                .get(&r.id)
                .is_some_and(|h| *h == entry_hash(&r.raw_json, Some(hash)));
            if !unchanged {
                fresh.remove(raw);
            }
        }
        for (raw, (url, hash)) in fresh {
            out.insert(
                raw.to_owned(),
                GeoDoc {
                    hash: Some(hash.clone()),
                    failed: None,
                    territory: Some(TerritoryOut {
                        key: Arc::new((url.to_string(), hash.clone())),
                        record: None,
                    }),
                },
            );
        }
        Ok(out)
    }

    /// Fetch one territory and read its body (`None` after a 304).
    #[tracing::instrument(name = "territory", level = "debug", skip_all, fields(url = %url))]
    async fn fetch_territory(&self, url: &Url) -> Result<(Fetched, Option<GeoRead>), FetchError> {
        let mut f = self.fetch(url, DocKind::GeoJson).await?;
        match f.body.take() {
            Some(body) => {
                let final_url = f.final_url.to_string();
                let read = read_geojson(body, final_url, &self.ctx.cfg).await?;
                Ok((f, Some(read)))
            }
            None => Ok((f, None)),
        }
    }

    /// A territory that failed for good is the server's defect (§5a): its entries are
    /// stored without this territory, or keep the one last read from the same URL, and
    /// each gets COV-GEO-FETCH; the server's other entries still count.
    async fn failed_territory(
        &self,
        url: &Url,
        e: FetchError,
        stored: &StoredHashes,
        g: &mut Gathered,
    ) -> Result<GeoDoc, FetchError> {
        if e.class == FailureClass::Blocked {
            g.findings.push(blocked_finding(url.as_str(), "", &e));
        }
        let kept = stored.get(self, url.as_str()).await.map_err(|se| {
            FetchError::new(
                FailureClass::Other,
                url,
                format!("reading the stored territory failed: {se}"),
            )
        })?;
        Ok(GeoDoc {
            hash: None,
            territory: kept.map(|h| TerritoryOut {
                key: Arc::new((url.to_string(), h)),
                record: None,
            }),
            failed: Some(e),
        })
    }

    /// A 304: the stored territory for this URL is still current.
    async fn unchanged_territory(
        &self,
        url: &Url,
        f: Fetched,
        stored: &StoredHashes,
        g: &mut Gathered,
    ) -> Result<GeoDoc, FetchError> {
        let final_url = f.final_url.to_string();
        let Ok(Some(hash)) = stored.get(self, &final_url).await else {
            return Err(FetchError::new(
                FailureClass::Other,
                url,
                "304 for a territory we do not have",
            ));
        };
        let v = self
            .ctx
            .validators
            .get(&final_url)
            .cloned()
            .unwrap_or_default();
        g.docs.push(DocumentRecord {
            url: final_url.clone(),
            kind: DocKind::GeoJson,
            etag: f.etag.or(v.etag),
            last_modified: f.last_modified.or(v.last_modified),
            content_hash: hash.clone(),
            http_status: 304,
            size: 0,
            body: None,
        });
        Ok(GeoDoc {
            hash: Some(hash.clone()),
            failed: None,
            territory: Some(TerritoryOut {
                key: Arc::new((final_url, hash)),
                record: None,
            }),
        })
    }
}

/// A territory document read in full: its record, its findings, and the territory it
/// gives, if any.
fn read_territory(f: &Fetched, read: GeoRead, g: &mut Gathered) -> GeoDoc {
    let final_url = f.final_url.to_string();
    // A document that gave no territory keeps no validators: a 304 for it next time
    // would leave nothing to use, so it is fetched (and its findings reported) in full
    // again.
    let usable = read.territory.is_some();
    g.docs.push(DocumentRecord {
        url: final_url.clone(),
        kind: DocKind::GeoJson,
        etag: f.etag.clone().filter(|_| usable),
        last_modified: f.last_modified.clone().filter(|_| usable),
        content_hash: read.hash.clone(),
        http_status: f.status,
        size: read.size as i64,
        body: None,
    });
    g.findings.extend(read.findings);
    let territory = read
        .territory
        .map(|(wkb, bbox, vertex_count)| TerritoryOut {
            key: Arc::new((final_url.clone(), read.hash.clone())),
            record: Some(TerritoryRecord {
                source_url: final_url.clone(),
                source_hash: read.hash.clone(),
                wkb,
                bbox,
                vertex_count: vertex_count as i64,
            }),
        });
    GeoDoc {
        hash: Some(read.hash),
        territory,
        failed: None,
    }
}

/// An entry's content hash: its JSON and the hash of its territory, if it has one. Equal
/// hash, equal entry and equal territory.
fn entry_hash(raw: &str, territory_hash: Option<&String>) -> String {
    sha256_hex(format!("{raw}\u{0}{}", territory_hash.map_or("", |h| h.as_str())).as_bytes())
}

/// The listing's entries, read out of their pages: what the territory downloads and the
/// commit need of them. The pages' JSON trees go before the territories are downloaded
/// (they were the largest part of a 100,000-entry crawl's memory, docs/PERFORMANCE.md
/// "Scale"). The records are the commit's own, completed in place by [`entry_records`]
/// once the territories are known, so no second vector of 100,000 records is built
/// beside the first.
#[derive(Default)]
pub(super) struct Listed {
    /// `content_hash` empty and `territory` unset until [`entry_records`].
    records: Vec<EntryRecord>,
    /// Per record: its position in its page's `coverage_entries`, for findings' pointers.
    index: Vec<u32>,
}

impl Listed {
    /// Read one page's entries out of it, those whose `keep` flag is set (one flag per
    /// entry, in order); the page's tree goes with this call. Pages arrive one at a time
    /// ([`super::coverage::ListingRead`]), so the records replace the pages instead of
    /// joining them: with all 100 pages of a 100,000-entry listing alive beside the
    /// records, the listing was the peak of the crawler's memory (docs/PERFORMANCE.md
    /// "Scale").
    pub(super) fn add_page(&mut self, page_url: &str, mut page: Value, keep: &[bool]) {
        let Some(Value::Array(list)) = page.get_mut("coverage_entries").map(Value::take) else {
            return;
        };
        drop(page);
        for ((i, entry), _) in list.into_iter().enumerate().zip(keep).filter(|(_, k)| **k) {
            self.records
                .push(EntryRecord::of(&entry, page_url.to_owned()));
            self.index.push(i as u32);
        }
    }
}

/// The distinct GeoJSON URLs the entries link, in listing order, resolved against
/// their pages (one download per distinct URL).
pub(super) fn territory_urls(listed: &Listed) -> Vec<(String, Url)> {
    // A set, not a scan of the list: linear in the entries (a scan was quadratic,
    // 5·10⁹ comparisons for 100,000 entries).
    let mut geo_urls: Vec<(String, Url)> = Vec::new();
    let mut geo_seen: HashSet<&str> = HashSet::new();
    for r in &listed.records {
        if let Some(g) = r.geojson_resource.as_deref() {
            if geo_seen.contains(g) {
                continue;
            }
            if let Ok(u) = Url::parse(&r.page_url).and_then(|p| p.join(g)) {
                geo_seen.insert(g);
                geo_urls.push((g.to_owned(), u));
            }
        }
    }
    geo_urls
}

/// The server's entries, each keyed to its territory, and the territories this crawl
/// read anew (each once). A failed territory is reported on each entry that links it.
pub(super) fn entry_records(
    listed: Listed,
    territories: &mut HashMap<String, GeoDoc>,
    findings: &mut Vec<Finding>,
) -> (Vec<EntryRecord>, Vec<TerritoryRecord>) {
    let Listed { mut records, index } = listed;
    let mut new_territories = Vec::new();
    for (r, index) in records.iter_mut().zip(index) {
        let doc = r
            .geojson_resource
            .as_ref()
            .and_then(|g| territories.get_mut(g));
        if let (Some(d), Some(g)) = (&doc, &r.geojson_resource) {
            if let Some(e) = &d.failed {
                // Reported on each entry that links the document (§5a).
                findings.push(validate::finding_geo_fetch(
                    &r.page_url,
                    &format!("/coverage_entries/{index}/geojson_resource"),
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
                new_territories.push(rec);
            }
            Arc::clone(&t.key)
        });
        r.content_hash = entry_hash(&r.raw_json, key.as_ref().map(|k| &k.1));
        r.territory = key;
    }
    (records, distinct(new_territories))
}

/// The territories without repeats: two listed URLs can redirect to one document, read
/// twice with the same hash. Checked after the fact with borrowed keys, not with a set of
/// owned ones built on the way (~26 MB at 100,000 territories, docs/PERFORMANCE.md).
fn distinct(mut records: Vec<TerritoryRecord>) -> Vec<TerritoryRecord> {
    let keep: Vec<bool> = {
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(records.len());
        records
            .iter()
            .map(|r| seen.insert((&r.source_url, &r.source_hash)))
            .collect()
    };
    if keep.iter().all(|&k| k) {
        return records;
    }
    let mut keep = keep.into_iter();
    records.retain(|_| keep.next().unwrap_or(true));
    records
}

/// Add the territories to the server's content hash, in listing order: a HashMap's
/// order would change the hash from run to run. Every GeoJSON document counts, also one
/// that gave no territory: its findings change with it.
pub(super) fn hash_territories(
    urls: &[(String, Url)],
    territories: &HashMap<String, GeoDoc>,
    hasher: &mut Sha256,
) {
    for (raw, _) in urls {
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
        Ok(Err(not_json)) => Err(FetchError::for_target(
            FailureClass::InvalidJson,
            url,
            not_json,
        )),
        Err(e) => Err(FetchError::for_target(
            FailureClass::Other,
            url,
            format!("reading the GeoJSON failed: {e}"),
        )),
    }
}

/// One GeoJSON URL of a server after the crawl.
pub(super) struct GeoDoc {
    /// Content hash of the document (`None`: failed or refused, not read).
    hash: Option<String>,
    territory: Option<TerritoryOut>,
    /// Why the document could not be used (a permanent failure, §5a); `territory` is
    /// then the one last read from the same URL, if any.
    failed: Option<FetchError>,
}

struct TerritoryOut {
    /// (source_url, source_hash): shared with the entries that link it.
    key: Arc<(String, String)>,
    /// `None` after a 304: the row exists already.
    record: Option<TerritoryRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str, hash: &str) -> TerritoryRecord {
        TerritoryRecord {
            source_url: url.into(),
            source_hash: hash.into(),
            wkb: vec![1],
            bbox: [0.0; 4],
            vertex_count: 4,
        }
    }

    /// A document read twice (two listed URLs redirecting to it) is one territory; the
    /// same URL with another hash, or another URL with the same hash, is another.
    #[test]
    fn distinct_keeps_the_first_of_each_url_and_hash() {
        let got = distinct(vec![
            record("https://u.example/a", "h1"),
            record("https://u.example/b", "h1"),
            record("https://u.example/a", "h1"),
            record("https://u.example/a", "h2"),
            record("https://u.example/b", "h1"),
        ]);
        let keys: Vec<(&str, &str)> = got
            .iter()
            .map(|r| (r.source_url.as_str(), r.source_hash.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("https://u.example/a", "h1"),
                ("https://u.example/b", "h1"),
                ("https://u.example/a", "h2"),
            ]
        );
    }
}
