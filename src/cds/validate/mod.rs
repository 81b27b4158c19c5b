//! The conformance validator: pure checks of CDS documents (no I/O).
//!
//! Rule ids and severities follow CDS-SPEC-NOTES (ours, not the spec's). Findings the
//! crawler raises from transport facts (legacy path, plain http, auth on the well-known URL,
//! pagination loops, lenient JSON, GeoJSON) use the constants in [`rules`] too, so every id
//! is spelled in one place; the `finding_*` constructors below build the transport ones so
//! their wording and severity are the same wherever they are raised.
//!
//! Three layers, matching what the crawler has in hand at each step:
//! - [`validate_metadata`]: one metadata document on its own (WG1-01 §2);
//! - [`validate_coverage_page`] / [`validate_coverage_entry`]: one listing page (§3, §4);
//! - [`validate_server`]: metadata plus every entry of every page (capability union, unique
//!   ids, ordering), and [`authoritative_conflicts`] across servers (§4).
//!
//! Forward compatibility (WG1-01 §2): unknown fields, unknown capability strings and
//! unknown enum values (`type`, `role`, `infrastructure_types`, `commodity_types`) never
//! produce a finding. Only the shape the spec fixes is checked.
//!
//! Layout: [`rules`] and the shared context types live here; the field-shape machinery in
//! `fields`, then one file per layer (`metadata`, `coverage`, `server`, `cross`) and the
//! transport findings in `transport`. Every public item is re-exported here, so callers
//! keep using `crate::cds::validate::{rules, validate_metadata, ...}`.

use serde_json::Value;

mod coverage;
mod cross;
mod fields;
mod metadata;
mod server;
mod transport;

#[cfg(test)]
mod tests;

pub use coverage::{validate_coverage_entry, validate_coverage_page};
pub use cross::{
    authoritative_conflicts, authoritative_conflicts_indexed, authoritative_conflicts_with,
    bbox_overlap, candidate_pairs, conflicts_among, default_overlap, territories_overlap,
    AuthClaim,
};
pub use metadata::validate_metadata;
pub use server::{validate_server, ServerChecks};
pub use transport::{
    finding_auth_required, finding_geo_fetch, finding_http_upgraded, finding_ids_filter,
    finding_legacy_path, finding_lenient_json, finding_oauth_fetch, finding_page_cap,
    finding_page_fetch, finding_page_loop, finding_plain_http, finding_redirect,
    finding_registry_loop,
};

/// Every rule id the registry reports.
pub mod rules {
    pub const WK_LEGACY: &str = "WK-LEGACY";
    /// Ours, not the spec's: the operator seeded `http://…` for a host that
    /// `crawl.allow_http` does not name, so discovery went over https instead.
    pub const SEED_HTTP_UPGRADED: &str = "SEED-HTTP-UPGRADED";
    pub const WK_AUTH: &str = "WK-AUTH";
    pub const HTTP_NOT_HTTPS: &str = "HTTP-NOT-HTTPS";
    pub const JSON_LENIENT: &str = "JSON-LENIENT";
    pub const META_VERSION: &str = "META-VERSION";
    pub const META_URL_MISMATCH: &str = "META-URL-MISMATCH";
    pub const META_COVERAGE_URL: &str = "META-COVERAGE-URL";
    pub const META_OAUTH_URL: &str = "META-OAUTH-URL";
    pub const META_CAP_UNION: &str = "META-CAP-UNION";
    /// Followed by `:<field>`.
    pub const META_REQUIRED: &str = "META-REQUIRED";
    /// Followed by `:<field>` (`:document` when the document is not an object).
    pub const META_TYPE: &str = "META-TYPE";
    /// Followed by `:<field>`.
    pub const COV_REQUIRED: &str = "COV-REQUIRED";
    /// Followed by `:<field>` (`:document` when the page is not an object).
    pub const COV_TYPE: &str = "COV-TYPE";
    pub const COV_PAGE_LOOP: &str = "COV-PAGE-LOOP";
    pub const COV_ORDER: &str = "COV-ORDER";
    pub const COV_DUP_ID: &str = "COV-DUP-ID";
    pub const COV_COUNTRY: &str = "COV-COUNTRY";
    pub const COV_CAP_COVERAGE: &str = "COV-CAP-COVERAGE";
    pub const COV_MAP_TYPE: &str = "COV-MAP-TYPE";
    pub const COV_GEO_RESOURCE: &str = "COV-GEO-RESOURCE";
    pub const XS_AUTH_CONFLICT: &str = "XS-AUTH-CONFLICT";
    pub const GEO_CRS: &str = "GEO-CRS";
    pub const GEO_NO_POLYGON: &str = "GEO-NO-POLYGON";
    pub const GEO_INVALID: &str = "GEO-INVALID";
    /// More positions than `crawl.max_territory_vertices`: not stored.
    pub const GEO_TOO_LARGE: &str = "GEO-TOO-LARGE";
    /// Parsing and validation took longer than `crawl.geojson_budget_ms`: not stored.
    pub const GEO_TOO_COSTLY: &str = "GEO-TOO-COSTLY";
    /// A URL in a document points where the crawler may not go (DESIGN.md, crawler safety).
    pub const URL_BLOCKED: &str = "URL-BLOCKED";
    // OAuth metadata (RFC 8414 §2, WG1-02 §3; CDS-SPEC-NOTES §6), checked by
    // `cds::oauth::validate_oauth`.
    /// A missing top-level field (§3.2), followed by `:<field>`.
    pub const OAUTH_REQUIRED: &str = "OAUTH-REQUIRED";
    /// A top-level field of the wrong shape, followed by `:<field>` (`:document` when
    /// the document is not an object; `:cds_scope_descriptions` /
    /// `:cds_registration_fields` when one of their values is not an object).
    pub const OAUTH_TYPE: &str = "OAUTH-TYPE";
    /// `cds_oauth_version` is not `v1` (warning).
    pub const OAUTH_VERSION: &str = "OAUTH-VERSION";
    /// `cds_timezone` is not an IANA tz database name.
    pub const OAUTH_TIMEZONE: &str = "OAUTH-TIMEZONE";
    /// No `pushed_authorization_request_endpoint` although users authorize.
    pub const OAUTH_PAR: &str = "OAUTH-PAR";
    /// No `cds_test_accounts` although users authorize.
    pub const OAUTH_TEST_ACCOUNTS: &str = "OAUTH-TEST-ACCOUNTS";
    /// No `cds_server_provided_files_api` although a scope has that type.
    pub const OAUTH_FILES_API: &str = "OAUTH-FILES-API";
    /// A top-level list lacks values its scopes offer, followed by `:<field>`.
    pub const OAUTH_UNION: &str = "OAUTH-UNION";
    /// A listed scope without description: info, §3.2 allows it (e.g. `openid`).
    pub const OAUTH_SCOPE_UNDESCRIBED: &str = "OAUTH-SCOPE-UNDESCRIBED";
    pub const OAUTH_SCOPE_UNLISTED: &str = "OAUTH-SCOPE-UNLISTED";
    /// A scope description member missing or malformed (§3.4), followed by `:<field>`.
    pub const OAUTH_SCOPE_REQUIRED: &str = "OAUTH-SCOPE-REQUIRED";
    /// A scope description's `id` differs from its key.
    pub const OAUTH_SCOPE_ID: &str = "OAUTH-SCOPE-ID";
    pub const OAUTH_COVERAGE_UNKNOWN: &str = "OAUTH-COVERAGE-UNKNOWN";
    /// Per scope: `authorization_code` without `S256`, with `plain`, or methods without it.
    pub const OAUTH_PKCE: &str = "OAUTH-PKCE";
    /// `grant_admin_scope` names no described scope of type `cds_grant_admin`.
    pub const OAUTH_GRANT_ADMIN: &str = "OAUTH-GRANT-ADMIN";
    /// A `registration_requirements` id that `cds_registration_fields` lacks.
    pub const OAUTH_REG_FIELD: &str = "OAUTH-REG-FIELD";
    /// A registration field member missing or malformed (§3.5), followed by `:<field>`.
    pub const OAUTH_FIELD_REQUIRED: &str = "OAUTH-FIELD-REQUIRED";
    /// The client admin scope differs from its fixed shape (§3.3.1; warning).
    pub const OAUTH_CLIENT_ADMIN: &str = "OAUTH-CLIENT-ADMIN";

    // Redirects, listing limits and linked documents that fail (CDS-SPEC-NOTES §1, §3, §5a).
    /// A 307/308 on the well-known URL (the spec names 301/302 for a moved server).
    pub const WK_REDIRECT: &str = "WK-REDIRECT";
    /// The listing is longer than `crawl.max_pages`: a crawl limit, not a loop.
    pub const COV_PAGE_CAP: &str = "COV-PAGE-CAP";
    /// A coverage page could not be fetched or read: the listing is incomplete.
    pub const COV_PAGE_FETCH: &str = "COV-PAGE-FETCH";
    /// A `geojson_resource` could not be fetched or read.
    pub const COV_GEO_FETCH: &str = "COV-GEO-FETCH";
    /// The coverage URL ignores the `ids` filter (probed by `validate` only).
    pub const COV_IDS_FILTER: &str = "COV-IDS-FILTER";
    /// The `oauth_metadata` document could not be fetched or read.
    pub const OAUTH_FETCH: &str = "OAUTH-FETCH";

    // Federation, the registry's own extension (CDS-SPEC-NOTES §8).
    /// Copies that came back through this registry, or passed through too many, are not
    /// imported.
    pub const REG_LOOP: &str = "REG-LOOP";
}

/// Where a metadata document came from, for the checks that depend on transport.
#[derive(Debug, Clone, Copy)]
pub struct MetadataContext<'a> {
    /// The URL the document was finally fetched from, after redirects.
    pub fetched_url: &'a str,
}

/// One coverage entry with the page it came from, for the cross-page checks.
#[derive(Debug, Clone)]
pub struct EntryRef<'a> {
    pub page_url: &'a str,
    /// Index inside that page's `coverage_entries`.
    pub index: usize,
    pub entry: &'a Value,
}

impl<'a> EntryRef<'a> {
    /// The entries of one listing page in order; none when the page has no
    /// `coverage_entries` array (the page's own checks report that).
    pub fn of_page(page_url: &'a str, page: &'a Value) -> impl Iterator<Item = EntryRef<'a>> {
        page.get("coverage_entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(index, entry)| EntryRef {
                page_url,
                index,
                entry,
            })
    }

    pub fn pointer(&self) -> String {
        format!("/coverage_entries/{}", self.index)
    }
}
