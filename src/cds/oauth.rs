//! The `oauth` capability (WG1-02 §3): the OAuth 2.0 Authorization Server Metadata
//! document (RFC 8414) a server links from `oauth_metadata`, as the crawler reads it
//! ([`OAuthMetadata`]), what the search index keeps per coverage entry ([`OAuthOffer`]),
//! and its conformance checks ([`validate_oauth`]). Pure functions, no I/O.
//!
//! The registry cares about one link above all: each scope's `coverages_supported` names
//! the coverage entries for which the scope is offered, which is what lets a client ask
//! "who serves this point AND offers scope X there" (CDS-SPEC-NOTES §6).
//!
//! What is checked: every rule of CDS-SPEC-NOTES §6 (ids in [`rules`](super::validate::rules)),
//! one module per spec section: the top level ([`top`], WG1-02 §3.2), the union rules
//! ([`unions`], §3.2), scope descriptions and `scopes_supported` ([`scopes`], §3.4),
//! registration fields ([`reg_fields`], §3.5) and the fixed client admin scope
//! ([`fixed`], §3.3). As for the metadata document (WG1-01 §2), unknown fields and
//! values never produce a finding.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::finding::Finding;
use super::{str_field, str_list};
use check::{Checker, Kind};

mod check;
mod fixed;
mod reg_fields;
mod scopes;
mod timezone;
mod top;
mod unions;

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

fn url_of(v: &Value, key: &str) -> Option<String> {
    str_field(v, key).filter(|s| is_web_url(s))
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
                        scope_type: str_field(d, "type"),
                        name: str_field(d, "name"),
                        description: str_field(d, "description"),
                        documentation: url_of(d, "documentation"),
                        grant_types: str_list(d, "grant_types_supported"),
                        coverages: str_list(d, "coverages_supported"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        OAuthMetadata {
            issuer: str_field(v, "issuer"),
            registration_endpoint: url_of(v, "registration_endpoint"),
            human_registration: url_of(v, "cds_human_registration"),
            scopes,
        }
    }
}

/// A scope as offered at one coverage entry (its `coverages_supported` lists the entry).
/// The API shows it as it is, under the name `ScopeInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = ScopeInfo,
    description = "One scope offered for an entry, from the server's `cds_scope_descriptions`."
)]
pub struct OfferedScope {
    /// The scope id.
    #[serde(rename = "scope")]
    pub id: String,
    /// The scope's `type` (WG1-02 §3.4), what clients match on (§3.3); `null` when the
    /// description gives none.
    #[serde(rename = "type")]
    pub scope_type: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Link to the scope's documentation.
    pub documentation: Option<String>,
    pub grant_types: Vec<String>,
}

/// What one coverage entry offers over OAuth: its server's registration links and the
/// scopes offered there. The search index keeps one per entry of a server that has
/// stored OAuth metadata (scopes may be empty); the API shows it as it is, under the
/// name `OAuthInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = OAuthInfo,
    description = "The OAuth side of a coverage entry (WG1-02 §3)."
)]
pub struct OAuthOffer {
    /// RFC 7591 dynamic client registration endpoint of the entry's server.
    pub registration_endpoint: Option<String>,
    /// Where a person registers a client by hand (`cds_human_registration`).
    pub human_registration: Option<String>,
    /// The scopes offered for this entry (its id is in their `coverages_supported`).
    pub scopes: Vec<OfferedScope>,
}

impl OAuthOffer {
    /// The scope ids, in document order (what the index's `scope` filter matches).
    pub fn scope_ids(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.id.clone()).collect()
    }

    /// The distinct scope types, in document order (WG1-02 §3.3: clients match by type).
    pub fn scope_types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.scopes.iter().filter_map(|s| s.scope_type.as_ref()) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
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

/// Checks of one authorization server metadata document (RFC 8414 §2, WG1-02 §3), one
/// module per spec section; CDS-SPEC-NOTES §6 lists the rules.
pub fn validate_oauth(doc: &Value, ctx: &OAuthContext<'_>) -> Vec<Finding> {
    let mut c = Checker {
        url: ctx.fetched_url,
        out: Vec::new(),
    };
    let Some(obj) = doc.as_object() else {
        c.type_error("document", String::new(), Kind::Object.describe(), doc);
        return c.out;
    };
    let top = top::check(&mut c, obj, ctx);
    if let Some(fields) = top.registration_fields {
        reg_fields::check(&mut c, fields);
    }
    if let Some(descriptions) = top.descriptions {
        scopes::check(&mut c, &top, descriptions, ctx);
        unions::check(&mut c, &top, descriptions);
        fixed::check(&mut c, descriptions);
    }
    c.out
}

#[cfg(test)]
mod tests;
