//! A server's coverage listing, page by page along `next` (WG1-01 §3), bounded by
//! `crawl.max_pages` and safe against loops.

use std::collections::HashSet;

use serde_json::Value;
use sha2::Digest;
use url::Url;

use super::server::Gathered;
use super::territories::Listed;
use super::{failure_marker, HostCrawler};
use crate::cds::origin::{Claim, Origin};
use crate::cds::validate::{self, EntryRef, ServerChecks};
use crate::cds::{MetadataView, CAP_COVERAGE};
use crate::crawl::fetch::{DocKind, FetchError};

/// How far a coverage listing was read.
pub(super) enum Listing {
    /// To the end (or to a loop, where every page was read).
    Complete,
    /// Not to the end; the reason, for the host's outcome.
    Incomplete(String),
}

/// One coverage page read: where it was read from, the page, and its `next` link.
struct Page {
    final_url: Url,
    page: Value,
    next: Option<Url>,
}

impl HostCrawler<'_> {
    /// The server's coverage listing, all pages, when it has the capability and names
    /// a listing. A listing not read to its end is noted for the host's outcome.
    pub(super) async fn listing(
        &mut self,
        meta_url: &Url,
        view: &MetadataView,
        read: &mut ListingRead,
        g: &mut Gathered,
    ) -> Result<Listing, FetchError> {
        let mut listing = Listing::Complete;
        if view.has_capability(CAP_COVERAGE) {
            if let Some(cov) = view.coverage.as_deref().and_then(|c| meta_url.join(c).ok()) {
                listing = self.walk_pages(cov, read, g).await?;
            }
        }
        if let Listing::Incomplete(why) = &listing {
            self.out.incomplete.push(format!("{meta_url}: {why}"));
        }
        Ok(listing)
    }

    async fn walk_pages(
        &self,
        first: Url,
        read_so_far: &mut ListingRead,
        g: &mut Gathered,
    ) -> Result<Listing, FetchError> {
        let mut seen = HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                // WG1-01 §3: `next` must lead to the end; a repeat is a loop.
                g.findings.push(validate::finding_page_loop(url.as_str()));
                break;
            }
            let max = self.ctx.cfg.max_pages;
            if read_so_far.pages >= max {
                // Our limit, not the server's defect (CDS-SPEC-NOTES §3): reported, and
                // the unread pages' entries keep their last known good state.
                let last = read_so_far.last_url.as_deref().unwrap_or(url.as_str());
                g.findings.push(validate::finding_page_cap(last, max));
                g.hasher.update(format!("page-cap\u{0}{url}").as_bytes());
                return Ok(Listing::Incomplete(format!(
                    "coverage listing longer than {max} pages (crawl.max_pages); the rest was not read"
                )));
            }
            self.count_doc()?;
            let read = match self.page(&url, g).await {
                Ok(p) => p,
                Err(e) if self.degrades(&e) => {
                    // §5a: the listing is incomplete; no entry is taken as removed.
                    g.findings.push(validate::finding_page_fetch(
                        url.as_str(),
                        e.class.as_str(),
                        e.status,
                        &e.detail,
                    ));
                    g.hasher.update(failure_marker(url.as_str(), &e).as_bytes());
                    return Ok(Listing::Incomplete(format!(
                        "coverage page {url} failed ({}); the listing is incomplete",
                        e.class.as_str()
                    )));
                }
                Err(e) => return Err(e),
            };
            next = read.next;
            read_so_far.page(read.final_url.to_string(), read.page);
        }
        Ok(Listing::Complete)
    }

    /// Fetch, read and check one coverage page; it declares its entries' territories
    /// and its next page.
    #[tracing::instrument(name = "coverage_page", level = "debug", skip_all, fields(url = %url))]
    async fn page(&self, url: &Url, g: &mut Gathered) -> Result<Page, FetchError> {
        let (f, page, hash) = self.fetch_json(url, DocKind::CoveragePage, g).await?;
        g.hasher.update(hash.as_bytes());
        g.findings.extend(validate::validate_coverage_page(
            &page,
            f.final_url.as_str(),
        ));
        let next = page
            .get("next")
            .and_then(Value::as_str)
            .and_then(|n| f.final_url.join(n).ok());
        let listed = page
            .get("coverage_entries")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        // One territory per entry at most, and the next page.
        self.declare(listed + usize::from(next.is_some()));
        Ok(Page {
            final_url: f.final_url,
            page,
            next,
        })
    }
}

/// Does this registry import the entry? All but copies of its own entries coming back
/// through another registry, and copies that passed through too many registries
/// ([`Claim::Loop`], DESIGN.md "Federation").
pub(super) fn imported(entry: &Value, self_url: Option<&str>) -> bool {
    Origin::claim(entry, self_url) != Claim::Loop
}

/// What a crawl keeps of a server's listing while its pages arrive, one page at a time:
/// the entries' records, what the checks across pages need ([`ServerChecks`], whose ids
/// are also those OAuth scopes may name), and the entries this registry does not import.
/// Each page's tree goes once it is read.
pub(super) struct ListingRead {
    pub checks: ServerChecks,
    pub listed: Listed,
    /// This registry's own metadata URL ([`imported`]).
    self_url: Option<String>,
    /// The first entry not imported (page URL, pointer) and how many there were.
    loops: Option<(String, String, usize)>,
    pages: usize,
    last_url: Option<String>,
}

impl ListingRead {
    pub(super) fn new(self_url: Option<String>) -> ListingRead {
        ListingRead {
            checks: ServerChecks::default(),
            listed: Listed::default(),
            self_url,
            loops: None,
            pages: 0,
            last_url: None,
        }
    }

    /// The next page of the listing, read.
    fn page(&mut self, page_url: String, page: Value) {
        let mut keep = Vec::new();
        for r in EntryRef::of_page(&page_url, &page) {
            self.checks.entry(&r);
            let imported = imported(r.entry, self.self_url.as_deref());
            if !imported {
                match &mut self.loops {
                    Some(l) => l.2 += 1,
                    None => self.loops = Some((page_url.clone(), r.pointer(), 1)),
                }
            }
            keep.push(imported);
        }
        self.listed.add_page(&page_url, page, &keep);
        self.pages += 1;
        self.last_url = Some(page_url);
    }

    /// The finding about the entries not imported, once per server.
    pub(super) fn loops_finding(&self) -> Option<crate::cds::Finding> {
        let (page_url, pointer, n) = self.loops.as_ref()?;
        Some(validate::finding_registry_loop(page_url, pointer, *n))
    }
}
