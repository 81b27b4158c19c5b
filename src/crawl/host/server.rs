//! One server: its metadata, coverage listing, OAuth metadata and territories become one
//! [`ServerCommit`]; then its related servers (depth-first, bounded by
//! `max_related_depth`, each URL once).

use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::coverage::{Listing, ListingRead};
use super::territories::{entry_records, hash_territories, territory_urls};
use super::{blocked_finding, dedup_findings, sha256_hex, HostCrawler, ServerResult};
use crate::cds::lenient::{self, Parsed};
use crate::cds::validate::{self, MetadataContext};
use crate::cds::{Finding, MetadataView, CAP_COVERAGE, CAP_OAUTH};
use crate::crawl::fetch::{DocKind, FailureClass, FetchError, Fetched};
use crate::store::{DocumentRecord, ServerCommit};

/// What one server's crawl gathers for its commit: the documents read, the findings,
/// and the content hash over everything that makes up its state.
pub(super) struct Gathered {
    pub(super) docs: Vec<DocumentRecord>,
    pub(super) findings: Vec<Finding>,
    pub(super) hasher: Sha256,
}

/// Where a server was reached from: its parent's URL (none for the host's own) and the
/// depth in related_metadata.
struct Reached {
    parent: Option<String>,
    depth: usize,
}

impl HostCrawler<'_> {
    /// Crawl one server from its fetched metadata, then its related documents (depth-first,
    /// bounded by `max_related_depth`, each URL once). Boxed: it recurses through
    /// [`Self::related`].
    pub(super) fn server<'s>(
        &'s mut self,
        meta: Fetched,
        parent: Option<String>,
        depth: usize,
        findings: Vec<Finding>,
        visited: &'s mut HashSet<String>,
    ) -> futures::future::BoxFuture<'s, Result<(), FetchError>> {
        Box::pin(self.crawl_server(meta, Reached { parent, depth }, findings, visited))
    }

    #[tracing::instrument(name = "server", level = "debug", skip_all, fields(url = %meta.final_url, depth = at.depth))]
    async fn crawl_server(
        &mut self,
        meta: Fetched,
        at: Reached,
        findings: Vec<Finding>,
        visited: &mut HashSet<String>,
    ) -> Result<(), FetchError> {
        let url = meta.final_url.to_string();
        visited.insert(meta.requested.to_string());
        visited.insert(url.clone());
        if !self.ctx.claim(&url, self.host_id) {
            // Another host (or another path of this one) already crawls this server.
            return Ok(());
        }
        let mut g = Gathered {
            docs: Vec::new(),
            findings,
            hasher: Sha256::new(),
        };
        let (doc, view) = self.metadata(&meta, &mut g).await?;
        let depth = at.depth;
        let commit = self
            .server_commit(&meta.final_url, doc, &view, g, at)
            .await?;
        let related = view.related_metadata;
        let my_index = self.out.servers.len();
        self.out.servers.push(ServerResult {
            commit,
            related: related.clone(),
        });
        // related_metadata: other documents of the same organisation (WG1-01 §2).
        if depth >= self.ctx.cfg.max_related_depth {
            return Ok(());
        }
        self.related(&meta.final_url, related, depth, visited, my_index)
            .await;
        Ok(())
    }

    /// Read and check the server's metadata document, and note what it asks the crawler
    /// to read.
    async fn metadata(
        &self,
        meta: &Fetched,
        g: &mut Gathered,
    ) -> Result<(Value, MetadataView), FetchError> {
        let url = meta.final_url.as_str();
        let (doc, meta_hash) = self.json_doc(meta, DocKind::Metadata, g).await?;
        if !doc.is_object() {
            return Err(FetchError::new(
                FailureClass::Invalid,
                &meta.final_url,
                "metadata document is not a JSON object",
            ));
        }
        if meta.final_url.scheme() == "http" {
            let allowed = self.ctx.fetcher.guard().http_allowed(&meta.final_url);
            g.findings.push(validate::finding_plain_http(url, allowed));
        }
        g.findings.extend(validate::validate_metadata(
            &doc,
            &MetadataContext { fetched_url: url },
        ));
        let view = MetadataView::from_value(&doc);
        // Itself, its coverage listing's first page, its OAuth metadata, its related
        // documents: what this server asks the crawler to read.
        self.declare(
            1 + usize::from(view.has_capability(CAP_COVERAGE))
                + usize::from(view.has_capability(CAP_OAUTH))
                + view.related_metadata.len(),
        );
        g.hasher.update(meta_hash.as_bytes());
        Ok((doc, view))
    }

    /// The rest of the server (coverage, OAuth, territories) read into its commit.
    async fn server_commit(
        &mut self,
        meta_url: &Url,
        doc: Value,
        view: &MetadataView,
        mut g: Gathered,
        at: Reached,
    ) -> Result<ServerCommit, FetchError> {
        let url = meta_url.to_string();
        let mut read = ListingRead::new(self.ctx.cfg.self_metadata_url.clone());
        // The pages are read into records as they arrive and go at once: the territory
        // downloads that follow take most of the crawl's time.
        let listing = self.listing(meta_url, view, &mut read, &mut g).await?;
        let loops = read.loops_finding();
        let ListingRead { checks, listed, .. } = read;
        g.findings.extend(checks.finish(&doc, &url));
        let oauth = self
            .server_oauth(meta_url, view, checks, &listing, &mut g)
            .await?;
        g.findings.extend(loops);
        let geo_urls = territory_urls(&listed);
        let mut territories = self.territories(&geo_urls, &listed, &url, &mut g).await?;
        let (entries, new_territories) = entry_records(listed, &mut territories, &mut g.findings);
        hash_territories(&geo_urls, &territories, &mut g.hasher);
        Ok(ServerCommit {
            url: url.clone(),
            host_id: self.host_id,
            parent_url: at.parent,
            depth: at.depth as i64,
            name: view.name.clone().unwrap_or_else(|| url.clone()),
            metadata_json: serde_json::to_string(&doc).unwrap_or_default(),
            capabilities: view.capabilities.clone(),
            content_hash: hex::encode(g.hasher.finalize()),
            entries,
            territories: new_territories,
            findings: dedup_findings(g.findings),
            documents: g.docs,
            oauth,
            listing_complete: matches!(listing, Listing::Complete),
        })
    }

    /// Crawl the related servers the server at `base` (at `depth`, `self.out.servers[index]`)
    /// lists. A related server that fails is its own failure, except a URL the guard
    /// refuses: that is the parent's defect, reported on it.
    async fn related(
        &mut self,
        base: &Url,
        related: Vec<String>,
        depth: usize,
        visited: &mut HashSet<String>,
        index: usize,
    ) {
        let url = base.to_string();
        for r in related {
            let Ok(ru) = base.join(&r) else {
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
                    self.out.servers[index]
                        .commit
                        .findings
                        .push(blocked_finding(&url, "/related_metadata", &e));
                }
                Err(e) => self.out.failed_servers.push((ru.to_string(), e)),
            }
        }
    }

    /// Fetch a JSON document and read it ([`Self::json_doc`]).
    pub(super) async fn fetch_json(
        &self,
        url: &Url,
        kind: DocKind,
        g: &mut Gathered,
    ) -> Result<(Fetched, Value, String), FetchError> {
        let f = self.fetch(url, kind).await?;
        let (value, hash) = self.json_doc(&f, kind, g).await?;
        Ok((f, value, hash))
    }

    /// Parse a fetched JSON document (or the stored copy after a 304), record it, and add
    /// the lenient-JSON finding when needed.
    async fn json_doc(
        &self,
        f: &Fetched,
        kind: DocKind,
        g: &mut Gathered,
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
            g.findings.push(validate::finding_lenient_json(&url));
        }
        g.docs.push(DocumentRecord {
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
}
