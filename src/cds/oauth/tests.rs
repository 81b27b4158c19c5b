//! One defective document per rule, each triggering exactly that rule; the conforming
//! document and the fixture web's OAuth documents clean.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use url::Url;

use super::*;
use crate::fixtures::web::{names, FixtureWeb};

const AS_URL: &str = "https://util.example/.well-known/oauth-authorization-server";

fn coverage_ids() -> HashSet<String> {
    ["e1", "e2"].iter().map(|s| s.to_string()).collect()
}

fn no_http(_: &Url) -> bool {
    false
}

fn check_with(doc: &Value, http_allowed: &dyn Fn(&Url) -> bool) -> Vec<Finding> {
    let ids = coverage_ids();
    validate_oauth(
        doc,
        &OAuthContext {
            fetched_url: AS_URL,
            coverage_ids: &ids,
            http_allowed,
        },
    )
}

fn check(doc: &Value) -> Vec<Finding> {
    check_with(doc, &no_http)
}

/// A conforming document (RFC 8414 §2 with the WG1-02 §3.2 fields).
fn good() -> Value {
    json!({
        "issuer": "https://util.example",
        "authorization_endpoint": "https://util.example/oauth/authorize",
        "token_endpoint": "https://util.example/oauth/token",
        "registration_endpoint": "https://util.example/oauth/register",
        "scopes_supported": ["cds_usage", "cds_bill_statements"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "service_documentation": "https://util.example/docs",
        "cds_oauth_version": "v1",
        "cds_human_registration": "https://util.example/developers/register",
        "cds_test_accounts": "https://util.example/developers/test-accounts",
        "cds_scope_descriptions": {
            "cds_usage": {
                "id": "cds_usage",
                "name": "Usage",
                "description": "Interval usage.",
                "documentation": "https://util.example/docs#cds_usage",
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "coverages_supported": ["e1"]
            },
            "cds_bill_statements": {
                "name": "Bills",
                "description": "Bill statements.",
                "documentation": "https://util.example/docs#bills",
                "grant_types_supported": ["authorization_code"],
                "coverages_supported": ["e1", "e2"]
            }
        },
        "x_extension": {"unknown": "fields are ignored"}
    })
}

fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut v = good();
    f(v.as_object_mut().unwrap());
    v
}

fn scope_with(id: &str, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    with(|m| {
        f(m["cds_scope_descriptions"][id].as_object_mut().unwrap());
    })
}

/// Exactly one finding, with this rule and severity.
fn assert_one(doc: &Value, rule: &str, severity: Severity, case: &str) -> Finding {
    let f = check(doc);
    assert_eq!(f.len(), 1, "{case}: {f:#?}");
    assert_eq!(f[0].rule, rule, "{case}: {f:#?}");
    assert_eq!(f[0].severity, severity, "{case}");
    assert_eq!(f[0].url, AS_URL);
    assert!(!f[0].message.is_empty());
    f[0].clone()
}

#[test]
fn conforming_document_is_clean() {
    assert_eq!(check(&good()), vec![]);
    // Without the authorization code grant: no authorization endpoint, no PKCE, no
    // test accounts (nothing a user authorizes).
    let doc = with(|m| {
        m.remove("authorization_endpoint");
        m.remove("code_challenge_methods_supported");
        m.remove("cds_test_accounts");
        m["grant_types_supported"] = json!(["client_credentials"]);
        m["response_types_supported"] = json!([]);
    });
    assert_eq!(check(&doc), vec![]);
    // Only the implicit grant: no token endpoint needed (RFC 8414 §2).
    let doc = with(|m| {
        m.remove("token_endpoint");
        m["grant_types_supported"] = json!(["implicit"]);
        m["response_types_supported"] = json!(["token"]);
    });
    assert_eq!(check(&doc), vec![]);
}

#[test]
fn oauth_required_each_field() {
    for field in [
        "issuer",
        "response_types_supported",
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "scopes_supported",
        "cds_oauth_version",
        "cds_human_registration",
        "cds_test_accounts",
        "cds_scope_descriptions",
    ] {
        let rule = format!("OAUTH-REQUIRED:{field}");
        let f = assert_one(
            &with(|m| {
                m.remove(field);
            }),
            &rule,
            Severity::Error,
            field,
        );
        assert_eq!(f.pointer, format!("/{field}"));
        // `null` is no value either.
        assert_one(
            &with(|m| m[field] = Value::Null),
            &rule,
            Severity::Error,
            field,
        );
    }
    for field in [
        "name",
        "description",
        "documentation",
        "grant_types_supported",
        "coverages_supported",
    ] {
        let f = assert_one(
            &scope_with("cds_usage", |s| {
                s.remove(field);
            }),
            &format!("OAUTH-REQUIRED:scope.{field}"),
            Severity::Error,
            field,
        );
        assert_eq!(
            f.pointer,
            format!("/cds_scope_descriptions/cds_usage/{field}")
        );
    }
}

#[test]
fn oauth_required_authorization_endpoint_by_default_grants() {
    // Omitted grant types mean authorization_code + implicit (RFC 8414 §2).
    let doc = with(|m| {
        m.remove("grant_types_supported");
        m.remove("authorization_endpoint");
    });
    assert_one(
        &doc,
        "OAUTH-REQUIRED:authorization_endpoint",
        Severity::Error,
        "default grants",
    );
}

#[test]
fn oauth_type_each_field() {
    let cases: Vec<(&str, Value)> = vec![
        ("issuer", json!("http://util.example")),
        ("issuer", json!("https://util.example/?tenant=1")),
        ("issuer", json!("https://util.example/#frag")),
        ("issuer", json!("util.example")),
        ("issuer", json!(7)),
        ("response_types_supported", json!("code")),
        ("grant_types_supported", json!("authorization_code")),
        ("authorization_endpoint", json!("/oauth/authorize")),
        ("token_endpoint", json!(["https://util.example/t"])),
        ("registration_endpoint", json!("javascript:alert(1)")),
        ("scopes_supported", json!(["cds_usage", 5])),
        ("cds_oauth_version", json!(1)),
        ("cds_human_registration", json!("mailto:x@util.example")),
        ("cds_test_accounts", json!(true)),
        ("code_challenge_methods_supported", json!("S256")),
        ("service_documentation", json!("docs")),
        ("cds_scope_descriptions", json!(["cds_usage"])),
    ];
    for (field, bad) in cases {
        let case = format!("{field} = {bad}");
        let f = assert_one(
            &with(|m| m[field] = bad.clone()),
            &format!("OAUTH-TYPE:{field}"),
            Severity::Error,
            &case,
        );
        assert_eq!(f.pointer, format!("/{field}"), "{case}");
        assert!(f.actual.is_some(), "{case}");
    }
    let scope_cases: Vec<(&str, Value)> = vec![
        ("id", json!("cds_other")),
        ("name", json!(["Usage"])),
        ("description", json!(null)),
        ("documentation", json!("see the docs")),
        ("grant_types_supported", json!("authorization_code")),
        ("coverages_supported", json!("e1")),
    ];
    for (field, bad) in scope_cases {
        let case = format!("scope.{field} = {bad}");
        let rule = if bad.is_null() {
            format!("OAUTH-REQUIRED:scope.{field}")
        } else {
            format!("OAUTH-TYPE:scope.{field}")
        };
        assert_one(
            &scope_with("cds_usage", |s| {
                s.insert(field.into(), bad.clone());
            }),
            &rule,
            Severity::Error,
            &case,
        );
    }
    // A description that is not an object, and a document that is not one.
    assert_one(
        &with(|m| m["cds_scope_descriptions"]["cds_usage"] = json!("Usage")),
        "OAUTH-TYPE:scope",
        Severity::Error,
        "scope not an object",
    );
    assert_one(
        &json!(["not", "an", "object"]),
        "OAUTH-TYPE:document",
        Severity::Error,
        "document",
    );
}

#[test]
fn issuer_over_http_only_where_the_operator_allows_it() {
    let doc = with(|m| m["issuer"] = json!("http://127.0.0.2:8080"));
    let allowed = |u: &Url| u.host_str() == Some("127.0.0.2");
    assert_eq!(check_with(&doc, &allowed), vec![]);
    let f = check_with(
        &with(|m| m["issuer"] = json!("http://other.example")),
        &allowed,
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, "OAUTH-TYPE:issuer");
}

#[test]
fn oauth_version() {
    let f = assert_one(
        &with(|m| m["cds_oauth_version"] = json!("v2")),
        rules::OAUTH_VERSION,
        Severity::Warning,
        "v2",
    );
    assert_eq!(f.actual.as_deref(), Some("v2"));
}

#[test]
fn oauth_scope_undescribed() {
    let f = assert_one(
        &with(|m| m["scopes_supported"] = json!(["cds_usage", "cds_bill_statements", "cds_gas"])),
        rules::OAUTH_SCOPE_UNDESCRIBED,
        Severity::Error,
        "cds_gas",
    );
    assert_eq!(f.pointer, "/scopes_supported/2");
    assert_eq!(f.actual.as_deref(), Some("cds_gas"));
}

#[test]
fn oauth_scope_unlisted() {
    let f = assert_one(
        &with(|m| m["scopes_supported"] = json!(["cds_usage"])),
        rules::OAUTH_SCOPE_UNLISTED,
        Severity::Error,
        "cds_bill_statements",
    );
    assert_eq!(f.pointer, "/cds_scope_descriptions/cds_bill_statements");
}

#[test]
fn oauth_coverage_unknown() {
    let f = assert_one(
        &scope_with("cds_bill_statements", |s| {
            s["coverages_supported"] = json!(["e1", "e9", "e2"]);
        }),
        rules::OAUTH_COVERAGE_UNKNOWN,
        Severity::Error,
        "e9",
    );
    assert_eq!(
        f.pointer,
        "/cds_scope_descriptions/cds_bill_statements/coverages_supported/1"
    );
    assert_eq!(f.actual.as_deref(), Some("e9"));
}

#[test]
fn oauth_pkce() {
    // Missing (RFC 8414: no PKCE), without S256, or only plain: error.
    for (case, doc) in [
        (
            "missing",
            with(|m| {
                m.remove("code_challenge_methods_supported");
            }),
        ),
        (
            "plain only",
            with(|m| m["code_challenge_methods_supported"] = json!(["plain"])),
        ),
        (
            "empty",
            with(|m| m["code_challenge_methods_supported"] = json!([])),
        ),
        (
            "default grants",
            with(|m| {
                m.remove("grant_types_supported");
                m.remove("code_challenge_methods_supported");
            }),
        ),
    ] {
        let f = assert_one(&doc, rules::OAUTH_PKCE, Severity::Error, case);
        assert_eq!(f.pointer, "/code_challenge_methods_supported");
    }
    // S256 next to plain: a warning (plain exposes the verifier, RFC 7636 §7.2).
    assert_one(
        &with(|m| m["code_challenge_methods_supported"] = json!(["S256", "plain"])),
        rules::OAUTH_PKCE,
        Severity::Warning,
        "plain too",
    );
}

#[test]
fn metadata_view_reads_what_is_stored() {
    let doc = scope_with("cds_usage", |s| {
        s["documentation"] = json!("javascript:alert(1)");
    });
    let m = OAuthMetadata::from_value(&doc);
    assert_eq!(m.issuer.as_deref(), Some("https://util.example"));
    assert_eq!(
        m.registration_endpoint.as_deref(),
        Some("https://util.example/oauth/register")
    );
    assert_eq!(
        m.human_registration.as_deref(),
        Some("https://util.example/developers/register")
    );
    // Document order; a link that is not a web URL is not kept.
    let ids: Vec<&str> = m.scopes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["cds_usage", "cds_bill_statements"]);
    assert_eq!(m.scopes[0].documentation, None);
    assert_eq!(m.scopes[0].coverages, ["e1"]);
    assert_eq!(m.scopes[1].grant_types, ["authorization_code"]);
    assert_eq!(m.scopes[1].name.as_deref(), Some("Bills"));
    assert_eq!(
        OAuthMetadata::from_value(&json!("x")),
        OAuthMetadata::default()
    );
}

/// The fixture utilities' OAuth documents (Sierra, Prairie, Green Mountain) are clean
/// against their own coverage listings, with plain http allowed for their hosts as the
/// tests' configuration does.
#[tokio::test]
async fn fixture_documents_are_clean() {
    let web = FixtureWeb::start_at([127, 0, 0, 160].into()).await.unwrap();
    let allow = web.allow_http();
    let allowed = |u: &Url| {
        let host = format!("{}:{}", u.host_str().unwrap_or(""), u.port().unwrap_or(80));
        allow.contains(&host)
    };
    let servers = [
        (names::SIERRA, &web.sierra),
        (names::PRAIRIE, &web.prairie),
        (names::GREEN_MOUNTAIN, &web.green_mountain),
    ];
    for (name, server) in servers {
        let p = web.published(name).unwrap();
        let url = p.oauth_metadata_url.clone().expect("oauth metadata");
        let doc = server.json(Url::parse(&url).unwrap().path()).unwrap();
        let ids: HashSet<String> = p.entry_ids.iter().cloned().collect();
        let f = validate_oauth(
            &doc,
            &OAuthContext {
                fetched_url: &url,
                coverage_ids: &ids,
                http_allowed: &allowed,
            },
        );
        assert_eq!(f, vec![], "{name}");
        let m = OAuthMetadata::from_value(&doc);
        assert!(m.registration_endpoint.is_some(), "{name}");
        assert!(!m.scopes.is_empty(), "{name}");
    }
    // The same Sierra document from a host not allowed plain http: only the issuer.
    let p = web.published(names::SIERRA).unwrap();
    let doc = web
        .sierra
        .json("/.well-known/oauth-authorization-server")
        .unwrap();
    let ids: HashSet<String> = p.entry_ids.iter().cloned().collect();
    let f = validate_oauth(
        &doc,
        &OAuthContext {
            fetched_url: AS_URL,
            coverage_ids: &ids,
            http_allowed: &no_http,
        },
    );
    let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["OAUTH-TYPE:issuer"]);
    web.shutdown().await;
}
