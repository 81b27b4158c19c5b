//! Conformance findings: what the validator reports and the crawler stores per server.
//!
//! Rule ids are ours (see `docs/CDS-SPEC-NOTES.md` and the README's
//! rule table); the spec itself does not number its rules.

use serde::{Deserialize, Serialize};

pub use crate::model::Severity;

/// One problem (or remark) about a crawled document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule id, e.g. `META-REQUIRED:name` or `COV-ORDER`.
    pub rule: String,
    pub severity: Severity,
    /// A sentence a utility engineer can act on.
    pub message: String,
    /// The document the finding is about.
    pub url: String,
    /// RFC 6901 JSON pointer inside that document ("" = the whole document).
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

impl Finding {
    pub fn new(
        rule: impl Into<String>,
        severity: Severity,
        url: impl Into<String>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule: rule.into(),
            severity,
            message: message.into(),
            url: url.into(),
            pointer: pointer.into(),
            expected: None,
            actual: None,
        }
    }

    pub fn expected(mut self, e: impl Into<String>) -> Self {
        self.expected = Some(e.into());
        self
    }

    pub fn actual(mut self, a: impl Into<String>) -> Self {
        self.actual = Some(a.into());
        self
    }
}

/// Escape one JSON-pointer token (RFC 6901 §3).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}
