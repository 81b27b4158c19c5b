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

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};
use url::Url;

use super::country::is_iso3166_alpha2;
use super::finding::{pointer_token, Finding, Severity};
use super::{CAP_COVERAGE, CAP_OAUTH};

/// Every rule id the registry reports.
pub mod rules {
    pub const WK_LEGACY: &str = "WK-LEGACY";
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

impl EntryRef<'_> {
    pub fn pointer(&self) -> String {
        format!("/coverage_entries/{}", self.index)
    }
}

// ---------------------------------------------------------------------------------------
// Field shapes
// ---------------------------------------------------------------------------------------

/// The value shapes the spec uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    /// A string that can identify something (`id`): an empty one cannot be asked for with
    /// the `ids` filter of WG1-01 §3.
    NonEmptyStr,
    /// `entity_abbreviation` (WG1-01 §4): required, but `null` is a legal value.
    StrOrNull,
    Url,
    /// `next` / `previous` (WG1-01 §3): `null` marks the end of the listing.
    UrlOrNull,
    DateTime,
    StrList,
    UrlList,
    /// `coverage_entries` (WG1-01 §3).
    ObjectList,
    /// An element of `ObjectList`.
    Object,
    Mime,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::NonEmptyStr => "a non-empty string",
            Kind::StrOrNull => "a string or null",
            Kind::Url => "an absolute http(s) URL",
            Kind::UrlOrNull => "an absolute http(s) URL or null",
            Kind::DateTime => "an RFC 3339 date-time string",
            Kind::StrList => "an array of strings",
            Kind::UrlList => "an array of absolute http(s) URLs",
            Kind::ObjectList => "an array of objects",
            Kind::Object => "a JSON object",
            Kind::Mime => "a MIME type such as `image/png`",
        }
    }

    /// The kind of each element, for list kinds.
    fn element(self) -> Option<Kind> {
        match self {
            Kind::StrList => Some(Kind::Str),
            Kind::UrlList => Some(Kind::Url),
            Kind::ObjectList => Some(Kind::Object),
            _ => None,
        }
    }

    fn accepts_null(self) -> bool {
        matches!(self, Kind::StrOrNull | Kind::UrlOrNull)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}

struct FieldSpec {
    name: &'static str,
    kind: Kind,
    need: Need,
}

const fn req(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        need: Need::Required,
    }
}

const fn opt(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        need: Need::Optional,
    }
}

/// WG1-01 §2. `coverage` and `oauth_metadata` are checked on their own because whether
/// they are required depends on `capabilities` (META-COVERAGE-URL, META-OAUTH-URL).
const META_FIELDS: &[FieldSpec] = &[
    req("cds_metadata_version", Kind::Str),
    req("cds_metadata_url", Kind::Url),
    req("created", Kind::DateTime),
    req("updated", Kind::DateTime),
    req("name", Kind::Str),
    req("description", Kind::Str),
    req("website", Kind::Url),
    req("documentation", Kind::Url),
    req("support", Kind::Url),
    req("capabilities", Kind::StrList),
    opt("related_metadata", Kind::UrlList),
];

/// WG1-01 §3: all three are required; `next`/`previous` are `null` at the ends.
const PAGE_FIELDS: &[FieldSpec] = &[
    req("coverage_entries", Kind::ObjectList),
    req("next", Kind::UrlOrNull),
    req("previous", Kind::UrlOrNull),
];

/// WG1-01 §4. Enumerated fields (`type`, `role`, the `*_types` lists) are plain strings
/// here on purpose: other specs extend the enumerations, so unknown values are legal.
const ENTRY_FIELDS: &[FieldSpec] = &[
    req("id", Kind::NonEmptyStr),
    req("created", Kind::DateTime),
    req("updated", Kind::DateTime),
    req("entity_name", Kind::Str),
    req("entity_abbreviation", Kind::StrOrNull),
    req("country", Kind::Str),
    req("name", Kind::Str),
    opt("description", Kind::Str),
    req("type", Kind::Str),
    req("role", Kind::Str),
    req("infrastructure_types", Kind::StrList),
    req("commodity_types", Kind::StrList),
    req("capabilities", Kind::StrList),
    opt("map_resource", Kind::Url),
    opt("map_content_type", Kind::Mime),
    opt("geojson_resource", Kind::Url),
];

/// An absolute web URL. The spec's URL fields are all things the registry either fetches
/// or shows as links, so relative references and other schemes (`javascript:`, `data:`,
/// `file:`) are type errors. Plain `http` passes here: whether it may be *fetched* is a
/// transport decision (HTTP-NOT-HTTPS, CDS-SPEC-NOTES §1), made by the crawler.
fn is_web_url(s: &str) -> bool {
    // `Url::parse` silently trims surrounding whitespace; a document that needs trimming
    // is not giving a URL.
    s == s.trim()
        && Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
    // RFC 3339 with optional fractional seconds, as the spec's examples use
    // (`2022-01-01T00:00:00.000000Z`).
    DateTime::parse_from_rfc3339(s).ok()
}

/// `type/subtype` with optional parameters, names restricted as in RFC 6838 §4.2.
fn is_mime_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    token(top) && token(sub)
}

/// Type problems of `v` read as `kind`: (pointer suffix below the field, offending value).
/// For lists each bad element is reported at its own index, so a user sees which one.
fn type_problems(v: &Value, kind: Kind) -> Vec<(String, &Value)> {
    let scalar_ok = |v: &Value, kind: Kind| match kind {
        Kind::Str => v.is_string(),
        Kind::NonEmptyStr => v.as_str().is_some_and(|s| !s.is_empty()),
        Kind::StrOrNull => v.is_string() || v.is_null(),
        Kind::Url => v.as_str().is_some_and(is_web_url),
        Kind::UrlOrNull => v.is_null() || v.as_str().is_some_and(is_web_url),
        Kind::DateTime => v.as_str().and_then(parse_datetime).is_some(),
        Kind::Mime => v.as_str().is_some_and(is_mime_type),
        Kind::Object => v.is_object(),
        Kind::StrList | Kind::UrlList | Kind::ObjectList => {
            unreachable!("lists are handled below")
        }
    };
    let element = match kind.element() {
        Some(element) => element,
        None if scalar_ok(v, kind) => return Vec::new(),
        None => return vec![(String::new(), v)],
    };
    match v.as_array() {
        None => vec![(String::new(), v)],
        Some(items) => items
            .iter()
            .enumerate()
            .filter(|(_, item)| !scalar_ok(item, element))
            .map(|(i, item)| (format!("/{i}"), item))
            .collect(),
    }
}

/// A value for `Finding::actual`, bounded: documents come from remote servers and a
/// field may hold megabytes.
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

/// Which rule family a field check reports under.
struct Family {
    required: &'static str,
    type_: &'static str,
    /// "metadata document", "coverage listing", "coverage entry": for messages.
    what: &'static str,
}

const META: Family = Family {
    required: rules::META_REQUIRED,
    type_: rules::META_TYPE,
    what: "metadata document",
};
const PAGE: Family = Family {
    required: rules::COV_REQUIRED,
    type_: rules::COV_TYPE,
    what: "coverage listing",
};
const ENTRY: Family = Family {
    required: rules::COV_REQUIRED,
    type_: rules::COV_TYPE,
    what: "coverage entry",
};

fn field_pointer(base: &str, field: &str) -> String {
    format!("{base}/{}", pointer_token(field))
}

/// `null_given`: the field is there but `null`, which the spec does not allow for it.
fn required_finding(
    fam: &Family,
    field: &str,
    kind: Kind,
    url: &str,
    base: &str,
    null_given: bool,
) -> Finding {
    let how = if null_given { "is null" } else { "is missing" };
    let f = Finding::new(
        format!("{}:{field}", fam.required),
        Severity::Error,
        url,
        field_pointer(base, field),
        format!(
            "in the {}, the required field `{field}` {how}; it must be {}",
            fam.what,
            kind.describe()
        ),
    )
    .expected(kind.describe());
    if null_given {
        f.actual("null")
    } else {
        f
    }
}

/// `sub` is the pointer below the field: empty for the field itself, `/<i>` for a bad
/// element of a list field.
fn type_finding(
    fam: &Family,
    field: &str,
    kind: Kind,
    url: &str,
    base: &str,
    sub: &str,
    bad: &Value,
) -> Finding {
    let (what, ptr, kind) = match kind.element() {
        Some(element) if !sub.is_empty() => (
            format!("each element of `{field}`"),
            format!("{}{sub}", field_pointer(base, field)),
            element,
        ),
        _ => (format!("field `{field}`"), field_pointer(base, field), kind),
    };
    Finding::new(
        format!("{}:{field}", fam.type_),
        Severity::Error,
        url,
        ptr,
        format!(
            "in the {}, {what} must be {}, got {}",
            fam.what,
            kind.describe(),
            show(bad)
        ),
    )
    .expected(kind.describe())
    .actual(show(bad))
}

/// Presence and shape of each field in `specs`. A `null` counts as absent unless the
/// kind allows it: for a required field that is a missing field, for an optional one it
/// is simply "not given".
fn check_fields(
    obj: &Map<String, Value>,
    specs: &[FieldSpec],
    fam: &Family,
    url: &str,
    base: &str,
    out: &mut Vec<Finding>,
) {
    for spec in specs {
        match obj.get(spec.name) {
            None => {
                if spec.need == Need::Required {
                    out.push(required_finding(
                        fam, spec.name, spec.kind, url, base, false,
                    ));
                }
            }
            Some(Value::Null) if !spec.kind.accepts_null() => {
                if spec.need == Need::Required {
                    out.push(required_finding(fam, spec.name, spec.kind, url, base, true));
                }
            }
            Some(v) => {
                for (sub, bad) in type_problems(v, spec.kind) {
                    out.push(type_finding(
                        fam, spec.name, spec.kind, url, base, &sub, bad,
                    ));
                }
            }
        }
    }
}

/// The string items of an array field; anything else yields nothing (the type check
/// reports it), so conditional rules never fire on top of a type error.
fn str_items<'a>(obj: &'a Map<String, Value>, field: &str) -> Vec<&'a str> {
    obj.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_given(obj: &Map<String, Value>, field: &str) -> bool {
    !matches!(obj.get(field), None | Some(Value::Null))
}

// ---------------------------------------------------------------------------------------
// Metadata (WG1-01 §2)
// ---------------------------------------------------------------------------------------

/// Checks of one metadata document on its own (WG1-01 §2).
pub fn validate_metadata(doc: &Value, ctx: &MetadataContext<'_>) -> Vec<Finding> {
    let url = ctx.fetched_url;
    let mut out = Vec::new();
    let Some(obj) = doc.as_object() else {
        out.push(
            Finding::new(
                format!("{}:document", rules::META_TYPE),
                Severity::Error,
                url,
                "",
                "the metadata document must be a JSON object",
            )
            .expected("a JSON object")
            .actual(show(doc)),
        );
        return out;
    };
    check_fields(obj, META_FIELDS, &META, url, "", &mut out);

    // WG1-01 §2: "v1" is the only version this validator knows; a newer version is not
    // an error (it may be a compatible revision), but worth a look.
    if let Some(version) = obj.get("cds_metadata_version").and_then(Value::as_str) {
        if version != "v1" {
            out.push(
                Finding::new(
                    rules::META_VERSION,
                    Severity::Warning,
                    url,
                    "/cds_metadata_version",
                    format!(
                        "`cds_metadata_version` is {version:?}; this registry validates against \"v1\""
                    ),
                )
                .expected("v1")
                .actual(version),
            );
        }
    }

    // WG1-01 §2: `cds_metadata_url` is the canonical URL of the document. Compared as
    // parsed URLs so that spelling differences the URL standard erases (host case, a
    // default port, an empty path) do not count; the fragment never reaches the server,
    // so it is ignored too.
    if let Some(declared) = obj
        .get("cds_metadata_url")
        .and_then(Value::as_str)
        .filter(|s| is_web_url(s))
    {
        if let (Ok(declared_u), Ok(fetched_u)) = (Url::parse(declared), Url::parse(url)) {
            if !same_resource(&declared_u, &fetched_u) {
                out.push(
                    Finding::new(
                        rules::META_URL_MISMATCH,
                        Severity::Warning,
                        url,
                        "/cds_metadata_url",
                        format!(
                            "`cds_metadata_url` says the document lives at {declared}, but it was fetched from {url}"
                        ),
                    )
                    .expected(url)
                    .actual(declared),
                );
            }
        }
    }

    let caps = str_items(obj, "capabilities");
    // WG1-01 §3: the `coverage` capability makes `coverage` required.
    conditional_url(
        obj,
        "coverage",
        caps.contains(&CAP_COVERAGE),
        rules::META_COVERAGE_URL,
        CAP_COVERAGE,
        url,
        &mut out,
    );
    // WG1-02 §3: the `oauth` capability makes `oauth_metadata` required.
    conditional_url(
        obj,
        "oauth_metadata",
        caps.contains(&CAP_OAUTH),
        rules::META_OAUTH_URL,
        CAP_OAUTH,
        url,
        &mut out,
    );
    out
}

fn same_resource(a: &Url, b: &Url) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    a.set_fragment(None);
    b.set_fragment(None);
    a == b
}

/// A URL field that a capability makes required. One finding per problem: when the
/// capability requires the field, a missing *or* unusable value is the capability's rule
/// (the crawler cannot follow the capability either way); otherwise a present but
/// unusable value is a plain `META-TYPE:<field>`.
fn conditional_url(
    obj: &Map<String, Value>,
    field: &str,
    required: bool,
    rule: &str,
    capability: &str,
    url: &str,
    out: &mut Vec<Finding>,
) {
    let ptr = field_pointer("", field);
    let value = obj.get(field).filter(|v| !v.is_null());
    let valid = value.and_then(Value::as_str).is_some_and(is_web_url);
    if valid {
        return;
    }
    match (value, required) {
        (None, true) => out.push(
            Finding::new(
                rule,
                Severity::Error,
                url,
                ptr,
                format!(
                    "`capabilities` contains `{capability}`, so `{field}` must give its URL, but it is missing"
                ),
            )
            .expected(Kind::Url.describe()),
        ),
        (Some(v), true) => out.push(
            Finding::new(
                rule,
                Severity::Error,
                url,
                ptr,
                format!(
                    "`capabilities` contains `{capability}`, so `{field}` must be {}, got {}",
                    Kind::Url.describe(),
                    show(v)
                ),
            )
            .expected(Kind::Url.describe())
            .actual(show(v)),
        ),
        (Some(v), false) => out.push(type_finding(&META, field, Kind::Url, url, "", "", v)),
        (None, false) => {}
    }
}

// ---------------------------------------------------------------------------------------
// Coverage listing and entries (WG1-01 §3, §4)
// ---------------------------------------------------------------------------------------

/// Checks of one coverage listing page and its entries (WG1-01 §3, §4).
pub fn validate_coverage_page(doc: &Value, url: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(obj) = doc.as_object() else {
        out.push(
            Finding::new(
                format!("{}:document", rules::COV_TYPE),
                Severity::Error,
                url,
                "",
                "the coverage listing must be a JSON object",
            )
            .expected("a JSON object")
            .actual(show(doc)),
        );
        return out;
    };
    // Presence and shape, including non-object elements of `coverage_entries`
    // (`COV-TYPE:coverage_entries` at `/coverage_entries/<i>`).
    check_fields(obj, PAGE_FIELDS, &PAGE, url, "", &mut out);
    if let Some(entries) = obj.get("coverage_entries").and_then(Value::as_array) {
        for (i, entry) in entries.iter().enumerate().filter(|(_, e)| e.is_object()) {
            out.extend(validate_coverage_entry(
                entry,
                url,
                &format!("/coverage_entries/{i}"),
            ));
        }
    }
    out
}

/// Checks of one coverage entry (WG1-01 §4). `pointer` is where the entry sits in its
/// page (`/coverage_entries/<i>`); findings about its fields point below it.
pub fn validate_coverage_entry(entry: &Value, url: &str, pointer: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(obj) = entry.as_object() else {
        out.push(
            Finding::new(
                format!("{}:coverage_entries", rules::COV_TYPE),
                Severity::Error,
                url,
                pointer,
                format!(
                    "a coverage entry must be a JSON object, got {}",
                    show(entry)
                ),
            )
            .expected("a JSON object")
            .actual(show(entry)),
        );
        return out;
    };
    check_fields(obj, ENTRY_FIELDS, &ENTRY, url, pointer, &mut out);

    // WG1-01 §4: `country` is an ISO 3166 alpha-2 code (one entry per country).
    if let Some(country) = obj.get("country").and_then(Value::as_str) {
        if !is_iso3166_alpha2(country) {
            let upper = country.to_ascii_uppercase();
            let hint = if upper == "UK" {
                " (the United Kingdom is `GB`)".to_owned()
            } else if is_iso3166_alpha2(&upper) {
                format!(" (codes are upper case: `{upper}`)")
            } else {
                String::new()
            };
            out.push(
                Finding::new(
                    rules::COV_COUNTRY,
                    Severity::Error,
                    url,
                    field_pointer(pointer, "country"),
                    format!(
                        "`country` is {country:?}, which is not an assigned ISO 3166-1 alpha-2 code{hint}"
                    ),
                )
                .expected("an ISO 3166-1 alpha-2 code such as `US`")
                .actual(country),
            );
        }
    }

    // WG1-01 §4: an entry lists what the server offers *for that coverage*; `coverage`
    // is a server-level capability and makes no sense there.
    if let Some(caps) = obj.get("capabilities").and_then(Value::as_array) {
        for (i, cap) in caps.iter().enumerate() {
            if cap.as_str() == Some(CAP_COVERAGE) {
                out.push(
                    Finding::new(
                        rules::COV_CAP_COVERAGE,
                        Severity::Error,
                        url,
                        format!("{}/{i}", field_pointer(pointer, "capabilities")),
                        "a coverage entry's `capabilities` must not contain `coverage` (it is a server capability)",
                    )
                    .actual(CAP_COVERAGE),
                );
            }
        }
    }

    // WG1-01 §4: `map_content_type` is required when `map_resource` is given.
    if is_given(obj, "map_resource") && !is_given(obj, "map_content_type") {
        out.push(
            Finding::new(
                rules::COV_MAP_TYPE,
                Severity::Error,
                url,
                field_pointer(pointer, "map_content_type"),
                "`map_resource` is given, so `map_content_type` (its MIME type) is required",
            )
            .expected(Kind::Mime.describe()),
        );
    }

    // WG1-01 §4: a geographic entry must say where its territory is. An invalid URL in
    // either field is already a COV-TYPE finding, so only absence counts here.
    if obj.get("type").and_then(Value::as_str) == Some("geographic")
        && !is_given(obj, "map_resource")
        && !is_given(obj, "geojson_resource")
    {
        out.push(
            Finding::new(
                rules::COV_GEO_RESOURCE,
                Severity::Error,
                url,
                pointer,
                "a `geographic` entry must give `map_resource` or `geojson_resource` (or both)",
            )
            .expected("`map_resource` and/or `geojson_resource`"),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Whole server (WG1-01 §2, §3)
// ---------------------------------------------------------------------------------------

/// Checks across all documents of one server: metadata plus every coverage entry of
/// every page, in listing order (WG1-01 §2 capability union, §3 ordering and unique ids).
///
/// - META-CAP-UNION: one finding at the metadata's `/capabilities`, listing every missing
///   capability; only when the metadata declares `coverage` (otherwise there is no listing
///   the union could come from).
/// - COV-DUP-ID: one finding per duplicated id, at the id of its *second* occurrence
///   (`<page>` + `/coverage_entries/<i>/id`); the message names the first one and the count.
/// - COV-ORDER: at most one finding per listing, at the first entry that is newer than the
///   one before it. Entries whose `updated` does not parse are skipped (they already have
///   a COV-TYPE finding).
pub fn validate_server(meta: &Value, meta_url: &str, entries: &[EntryRef<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    cap_union(meta, meta_url, entries, &mut out);
    duplicate_ids(entries, &mut out);
    ordering(entries, &mut out);
    out
}

fn cap_union(meta: &Value, meta_url: &str, entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    let Some(obj) = meta.as_object() else {
        return;
    };
    let declared = str_items(obj, "capabilities");
    if !declared.contains(&CAP_COVERAGE) {
        return;
    }
    // WG1-01 §2: with `coverage`, the server's capabilities include the union of its
    // entries' capabilities. Listed in first-seen order so the message is stable.
    let mut union: Vec<&str> = Vec::new();
    for e in entries {
        let Some(caps) = e.entry.get("capabilities").and_then(Value::as_array) else {
            continue;
        };
        for cap in caps.iter().filter_map(Value::as_str) {
            if !union.contains(&cap) {
                union.push(cap);
            }
        }
    }
    let missing: Vec<&str> = union
        .iter()
        .copied()
        .filter(|c| !declared.contains(c))
        .collect();
    if missing.is_empty() {
        return;
    }
    let quoted = |list: &[&str]| {
        list.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(
        Finding::new(
            rules::META_CAP_UNION,
            Severity::Error,
            meta_url,
            "/capabilities",
            format!(
                "`capabilities` must include every capability its coverage entries list; missing: {}",
                quoted(&missing)
            ),
        )
        .expected(Value::from(union).to_string())
        .actual(Value::from(declared).to_string()),
    );
}

fn duplicate_ids(entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    // id -> (first occurrence, second occurrence, count); insertion order kept in `order`
    // so findings come out in listing order.
    let mut seen: HashMap<&str, (usize, Option<usize>, usize)> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (pos, e) in entries.iter().enumerate() {
        // Only string ids: a non-string id is a COV-TYPE finding already, and comparing
        // `5` with `"5"` would invent a duplicate.
        let Some(id) = e.entry.get("id").and_then(Value::as_str) else {
            continue;
        };
        let slot = seen.entry(id).or_insert_with(|| {
            order.push(id);
            (pos, None, 0)
        });
        slot.2 += 1;
        if slot.2 == 2 {
            slot.1 = Some(pos);
        }
    }
    for id in order {
        let (first, Some(second), count) = seen[id] else {
            continue;
        };
        let (a, b) = (&entries[first], &entries[second]);
        out.push(
            Finding::new(
                rules::COV_DUP_ID,
                Severity::Error,
                b.page_url,
                format!("{}/id", b.pointer()),
                format!(
                    "coverage entry id {id:?} is used {count} times; ids must be unique within a server (first at {}#{})",
                    a.page_url,
                    a.pointer()
                ),
            )
            .expected("a unique id")
            .actual(id),
        );
    }
}

fn ordering(entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    // WG1-01 §3: newest `updated` first, across the pages in order. Clients rely on it to
    // stop paging once they reach entries they already have.
    let mut prev: Option<(DateTime<FixedOffset>, &EntryRef<'_>, &str)> = None;
    for e in entries {
        let Some(raw) = e.entry.get("updated").and_then(Value::as_str) else {
            continue;
        };
        let Some(t) = parse_datetime(raw) else {
            continue;
        };
        if let Some((pt, pe, praw)) = prev {
            if t > pt {
                out.push(
                    Finding::new(
                        rules::COV_ORDER,
                        Severity::Warning,
                        e.page_url,
                        format!("{}/updated", e.pointer()),
                        format!(
                            "coverage entries must be ordered by `updated`, newest first; this entry ({raw}) is newer than the one before it ({praw} at {}#{})",
                            pe.page_url,
                            pe.pointer()
                        ),
                    )
                    .expected(format!("not later than {praw}"))
                    .actual(raw),
                );
                return; // once per listing: one misplaced entry usually shifts many
            }
        }
        prev = Some((t, e, raw));
    }
}

// ---------------------------------------------------------------------------------------
// Across servers (WG1-01 §4)
// ---------------------------------------------------------------------------------------

/// One coverage entry with `role: "authoritative"`, as input to
/// [`authoritative_conflicts`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuthClaim {
    /// The server (its metadata URL) making the claim; claims of the same server never
    /// conflict with each other.
    pub server_url: String,
    /// The coverage page the entry is on (findings are reported against it).
    pub entry_url: String,
    /// The entry's pointer in that page, `/coverage_entries/<i>`.
    pub pointer: String,
    pub entry_id: String,
    pub capabilities: Vec<String>,
    pub country: String,
    /// Territory bounding box `[min_lon, min_lat, max_lon, max_lat]` (RFC 7946 §5 order),
    /// when the territory is known.
    pub bbox: Option<[f64; 4]>,
}

/// XS-AUTH-CONFLICT with the default overlap test, [`default_overlap`]: same country and
/// overlapping bounding boxes.
pub fn authoritative_conflicts(claims: &[AuthClaim]) -> Vec<Finding> {
    authoritative_conflicts_with(claims, &default_overlap)
}

/// XS-AUTH-CONFLICT (warning), WG1-01 §4: only one server should be authoritative for the
/// same coverage and capability.
///
/// `claims` are the `authoritative` entries of all servers. Two claims conflict when they
/// come from different servers (`server_url` differs), share at least one capability and
/// `overlaps` says their territories overlap; the geometry test stays with the caller
/// (e.g. real polygon intersection after a bbox pre-filter).
///
/// Each conflicting pair yields **two** findings, one reported against each side
/// (`url` = that claim's `entry_url`, `pointer` = its `pointer`), so each server's own
/// findings list shows the conflict; the message names the other server and entry.
/// Findings come in pair order (`claims[i]` before `claims[j]` for `i < j`).
///
/// The scan is quadratic in the number of claims, which is fine for the few authoritative
/// entries a registry holds; pre-group the input by country if it grows.
pub fn authoritative_conflicts_with(
    claims: &[AuthClaim],
    overlaps: &dyn Fn(&AuthClaim, &AuthClaim) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, a) in claims.iter().enumerate() {
        for b in &claims[i + 1..] {
            if a.server_url == b.server_url {
                continue;
            }
            let shared: Vec<&str> = a
                .capabilities
                .iter()
                .filter(|c| b.capabilities.contains(c))
                .map(String::as_str)
                .collect();
            if shared.is_empty() || !overlaps(a, b) {
                continue;
            }
            out.push(conflict_finding(a, b, &shared));
            out.push(conflict_finding(b, a, &shared));
        }
    }
    out
}

fn conflict_finding(this: &AuthClaim, other: &AuthClaim, shared: &[&str]) -> Finding {
    let caps = shared
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Finding::new(
        rules::XS_AUTH_CONFLICT,
        Severity::Warning,
        &this.entry_url,
        &this.pointer,
        format!(
            "entry {:?} is `authoritative` for {caps}, and so is entry {:?} of another server ({}, listed at {}#{}) for an overlapping territory; only one server should be authoritative there",
            this.entry_id, other.entry_id, other.server_url, other.entry_url, other.pointer
        ),
    )
    .expected("one authoritative server per territory and capability")
    .actual(other.server_url.clone())
}

/// The default territory test: same country and overlapping bounding boxes. Claims
/// without a bounding box (logical entries, territories not downloaded) never overlap:
/// without a territory there is nothing to compare, and a false alarm is worse here.
pub fn default_overlap(a: &AuthClaim, b: &AuthClaim) -> bool {
    a.country == b.country
        && match (a.bbox, b.bbox) {
            (Some(x), Some(y)) => bbox_overlap(&x, &y),
            _ => false,
        }
}

/// Whether two `[min_lon, min_lat, max_lon, max_lat]` boxes share interior area.
/// Touching edges do not count (neighbouring utilities share borders). A box with
/// `min_lon > max_lon` crosses the antimeridian (RFC 7946 §5.2). NaN never overlaps.
pub fn bbox_overlap(a: &[f64; 4], b: &[f64; 4]) -> bool {
    if a.iter().chain(b).any(|v| v.is_nan()) {
        return false;
    }
    let lat = a[1] < b[3] && b[1] < a[3];
    lat && lon_ranges(a)
        .iter()
        .any(|x| lon_ranges(b).iter().any(|y| x.0 < y.1 && y.0 < x.1))
}

fn lon_ranges(b: &[f64; 4]) -> Vec<(f64, f64)> {
    if b[0] <= b[2] {
        vec![(b[0], b[2])]
    } else {
        vec![(b[0], 180.0), (-180.0, b[2])]
    }
}

// ---------------------------------------------------------------------------------------
// Transport findings raised by the crawler (CDS-SPEC-NOTES §1, §3)
// ---------------------------------------------------------------------------------------

/// WK-LEGACY (info): the server answers only on the pre-rename well-known path.
pub fn finding_legacy_path(url: &str) -> Finding {
    Finding::new(
        rules::WK_LEGACY,
        Severity::Info,
        url,
        "",
        format!(
            "metadata found only at the legacy path {}; publish it at {} too",
            super::LEGACY_WELL_KNOWN_PATH,
            super::WELL_KNOWN_PATH
        ),
    )
    .expected(super::WELL_KNOWN_PATH)
}

/// HTTP-NOT-HTTPS: the spec allows only HTTPS (error). When the operator explicitly
/// allowed plain HTTP for this host (tests, the loopback demo) it is `info`, so a good
/// fixture validates clean (CDS-SPEC-NOTES §1).
pub fn finding_plain_http(url: &str, allowed_by_operator: bool) -> Finding {
    let (severity, message) = if allowed_by_operator {
        (
            Severity::Info,
            "fetched over plain http, which the operator allowed for this host; the spec requires https",
        )
    } else {
        (
            Severity::Error,
            "the spec allows only https, but this document is served over plain http",
        )
    };
    Finding::new(rules::HTTP_NOT_HTTPS, severity, url, "", message)
        .expected("https")
        .actual("http")
}

/// WK-AUTH (error): the well-known endpoint answered 401/403; it must not require
/// authentication (CDS-SPEC-NOTES §1).
pub fn finding_auth_required(url: &str, status: u16) -> Finding {
    Finding::new(
        rules::WK_AUTH,
        Severity::Error,
        url,
        "",
        format!("the well-known metadata endpoint answered HTTP {status}; it must be public, without authentication"),
    )
    .expected("200 without authentication")
    .actual(status.to_string())
}

/// COV-PAGE-LOOP (error): `next` led back to a page already seen (CDS-SPEC-NOTES §3).
/// `url` is the page whose `next` closes the loop.
pub fn finding_page_loop(url: &str) -> Finding {
    Finding::new(
        rules::COV_PAGE_LOOP,
        Severity::Error,
        url,
        "/next",
        "the coverage listing loops: `next` points to a page already visited; the listing was cut here",
    )
}

/// COV-PAGE-LOOP (error) for an endless listing: more than `max_pages` pages
/// (CDS-SPEC-NOTES §3 treats both as the same guard).
pub fn finding_page_cap(url: &str, max_pages: usize) -> Finding {
    Finding::new(
        rules::COV_PAGE_LOOP,
        Severity::Error,
        url,
        "/next",
        format!("the coverage listing goes on past {max_pages} pages; it was cut here"),
    )
    .expected(format!("at most {max_pages} pages"))
}

/// JSON-LENIENT (error): the document only parsed after removing trailing commas
/// (see [`super::lenient`]); it is used, but it is not JSON.
pub fn finding_lenient_json(url: &str) -> Finding {
    Finding::new(
        rules::JSON_LENIENT,
        Severity::Error,
        url,
        "",
        "the document is not valid JSON (it has trailing commas); it was read leniently, but strict clients will reject it",
    )
    .expected("strict JSON (RFC 8259)")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::cds::lenient::{self, Parsed};

    const META_URL: &str = "https://util.example/.well-known/cds-server-metadata.json";
    const PAGE1: &str = "https://util.example/cds/coverage";
    const PAGE2: &str = "https://util.example/cds/coverage?page=2";

    fn ctx(fetched_url: &str) -> MetadataContext<'_> {
        MetadataContext { fetched_url }
    }

    fn ids(findings: &[Finding]) -> BTreeSet<String> {
        findings.iter().map(|f| f.rule.clone()).collect()
    }

    fn set(rules: &[&str]) -> BTreeSet<String> {
        rules.iter().map(|r| r.to_string()).collect()
    }

    /// A complete, conforming metadata document (WG1-01 §2, WG1-02 §3).
    fn good_meta() -> Value {
        json!({
            "cds_metadata_version": "v1",
            "cds_metadata_url": META_URL,
            "created": "2024-01-01T00:00:00Z",
            "updated": "2024-06-01T12:30:00.250+02:00",
            "name": "Example Power & Light",
            "description": "A conforming test utility.",
            "website": "https://util.example/",
            "documentation": "https://util.example/docs",
            "support": "https://util.example/support",
            "capabilities": ["coverage", "oauth", "ieee1547"],
            "coverage": PAGE1,
            "related_metadata": ["https://sister.example/.well-known/cds-server-metadata.json"],
            "oauth_metadata": "https://util.example/.well-known/oauth-authorization-server"
        })
    }

    /// A complete, conforming geographic coverage entry (WG1-01 §4).
    fn good_entry(id: &str, updated: &str) -> Value {
        json!({
            "id": id,
            "created": "2024-01-01T00:00:00Z",
            "updated": updated,
            "entity_name": "Example Power & Light",
            "entity_abbreviation": "EP&L",
            "country": "US",
            "name": "Northern service territory",
            "description": "Electric distribution, northern half.",
            "type": "geographic",
            "role": "authoritative",
            "infrastructure_types": ["distribution_utility"],
            "commodity_types": ["electricity"],
            "capabilities": ["oauth"],
            "map_resource": "https://util.example/map.png",
            "map_content_type": "image/png",
            "geojson_resource": "https://util.example/territory.geojson"
        })
    }

    fn page(entries: Vec<Value>) -> Value {
        json!({ "coverage_entries": entries, "next": null, "previous": null })
    }

    /// `good_meta()` with `edit` applied to its object.
    fn meta_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut m = good_meta();
        edit(m.as_object_mut().unwrap());
        m
    }

    /// A one-entry page whose entry is `good_entry` with `edit` applied.
    fn entry_page_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut e = good_entry("north", "2024-06-01T00:00:00Z");
        edit(e.as_object_mut().unwrap());
        page(vec![e])
    }

    fn meta_rules(doc: &Value) -> BTreeSet<String> {
        ids(&validate_metadata(doc, &ctx(META_URL)))
    }

    fn page_rules(doc: &Value) -> BTreeSet<String> {
        ids(&validate_coverage_page(doc, PAGE1))
    }

    fn refs<'a>(pages: &'a [(&'a str, Value)]) -> Vec<EntryRef<'a>> {
        pages
            .iter()
            .flat_map(|(url, doc)| {
                doc["coverage_entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(move |(index, entry)| EntryRef {
                        page_url: url,
                        index,
                        entry,
                    })
            })
            .collect()
    }

    // ---- the clean case -------------------------------------------------------------

    #[test]
    fn valid_metadata_coverage_and_server_have_zero_findings() {
        let meta = good_meta();
        assert_eq!(validate_metadata(&meta, &ctx(META_URL)), vec![]);
        let p1 = json!({
            "coverage_entries": [
                good_entry("north", "2024-06-01T00:00:00Z"),
                good_entry("south", "2024-05-01T00:00:00Z"),
            ],
            "next": PAGE2,
            "previous": null
        });
        let mut logical = good_entry("ev-program", "2024-04-01T00:00:00Z");
        let o = logical.as_object_mut().unwrap();
        o["type"] = json!("logical");
        o["entity_abbreviation"] = Value::Null;
        o["capabilities"] = json!(["oauth", "ieee1547"]);
        for f in [
            "description",
            "map_resource",
            "map_content_type",
            "geojson_resource",
        ] {
            o.remove(f);
        }
        let p2 = json!({ "coverage_entries": [logical], "next": null, "previous": PAGE1 });
        assert_eq!(validate_coverage_page(&p1, PAGE1), vec![]);
        assert_eq!(validate_coverage_page(&p2, PAGE2), vec![]);
        let pages = [(PAGE1, p1), (PAGE2, p2)];
        assert_eq!(validate_server(&meta, META_URL, &refs(&pages)), vec![]);
    }

    #[test]
    fn unknown_fields_capabilities_and_enum_values_are_ignored() {
        // WG1-01 §2: forward compatibility, never a finding.
        let meta = meta_with(|m| {
            m.insert(
                "ieee1547_setup".into(),
                json!("https://util.example/inverters"),
            );
            m.insert("x_vendor".into(), json!({"anything": [1, 2]}));
            m["capabilities"] = json!(["coverage", "oauth", "ieee1547", "future_thing"]);
        });
        assert_eq!(meta_rules(&meta), set(&[]));
        let p = entry_page_with(|e| {
            e["role"] = json!("community_choice_aggregator");
            e["infrastructure_types"] = json!(["ev_charging_operator"]);
            e["commodity_types"] = json!(["hydrogen"]);
            e["capabilities"] = json!(["future_thing"]);
            e.insert("x_extra".into(), json!(true));
        });
        assert_eq!(page_rules(&p), set(&[]));
        // An unknown `type` is kept; only `geographic` requires a territory resource.
        let p = entry_page_with(|e| {
            e["type"] = json!("virtual");
            e.remove("map_resource");
            e.remove("map_content_type");
            e.remove("geojson_resource");
        });
        assert_eq!(page_rules(&p), set(&[]));
    }

    // ---- metadata, one rule per fixture ---------------------------------------------

    #[test]
    fn meta_type_document() {
        for doc in [json!([]), json!("x"), Value::Null] {
            let f = validate_metadata(&doc, &ctx(META_URL));
            assert_eq!(ids(&f), set(&["META-TYPE:document"]));
            assert_eq!(f[0].pointer, "");
        }
    }

    #[test]
    fn meta_required_each_field() {
        for field in [
            "cds_metadata_version",
            "cds_metadata_url",
            "created",
            "updated",
            "name",
            "description",
            "website",
            "documentation",
            "support",
            "capabilities",
        ] {
            let missing = meta_with(|m| {
                m.remove(field);
            });
            let f = validate_metadata(&missing, &ctx(META_URL));
            assert_eq!(
                ids(&f),
                set(&[&format!("META-REQUIRED:{field}")]),
                "{field}"
            );
            assert_eq!(f[0].severity, Severity::Error);
            assert_eq!(f[0].pointer, format!("/{field}"));
            // `null` is no value for a required field.
            let null = meta_with(|m| m[field] = Value::Null);
            assert_eq!(meta_rules(&null), set(&[&format!("META-REQUIRED:{field}")]));
        }
    }

    #[test]
    fn meta_type_each_field() {
        let cases = [
            ("cds_metadata_version", json!(1)),
            (
                "cds_metadata_url",
                json!("/.well-known/cds-server-metadata.json"),
            ),
            ("created", json!("2024-01-01")),
            ("updated", json!("yesterday")),
            ("name", json!(["Example"])),
            ("description", json!({"en": "x"})),
            ("website", json!("javascript:alert(1)")),
            ("documentation", json!(" https://util.example/docs")),
            ("support", json!(42)),
            ("capabilities", json!("coverage")),
            ("capabilities", json!(["coverage", 7])),
            ("related_metadata", json!("https://sister.example/x.json")),
            (
                "related_metadata",
                json!(["https://ok.example/a.json", "not a url"]),
            ),
        ];
        for (field, bad) in cases {
            let doc = meta_with(|m| m[field] = bad.clone());
            let f = validate_metadata(&doc, &ctx(META_URL));
            // A `capabilities` that is not a list drops `coverage`/`oauth`, and with them
            // the rules that depend on them: still exactly one finding.
            assert_eq!(
                ids(&f),
                set(&[&format!("META-TYPE:{field}")]),
                "{field}: {bad}"
            );
            assert_eq!(f.len(), 1, "{field}: {bad}");
            assert_eq!(f[0].severity, Severity::Error);
            assert!(f[0].actual.is_some());
        }
        // List elements are pointed at individually.
        let doc = meta_with(|m| m["related_metadata"] = json!(["https://ok.example/", 5]));
        assert_eq!(
            validate_metadata(&doc, &ctx(META_URL))[0].pointer,
            "/related_metadata/1"
        );
    }

    #[test]
    fn meta_type_optional_urls_without_their_capability() {
        let doc = meta_with(|m| {
            m["capabilities"] = json!([]);
            m["coverage"] = json!("cds-coverage.json");
            m["oauth_metadata"] = json!(17);
        });
        assert_eq!(
            meta_rules(&doc),
            set(&["META-TYPE:coverage", "META-TYPE:oauth_metadata"])
        );
        // Absent or null optional fields are simply not given.
        let doc = meta_with(|m| {
            m["capabilities"] = json!([]);
            m.remove("coverage");
            m["oauth_metadata"] = Value::Null;
            m["related_metadata"] = Value::Null;
        });
        assert_eq!(meta_rules(&doc), set(&[]));
    }

    #[test]
    fn meta_version() {
        let f = validate_metadata(
            &meta_with(|m| m["cds_metadata_version"] = json!("v2")),
            &ctx(META_URL),
        );
        assert_eq!(ids(&f), set(&["META-VERSION"]));
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].actual.as_deref(), Some("v2"));
    }

    #[test]
    fn meta_url_mismatch() {
        let f = validate_metadata(
            &good_meta(),
            &ctx("https://moved.example/.well-known/cds-server-metadata.json"),
        );
        assert_eq!(ids(&f), set(&["META-URL-MISMATCH"]));
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].pointer, "/cds_metadata_url");
        assert_eq!(f[0].actual.as_deref(), Some(META_URL));
        // Different path on the same host counts too.
        let legacy = "https://util.example/.well-known/carbon-data-spec.json";
        assert_eq!(
            ids(&validate_metadata(&good_meta(), &ctx(legacy))),
            set(&["META-URL-MISMATCH"])
        );
    }

    #[test]
    fn meta_url_trivial_differences_do_not_count() {
        for fetched in [
            "https://UTIL.example:443/.well-known/cds-server-metadata.json",
            "https://util.example/.well-known/cds-server-metadata.json#top",
        ] {
            assert_eq!(
                ids(&validate_metadata(&good_meta(), &ctx(fetched))),
                set(&[]),
                "{fetched}"
            );
        }
        let doc = meta_with(|m| m["cds_metadata_url"] = json!("https://util.example:443"));
        assert_eq!(
            ids(&validate_metadata(&doc, &ctx("https://util.example/"))),
            set(&[])
        );
    }

    #[test]
    fn meta_coverage_url() {
        for bad in [
            None,
            Some(Value::Null),
            Some(json!(42)),
            Some(json!("coverage.json")),
        ] {
            let doc = meta_with(|m| match &bad {
                None => {
                    m.remove("coverage");
                }
                Some(v) => m["coverage"] = v.clone(),
            });
            let f = validate_metadata(&doc, &ctx(META_URL));
            assert_eq!(ids(&f), set(&["META-COVERAGE-URL"]), "{bad:?}");
            assert_eq!(f[0].severity, Severity::Error);
            assert_eq!(f[0].pointer, "/coverage");
        }
    }

    #[test]
    fn meta_oauth_url() {
        let doc = meta_with(|m| {
            m.remove("oauth_metadata");
        });
        let f = validate_metadata(&doc, &ctx(META_URL));
        assert_eq!(ids(&f), set(&["META-OAUTH-URL"]));
        assert_eq!(f[0].severity, Severity::Error);
        let doc = meta_with(|m| m["oauth_metadata"] = json!("/oauth"));
        assert_eq!(meta_rules(&doc), set(&["META-OAUTH-URL"]));
    }

    #[test]
    fn datetimes_follow_rfc3339() {
        for ok in [
            "2024-01-01T00:00:00Z",
            "2022-01-01T00:00:00.000000Z",
            "2024-01-01T00:00:00.5-05:00",
        ] {
            assert_eq!(
                meta_rules(&meta_with(|m| m["created"] = json!(ok))),
                set(&[]),
                "{ok}"
            );
        }
        for bad in [
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "1704067200",
        ] {
            assert_eq!(
                meta_rules(&meta_with(|m| m["created"] = json!(bad))),
                set(&["META-TYPE:created"]),
                "{bad}"
            );
        }
    }

    // ---- coverage listing, one rule per fixture -------------------------------------

    #[test]
    fn cov_type_document() {
        let f = validate_coverage_page(&json!([good_entry("a", "2024-01-01T00:00:00Z")]), PAGE1);
        assert_eq!(ids(&f), set(&["COV-TYPE:document"]));
    }

    #[test]
    fn cov_required_page_fields() {
        for field in ["coverage_entries", "next", "previous"] {
            let mut p = page(vec![good_entry("a", "2024-01-01T00:00:00Z")]);
            p.as_object_mut().unwrap().remove(field);
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(ids(&f), set(&[&format!("COV-REQUIRED:{field}")]), "{field}");
            assert_eq!(f[0].pointer, format!("/{field}"));
            assert_eq!(f[0].severity, Severity::Error);
        }
        // `null` is a legal `next`/`previous` but no `coverage_entries`.
        let p = json!({ "coverage_entries": null, "next": null, "previous": null });
        assert_eq!(page_rules(&p), set(&["COV-REQUIRED:coverage_entries"]));
    }

    #[test]
    fn cov_type_page_fields() {
        let cases = [
            ("coverage_entries", json!({"id": "a"}), "/coverage_entries"),
            ("coverage_entries", json!(["a"]), "/coverage_entries/0"),
            ("next", json!("?page=2"), "/next"),
            ("previous", json!(5), "/previous"),
        ];
        for (field, bad, pointer) in cases {
            let mut p = page(vec![]);
            p[field] = bad.clone();
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(
                ids(&f),
                set(&[&format!("COV-TYPE:{field}")]),
                "{field}: {bad}"
            );
            assert_eq!(f[0].pointer, pointer);
        }
        // An empty listing is fine.
        assert_eq!(page_rules(&page(vec![])), set(&[]));
    }

    #[test]
    fn cov_required_each_entry_field() {
        for field in [
            "id",
            "created",
            "updated",
            "entity_name",
            "entity_abbreviation",
            "country",
            "name",
            "type",
            "role",
            "infrastructure_types",
            "commodity_types",
            "capabilities",
        ] {
            let p = entry_page_with(|e| {
                e.remove(field);
            });
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(ids(&f), set(&[&format!("COV-REQUIRED:{field}")]), "{field}");
            assert_eq!(f[0].pointer, format!("/coverage_entries/0/{field}"));
            assert_eq!(f[0].url, PAGE1);
        }
        // `null` is legal for `entity_abbreviation` only.
        let p = entry_page_with(|e| e["entity_abbreviation"] = Value::Null);
        assert_eq!(page_rules(&p), set(&[]));
        let p = entry_page_with(|e| e["name"] = Value::Null);
        assert_eq!(page_rules(&p), set(&["COV-REQUIRED:name"]));
        // `description` is optional.
        let p = entry_page_with(|e| {
            e.remove("description");
        });
        assert_eq!(page_rules(&p), set(&[]));
    }

    #[test]
    fn cov_type_each_entry_field() {
        let cases = [
            ("id", json!(5)),
            ("id", json!("")),
            ("created", json!("2024-01-01 noon")),
            ("updated", json!("2024-02-30T00:00:00Z")),
            ("entity_name", json!([])),
            ("entity_abbreviation", json!(3)),
            ("country", json!(840)),
            ("name", json!(true)),
            ("description", json!(5)),
            ("type", json!(1)),
            ("role", json!(["official"])),
            ("infrastructure_types", json!("distribution_utility")),
            ("commodity_types", json!([1])),
            ("capabilities", json!({})),
            ("map_resource", json!("map.png")),
            ("map_content_type", json!("png")),
            ("geojson_resource", json!("ftp://util.example/t.geojson")),
        ];
        for (field, bad) in cases {
            let p = entry_page_with(|e| e[field] = bad.clone());
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(
                ids(&f),
                set(&[&format!("COV-TYPE:{field}")]),
                "{field}: {bad}"
            );
            assert_eq!(f.len(), 1, "{field}: {bad}");
            assert!(f[0]
                .pointer
                .starts_with(&format!("/coverage_entries/0/{field}")));
        }
    }

    #[test]
    fn cov_country() {
        for bad in ["UK", "XX", "us", "USA"] {
            let p = entry_page_with(|e| e["country"] = json!(bad));
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(ids(&f), set(&["COV-COUNTRY"]), "{bad}");
            assert_eq!(f[0].pointer, "/coverage_entries/0/country");
            assert_eq!(f[0].actual.as_deref(), Some(bad));
        }
        let f = validate_coverage_page(&entry_page_with(|e| e["country"] = json!("us")), PAGE1);
        assert!(f[0].message.contains("`US`"), "{}", f[0].message);
    }

    #[test]
    fn cov_cap_coverage() {
        let p = entry_page_with(|e| e["capabilities"] = json!(["oauth", "coverage"]));
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&["COV-CAP-COVERAGE"]));
        assert_eq!(f[0].pointer, "/coverage_entries/0/capabilities/1");
    }

    #[test]
    fn cov_map_type() {
        for absent in [None, Some(Value::Null)] {
            let p = entry_page_with(|e| match &absent {
                None => {
                    e.remove("map_content_type");
                }
                Some(v) => e["map_content_type"] = v.clone(),
            });
            let f = validate_coverage_page(&p, PAGE1);
            assert_eq!(ids(&f), set(&["COV-MAP-TYPE"]));
            assert_eq!(f[0].pointer, "/coverage_entries/0/map_content_type");
        }
    }

    #[test]
    fn cov_geo_resource() {
        let p = entry_page_with(|e| {
            e.remove("map_resource");
            e.remove("map_content_type");
            e["geojson_resource"] = Value::Null;
        });
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&["COV-GEO-RESOURCE"]));
        assert_eq!(f[0].pointer, "/coverage_entries/0");
        // Either resource alone is enough.
        let only_geojson = entry_page_with(|e| {
            e.remove("map_resource");
            e.remove("map_content_type");
        });
        assert_eq!(page_rules(&only_geojson), set(&[]));
        let only_map = entry_page_with(|e| {
            e.remove("geojson_resource");
        });
        assert_eq!(page_rules(&only_map), set(&[]));
    }

    #[test]
    fn entry_pointers_follow_the_index() {
        let mut bad = good_entry("b", "2024-01-01T00:00:00Z");
        bad["country"] = json!("ZZ");
        let p = page(vec![good_entry("a", "2024-02-01T00:00:00Z"), bad]);
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].pointer, "/coverage_entries/1/country");
    }

    // ---- whole server ---------------------------------------------------------------

    #[test]
    fn meta_cap_union() {
        let meta = meta_with(|m| m["capabilities"] = json!(["coverage", "oauth"]));
        let mut e2 = good_entry("south", "2024-05-01T00:00:00Z");
        e2["capabilities"] = json!(["oauth", "ieee1547", "billing"]);
        let pages = [(
            PAGE1,
            page(vec![good_entry("north", "2024-06-01T00:00:00Z"), e2]),
        )];
        let f = validate_server(&meta, META_URL, &refs(&pages));
        assert_eq!(ids(&f), set(&["META-CAP-UNION"]));
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].url, META_URL);
        assert_eq!(f[0].pointer, "/capabilities");
        assert!(
            f[0].message.ends_with("missing: `ieee1547`, `billing`"),
            "{}",
            f[0].message
        );
        assert_eq!(
            f[0].expected.as_deref(),
            Some(r#"["oauth","ieee1547","billing"]"#)
        );
        assert_eq!(f[0].actual.as_deref(), Some(r#"["coverage","oauth"]"#));
        // Without the `coverage` capability there is no union to check.
        let meta = meta_with(|m| m["capabilities"] = json!(["oauth"]));
        assert_eq!(
            ids(&validate_server(&meta, META_URL, &refs(&pages))),
            set(&[])
        );
    }

    #[test]
    fn cov_dup_id() {
        let pages = [
            (
                PAGE1,
                page(vec![
                    good_entry("north", "2024-06-01T00:00:00Z"),
                    good_entry("south", "2024-05-01T00:00:00Z"),
                ]),
            ),
            (
                PAGE2,
                page(vec![
                    good_entry("west", "2024-04-01T00:00:00Z"),
                    good_entry("north", "2024-03-01T00:00:00Z"),
                    good_entry("north", "2024-02-01T00:00:00Z"),
                ]),
            ),
        ];
        let f = validate_server(&good_meta(), META_URL, &refs(&pages));
        assert_eq!(ids(&f), set(&["COV-DUP-ID"]));
        assert_eq!(f.len(), 1, "one finding per duplicated id");
        assert_eq!(f[0].url, PAGE2);
        assert_eq!(f[0].pointer, "/coverage_entries/1/id");
        assert_eq!(f[0].actual.as_deref(), Some("north"));
        assert!(f[0].message.contains("3 times"), "{}", f[0].message);
        assert!(f[0]
            .message
            .contains(&format!("{PAGE1}#/coverage_entries/0")));
    }

    #[test]
    fn cov_order() {
        let pages = [
            (
                PAGE1,
                page(vec![
                    good_entry("a", "2024-06-01T00:00:00Z"),
                    good_entry("b", "2024-05-01T00:00:00Z"),
                ]),
            ),
            (
                PAGE2,
                page(vec![
                    // Newer than the last entry of page 1, then another inversion: one finding.
                    good_entry("c", "2024-07-01T00:00:00Z"),
                    good_entry("d", "2024-01-01T00:00:00Z"),
                    good_entry("e", "2024-02-01T00:00:00Z"),
                ]),
            ),
        ];
        let f = validate_server(&good_meta(), META_URL, &refs(&pages));
        assert_eq!(ids(&f), set(&["COV-ORDER"]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].url, PAGE2);
        assert_eq!(f[0].pointer, "/coverage_entries/0/updated");
    }

    #[test]
    fn cov_order_compares_instants_and_skips_unparsable() {
        let pages = [(
            PAGE1,
            page(vec![
                // 10:00+02:00 is 08:00Z: later instant first, although the text sorts lower.
                good_entry("a", "2024-06-01T10:00:00+02:00"),
                good_entry("b", "2024-06-01T07:59:59.999Z"),
                good_entry("c", "not a date"),
                good_entry("d", "2024-06-01T07:59:59.999Z"), // equal is fine
                good_entry("e", "2024-01-01T00:00:00Z"),
            ]),
        )];
        let f = validate_server(&good_meta(), META_URL, &refs(&pages));
        assert_eq!(ids(&f), set(&[]));
    }

    // ---- across servers -------------------------------------------------------------

    fn claim(
        server: &str,
        id: &str,
        caps: &[&str],
        country: &str,
        bbox: Option<[f64; 4]>,
    ) -> AuthClaim {
        AuthClaim {
            server_url: format!("https://{server}/.well-known/cds-server-metadata.json"),
            entry_url: format!("https://{server}/coverage"),
            pointer: "/coverage_entries/0".into(),
            entry_id: id.into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            country: country.into(),
            bbox,
        }
    }

    #[test]
    fn xs_auth_conflict_reports_both_sides() {
        let claims = [
            claim(
                "a.example",
                "a1",
                &["oauth", "ieee1547"],
                "US",
                Some([-100.0, 30.0, -90.0, 40.0]),
            ),
            claim(
                "b.example",
                "b1",
                &["ieee1547"],
                "US",
                Some([-95.0, 35.0, -85.0, 45.0]),
            ),
        ];
        let f = authoritative_conflicts(&claims);
        assert_eq!(ids(&f), set(&["XS-AUTH-CONFLICT"]));
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|x| x.severity == Severity::Warning));
        assert_eq!(f[0].url, "https://a.example/coverage");
        assert_eq!(f[1].url, "https://b.example/coverage");
        assert!(f[0].message.contains("b1") && f[0].message.contains("`ieee1547`"));
        assert!(!f[0].message.contains("oauth"));
        assert_eq!(f[1].actual.as_deref(), Some(claims[0].server_url.as_str()));
    }

    #[test]
    fn xs_auth_no_conflict_cases() {
        let bbox = Some([-100.0, 30.0, -90.0, 40.0]);
        let none: Vec<(AuthClaim, AuthClaim)> = vec![
            // same server
            (
                claim("a.example", "a1", &["oauth"], "US", bbox),
                claim("a.example", "a2", &["oauth"], "US", bbox),
            ),
            // no shared capability
            (
                claim("a.example", "a1", &["oauth"], "US", bbox),
                claim("b.example", "b1", &["ieee1547"], "US", bbox),
            ),
            // disjoint territory
            (
                claim("a.example", "a1", &["oauth"], "US", bbox),
                claim(
                    "b.example",
                    "b1",
                    &["oauth"],
                    "US",
                    Some([-80.0, 30.0, -70.0, 40.0]),
                ),
            ),
            // different country
            (
                claim("a.example", "a1", &["oauth"], "US", bbox),
                claim("b.example", "b1", &["oauth"], "CA", bbox),
            ),
            // unknown territory
            (
                claim("a.example", "a1", &["oauth"], "US", None),
                claim("b.example", "b1", &["oauth"], "US", bbox),
            ),
        ];
        for (a, b) in none {
            assert_eq!(
                authoritative_conflicts(&[a.clone(), b.clone()]),
                vec![],
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn xs_auth_conflict_takes_the_callers_overlap_test() {
        let claims = [
            claim("a.example", "a1", &["oauth"], "US", None),
            claim("b.example", "b1", &["oauth"], "CA", None),
            claim("c.example", "c1", &["oauth"], "MX", None),
        ];
        let all = authoritative_conflicts_with(&claims, &|_, _| true);
        assert_eq!(all.len(), 6, "three pairs, two findings each");
        let only_ab =
            authoritative_conflicts_with(&claims, &|a, b| a.entry_id == "a1" && b.entry_id == "b1");
        let urls: Vec<&str> = only_ab.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(
            urls,
            ["https://a.example/coverage", "https://b.example/coverage"]
        );
    }

    #[test]
    fn bbox_overlap_edges_antimeridian_and_nan() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert!(bbox_overlap(&a, &[5.0, 5.0, 15.0, 15.0]));
        assert!(bbox_overlap(&a, &[2.0, 2.0, 3.0, 3.0])); // contained
        assert!(!bbox_overlap(&a, &[10.0, 0.0, 20.0, 10.0])); // shared edge only
        assert!(!bbox_overlap(&a, &[0.0, 10.0, 10.0, 20.0]));
        assert!(!bbox_overlap(&a, &[20.0, 0.0, 30.0, 10.0]));
        // Fiji-like box across the antimeridian.
        let fiji = [177.0, -21.0, -178.0, -12.0];
        assert!(bbox_overlap(&fiji, &[179.0, -20.0, 179.5, -15.0]));
        assert!(bbox_overlap(&fiji, &[-179.0, -20.0, -178.5, -15.0]));
        assert!(!bbox_overlap(&fiji, &[0.0, -20.0, 10.0, -15.0]));
        assert!(!bbox_overlap(&a, &[f64::NAN, 0.0, 10.0, 10.0]));
    }

    // ---- transport findings -----------------------------------------------------------

    #[test]
    fn transport_finding_helpers() {
        let u = "https://util.example/.well-known/carbon-data-spec.json";
        let cases = [
            (finding_legacy_path(u), rules::WK_LEGACY, Severity::Info),
            (
                finding_plain_http(u, false),
                rules::HTTP_NOT_HTTPS,
                Severity::Error,
            ),
            (
                finding_plain_http(u, true),
                rules::HTTP_NOT_HTTPS,
                Severity::Info,
            ),
            (
                finding_auth_required(u, 401),
                rules::WK_AUTH,
                Severity::Error,
            ),
            (finding_page_loop(u), rules::COV_PAGE_LOOP, Severity::Error),
            (
                finding_page_cap(u, 1000),
                rules::COV_PAGE_LOOP,
                Severity::Error,
            ),
            (
                finding_lenient_json(u),
                rules::JSON_LENIENT,
                Severity::Error,
            ),
        ];
        for (f, rule, severity) in cases {
            assert_eq!(
                (f.rule.as_str(), f.severity, f.url.as_str()),
                (rule, severity, u)
            );
            assert!(!f.message.is_empty());
        }
        assert_eq!(finding_auth_required(u, 403).actual.as_deref(), Some("403"));
    }

    // ---- the spec's own examples (WG1-01 overview, seeds/002) -------------------------

    /// The overview's metadata example, verbatim.
    const SPEC_METADATA: &str = r#"{
    "cds_metadata_version": "v1",
    "cds_metadata_url": "https://demoutility.com/.well-known/carbon-data-spec.json",

    "created": "2022-01-01T00:00:00.000000Z",
    "updated": "2022-06-01T00:00:00.000000Z",

    "name": "Demo Gas & Electric",
    "description": "A fictional utility that can be used for testing and demonstration purposes.",
    "website": "https://demoutility.com/data-access",
    "documentation": "https://demoutility.com/data-access/docs",
    "support": "https://demoutility.com/contact-us?type=developers",
    "capabilities": [
        "coverage",
        "oauth",
        "ieee1547"
    ],
    "related_metadata": ["https://static.demoutility.com/sister-company-cds.json"],

    "coverage": "https://static.demoutility.com/cds-coverage.json",

    "oauth_metadata": "https://demoutility.com/.well-known/oauth-authorization-server",

    "ieee1547_setup": "https://demoutility.com/smart-inverters/setup"
}"#;

    /// The overview's coverage example, verbatim (trailing commas included).
    const SPEC_COVERAGE: &str = r#"{
    "coverage_entries": [
        {
            "id": "dge_elec_west",

            "created": "2022-06-01T00:00:00.000000Z",
            "updated": "2022-06-01T00:00:00.000000Z",

            "entity_name": "Demo Gas & Electric",
            "entity_abbreviation": "DG&E",

            "country": "US",
            "name": "Western electric service territory",
            "description": "This is the electric service coverage for the western half of the region.",

            "type": "geographic",
            "role": "official",
            "infrastructure_types": [
                "distribution_utility",
            ],
            "commodity_types": [
                "electricity",
            ],
            "capabilities": [
                "oauth",
                "ieee1547"
            ],

            "map_resource": "https://static.example.com/cds-coverage-map.png",
            "map_content_type": "image/png",
            "geojson_resource": "https://static.example.com/cds-coverage-map-geo.json"
        }
    ],
    "next": null,
    "previous": null
}"#;

    #[test]
    fn spec_examples_validate_clean() {
        // The metadata example happens to be strict JSON; the coverage example is not.
        let (meta, how) = lenient::parse(SPEC_METADATA.as_bytes()).unwrap();
        assert_eq!(how, Parsed::Strict);
        let (cov, how) = lenient::parse(SPEC_COVERAGE.as_bytes()).unwrap();
        assert_eq!(how, Parsed::Lenient);

        // Content checks: fetched from its own (legacy-path) `cds_metadata_url`, nothing
        // to report; `ieee1547` is an extension capability, `oauth` has its URL.
        let own_url = "https://demoutility.com/.well-known/carbon-data-spec.json";
        assert_eq!(ids(&validate_metadata(&meta, &ctx(own_url))), set(&[]));
        let cov_url = "https://static.demoutility.com/cds-coverage.json";
        assert_eq!(ids(&validate_coverage_page(&cov, cov_url)), set(&[]));
        let pages = [(cov_url, cov)];
        assert_eq!(
            ids(&validate_server(&meta, own_url, &refs(&pages))),
            set(&[])
        );

        // Fetched from the current well-known path, its legacy `cds_metadata_url` differs.
        let current = "https://demoutility.com/.well-known/cds-server-metadata.json";
        assert_eq!(
            ids(&validate_metadata(&meta, &ctx(current))),
            set(&["META-URL-MISMATCH"])
        );
    }
}
