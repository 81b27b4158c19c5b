//! The `oauth` capability (WG1-02 §3): the OAuth 2.0 Authorization Server Metadata
//! document (RFC 8414) a server links from `oauth_metadata`, as the crawler reads it
//! ([`OAuthMetadata`]), what the search index keeps per coverage entry ([`OAuthOffer`]),
//! and its conformance checks ([`validate_oauth`]). Pure functions, no I/O.
//!
//! The registry cares about one link above all: each scope's `coverages_supported` names
//! the coverage entries for which the scope is offered, which is what lets a client ask
//! "who serves this point AND offers scope X there" (CDS-SPEC-NOTES §6).
//!
//! What is checked (rule ids in [`rules`]): the RFC 8414 §2 fields a client cannot do
//! without, the fields WG1-02 §3.2 turns from OPTIONAL into REQUIRED and that the registry
//! uses (`registration_endpoint`, `scopes_supported`, `cds_oauth_version`,
//! `cds_human_registration`, `cds_test_accounts`, `cds_scope_descriptions`), the scope
//! description fields the search API shows (WG1-02 §3.4), the two-way agreement between
//! `scopes_supported` and `cds_scope_descriptions`, coverage ids that name no entry of the
//! server, and PKCE where the authorization code grant is offered. As for the metadata
//! document (WG1-01 §2), unknown fields and values never produce a finding.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use super::finding::{pointer_token, Finding, Severity};
use super::validate::rules;

/// `grant_types_supported` when the document omits it (RFC 8414 §2).
pub const DEFAULT_GRANT_TYPES: [&str; 2] = ["authorization_code", "implicit"];

/// The only `cds_oauth_version` this registry validates against (WG1-02 §3.2).
pub const CDS_OAUTH_VERSION: &str = "v1";

/// One entry of `cds_scope_descriptions` (WG1-02 §3.4), as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeDescription {
    /// The scope id: the key in `cds_scope_descriptions`.
    pub id: String,
    /// The scope's `type` (WG1-02 §3.4): clients match scopes by type, not id (§3.3).
    pub scope_type: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Only an absolute http(s) URL is kept: the API shows it as a link.
    pub documentation: Option<String>,
    pub grant_types: Vec<String>,
    /// Coverage entry ids for which the scope is offered.
    pub coverages: Vec<String>,
}

/// The fields of an authorization server metadata document the registry stores. Tolerant
/// like the other views ([`super::MetadataView`]): wrong types read as absent, the
/// validator reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OAuthMetadata {
    pub issuer: Option<String>,
    /// RFC 7591 dynamic client registration (WG1-02 §3.2).
    pub registration_endpoint: Option<String>,
    /// `cds_human_registration`: where a person registers a client by hand.
    pub human_registration: Option<String>,
    /// Every object in `cds_scope_descriptions`, in document order.
    pub scopes: Vec<ScopeDescription>,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn url_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| is_web_url(s))
        .map(str::to_owned)
}

fn strs_of(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl OAuthMetadata {
    pub fn from_value(v: &Value) -> Self {
        let scopes = v
            .get("cds_scope_descriptions")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, d)| d.is_object())
                    .map(|(id, d)| ScopeDescription {
                        id: id.clone(),
                        scope_type: str_of(d, "type"),
                        name: str_of(d, "name"),
                        description: str_of(d, "description"),
                        documentation: url_of(d, "documentation"),
                        grant_types: strs_of(d, "grant_types_supported"),
                        coverages: strs_of(d, "coverages_supported"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        OAuthMetadata {
            issuer: str_of(v, "issuer"),
            registration_endpoint: url_of(v, "registration_endpoint"),
            human_registration: url_of(v, "cds_human_registration"),
            scopes,
        }
    }
}

/// A scope as offered at one coverage entry (its `coverages_supported` lists the entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferedScope {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub documentation: Option<String>,
    pub grant_types: Vec<String>,
}

/// What one coverage entry offers over OAuth: its server's registration links and the
/// scopes offered there. The search index keeps one per entry of a server that has
/// stored OAuth metadata (scopes may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthOffer {
    pub registration_endpoint: Option<String>,
    pub human_registration: Option<String>,
    pub scopes: Vec<OfferedScope>,
}

impl OAuthOffer {
    /// The scope ids, in document order (what the index's `scope` filter matches).
    pub fn scope_ids(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.id.clone()).collect()
    }
}

/// What the checks need besides the document.
pub struct OAuthContext<'a> {
    /// The URL the document was finally fetched from.
    pub fetched_url: &'a str,
    /// The `id` of every coverage entry of the server (all pages).
    pub coverage_ids: &'a HashSet<String>,
    /// Whether the operator allowed plain http for this URL's host (the crawler's
    /// `allow_http`, CDS-SPEC-NOTES §1); in production this is false for every URL.
    pub http_allowed: &'a dyn Fn(&Url) -> bool,
}

/// An absolute web URL (as for the metadata's URL fields: relative references and other
/// schemes are type errors; http passes, fetching it is a transport decision).
fn is_web_url(s: &str) -> bool {
    s == s.trim()
        && Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Url,
    StrList,
    Object,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Url => "an absolute http(s) URL",
            Kind::StrList => "an array of strings",
            Kind::Object => "a JSON object",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Url => v.as_str().is_some_and(is_web_url),
            Kind::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Object => v.is_object(),
        }
    }
}

/// A value for `Finding::actual`, bounded: the document comes from a remote server.
fn show(v: &Value) -> String {
    const MAX: usize = 120;
    let s = v.to_string();
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

struct Checker<'a> {
    url: &'a str,
    out: Vec<Finding>,
}

impl Checker<'_> {
    fn required(&mut self, field: &str, ptr: String, kind: Kind, why: &str) {
        self.out.push(
            Finding::new(
                format!("{}:{field}", rules::OAUTH_REQUIRED),
                Severity::Error,
                self.url,
                ptr,
                format!(
                    "in the OAuth metadata, `{field}` is missing; it must be {} ({why})",
                    kind.describe()
                ),
            )
            .expected(kind.describe()),
        );
    }

    fn type_error(&mut self, field: &str, ptr: String, expected: &str, bad: &Value) {
        self.out.push(
            Finding::new(
                format!("{}:{field}", rules::OAUTH_TYPE),
                Severity::Error,
                self.url,
                ptr,
                format!(
                    "in the OAuth metadata, `{field}` must be {expected}, got {}",
                    show(bad)
                ),
            )
            .expected(expected)
            .actual(show(bad)),
        );
    }

    /// Presence (when `required`) and shape of one field; `null` counts as absent.
    /// `field` is the name in the rule id, `ptr` where it is in the document. Returns
    /// the value when it has the right shape, so dependent rules only look at good values.
    fn field<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        ptr: String,
        kind: Kind,
        required: Option<&str>,
    ) -> Option<&'v Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if let Some(why) = required {
                    self.required(field, ptr, kind, why);
                }
                None
            }
            Some(v) if kind.accepts(v) => Some(v),
            Some(v) => {
                self.type_error(field, ptr, kind.describe(), v);
                None
            }
        }
    }
}

fn list(v: Option<&Value>) -> Option<Vec<&str>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
}

/// Checks of one authorization server metadata document (RFC 8414 §2, WG1-02 §3).
pub fn validate_oauth(doc: &Value, ctx: &OAuthContext<'_>) -> Vec<Finding> {
    let mut c = Checker {
        url: ctx.fetched_url,
        out: Vec::new(),
    };
    let Some(obj) = doc.as_object() else {
        c.type_error("document", String::new(), Kind::Object.describe(), doc);
        return c.out;
    };
    let p = |k: &str| format!("/{}", pointer_token(k));
    const RFC8414: &str = "RFC 8414 §2";
    const WG1_02: &str = "WG1-02 §3.2";

    // RFC 8414 §2: the issuer identifier is an https URL with no query or fragment.
    // Plain http only where the operator allowed it for that host, as for fetching
    // (HTTP-NOT-HTTPS, CDS-SPEC-NOTES §1).
    match obj.get("issuer") {
        None | Some(Value::Null) => c.required("issuer", p("issuer"), Kind::Url, RFC8414),
        Some(v) => {
            let ok = v
                .as_str()
                .filter(|s| is_web_url(s))
                .and_then(|s| Url::parse(s).ok())
                .is_some_and(|u| {
                    u.query().is_none()
                        && u.fragment().is_none()
                        && (u.scheme() == "https" || (ctx.http_allowed)(&u))
                });
            if !ok {
                c.type_error(
                    "issuer",
                    p("issuer"),
                    "an https URL without query or fragment",
                    v,
                );
            }
        }
    }
    let response_types = c.field(
        obj,
        "response_types_supported",
        "response_types_supported",
        p("response_types_supported"),
        Kind::StrList,
        Some(RFC8414),
    );
    let grants_value = c.field(
        obj,
        "grant_types_supported",
        "grant_types_supported",
        p("grant_types_supported"),
        Kind::StrList,
        None,
    );
    // RFC 8414 §2: omitted means ["authorization_code", "implicit"]. A malformed list
    // (already reported) is read as nothing, so no rule fires on top of it.
    let grant_types: Vec<&str> = match obj.get("grant_types_supported") {
        None | Some(Value::Null) => DEFAULT_GRANT_TYPES.to_vec(),
        Some(_) => list(grants_value).unwrap_or_default(),
    };
    let uses_authorize = grant_types
        .iter()
        .any(|g| matches!(*g, "authorization_code" | "implicit"));
    // RFC 8414 §2: authorization_endpoint is required unless no grant type uses it;
    // token_endpoint unless only the implicit grant is supported.
    let uses_token = grant_types.is_empty() || grant_types.iter().any(|g| *g != "implicit");
    c.field(
        obj,
        "authorization_endpoint",
        "authorization_endpoint",
        p("authorization_endpoint"),
        Kind::Url,
        uses_authorize.then_some("RFC 8414 §2, a grant type that uses it is offered"),
    );
    c.field(
        obj,
        "token_endpoint",
        "token_endpoint",
        p("token_endpoint"),
        Kind::Url,
        uses_token.then_some("RFC 8414 §2, a grant type other than implicit is offered"),
    );
    c.field(
        obj,
        "registration_endpoint",
        "registration_endpoint",
        p("registration_endpoint"),
        Kind::Url,
        Some(WG1_02),
    );
    let scopes_supported = c.field(
        obj,
        "scopes_supported",
        "scopes_supported",
        p("scopes_supported"),
        Kind::StrList,
        Some(WG1_02),
    );
    let version = c.field(
        obj,
        "cds_oauth_version",
        "cds_oauth_version",
        p("cds_oauth_version"),
        Kind::Str,
        Some(WG1_02),
    );
    c.field(
        obj,
        "cds_human_registration",
        "cds_human_registration",
        p("cds_human_registration"),
        Kind::Url,
        Some(WG1_02),
    );
    // WG1-02 §3.2: test accounts are required once user authorization is offered.
    let authorizes_users = list(response_types).is_some_and(|r| !r.is_empty());
    c.field(
        obj,
        "cds_test_accounts",
        "cds_test_accounts",
        p("cds_test_accounts"),
        Kind::Url,
        authorizes_users.then_some("WG1-02 §3.2, `response_types_supported` is not empty"),
    );
    let methods = c.field(
        obj,
        "code_challenge_methods_supported",
        "code_challenge_methods_supported",
        p("code_challenge_methods_supported"),
        Kind::StrList,
        None,
    );
    c.field(
        obj,
        "service_documentation",
        "service_documentation",
        p("service_documentation"),
        Kind::Url,
        None,
    );
    let descriptions = c
        .field(
            obj,
            "cds_scope_descriptions",
            "cds_scope_descriptions",
            p("cds_scope_descriptions"),
            Kind::Object,
            Some(WG1_02),
        )
        .and_then(Value::as_object);

    // WG1-02 §3.2: "v1" is the version this registry knows; another one may be a
    // compatible revision, so it is worth a look, not an error (as META-VERSION).
    if let Some(v) = version.and_then(Value::as_str) {
        if v != CDS_OAUTH_VERSION {
            c.out.push(
                Finding::new(
                    rules::OAUTH_VERSION,
                    Severity::Warning,
                    ctx.fetched_url,
                    p("cds_oauth_version"),
                    format!("`cds_oauth_version` is {v:?}; this registry validates against \"v1\""),
                )
                .expected(CDS_OAUTH_VERSION)
                .actual(v),
            );
        }
    }

    if let Some(d) = descriptions {
        for (id, desc) in d {
            scope_description(&mut c, id, desc, ctx);
        }
    }

    // WG1-02 §3.2: `scopes_supported` is exactly the union of the described scope ids,
    // and every listed scope has a description. Checked only when both are well-formed.
    if let (Some(listed), Some(d)) = (list(scopes_supported), descriptions) {
        for (i, s) in listed.iter().enumerate() {
            if !d.contains_key(*s) {
                c.out.push(
                    Finding::new(
                        rules::OAUTH_SCOPE_UNDESCRIBED,
                        Severity::Error,
                        ctx.fetched_url,
                        format!("/scopes_supported/{i}"),
                        format!(
                            "scope `{s}` is in `scopes_supported` but has no entry in `cds_scope_descriptions`, so clients cannot tell what it grants or where it is offered"
                        ),
                    )
                    .actual(*s),
                );
            }
        }
        for id in d.keys() {
            if !listed.contains(&id.as_str()) {
                c.out.push(
                    Finding::new(
                        rules::OAUTH_SCOPE_UNLISTED,
                        Severity::Error,
                        ctx.fetched_url,
                        format!("/cds_scope_descriptions/{}", pointer_token(id)),
                        format!(
                            "scope `{id}` is described in `cds_scope_descriptions` but missing from `scopes_supported`"
                        ),
                    )
                    .actual(id.clone()),
                );
            }
        }
    }

    // PKCE where the authorization code grant is offered: RFC 9700 §2.1.1 (BCP 240)
    // requires authorization servers to support it, and S256 is the only method that
    // does not expose the verifier (RFC 7636 §4.2, §7.2). WG1-02 §3.2 makes
    // `code_challenge_methods_supported` required. A malformed list was reported above.
    let methods_ok = methods.is_some()
        || matches!(
            obj.get("code_challenge_methods_supported"),
            None | Some(Value::Null)
        );
    if grant_types.contains(&"authorization_code") && methods_ok {
        let m = list(methods).unwrap_or_default();
        let ptr = p("code_challenge_methods_supported");
        if !m.contains(&"S256") {
            c.out.push(
                Finding::new(
                    rules::OAUTH_PKCE,
                    Severity::Error,
                    ctx.fetched_url,
                    ptr,
                    "`authorization_code` is offered, so `code_challenge_methods_supported` must include `S256` (PKCE)",
                )
                .expected("[\"S256\"]")
                .actual(methods.map(show).unwrap_or_else(|| "missing".into())),
            );
        } else if m.contains(&"plain") {
            c.out.push(
                Finding::new(
                    rules::OAUTH_PKCE,
                    Severity::Warning,
                    ctx.fetched_url,
                    ptr,
                    "`code_challenge_methods_supported` offers `plain`, which exposes the PKCE verifier; offer only `S256`",
                )
                .expected("[\"S256\"]")
                .actual(methods.map(show).unwrap_or_default()),
            );
        }
    }
    c.out
}

/// One `cds_scope_descriptions` entry (WG1-02 §3.4): the fields the registry stores and
/// shows must be there, and every coverage id must name an entry of this server.
fn scope_description(c: &mut Checker<'_>, id: &str, desc: &Value, ctx: &OAuthContext<'_>) {
    let base = format!("/cds_scope_descriptions/{}", pointer_token(id));
    let Some(d) = desc.as_object() else {
        c.type_error("scope", base, Kind::Object.describe(), desc);
        return;
    };
    const WHY: &str = "WG1-02 §3.4";
    let ptr = |k: &str| format!("{base}/{}", pointer_token(k));
    // WG1-02 §3.4: `id` repeats the key; a different one leaves the scope ambiguous.
    if let Some(v) = d.get("id").filter(|v| !v.is_null()) {
        if v.as_str() != Some(id) {
            c.type_error("scope.id", ptr("id"), &format!("the key {id:?}"), v);
        }
    }
    c.field(d, "name", "scope.name", ptr("name"), Kind::Str, Some(WHY));
    c.field(
        d,
        "description",
        "scope.description",
        ptr("description"),
        Kind::Str,
        Some(WHY),
    );
    c.field(
        d,
        "documentation",
        "scope.documentation",
        ptr("documentation"),
        Kind::Url,
        Some(WHY),
    );
    c.field(
        d,
        "grant_types_supported",
        "scope.grant_types_supported",
        ptr("grant_types_supported"),
        Kind::StrList,
        Some(WHY),
    );
    let coverages = c.field(
        d,
        "coverages_supported",
        "scope.coverages_supported",
        ptr("coverages_supported"),
        Kind::StrList,
        Some(WHY),
    );
    for (i, cov) in list(coverages).unwrap_or_default().into_iter().enumerate() {
        if !ctx.coverage_ids.contains(cov) {
            c.out.push(
                Finding::new(
                    rules::OAUTH_COVERAGE_UNKNOWN,
                    Severity::Error,
                    ctx.fetched_url,
                    format!("{}/{i}", ptr("coverages_supported")),
                    format!(
                        "scope `{id}` is offered for coverage `{cov}`, but the server's coverage listing has no entry with that id"
                    ),
                )
                .actual(cov),
            );
        }
    }
}

#[cfg(test)]
mod tests;
