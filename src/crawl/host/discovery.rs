//! Where a host's crawl starts: the well-known URL (current path, then legacy on
//! 404/410), plain http only where allowed, redirects read as a move (CDS-SPEC-NOTES §1).

use std::collections::HashSet;

use url::Url;

use super::{blocked_finding, HostCrawler};
use crate::cds::validate;
use crate::cds::{Finding, LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH};
use crate::crawl::fetch::{DocKind, FailureClass, FetchError, Fetched};
use crate::seeds::{Scheme, Seed};

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
pub fn plan(seed: &Seed, guard: &crate::crawl::guard::Guard) -> SeedPlan {
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
    /// Find the host's metadata and crawl the server it describes (then its related
    /// servers). Every failure ends up in `self.out`.
    #[tracing::instrument(name = "host_crawl", level = "debug", skip_all, fields(host_id = self.host_id))]
    pub(super) async fn run(&mut self, start: Start) {
        let mut extra = Vec::new();
        let (first, legacy) = match self.first_urls(start, &mut extra) {
            Ok(x) => x,
            Err(e) => {
                self.out.failure = Some(e);
                return;
            }
        };
        if let Err(e) = self.count_doc() {
            self.out.failure = Some(e);
            return;
        }
        let (fetched, via_legacy) = self.fetch_well_known(&first, legacy.as_ref()).await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                self.discovery_failed(&first, e, extra);
                return;
            }
        };
        self.note_moves(&fetched, via_legacy, &mut extra);
        let mut visited = HashSet::new();
        match self.server(fetched, None, 0, extra, &mut visited).await {
            Ok(()) => {}
            Err(e) => self.out.failure = Some(e),
        }
    }

    /// The first URL to request and the legacy one to try on 404/410. An `http://` seed
    /// upgraded to https adds its finding to `extra`.
    fn first_urls(
        &self,
        start: Start,
        extra: &mut Vec<Finding>,
    ) -> Result<(Url, Option<Url>), FetchError> {
        let (h, scheme) = match start {
            Start::Url(u) => return Ok((u, None)),
            Start::Origin(s, h) => (h, Some(s)),
            Start::Host(h) => (h, None),
        };
        // Borrowed through the context, not cloned: the policy holds every `allow_http`
        // entry, and a per-host copy made the crawl quadratic in their number (10,000
        // entries in the crawl-scale benchmark).
        let guard = self.ctx.fetcher.guard();
        let allowed = |u: &Url| guard.http_allowed(u);
        let current = well_known(&h, scheme, WELL_KNOWN_PATH, allowed);
        let legacy = well_known(&h, scheme, LEGACY_WELL_KNOWN_PATH, allowed);
        match (current, legacy) {
            (Ok((c, upgraded)), Ok((l, _))) => {
                if upgraded {
                    let seeded = format!("http://{}/", crate::seeds::display_host(&h));
                    extra.push(validate::finding_http_upgraded(&seeded, c.as_str()));
                }
                Ok((c, Some(l)))
            }
            (Err(e), _) | (_, Err(e)) => Err(FetchError::for_target(
                FailureClass::Invalid,
                h,
                format!("bad host: {e}"),
            )),
        }
    }

    /// Fetch the metadata at `first`, or at `legacy` when `first` is gone (404/410);
    /// returns whether the legacy path answered.
    async fn fetch_well_known(
        &self,
        first: &Url,
        legacy: Option<&Url>,
    ) -> (Result<Fetched, FetchError>, bool) {
        let fetched = self.fetch(first, DocKind::Metadata).await;
        if let (Err(e), Some(legacy)) = (&fetched, legacy) {
            if matches!(e.status, Some(404) | Some(410)) {
                return (self.fetch(legacy, DocKind::Metadata).await, true);
            }
        }
        (fetched, false)
    }

    /// The host's metadata could not be fetched: no server is crawled.
    fn discovery_failed(&mut self, first: &Url, e: FetchError, mut extra: Vec<Finding>) {
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
    }

    /// Redirects and the legacy path, read from how the metadata was reached.
    fn note_moves(&mut self, fetched: &Fetched, via_legacy: bool, extra: &mut Vec<Finding>) {
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
    }
}
