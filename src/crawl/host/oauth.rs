//! A server's OAuth authorization server metadata (the `oauth` capability, WG1-02 §3).

use std::collections::HashSet;

use sha2::Digest;
use url::Url;

use super::coverage::Listing;
use super::server::Gathered;
use super::{blocked_finding, failure_marker, HostCrawler};
use crate::cds::oauth::{self, OAuthContext, OAuthMetadata};
use crate::cds::validate::{self, ServerChecks};
use crate::cds::{MetadataView, CAP_OAUTH};
use crate::crawl::fetch::{DocKind, FailureClass, FetchError};
use crate::store::OAuthRecord;

impl HostCrawler<'_> {
    /// The OAuth metadata of a server with the `oauth` capability. It is part of the
    /// server's state, so its hash is part of the server's hash (a scope change is a
    /// server change) and a failed fetch fails the server. A scope may name the ids the
    /// listing's `checks` kept.
    pub(super) async fn server_oauth(
        &self,
        meta_url: &Url,
        view: &MetadataView,
        checks: ServerChecks,
        listing: &Listing,
        g: &mut Gathered,
    ) -> Result<Option<OAuthRecord>, FetchError> {
        if !view.has_capability(CAP_OAUTH) {
            return Ok(None);
        }
        let Some(ou) = view
            .oauth_metadata
            .as_deref()
            .and_then(|o| meta_url.join(o).ok())
        else {
            return Ok(None);
        };
        let coverage_ids = self
            .coverage_ids(meta_url, checks.into_ids(), listing)
            .await?;
        self.oauth(meta_url.as_str(), ou, &coverage_ids, g).await
    }

    /// The coverage ids a scope may name: the listed entries', and the stored ones when
    /// the listing was not read to its end.
    async fn coverage_ids(
        &self,
        meta_url: &Url,
        mut coverage_ids: HashSet<String>,
        listing: &Listing,
    ) -> Result<HashSet<String>, FetchError> {
        // An incomplete listing keeps its stored entries (§5a), so a scope may
        // name one of them: it is no unknown coverage.
        if let (Listing::Incomplete(_), Some(store)) = (listing, &self.ctx.store) {
            match store.stored_entry_ids(meta_url.as_str()).await {
                Ok(ids) => coverage_ids.extend(ids),
                Err(e) => {
                    return Err(FetchError::new(
                        FailureClass::Other,
                        meta_url,
                        format!("reading the stored entries failed: {e}"),
                    ))
                }
            }
        }
        Ok(coverage_ids)
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
        g: &mut Gathered,
    ) -> Result<Option<OAuthRecord>, FetchError> {
        self.count_doc()?;
        let (f, value, hash) = match self.fetch_json(&url, DocKind::OAuth, g).await {
            Ok(x) => x,
            // A permanent failure leaves the server without OAuth offers and is reported
            // (OAUTH-FETCH, CDS-SPEC-NOTES §5a); a transient one fails the server, so its
            // stored state (offers included) stays the last known good one.
            Err(e) if self.degrades(&e) => {
                if e.class == FailureClass::Blocked {
                    g.findings
                        .push(blocked_finding(server_url, "/oauth_metadata", &e));
                }
                g.findings.push(validate::finding_oauth_fetch(
                    server_url,
                    url.as_str(),
                    (e.class.as_str(), e.status, &e.detail),
                ));
                g.hasher.update(failure_marker(url.as_str(), &e).as_bytes());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        g.hasher.update(hash.as_bytes());
        let fetched_url = f.final_url.to_string();
        let guard = self.ctx.fetcher.guard();
        let http_allowed = |u: &Url| guard.http_allowed(u);
        g.findings.extend(oauth::validate_oauth(
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
}
