//! The CDS documents (WG1-01 server metadata, coverage listings and entries) as the crawler
//! and the validator see them, plus the validator itself (pure functions, no I/O).
//!
//! Documents are kept as `serde_json::Value` end to end: the spec tells clients to ignore
//! unknown fields and enum values (WG1-01 §2), so we never reject a document for them and
//! we store the raw JSON so extension fields survive. The typed views below read only the
//! fields the crawler needs and tolerate wrong types (the validator reports those).

pub mod country;
pub mod finding;
pub mod lenient;
pub mod oauth;
pub mod origin;
pub mod validate;

pub use finding::{Finding, Severity};

use serde_json::Value;

/// Well-known path since the 2025 rename (CDS-SPEC-NOTES §1).
pub const WELL_KNOWN_PATH: &str = "/.well-known/cds-server-metadata.json";
/// Well-known path before the rename, still deployed (CDS-SPEC-NOTES §1).
pub const LEGACY_WELL_KNOWN_PATH: &str = "/.well-known/carbon-data-spec.json";

/// Capability that adds the coverage endpoint (WG1-01 §3).
pub const CAP_COVERAGE: &str = "coverage";
/// Capability that adds `oauth_metadata` (WG1-02 §3).
pub const CAP_OAUTH: &str = "oauth";

/// A value for `Finding::actual` and messages, bounded: documents come from remote
/// servers.
pub(crate) fn show(v: &Value) -> String {
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

/// A string member, `None` when absent or not a string (the validator reports the type).
fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The string elements of an array member; anything else reads as empty.
fn str_list(v: &Value, key: &str) -> Vec<String> {
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

/// The fields of a metadata document the crawler acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataView {
    pub name: Option<String>,
    pub cds_metadata_url: Option<String>,
    pub capabilities: Vec<String>,
    pub coverage: Option<String>,
    pub related_metadata: Vec<String>,
    pub oauth_metadata: Option<String>,
}

impl MetadataView {
    pub fn from_value(v: &Value) -> Self {
        MetadataView {
            name: str_field(v, "name"),
            cds_metadata_url: str_field(v, "cds_metadata_url"),
            capabilities: str_list(v, "capabilities"),
            coverage: str_field(v, "coverage"),
            related_metadata: str_list(v, "related_metadata"),
            oauth_metadata: str_field(v, "oauth_metadata"),
        }
    }

    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// The fields of one coverage listing page the crawler acts on.
#[derive(Debug, Clone, Default)]
pub struct CoveragePageView {
    pub entries: Vec<Value>,
    pub next: Option<String>,
}

impl CoveragePageView {
    pub fn from_value(v: &Value) -> Self {
        CoveragePageView {
            entries: v
                .get("coverage_entries")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            next: str_field(v, "next"),
        }
    }
}

/// Calls `$then! { ...args fields { ... } }` with the WG1-01 §4 entry fields that are kept
/// as the document has them, in document order. One list serves [`CoverageEntry`] and the
/// API's row of an entry (`api::search::CoverageRow`), so the two cannot drift apart.
macro_rules! entry_fields {
    ($then:ident! { $($args:tt)* }) => {
        $then! { $($args)* fields {
            entity_name: String,
            entity_abbreviation: Option<String>,
            country: String,
            name: String,
            description: Option<String>,
            #[serde(rename = "type")]
            kind: String,
            role: String,
            infrastructure_types: Vec<String>,
            commodity_types: Vec<String>,
            capabilities: Vec<String>,
            map_resource: Option<String>,
            map_content_type: Option<String>,
            geojson_resource: Option<String>,
        } }
    };
}
pub(crate) use entry_fields;

/// Declares a struct whose public fields are `head`, then [`entry_fields`], then `tail`.
macro_rules! entry_struct {
    ($(#[$attr:meta])* pub struct $name:ident { $($head:tt)* } { $($tail:tt)* }
     fields { $($(#[$fattr:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$attr])*
        pub struct $name {
            $($head)*
            $($(#[$fattr])* pub $field: $ty,)*
            $($tail)*
        }
    };
}
pub(crate) use entry_struct;

/// A struct literal: `head`, then each of [`entry_fields`] cloned from the entry `$from`,
/// then `tail`.
macro_rules! entry_literal {
    ($name:ident { $($head:tt)* } from $from:ident { $($tail:tt)* }
     fields { $($(#[$fattr:meta])* $field:ident: $ty:ty,)* }) => {
        $name {
            $($head)*
            $($field: $from.$field.clone(),)*
            $($tail)*
        }
    };
}
pub(crate) use entry_literal;

entry_fields!(entry_struct! {
    /// A coverage entry as stored and indexed (WG1-01 §4). Missing strings become empty,
    /// missing lists empty; `raw` keeps the document's own JSON, extension fields included.
    #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct CoverageEntry {
        pub id: String,
        pub created: Option<String>,
        pub updated: Option<String>,
        /// Where a registry's copy came from (`cds_registry_origin`, [`origin`]); `None`
        /// for the server's own entries.
        #[serde(default)]
        pub origin: Option<origin::Origin>,
    } {}
});

impl CoverageEntry {
    /// The `id` of an entry's JSON, as [`CoverageEntry::from_value`] reads it.
    pub fn id_of(v: &Value) -> String {
        match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            // Numeric ids are a type error (reported), but still identify the entry.
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    /// The `geojson_resource` of an entry's JSON, as [`CoverageEntry::from_value`] reads it.
    pub fn geojson_resource_of(v: &Value) -> Option<String> {
        str_field(v, "geojson_resource")
    }

    pub fn from_value(v: &Value) -> Self {
        CoverageEntry {
            id: Self::id_of(v),
            created: str_field(v, "created"),
            updated: str_field(v, "updated"),
            origin: match origin::Origin::claim(v, None) {
                origin::Claim::Copy(o) => Some(o),
                _ => None,
            },
            entity_name: str_field(v, "entity_name").unwrap_or_default(),
            entity_abbreviation: str_field(v, "entity_abbreviation"),
            country: str_field(v, "country").unwrap_or_default(),
            name: str_field(v, "name").unwrap_or_default(),
            description: str_field(v, "description"),
            kind: str_field(v, "type").unwrap_or_default(),
            role: str_field(v, "role").unwrap_or_default(),
            infrastructure_types: str_list(v, "infrastructure_types"),
            commodity_types: str_list(v, "commodity_types"),
            capabilities: str_list(v, "capabilities"),
            map_resource: str_field(v, "map_resource"),
            map_content_type: str_field(v, "map_content_type"),
            geojson_resource: Self::geojson_resource_of(v),
        }
    }
}
