//! Checks of one coverage listing page and its entries (WG1-01 §3, §4).

use serde_json::{Map, Value};

use super::fields::{
    check_fields, field_pointer, is_given, opt, req, show, Family, FieldSpec, Kind,
};
use super::rules;
use crate::cds::country::is_iso3166_alpha2;
use crate::cds::finding::{Finding, Severity};
use crate::cds::CAP_COVERAGE;

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

/// Checks of one coverage listing page and its entries (WG1-01 §3, §4).
pub fn validate_coverage_page(doc: &Value, url: &str) -> Vec<Finding> {
    let Some(obj) = doc.as_object() else {
        return vec![PAGE.not_an_object(doc, url)];
    };
    let mut out = Vec::new();
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
    let at = Entry { url, pointer };
    if let Some(country) = obj.get("country").and_then(Value::as_str) {
        at.check_country(country, &mut out);
    }
    if let Some(caps) = obj.get("capabilities").and_then(Value::as_array) {
        at.check_capabilities(caps, &mut out);
    }
    at.check_resources(obj, &mut out);
    out
}

/// Where an entry's findings point: its page and its place in it.
struct Entry<'a> {
    url: &'a str,
    pointer: &'a str,
}

impl Entry<'_> {
    /// WG1-01 §4: `country` is an ISO 3166 alpha-2 code (one entry per country).
    fn check_country(&self, country: &str, out: &mut Vec<Finding>) {
        if is_iso3166_alpha2(country) {
            return;
        }
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
                self.url,
                field_pointer(self.pointer, "country"),
                format!(
                    "`country` is {country:?}, which is not an assigned ISO 3166-1 alpha-2 code{hint}"
                ),
            )
            .expected("an ISO 3166-1 alpha-2 code such as `US`")
            .actual(country),
        );
    }

    /// WG1-01 §4: an entry lists what the server offers *for that coverage*; `coverage`
    /// is a server-level capability and makes no sense there.
    fn check_capabilities(&self, caps: &[Value], out: &mut Vec<Finding>) {
        for (i, cap) in caps.iter().enumerate() {
            if cap.as_str() == Some(CAP_COVERAGE) {
                out.push(
                    Finding::new(
                        rules::COV_CAP_COVERAGE,
                        Severity::Error,
                        self.url,
                        format!("{}/{i}", field_pointer(self.pointer, "capabilities")),
                        "a coverage entry's `capabilities` must not contain `coverage` (it is a server capability)",
                    )
                    .actual(CAP_COVERAGE),
                );
            }
        }
    }

    /// The map and GeoJSON resources an entry must give.
    fn check_resources(&self, obj: &Map<String, Value>, out: &mut Vec<Finding>) {
        // WG1-01 §4: `map_content_type` is required when `map_resource` is given.
        if is_given(obj, "map_resource") && !is_given(obj, "map_content_type") {
            out.push(
                Finding::new(
                    rules::COV_MAP_TYPE,
                    Severity::Error,
                    self.url,
                    field_pointer(self.pointer, "map_content_type"),
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
                    self.url,
                    self.pointer,
                    "a `geographic` entry must give `map_resource` or `geojson_resource` (or both)",
                )
                .expected("`map_resource` and/or `geojson_resource`"),
            );
        }
    }
}
