//! Field shapes shared by the document checks (WG1-01 §2–§4): the value kinds the spec
//! uses, presence and type checks driven by a field table, and bounded rendering of
//! offending values for `Finding::actual`.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};
use url::Url;

use crate::cds::finding::{pointer_token, Finding, Severity};

/// The value shapes the spec uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn describe(self) -> &'static str {
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

pub(super) struct FieldSpec {
    name: &'static str,
    kind: Kind,
    need: Need,
}

pub(super) const fn req(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        need: Need::Required,
    }
}

pub(super) const fn opt(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        need: Need::Optional,
    }
}

/// An absolute web URL. The spec's URL fields are all things the registry either fetches
/// or shows as links, so relative references and other schemes (`javascript:`, `data:`,
/// `file:`) are type errors. Plain `http` passes here: whether it may be *fetched* is a
/// transport decision (HTTP-NOT-HTTPS, CDS-SPEC-NOTES §1), made by the crawler.
pub(super) fn is_web_url(s: &str) -> bool {
    // `Url::parse` silently trims surrounding whitespace; a document that needs trimming
    // is not giving a URL.
    s == s.trim()
        && Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

pub(super) fn parse_datetime(s: &str) -> Option<DateTime<FixedOffset>> {
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

pub(super) use crate::cds::show;

/// Which rule family a field check reports under.
pub(super) struct Family {
    pub(super) required: &'static str,
    pub(super) type_: &'static str,
    /// "metadata document", "coverage listing", "coverage entry": for messages.
    pub(super) what: &'static str,
}

impl Family {
    /// The finding for a whole document of this family that is not a JSON object.
    pub(super) fn not_an_object(&self, doc: &Value, url: &str) -> Finding {
        Finding::new(
            format!("{}:document", self.type_),
            Severity::Error,
            url,
            "",
            format!("the {} must be a JSON object", self.what),
        )
        .expected("a JSON object")
        .actual(show(doc))
    }
}

pub(super) fn field_pointer(base: &str, field: &str) -> String {
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
pub(super) fn type_finding(
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
pub(super) fn check_fields(
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
pub(super) fn str_items<'a>(obj: &'a Map<String, Value>, field: &str) -> Vec<&'a str> {
    obj.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(super) fn is_given(obj: &Map<String, Value>, field: &str) -> bool {
    !matches!(obj.get(field), None | Some(Value::Null))
}
