//! Registration field objects (WG1-02 §3.5), the values of `cds_registration_fields`.

use serde_json::{Map, Value};

use super::check::{show, Checker, Kind};
use crate::cds::finding::{pointer_token, Severity};
use crate::cds::validate::rules;

/// The REQUIRED members of a registration field (§3.5); the optional ones
/// (`field_name`, `format`, `default`, …) depend on `type` and are not checked.
const MEMBERS: [(&str, Kind); 4] = [
    ("id", Kind::Str),
    ("type", Kind::Str),
    ("description", Kind::Str),
    ("documentation", Kind::Url),
];

pub(super) fn check(c: &mut Checker<'_>, fields: &Map<String, Value>) {
    for (key, field) in fields {
        let base = format!("/cds_registration_fields/{}", pointer_token(key));
        let Some(f) = field.as_object() else {
            let expected = "a registration field (JSON object)";
            c.type_error("cds_registration_fields", base, expected, field);
            continue;
        };
        let what = format!("registration field `{key}`");
        for (member, kind) in MEMBERS {
            c.member(f, member, &base, kind, rules::OAUTH_FIELD_REQUIRED, &what);
        }
        // §3.5: `id` is the same value as its key.
        if let Some(id) = f.get("id").and_then(Value::as_str).filter(|id| id != key) {
            let message =
                format!("registration field `{key}` has `id` {id:?}; it must equal its key");
            let finding = c
                .finding(
                    format!("{}:id", rules::OAUTH_FIELD_REQUIRED),
                    Severity::Error,
                    format!("{base}/id"),
                    message,
                )
                .expected(show(&Value::from(key.as_str())))
                .actual(show(&Value::from(id)));
            c.push(finding);
        }
    }
}
