//! The shared machinery of the OAuth checks: value shapes, bounded display of remote
//! values, and the finding collector.

use serde_json::{Map, Value};

use super::is_web_url;
use crate::cds::finding::{Finding, Severity};
use crate::cds::validate::rules;

/// The shape a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Url,
    StrList,
    Object,
    /// An array of JSON objects (`authorization_details_fields_supported`, WG1-02 §3.8).
    ObjList,
    /// A string or `null` (`grant_admin_scope`, WG1-02 §3.4).
    StrOrNull,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Url => "an absolute http(s) URL",
            Kind::StrList => "an array of strings",
            Kind::Object => "a JSON object",
            Kind::ObjList => "an array of JSON objects",
            Kind::StrOrNull => "a string or null",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Url => v.as_str().is_some_and(is_web_url),
            Kind::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::Object => v.is_object(),
            Kind::ObjList => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
            Kind::StrOrNull => v.is_string() || v.is_null(),
        }
    }
}

pub(super) use crate::cds::show;

/// The strings of a well-formed list; `None` for anything else (malformed values are
/// reported by their own rule, so dependent rules skip them).
pub(super) fn list(v: Option<&Value>) -> Option<Vec<&str>> {
    v.and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_str).collect())
}

/// Collects the findings of one document.
pub(super) struct Checker<'a> {
    pub url: &'a str,
    pub out: Vec<Finding>,
}

impl Checker<'_> {
    pub(super) fn push(&mut self, f: Finding) {
        self.out.push(f);
    }

    pub(super) fn finding(
        &self,
        rule: impl Into<String>,
        severity: Severity,
        ptr: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding::new(rule, severity, self.url, ptr, message)
    }

    /// A missing top-level field: `OAUTH-REQUIRED:<field>` (WG1-02 §3.2), or `rule` for
    /// the conditional ones that have their own id (`OAUTH-PAR`, …).
    pub(super) fn required(
        &mut self,
        rule: String,
        field: &str,
        ptr: String,
        kind: Kind,
        why: &str,
    ) {
        let f = self
            .finding(
                rule,
                Severity::Error,
                ptr,
                format!(
                    "in the OAuth metadata, `{field}` is missing; it must be {} ({why})",
                    kind.describe()
                ),
            )
            .expected(kind.describe());
        self.push(f);
    }

    pub(super) fn type_error(&mut self, field: &str, ptr: String, expected: &str, bad: &Value) {
        let f = self
            .finding(
                format!("{}:{field}", rules::OAUTH_TYPE),
                Severity::Error,
                ptr,
                format!(
                    "in the OAuth metadata, `{field}` must be {expected}, got {}",
                    show(bad)
                ),
            )
            .expected(expected)
            .actual(show(bad));
        self.push(f);
    }

    /// Presence (when `required` gives the reason) and shape of one top-level field;
    /// `null` counts as absent. Returns the value when it has the right shape, so
    /// dependent rules only look at good values.
    pub(super) fn field<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        kind: Kind,
        required: Option<(String, &str)>,
    ) -> Option<&'v Value> {
        let ptr = format!("/{}", crate::cds::finding::pointer_token(key));
        match obj.get(key) {
            None | Some(Value::Null) => {
                if let Some((rule, why)) = required {
                    self.required(rule, key, ptr, kind, why);
                }
                None
            }
            Some(v) if kind.accepts(v) => Some(v),
            Some(v) => {
                self.type_error(key, ptr, kind.describe(), v);
                None
            }
        }
    }

    /// One REQUIRED member of a nested object (a scope description, §3.4, or a
    /// registration field, §3.5): absent and wrong shape are the same rule,
    /// `{rule}:{key}`, since neither leaves a usable value. Only `StrOrNull` lets `null`
    /// through (the key must still be present).
    pub(super) fn member<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        base: &str,
        kind: Kind,
        rule: &str,
        what: &str,
    ) -> Option<&'v Value> {
        let ptr = format!("{base}/{}", crate::cds::finding::pointer_token(key));
        let (message, actual) = match obj.get(key) {
            Some(v) if kind.accepts(v) && (kind == Kind::StrOrNull || !v.is_null()) => {
                return Some(v)
            }
            None | Some(Value::Null) => (format!("{what}: `{key}` is missing"), None),
            Some(v) => (format!("{what}: `{key}` is {}", show(v)), Some(show(v))),
        };
        let mut f = self
            .finding(
                format!("{rule}:{key}"),
                Severity::Error,
                ptr,
                format!("{message}; it must be {}", kind.describe()),
            )
            .expected(kind.describe());
        if let Some(a) = actual {
            f = f.actual(a);
        }
        self.push(f);
        None
    }
}
