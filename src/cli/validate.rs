//! `cds-registry validate URL|HOST`: the conformance validator for one server, as a utility
//! engineer runs it before publishing.
//!
//! It runs exactly the crawler's per-host pipeline ([`crawl_host`]) with the same guarded
//! client and limits (so plain http and private addresses are refused unless the
//! configuration opens them, as for a crawl), but with no store: nothing is read from or
//! written to the database, and no request is conditional. Every finding the crawl raised
//! is collected, grouped by server and document, and printed once with its JSON pointer.
//!
//! Exit codes ([`Report::exit_code`]): 0 when there is no error-severity finding, 1 when
//! there is one, 2 when the root metadata document itself could not be used (unreachable,
//! blocked, HTTP error, not JSON, …; the classified failure is printed). A linked document
//! that fails (a coverage page, a territory, the OAuth metadata) is a finding like any
//! other (COV-PAGE-FETCH, COV-GEO-FETCH, OAUTH-FETCH; CDS-SPEC-NOTES §5a), and every other
//! finding is still reported.
//!
//! Beyond the crawl, `validate` probes the `ids` filter of each coverage listing once
//! (CDS-SPEC-NOTES §3, COV-IDS-FILTER); the crawler never sends it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use url::Url;

use crate::cds::{Finding, Severity};
use crate::config::CrawlConfig;
use crate::crawl::fetch::{DocKind, FailureClass, FetchError, Fetcher};
use crate::crawl::host::{crawl_host, HostCrawl, RunContext, Start};
use crate::seeds::{parse_seed, EXPECTED_FORMS};

/// Rule id prefix of the finding-like lines for documents that could not be fetched or
/// used: `FETCH:<class>` (`FETCH:connect`, `FETCH:http_status`, …). Not a spec rule: the
/// crawler stores these as crawl outcomes, the validator reports them next to the findings.
pub const FETCH_RULE: &str = "FETCH";

/// Everything `validate` found about one target.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target as given on the command line.
    pub target: String,
    /// Servers in crawl order (the root, then `related_metadata` depth-first), then the
    /// related servers that failed.
    pub servers: Vec<ServerReport>,
    /// Why the root server could not be validated; `Some` means exit code 2.
    pub failure: Option<FailureReport>,
    /// The well-known URL answered 301/302 (or 307/308) to this URL (a migrated server, §1).
    pub moved_to: Option<String>,
    pub summary: Summary,
}

/// One metadata document and the documents it leads to.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// The metadata's `name`; `None` when the server could not be read.
    pub name: Option<String>,
    /// Where the metadata was finally fetched from (or was to be fetched from).
    pub url: String,
    /// The server whose `related_metadata` led here.
    pub parent_url: Option<String>,
    pub depth: usize,
    /// Coverage entries read, over all pages.
    pub entries: usize,
    /// Documents fetched and checked (metadata, coverage pages, territories).
    pub documents_checked: usize,
    /// `Some` when this server could not be crawled completely.
    pub failure: Option<FailureReport>,
    /// Documents that have findings, with them; clean documents are not listed.
    pub documents: Vec<DocumentReport>,
}

/// The findings about one document, most severe first.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentReport {
    pub url: String,
    /// `metadata`, `coverage_page` or `geojson`; `None` for a document never fetched.
    pub kind: Option<String>,
    pub findings: Vec<Finding>,
}

/// A classified fetch failure (the classes stored per host and run by the crawler).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    pub class: String,
    pub url: String,
    pub status: Option<u16>,
    pub detail: String,
}

impl From<&FetchError> for FailureReport {
    fn from(e: &FetchError) -> Self {
        FailureReport {
            class: e.class.as_str().to_owned(),
            url: e.url.clone(),
            status: e.status,
            detail: e.detail.clone(),
        }
    }
}

impl FailureReport {
    /// The finding-like line reported for this failure.
    fn finding(&self) -> Finding {
        let f = Finding::new(
            format!("{FETCH_RULE}:{}", self.class),
            Severity::Error,
            &self.url,
            "",
            format!("could not use this document: {}", self.detail),
        );
        match self.status {
            Some(s) => f.actual(format!("HTTP {s}")),
            None => f,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub info: usize,
    /// Documents fetched and checked, over all servers.
    pub documents: usize,
    /// Servers crawled completely.
    pub servers: usize,
}

impl Report {
    /// 2 when the root could not be validated, 1 when any finding is an error, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.failure.is_some() {
            2
        } else if self.summary.errors > 0 {
            1
        } else {
            0
        }
    }

    /// Every finding of the report, in report order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.servers
            .iter()
            .flat_map(|s| &s.documents)
            .flat_map(|d| &d.findings)
    }
}

/// Validate one server: `target` is written as in a seeds file ([`parse_seed`]: a host,
/// `host:port`, an origin URL, or the URL of a metadata document). Never touches the
/// database.
pub async fn validate_target(cfg: &CrawlConfig, target: &str) -> Report {
    let start = match parse_seed(target).and_then(|s| Start::for_seed(&s)) {
        Ok(s) => s,
        Err(reason) => {
            return failed_before_start(
                target,
                FailureClass::Invalid,
                format!("not a host or URL: {reason}; {EXPECTED_FORMS}"),
            )
        }
    };
    // The crawler's own client: same guard (https only unless `allow_http`, public
    // addresses only unless `allow_private`), same timeouts and size limits.
    let fetcher = match Fetcher::new(cfg) {
        Ok(f) => f,
        Err(e) => {
            return failed_before_start(
                target,
                FailureClass::Other,
                format!("cannot build the HTTP client: {e:#}"),
            )
        }
    };
    let ctx = RunContext {
        run_id: 0,
        store: None,
        fetcher,
        cfg: cfg.clone(),
        // No stored validators: every request is unconditional, so every document is
        // really downloaded and checked.
        validators: HashMap::new(),
        claimed: Default::default(),
    };
    let mut crawl = crawl_host(&ctx, 0, start).await;
    for s in &mut crawl.servers {
        if let Some(f) = probe_ids_filter(&ctx.fetcher, &s.commit).await {
            s.commit.findings.push(f);
        }
    }
    build_report(target, crawl)
}

/// Ask the server's coverage URL for one known entry with `ids=<id>` (WG1-01 §3: servers
/// MUST accept the filter) and expect exactly that entry back; COV-IDS-FILTER otherwise.
/// One request per server with entries, through the crawler's guarded client.
async fn probe_ids_filter(fetcher: &Fetcher, c: &crate::store::ServerCommit) -> Option<Finding> {
    let id = c.entries.first()?.id.clone();
    let meta: serde_json::Value = serde_json::from_str(&c.metadata_json).ok()?;
    let coverage = Url::parse(&c.url)
        .ok()?
        .join(meta.get("coverage")?.as_str()?)
        .ok()?;
    let mut probe = coverage.clone();
    probe.query_pairs_mut().append_pair("ids", &id);
    let got = match fetcher.get(&probe, DocKind::CoveragePage, &|_| None).await {
        Err(e) => format!("a failed request ({e})"),
        Ok(f) => {
            let body = f.body.unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Err(_) => "a body that is not JSON".to_owned(),
                Ok(v) => match v.get("coverage_entries").and_then(|e| e.as_array()) {
                    None => "no coverage_entries array".to_owned(),
                    Some(entries) => {
                        let ids: Vec<&str> = entries
                            .iter()
                            .map(|e| e.get("id").and_then(|i| i.as_str()).unwrap_or("?"))
                            .collect();
                        if ids == [id.as_str()] {
                            return None;
                        }
                        let shown = ids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
                        let more = if ids.len() > 5 { ", …" } else { "" };
                        format!("{} entries ({shown}{more})", ids.len())
                    }
                },
            }
        }
    };
    Some(crate::cds::validate::finding_ids_filter(
        coverage.as_str(),
        &id,
        &got,
    ))
}

fn failed_before_start(target: &str, class: FailureClass, detail: String) -> Report {
    let crawl = HostCrawl {
        failure: Some(FetchError {
            class,
            url: target.to_owned(),
            detail,
            status: None,
            retry_after: None,
        }),
        ..Default::default()
    };
    build_report(target, crawl)
}

/// Documents in a stable order: metadata, then coverage pages in listing order, then
/// territories by URL (they are downloaded concurrently, so their order varies).
fn kind_rank(kind: Option<&str>) -> u8 {
    match kind {
        Some("metadata") => 0,
        Some("coverage_page") => 1,
        Some("geojson") => 2,
        _ => 3,
    }
}

/// One problem is (rule, document, pointer, message): the crawler deduplicates per
/// server, this makes it hold across servers and host findings too.
#[derive(Default)]
struct Seen(HashSet<(String, String, String, String)>);

impl Seen {
    /// True the first time this problem is seen.
    fn first(&mut self, f: &Finding) -> bool {
        self.0.insert((
            f.rule.clone(),
            f.url.clone(),
            f.pointer.clone(),
            f.message.clone(),
        ))
    }
}

impl ServerReport {
    /// A server that could not be read: no name, entries or checked documents.
    fn unread(url: String, parent_url: Option<String>, failure: Option<FailureReport>) -> Self {
        ServerReport {
            name: None,
            url,
            parent_url,
            depth: 0,
            entries: 0,
            documents_checked: 0,
            failure,
            documents: Vec::new(),
        }
    }

    /// A server whose metadata could not be used, with the failure as its one finding.
    fn failed(url: String, parent_url: Option<String>, fr: FailureReport, seen: &mut Seen) -> Self {
        let f = fr.finding();
        let mut s = ServerReport::unread(url, parent_url, Some(fr));
        if seen.first(&f) {
            push_finding(&mut s.documents, f);
        }
        s
    }
}

/// Turn a crawl into a report: findings grouped by server and document, each problem once.
pub fn build_report(target: &str, crawl: HostCrawl) -> Report {
    let mut seen = Seen::default();
    let (mut servers, documents_total) = crawled_servers(&crawl, &mut seen);

    // The root failure comes first: it is why nothing else is there. The crawler raises
    // host findings only when the root fails (WK-AUTH on 401/403, URL-BLOCKED when the
    // guard refused it); an error among them already states this failure as a rule, so
    // the FETCH line would print the same problem twice.
    let failure = crawl.failure.as_ref().map(FailureReport::from);
    if let Some(fr) = &failure {
        let explained = crawl
            .host_findings
            .iter()
            .any(|h| h.severity == Severity::Error);
        let root = if explained {
            ServerReport::unread(fr.url.clone(), None, Some(fr.clone()))
        } else {
            ServerReport::failed(fr.url.clone(), None, fr.clone(), &mut seen)
        };
        servers.insert(0, root);
    }
    for (url, e) in &crawl.failed_servers {
        let parent = parent_of(&crawl, url);
        let failed = ServerReport::failed(url.clone(), parent, FailureReport::from(e), &mut seen);
        servers.push(failed);
    }
    place_host_findings(&mut servers, &crawl.host_findings, &mut seen);

    let mut summary = Summary {
        documents: documents_total,
        servers: crawl.servers.len(),
        ..Default::default()
    };
    for s in &mut servers {
        order_documents(s, &mut summary);
    }
    Report {
        target: target.to_owned(),
        servers,
        failure,
        moved_to: crawl.moved_to.clone(),
        summary,
    }
}

/// The servers crawled completely, with their documents and first-seen findings, and
/// the number of documents they hold.
fn crawled_servers(crawl: &HostCrawl, seen: &mut Seen) -> (Vec<ServerReport>, usize) {
    let mut servers = Vec::new();
    let mut documents_total = 0;
    for s in &crawl.servers {
        let c = &s.commit;
        let mut docs: Vec<DocumentReport> = c
            .documents
            .iter()
            .map(|d| DocumentReport {
                url: d.url.clone(),
                kind: Some(d.kind.to_string()),
                findings: Vec::new(),
            })
            .collect();
        documents_total += docs.len();
        for f in &c.findings {
            if seen.first(f) {
                push_finding(&mut docs, f.clone());
            }
        }
        servers.push(ServerReport {
            name: Some(c.name.clone()),
            url: c.url.clone(),
            parent_url: c.parent_url.clone(),
            depth: c.depth.max(0) as usize,
            entries: c.entries.len(),
            documents_checked: c.documents.len(),
            failure: None,
            documents: docs,
        });
    }
    (servers, documents_total)
}

/// Host findings (WK-AUTH on the well-known URL): with the document they are about
/// when some server holds it, otherwise with the first server (the root or its failure).
fn place_host_findings(
    servers: &mut Vec<ServerReport>,
    host_findings: &[Finding],
    seen: &mut Seen,
) {
    for f in host_findings {
        if !seen.first(f) {
            continue;
        }
        if servers.is_empty() {
            servers.push(ServerReport::unread(f.url.clone(), None, None));
        }
        let holder = servers
            .iter()
            .position(|s| s.documents.iter().any(|d| d.url == f.url))
            .unwrap_or(0);
        push_finding(&mut servers[holder].documents, f.clone());
    }
}

/// Drop clean documents, order the rest (metadata, coverage pages, territories by URL)
/// and their findings (most severe first), and count the findings into `summary`.
fn order_documents(s: &mut ServerReport, summary: &mut Summary) {
    s.documents.retain(|d| !d.findings.is_empty());
    s.documents.sort_by(|a, b| {
        let ka = (
            kind_rank(a.kind.as_deref()),
            a.kind.as_deref() == Some("geojson"),
        );
        let kb = (
            kind_rank(b.kind.as_deref()),
            b.kind.as_deref() == Some("geojson"),
        );
        // Territories are ordered by URL; the rest keep their fetch order (stable sort).
        ka.cmp(&kb).then_with(|| {
            if ka.1 {
                a.url.cmp(&b.url)
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
    for d in &mut s.documents {
        // Most severe first; within a severity, document order (stable sort).
        d.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in &d.findings {
            match f.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
                Severity::Info => summary.info += 1,
            }
        }
    }
}

/// Add `f` to the document it is about, creating the entry for a document not fetched.
fn push_finding(docs: &mut Vec<DocumentReport>, f: Finding) {
    match docs.iter_mut().find(|d| d.url == f.url) {
        Some(d) => d.findings.push(f),
        None => docs.push(DocumentReport {
            url: f.url.clone(),
            kind: None,
            findings: vec![f],
        }),
    }
}

/// The crawled server whose `related_metadata` lists `url` (resolved against its URL).
fn parent_of(crawl: &HostCrawl, url: &str) -> Option<String> {
    crawl
        .servers
        .iter()
        .find(|s| {
            let base = Url::parse(&s.commit.url).ok();
            s.related.iter().any(|r| {
                base.as_ref()
                    .and_then(|b| b.join(r).ok())
                    .is_some_and(|u| u.as_str() == url)
            })
        })
        .map(|s| s.commit.url.clone())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The summary line: `N errors, N warnings, N info across N documents of N servers`.
pub fn summary_line(s: &Summary) -> String {
    format!(
        "{}, {}, {} info across {} of {}",
        plural(s.errors, "error", "errors"),
        plural(s.warnings, "warning", "warnings"),
        s.info,
        plural(s.documents, "document", "documents"),
        plural(s.servers, "server", "servers"),
    )
}

/// One finding line: `  error   RULE  /pointer  message (expected X, got Y)`.
fn finding_line(f: &Finding) -> String {
    let pointer = if f.pointer.is_empty() {
        "(document)"
    } else {
        f.pointer.as_str()
    };
    let detail = match (&f.expected, &f.actual) {
        (Some(e), Some(a)) => format!(" (expected {e}, got {a})"),
        (Some(e), None) => format!(" (expected {e})"),
        (None, Some(a)) => format!(" (got {a})"),
        (None, None) => String::new(),
    };
    format!(
        "  {:<7} {}  {}  {}{}",
        f.severity.as_str(),
        f.rule,
        pointer,
        f.message,
        detail
    )
}

/// The readable report: per server a header (name and URL), then per document URL its
/// findings, most severe first; then the summary line.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    if let Some(f) = &r.failure {
        out.push_str(&format!(
            "could not validate {}: {} fetching {}: {}\n\n",
            r.target, f.class, f.url, f.detail
        ));
    }
    if let Some(m) = &r.moved_to {
        out.push_str(&format!(
            "note: the well-known URL redirects (301/302/307/308) to {m}: the server moved\n\n"
        ));
    }
    for s in &r.servers {
        match (&s.name, &s.failure) {
            (Some(name), _) => out.push_str(&format!("== {name} <{}>\n", s.url)),
            (None, Some(f)) => out.push_str(&format!("== (failed: {}) <{}>\n", f.class, s.url)),
            (None, None) => out.push_str(&format!("== <{}>\n", s.url)),
        }
        if let Some(p) = &s.parent_url {
            out.push_str(&format!("   listed in related_metadata of <{p}>\n"));
        }
        if s.failure.is_none() {
            out.push_str(&format!(
                "   {} checked, {}\n",
                plural(s.documents_checked, "document", "documents"),
                plural(s.entries, "coverage entry", "coverage entries")
            ));
        }
        // The root failure's own FETCH line would repeat the first line of the report.
        let is_root = s.name.is_none() && s.failure.is_some() && s.failure == r.failure;
        let shown = |f: &&Finding| !(is_root && f.rule.starts_with("FETCH:"));
        if s.documents.is_empty() {
            out.push_str("   no findings\n");
        }
        for d in &s.documents {
            if !d.findings.iter().any(|f| shown(&f)) {
                continue;
            }
            out.push_str(&format!("\n{}\n", d.url));
            for f in d.findings.iter().filter(shown) {
                out.push_str(&finding_line(f));
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out.push_str(&summary_line(&r.summary));
    out.push('\n');
    out
}

/// The report as pretty JSON (`--format json`).
pub fn render_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report always serializes")
}

/// The `validate` command: print the report as `text` or `json`; the exit code is the
/// report's ([`Report::exit_code`]).
pub async fn command(
    cfg: &crate::config::Config,
    target: &str,
    format: &str,
) -> std::process::ExitCode {
    let report = validate_target(&cfg.crawl, target).await;
    match format {
        "json" => println!("{}", render_json(&report)),
        _ => print!("{}", render_text(&report)),
    }
    std::process::ExitCode::from(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::host::ServerResult;
    use crate::store::{DocumentRecord, ServerCommit};

    /// A document fetched with a 200 and a two-byte body.
    fn fetched(url: &str, kind: crate::model::DocKind) -> DocumentRecord {
        DocumentRecord {
            url: url.into(),
            kind,
            etag: None,
            last_modified: None,
            content_hash: String::new(),
            http_status: 200,
            size: 2,
            body: None,
        }
    }

    fn commit(url: &str, findings: Vec<Finding>) -> ServerResult {
        ServerResult {
            commit: ServerCommit {
                url: url.into(),
                host_id: 0,
                parent_url: None,
                depth: 0,
                name: "Example".into(),
                metadata_json: "{}".into(),
                capabilities: vec![],
                content_hash: String::new(),
                entries: vec![],
                territories: vec![],
                findings,
                documents: vec![
                    fetched(url, crate::model::DocKind::Metadata),
                    fetched("https://u.example/cov", crate::model::DocKind::CoveragePage),
                ],
                oauth: None,
                listing_complete: true,
            },
            related: vec!["https://other.example/m.json".into()],
        }
    }

    #[test]
    fn groups_by_document_sorts_by_severity_and_prints_each_problem_once() {
        let meta = "https://u.example/m.json";
        let cov = "https://u.example/cov";
        let warn = Finding::new(
            "META-VERSION",
            Severity::Warning,
            meta,
            "/cds_metadata_version",
            "v2",
        )
        .expected("v1")
        .actual("v2");
        let err = Finding::new(
            "COV-COUNTRY",
            Severity::Error,
            cov,
            "/coverage_entries/0/country",
            "bad",
        );
        let info = Finding::new("HTTP-NOT-HTTPS", Severity::Info, meta, "", "http");
        let err2 = Finding::new("JSON-LENIENT", Severity::Error, meta, "", "commas");
        let crawl = HostCrawl {
            servers: vec![commit(meta, vec![info, warn, err.clone(), err2])],
            failed_servers: vec![(
                "https://other.example/m.json".into(),
                FetchError {
                    class: FailureClass::HttpStatus,
                    url: "https://other.example/m.json".into(),
                    detail: "HTTP 404".into(),
                    status: Some(404),
                    retry_after: None,
                },
            )],
            // The same problem raised twice is reported once.
            host_findings: vec![err],
            ..Default::default()
        };
        let r = build_report("u.example", crawl);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            r.summary,
            Summary {
                errors: 3,
                warnings: 1,
                info: 1,
                documents: 2,
                servers: 1
            }
        );
        let root = &r.servers[0];
        let rules: Vec<&str> = root.documents[0]
            .findings
            .iter()
            .map(|f| f.rule.as_str())
            .collect();
        assert_eq!(rules, ["JSON-LENIENT", "META-VERSION", "HTTP-NOT-HTTPS"]);
        assert_eq!(root.documents[1].url, cov);
        let failed = &r.servers[1];
        assert_eq!(failed.parent_url.as_deref(), Some(meta));
        assert_eq!(failed.documents[0].findings[0].rule, "FETCH:http_status");

        let text = render_text(&r);
        assert_eq!(text.matches("COV-COUNTRY").count(), 1, "{text}");
        assert!(
            text.contains(
                "  warning META-VERSION  /cds_metadata_version  v2 (expected v1, got v2)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  error   COV-COUNTRY  /coverage_entries/0/country  bad\n"),
            "{text}"
        );
        assert!(
            text.contains("  info    HTTP-NOT-HTTPS  (document)  http\n"),
            "{text}"
        );
        assert!(
            text.ends_with("3 errors, 1 warning, 1 info across 2 documents of 1 server\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
        assert_eq!(json["summary"]["errors"], 3);
    }

    #[test]
    fn a_root_failure_stated_by_a_host_finding_is_reported_once() {
        let url = "https://u.example/.well-known/cds-server-metadata.json";
        let crawl = HostCrawl {
            failure: Some(FetchError {
                class: FailureClass::HttpStatus,
                url: url.into(),
                detail: "HTTP 401".into(),
                status: Some(401),
                retry_after: None,
            }),
            host_findings: vec![crate::cds::validate::finding_auth_required(url, 401)],
            ..Default::default()
        };
        let r = build_report("u.example", crawl);
        assert_eq!(r.exit_code(), 2);
        let rules: Vec<&str> = r.findings().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["WK-AUTH"]);
        assert_eq!(r.servers[0].documents[0].url, url);
        assert_eq!(r.summary.errors, 1);
        assert!(render_text(&r).starts_with(&format!(
            "could not validate u.example: http_status fetching {url}: HTTP 401\n"
        )));
    }

    #[test]
    fn root_failure_is_exit_2_with_its_class() {
        let r = failed_before_start("a b", FailureClass::Invalid, "no".into());
        assert_eq!(r.exit_code(), 2);
        assert_eq!(r.servers[0].documents[0].findings[0].rule, "FETCH:invalid");
        assert!(render_text(&r).starts_with("could not validate a b: invalid fetching a b: no\n"));
    }
}
