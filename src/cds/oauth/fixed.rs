//! Scopes with a fixed shape (WG1-02 §3.3). The registry checks the parts a client
//! relies on to find and use the client admin scope (§3.3.1): its id and type, the
//! `client_credentials` grant, and that it is tied to no coverage. The exact name and
//! description strings are not checked.

use serde_json::{Map, Value};

use super::check::{list, Checker};
use super::scopes::base;
use crate::cds::finding::Severity;
use crate::cds::validate::rules;

const CLIENT_ADMIN: &str = "cds_client_admin";

pub(super) fn check(c: &mut Checker<'_>, descriptions: &Map<String, Value>) {
    for (id, d) in descriptions {
        let Some(d) = d.as_object() else { continue };
        let ty = d.get("type").and_then(Value::as_str);
        if id != CLIENT_ADMIN && ty != Some(CLIENT_ADMIN) {
            continue;
        }
        // Only well-formed values are compared; malformed ones have their own finding.
        let mut wrong = Vec::new();
        if id != CLIENT_ADMIN {
            wrong.push(format!("id is {id:?}, not \"{CLIENT_ADMIN}\""));
        }
        if ty.is_some_and(|t| t != CLIENT_ADMIN) {
            wrong.push(format!(
                "type is {:?}, not \"{CLIENT_ADMIN}\"",
                ty.unwrap_or_default()
            ));
        }
        if list(d.get("grant_types_supported")).is_some_and(|g| g != ["client_credentials"]) {
            wrong.push("grant_types_supported is not [\"client_credentials\"]".into());
        }
        if list(d.get("coverages_supported")).is_some_and(|g| !g.is_empty()) {
            wrong.push("coverages_supported is not []".into());
        }
        if wrong.is_empty() {
            continue;
        }
        let message = format!(
            "the client admin scope has the shape WG1-02 §3.3.1 fixes, but {}",
            wrong.join("; ")
        );
        let f = c
            .finding(
                rules::OAUTH_CLIENT_ADMIN,
                Severity::Warning,
                base(id),
                message,
            )
            .expected(
                "id and type cds_client_admin, grant types [\"client_credentials\"], coverages []",
            )
            .actual(wrong.join("; "));
        c.push(f);
    }
}
