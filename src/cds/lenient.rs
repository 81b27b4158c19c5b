//! Strict-then-lenient JSON parsing.
//!
//! The spec's own example documents (WG1-01 overview) carry trailing commas, and servers
//! copy them. We parse strictly first; when that fails we retry with trailing commas
//! removed. A document that only parses leniently is still crawled, but the caller records
//! an error-severity `JSON-LENIENT` finding (CDS-SPEC-NOTES: lenient-JSON-only documents).

use serde_json::Value;

/// How a document was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Strict,
    /// Only parsed after removing trailing commas.
    Lenient,
}

/// Parse `bytes` as JSON, strictly if possible, else with trailing commas removed.
/// The error is the strict parser's (it points at the real first problem).
pub fn parse(bytes: &[u8]) -> Result<(Value, Parsed), serde_json::Error> {
    parse_with(bytes, |b| serde_json::from_slice::<Value>(b))
}

/// [`parse`] with the caller's own deserializer (the territory parser reads GeoJSON
/// straight into its own types instead of a `Value`).
pub fn parse_with<T>(
    bytes: &[u8],
    mut read: impl FnMut(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<(T, Parsed), serde_json::Error> {
    match read(bytes) {
        Ok(v) => Ok((v, Parsed::Strict)),
        Err(strict_err) => {
            let Some(cleaned) = strip_trailing_commas(bytes) else {
                return Err(strict_err);
            };
            match read(&cleaned) {
                Ok(v) => Ok((v, Parsed::Lenient)),
                Err(_) => Err(strict_err),
            }
        }
    }
}

/// Remove every comma that is followed (after whitespace) by `]` or `}`, outside strings.
/// Returns `None` when there was nothing to remove, so the caller can keep the strict error.
fn strip_trailing_commas(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut removed = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b',' => {
                let next = bytes[i + 1..]
                    .iter()
                    .find(|c| !c.is_ascii_whitespace())
                    .copied();
                if matches!(next, Some(b']') | Some(b'}')) {
                    removed = true;
                } else {
                    out.push(b);
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    removed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_documents_stay_strict() {
        let (v, p) = parse(br#"{"a": [1, 2], "b": "x,]"}"#).unwrap();
        assert_eq!(p, Parsed::Strict);
        assert_eq!(v["b"], "x,]");
    }

    #[test]
    fn trailing_commas_parse_leniently() {
        let (v, p) = parse(b"{\"a\": [1, 2,\n ],\n \"s\": \"keep ,} this\",\n}").unwrap();
        assert_eq!(p, Parsed::Lenient);
        assert_eq!(v["a"].as_array().unwrap().len(), 2);
        assert_eq!(v["s"], "keep ,} this");
    }

    #[test]
    fn garbage_is_still_an_error() {
        assert!(parse(b"{\"a\": ,,}").is_err());
        assert!(parse(b"<html>").is_err());
        assert!(parse(b"").is_err());
    }
}
