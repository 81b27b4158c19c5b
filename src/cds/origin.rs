//! Where a re-published coverage entry came from: the registry's extension field
//! `cds_registry_origin` (a registry of registries, DESIGN.md "Federation").
//!
//! WG1-01 §6 lets documents carry fields the spec does not define, and tells clients to
//! ignore them, so a plain CDS client reads a registry's listing as any aggregator's. A
//! registry reads the field to tell copies of one entry apart from entries of their own:
//! - `server` + `id` name the entry at the server that first published it (its origin);
//!   copies with the same pair are the same entry, and lookups show it once;
//! - `via` lists, in order, the metadata URLs of the registries it passed through. A
//!   registry that finds its own URL there is reading its own copy back (a loop) and does
//!   not import it; `via` longer than [`MAX_VIA`] is dropped the same way, so no entry
//!   circulates for ever, whatever the topology;
//! - `role` and `capabilities` are what the origin said: the copy itself is published
//!   with role `aggregator` (WG1-01 §4.5, "offers capabilities by proxy"), and without
//!   capabilities that need a document the registry does not serve (`oauth`, WG1-02 §3).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The extension field of a coverage entry that carries its [`Origin`].
pub const ORIGIN_FIELD: &str = "cds_registry_origin";

/// Registries an entry may pass through. Past it, an entry is not imported: a
/// national directory federating regional ones is two or three hops.
pub const MAX_VIA: usize = 16;

/// Where a copied coverage entry came from (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Origin {
    /// Metadata URL of the server that published the entry first.
    pub server: String,
    /// The entry's `id` at that server.
    pub id: String,
    /// The entry's `role` at that server.
    pub role: String,
    /// The entry's `capabilities` at that server.
    pub capabilities: Vec<String>,
    /// Metadata URLs of the registries the entry passed through, first one first.
    pub via: Vec<String>,
}

/// What an entry says about its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No (usable) origin: the entry is the server's own.
    Own,
    /// A copy from the origin it names.
    Copy(Origin),
    /// A copy that must not be imported: it names `self_url` in `via` (it came back
    /// through this registry), or passed through more than [`MAX_VIA`] registries.
    Loop,
}

impl Origin {
    /// Hops from the origin: 0 for an entry a server publishes as its own, else the
    /// registries it passed through (at least 1: a copy never ranks with an original).
    pub fn hops(origin: Option<&Origin>) -> usize {
        origin.map_or(0, |o| o.via.len().max(1))
    }

    /// The claim of a coverage entry's JSON. Read leniently like every other field: a
    /// field that is not an object with string `server` and `id` is no claim at all
    /// (the entry is then taken as the server's own, which it may well be).
    pub fn claim(entry: &Value, self_url: Option<&str>) -> Claim {
        let Some(o) = entry.get(ORIGIN_FIELD).filter(|o| o.is_object()) else {
            return Claim::Own;
        };
        let (Some(server), Some(id)) = (super::str_field(o, "server"), super::str_field(o, "id"))
        else {
            return Claim::Own;
        };
        let via = super::str_list(o, "via");
        if via.len() > MAX_VIA || self_url.is_some_and(|me| via.iter().any(|v| v == me)) {
            return Claim::Loop;
        }
        Claim::Copy(Origin {
            server,
            id,
            role: super::str_field(o, "role").unwrap_or_default(),
            capabilities: super::str_list(o, "capabilities"),
            via,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(origin: Value) -> Value {
        json!({"id": "1", ORIGIN_FIELD: origin})
    }

    #[test]
    fn an_entry_without_a_usable_origin_is_the_servers_own() {
        assert_eq!(Origin::claim(&json!({"id": "1"}), None), Claim::Own);
        assert_eq!(Origin::claim(&entry(json!("x")), None), Claim::Own);
        assert_eq!(
            Origin::claim(&entry(json!({"server": "https://u/"})), None),
            Claim::Own
        );
        assert_eq!(
            Origin::claim(&entry(json!({"server": 1, "id": "a"})), None),
            Claim::Own
        );
    }

    #[test]
    fn a_copy_names_its_origin_and_path() {
        let c = Origin::claim(
            &entry(
                json!({"server": "https://u/m.json", "id": "e1", "role": "authoritative",
                          "capabilities": ["oauth", 3], "via": ["https://a/m.json"]}),
            ),
            Some("https://b/m.json"),
        );
        let Claim::Copy(o) = c else { panic!("{c:?}") };
        assert_eq!(
            (o.server.as_str(), o.id.as_str()),
            ("https://u/m.json", "e1")
        );
        assert_eq!(o.capabilities, ["oauth"]);
        assert_eq!(Origin::hops(Some(&o)), 1);
        assert_eq!(Origin::hops(None), 0);
        // A copy that claims no path still ranks after the original.
        let bare = Origin { via: vec![], ..o };
        assert_eq!(Origin::hops(Some(&bare)), 1);
    }

    #[test]
    fn our_own_copy_coming_back_and_overlong_paths_are_loops() {
        let me = "https://a/.well-known/cds-server-metadata.json";
        let back = entry(json!({"server": "https://u/", "id": "1", "via": [me, "https://b/"]}));
        assert_eq!(Origin::claim(&back, Some(me)), Claim::Loop);
        assert!(matches!(Origin::claim(&back, None), Claim::Copy(_)));
        let long: Vec<String> = (0..=MAX_VIA).map(|i| format!("https://r{i}/")).collect();
        let far = entry(json!({"server": "https://u/", "id": "1", "via": long}));
        assert_eq!(Origin::claim(&far, None), Claim::Loop);
    }
}
