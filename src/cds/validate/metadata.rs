//! Checks of one metadata document on its own (WG1-01 §2, WG1-02 §3).

use serde_json::{Map, Value};
use url::Url;

use super::fields::{
    check_fields, field_pointer, is_web_url, opt, req, show, str_items, type_finding, Family,
    FieldSpec, Kind,
};
use super::{rules, MetadataContext};
use crate::cds::finding::{Finding, Severity};
use crate::cds::{CAP_COVERAGE, CAP_OAUTH};

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

const META: Family = Family {
    required: rules::META_REQUIRED,
    type_: rules::META_TYPE,
    what: "metadata document",
};

/// Checks of one metadata document on its own (WG1-01 §2).
pub fn validate_metadata(doc: &Value, ctx: &MetadataContext<'_>) -> Vec<Finding> {
    let url = ctx.fetched_url;
    let Some(obj) = doc.as_object() else {
        return vec![META.not_an_object(doc, url)];
    };
    let mut out = Vec::new();
    check_fields(obj, META_FIELDS, &META, url, "", &mut out);

    check_version(obj, url, &mut out);
    check_canonical_url(obj, url, &mut out);

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

/// WG1-01 §2: "v1" is the only version this validator knows; a newer version is not an
/// error (it may be a compatible revision), but worth a look.
fn check_version(obj: &Map<String, Value>, url: &str, out: &mut Vec<Finding>) {
    let Some(version) = obj.get("cds_metadata_version").and_then(Value::as_str) else {
        return;
    };
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

/// WG1-01 §2: `cds_metadata_url` is the canonical URL of the document. Compared as parsed
/// URLs so that spelling differences the URL standard erases (host case, a default port,
/// an empty path) do not count; the fragment never reaches the server, so it is ignored
/// too.
fn check_canonical_url(obj: &Map<String, Value>, url: &str, out: &mut Vec<Finding>) {
    let Some(declared) = obj
        .get("cds_metadata_url")
        .and_then(Value::as_str)
        .filter(|s| is_web_url(s))
    else {
        return;
    };
    let (Ok(declared_u), Ok(fetched_u)) = (Url::parse(declared), Url::parse(url)) else {
        return;
    };
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
    let message = match (value, required) {
        (Some(v), false) => {
            out.push(type_finding(&META, field, Kind::Url, url, "", "", v));
            return;
        }
        (None, false) => return,
        (None, true) => format!(
            "`capabilities` contains `{capability}`, so `{field}` must give its URL, but it is missing"
        ),
        (Some(v), true) => format!(
            "`capabilities` contains `{capability}`, so `{field}` must be {}, got {}",
            Kind::Url.describe(),
            show(v)
        ),
    };
    let f = Finding::new(rule, Severity::Error, url, ptr, message).expected(Kind::Url.describe());
    out.push(match value {
        Some(v) => f.actual(show(v)),
        None => f,
    });
}
