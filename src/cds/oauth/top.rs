//! The top level of the metadata object (RFC 8414 §2, WG1-02 §3.2): required fields and
//! their shapes, the issuer, the version, the time zone and the conditional fields.

use serde_json::{Map, Value};
use url::Url;

use super::check::{list, show, Checker, Kind};
use super::{is_web_url, timezone, OAuthContext, CDS_OAUTH_VERSION, DEFAULT_GRANT_TYPES};
use crate::cds::finding::Severity;
use crate::cds::validate::rules;

const RFC8414: &str = "RFC 8414 §2";
const WG1_02: &str = "WG1-02 §3.2";

/// The fields WG1-02 §3.2 makes REQUIRED besides `issuer` (checked on its own), with
/// their shapes (CDS-SPEC-NOTES §6).
const REQUIRED: [(&str, Kind); 21] = [
    ("registration_endpoint", Kind::Url),
    ("scopes_supported", Kind::StrList),
    ("service_documentation", Kind::Url),
    ("op_policy_uri", Kind::Url),
    ("op_tos_uri", Kind::Url),
    ("revocation_endpoint", Kind::Url),
    ("introspection_endpoint", Kind::Url),
    ("code_challenge_methods_supported", Kind::StrList),
    ("authorization_details_types_supported", Kind::StrList),
    ("response_types_supported", Kind::StrList),
    ("grant_types_supported", Kind::StrList),
    ("token_endpoint_auth_methods_supported", Kind::StrList),
    ("cds_oauth_version", Kind::Str),
    ("cds_human_registration", Kind::Url),
    ("cds_timezone", Kind::Str),
    ("cds_clients_api", Kind::Url),
    ("cds_messages_api", Kind::Url),
    ("cds_credentials_api", Kind::Url),
    ("cds_grants_api", Kind::Url),
    ("cds_scope_descriptions", Kind::Object),
    ("cds_registration_fields", Kind::Object),
];

/// The well-formed top-level values the other sections need.
#[derive(Default)]
pub(super) struct Top<'v> {
    /// Every well-formed REQUIRED field, by name.
    pub values: Map<String, Value>,
    pub descriptions: Option<&'v Map<String, Value>>,
    pub registration_fields: Option<&'v Map<String, Value>>,
}

impl Top<'_> {
    pub(super) fn list(&self, key: &str) -> Option<Vec<&str>> {
        list(self.values.get(key))
    }
}

/// Checks of the top level; returns the values the other sections build on.
pub(super) fn check<'v>(
    c: &mut Checker<'_>,
    obj: &'v Map<String, Value>,
    ctx: &OAuthContext<'_>,
) -> Top<'v> {
    issuer(c, obj, ctx);
    let mut top = Top::default();
    for (key, kind) in REQUIRED {
        let rule = format!("{}:{key}", rules::OAUTH_REQUIRED);
        if let Some(v) = c.field(obj, key, kind, Some((rule, WG1_02))) {
            top.values.insert(key.to_owned(), v.clone());
        }
    }
    top.descriptions = obj.get("cds_scope_descriptions").and_then(Value::as_object);
    top.registration_fields = obj
        .get("cds_registration_fields")
        .and_then(Value::as_object);
    endpoints(c, obj, &top);
    conditional(c, obj, &top);
    version_and_zone(c, &top);
    top
}

/// RFC 8414 §2: the issuer identifier is an https URL with no query or fragment. Plain
/// http only where the operator allowed it for that host, as for fetching
/// (HTTP-NOT-HTTPS, CDS-SPEC-NOTES §1).
fn issuer(c: &mut Checker<'_>, obj: &Map<String, Value>, ctx: &OAuthContext<'_>) {
    match obj.get("issuer") {
        None | Some(Value::Null) => {
            let rule = format!("{}:issuer", rules::OAUTH_REQUIRED);
            c.required(rule, "issuer", "/issuer".into(), Kind::Url, RFC8414)
        }
        Some(v) => {
            let ok = v
                .as_str()
                .filter(|s| is_web_url(s))
                .and_then(|s| Url::parse(s).ok())
                .is_some_and(|u| {
                    u.query().is_none()
                        && u.fragment().is_none()
                        && (u.scheme() == "https" || (ctx.http_allowed)(&u))
                });
            if !ok {
                let expected = "an https URL without query or fragment";
                c.type_error("issuer", "/issuer".into(), expected, v);
            }
        }
    }
}

/// RFC 8414 §2: `authorization_endpoint` is required unless no grant type uses it,
/// `token_endpoint` unless only the implicit grant is supported. An omitted grant list
/// (reported as required) means the RFC default; a malformed one (reported) means none.
fn endpoints(c: &mut Checker<'_>, obj: &Map<String, Value>, top: &Top<'_>) {
    let grant_types: Vec<&str> = match obj.get("grant_types_supported") {
        None | Some(Value::Null) => DEFAULT_GRANT_TYPES.to_vec(),
        Some(_) => top.list("grant_types_supported").unwrap_or_default(),
    };
    let uses_authorize = grant_types
        .iter()
        .any(|g| matches!(*g, "authorization_code" | "implicit"));
    let uses_token = grant_types.is_empty() || grant_types.iter().any(|g| *g != "implicit");
    let req = |key: &str, on: bool, why: &'static str| {
        on.then(|| (format!("{}:{key}", rules::OAUTH_REQUIRED), why))
    };
    let why = "RFC 8414 §2, a grant type that uses it is offered";
    let r = req("authorization_endpoint", uses_authorize, why);
    c.field(obj, "authorization_endpoint", Kind::Url, r);
    let why = "RFC 8414 §2, a grant type other than implicit is offered";
    let r = req("token_endpoint", uses_token, why);
    c.field(obj, "token_endpoint", Kind::Url, r);
}

/// WG1-02 §3.2: the PAR endpoint and the test accounts once user authorization is
/// offered (`response_types_supported` not empty); the files API once a scope has type
/// `cds_server_provided_files`. Each is type-checked whenever present.
fn conditional(c: &mut Checker<'_>, obj: &Map<String, Value>, top: &Top<'_>) {
    let authorizes_users = top
        .list("response_types_supported")
        .is_some_and(|r| !r.is_empty());
    let why = "WG1-02 §3.2, `response_types_supported` is not empty";
    let on = |rule: &str, yes: bool| yes.then(|| (rule.to_owned(), why));
    let r = on(rules::OAUTH_PAR, authorizes_users);
    c.field(obj, "pushed_authorization_request_endpoint", Kind::Url, r);
    let r = on(rules::OAUTH_TEST_ACCOUNTS, authorizes_users);
    c.field(obj, "cds_test_accounts", Kind::Url, r);
    let has_files_scope = top.descriptions.is_some_and(|d| {
        d.values()
            .any(|s| s.get("type").and_then(Value::as_str) == Some("cds_server_provided_files"))
    });
    let r = has_files_scope.then(|| {
        let why = "WG1-02 §3.2, a scope has type `cds_server_provided_files`";
        (rules::OAUTH_FILES_API.to_owned(), why)
    });
    c.field(obj, "cds_server_provided_files_api", Kind::Url, r);
}

fn version_and_zone(c: &mut Checker<'_>, top: &Top<'_>) {
    // WG1-02 §3.2: "v1" is the version this registry knows; another one may be a
    // compatible revision, so it is worth a look, not an error (as META-VERSION).
    if let Some(v) = top.values.get("cds_oauth_version").and_then(Value::as_str) {
        if v != CDS_OAUTH_VERSION {
            let message =
                format!("`cds_oauth_version` is {v:?}; this registry validates against \"v1\"");
            let f = c
                .finding(
                    rules::OAUTH_VERSION,
                    Severity::Warning,
                    "/cds_oauth_version",
                    message,
                )
                .expected(CDS_OAUTH_VERSION)
                .actual(v);
            c.push(f);
        }
    }
    // WG1-02 §2 "timezone": an IANA tz database name; relative dates in authorization
    // details are computed in it (§3.9), so a name clients cannot resolve breaks them.
    if let Some(z) = top.values.get("cds_timezone").and_then(Value::as_str) {
        if !timezone::is_iana_zone(z) {
            let message = format!(
                "`cds_timezone` is {z:?}, which is not a time zone name of the IANA tz database (e.g. \"America/Chicago\")"
            );
            let f = c
                .finding(
                    rules::OAUTH_TIMEZONE,
                    Severity::Error,
                    "/cds_timezone",
                    message,
                )
                .expected("an IANA time zone name")
                .actual(show(&Value::String(z.to_owned())));
            c.push(f);
        }
    }
}
