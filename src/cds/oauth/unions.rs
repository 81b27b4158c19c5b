//! WG1-02 §3.2: each top-level list holds at least the union of that list over all
//! scope descriptions (it may hold more, for scopes described elsewhere such as
//! `openid`). Fields that are missing or malformed on either side were reported by
//! their own rules and are skipped here.

use serde_json::{Map, Value};

use super::check::{list, show, Checker};
use super::top::Top;
use crate::cds::finding::Severity;
use crate::cds::validate::rules;

pub(super) const UNION_FIELDS: [&str; 5] = [
    "response_types_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "authorization_details_types_supported",
];

pub(super) fn check(c: &mut Checker<'_>, top: &Top<'_>, descriptions: &Map<String, Value>) {
    for field in UNION_FIELDS {
        let Some(listed) = top.list(field) else {
            continue;
        };
        // Document order of first appearance, so the message is stable.
        let mut missing: Vec<&str> = Vec::new();
        for d in descriptions.values() {
            for v in list(d.get(field)).unwrap_or_default() {
                if !listed.contains(&v) && !missing.contains(&v) {
                    missing.push(v);
                }
            }
        }
        if missing.is_empty() {
            continue;
        }
        let shown = show(&Value::from(missing.clone()));
        let message = format!(
            "top-level `{field}` lacks {shown}, offered by scopes in `cds_scope_descriptions`; it must contain at least the union of the scopes' values"
        );
        let f = c
            .finding(
                format!("{}:{field}", rules::OAUTH_UNION),
                Severity::Error,
                format!("/{field}"),
                message,
            )
            .expected(format!("also {shown}"))
            .actual(show(&Value::from(listed)));
        c.push(f);
    }
}
