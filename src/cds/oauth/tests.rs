//! One defective document per rule, each triggering exactly that rule; the conforming
//! document and the fixture web's OAuth documents clean.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use url::Url;

use super::*;
use crate::cds::finding::Severity;
use crate::cds::validate::rules;
use crate::demo::web::{names, FixtureWeb};

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

/// A conforming WG1-02 document (testdata/README.md), against coverage entries e1, e2.
fn good() -> Value {
    serde_json::from_str(include_str!("testdata/wg1-02-conforming.json")).unwrap()
}

fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut v = good();
    f(v.as_object_mut().unwrap());
    v
}

/// A case of `one_rule_each`: the good document without the top-level member at
/// `pointer`, an error there.
fn missing(
    case: &'static str,
    pointer: &'static str,
    rule: &'static str,
) -> (&'static str, Value, &'static str, Severity, &'static str) {
    let doc = with(|m| {
        m.remove(&pointer[1..]);
    });
    (case, doc, rule, Severity::Error, pointer)
}

fn scope_with(id: &str, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    with(|m| {
        f(m["cds_scope_descriptions"][id].as_object_mut().unwrap());
    })
}

fn field_with(id: &str, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    with(|m| {
        f(m["cds_registration_fields"][id].as_object_mut().unwrap());
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
    // No user authorization: no authorization endpoint, PAR or test accounts needed.
    let doc = with(|m| {
        m.remove("authorization_endpoint");
        m.remove("pushed_authorization_request_endpoint");
        m.remove("cds_test_accounts");
        m["grant_types_supported"] = json!(["client_credentials"]);
        m["response_types_supported"] = json!([]);
        m["code_challenge_methods_supported"] = json!([]);
        let d = m["cds_scope_descriptions"].as_object_mut().unwrap();
        d.retain(|k, _| !k.starts_with("cds_usage") && k != "cds_bill_statements");
        m["scopes_supported"] = json!([
            "cds_client_admin",
            "cds_grant_admin_1",
            "cds_server_provided_files_01"
        ]);
        m["authorization_details_types_supported"] =
            json!(["cds_grant_admin_1", "cds_server_provided_files_01"]);
    });
    assert_eq!(check(&doc), vec![]);
    // No server-provided files scope: no files API needed; no registration field
    // referenced: `cds_registration_fields` may be `{}`.
    let doc = with(|m| {
        m.remove("cds_server_provided_files_api");
        m["cds_scope_descriptions"]
            .as_object_mut()
            .unwrap()
            .remove("cds_server_provided_files_01");
        m["scopes_supported"] = json!([
            "cds_client_admin",
            "cds_grant_admin_1",
            "cds_usage",
            "cds_bill_statements"
        ]);
        for s in ["cds_usage", "cds_bill_statements"] {
            m["cds_scope_descriptions"][s]["registration_requirements"] = json!([]);
            m["cds_scope_descriptions"][s]["registration_optional"] = json!([]);
        }
        m["cds_registration_fields"] = json!({});
    });
    assert_eq!(check(&doc), vec![]);
}

/// The example of WG1-02 §12.2, with the fixes noted in testdata/README.md, is clean
/// against a listing that has the coverage entry it names.
#[test]
fn spec_example_is_clean() {
    let doc: Value =
        serde_json::from_str(include_str!("testdata/wg1-02-example-12.2.json")).unwrap();
    let ids: HashSet<String> = ["coverage123".to_owned()].into();
    let f = validate_oauth(
        &doc,
        &OAuthContext {
            fetched_url: AS_URL,
            coverage_ids: &ids,
            http_allowed: &no_http,
        },
    );
    assert_eq!(f, vec![]);
    // Each fix was needed: without it, the rule it names fires.
    let mut d = doc.clone();
    d.as_object_mut().unwrap().remove("cds_timezone");
    let ctx = OAuthContext {
        fetched_url: AS_URL,
        coverage_ids: &ids,
        http_allowed: &no_http,
    };
    let rules_of = |d: &Value| -> Vec<String> {
        validate_oauth(d, &ctx)
            .into_iter()
            .map(|f| f.rule)
            .collect()
    };
    assert_eq!(rules_of(&d), ["OAUTH-REQUIRED:cds_timezone"]);
    let mut d = doc.clone();
    d["cds_scope_descriptions"]["example_custom"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    assert_eq!(rules_of(&d), ["OAUTH-SCOPE-REQUIRED:type"]);
    let mut d = doc.clone();
    d["cds_scope_descriptions"]["cds_client_admin"]
        .as_object_mut()
        .unwrap()
        .remove("registration_optional");
    assert_eq!(rules_of(&d), ["OAUTH-SCOPE-REQUIRED:registration_optional"]);
}

/// Every top-level field CDS-SPEC-NOTES §6 lists as REQUIRED: absent or `null` is
/// `OAUTH-REQUIRED:<field>`.
const TOP_REQUIRED: [&str; 22] = [
    "issuer",
    "registration_endpoint",
    "scopes_supported",
    "service_documentation",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "code_challenge_methods_supported",
    "authorization_details_types_supported",
    "response_types_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "cds_oauth_version",
    "cds_human_registration",
    "cds_timezone",
    "cds_clients_api",
    "cds_messages_api",
    "cds_credentials_api",
    "cds_grants_api",
    "cds_scope_descriptions",
    "cds_registration_fields",
];

#[test]
fn oauth_required_each_field() {
    // Removing a list that scopes contribute to also breaks its union or the listing;
    // those fields are checked with the descriptions out of the way.
    for field in TOP_REQUIRED
        .iter()
        .chain(&["authorization_endpoint", "token_endpoint"])
    {
        let rule = format!("OAUTH-REQUIRED:{field}");
        for absent in [None, Some(Value::Null)] {
            let mut f = check(&with(|m| match &absent {
                None => {
                    m.remove(*field);
                }
                Some(v) => m[*field] = v.clone(),
            }));
            // Side effects of the removal, each by its own rule, are not this test's.
            f.retain(|f| {
                !f.rule.starts_with("OAUTH-UNION")
                    && !f.rule.starts_with("OAUTH-PAR")
                    && !f.rule.starts_with("OAUTH-TEST-ACCOUNTS")
                    && !f.rule.starts_with("OAUTH-REG-FIELD")
            });
            assert_eq!(f.len(), 1, "{field}: {f:#?}");
            assert_eq!(f[0].rule, rule);
            assert_eq!(f[0].severity, Severity::Error);
            assert_eq!(f[0].pointer, format!("/{field}"));
        }
    }
    // The fields whose removal touches nothing else fail exactly their rule.
    for field in [
        "issuer",
        "op_tos_uri",
        "cds_timezone",
        "cds_grants_api",
        "revocation_endpoint",
    ] {
        assert_one(
            &with(|m| {
                m.remove(field);
            }),
            &format!("OAUTH-REQUIRED:{field}"),
            Severity::Error,
            field,
        );
    }
}

#[test]
fn oauth_required_authorization_endpoint_by_default_grants() {
    // Omitted grant types mean authorization_code + implicit (RFC 8414 §2).
    let f = check(&with(|m| {
        m.remove("grant_types_supported");
        m.remove("authorization_endpoint");
    }));
    let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "OAUTH-REQUIRED:grant_types_supported",
            "OAUTH-REQUIRED:authorization_endpoint"
        ]
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
        ("authorization_endpoint", json!("/oauth/authorize")),
        ("token_endpoint", json!(["https://util.example/t"])),
        ("registration_endpoint", json!("javascript:alert(1)")),
        ("scopes_supported", json!(["cds_usage", 5])),
        ("service_documentation", json!("docs")),
        ("op_policy_uri", json!("ftp://util.example/policy")),
        ("op_tos_uri", json!(true)),
        ("revocation_endpoint", json!("revoke")),
        ("introspection_endpoint", json!({})),
        ("code_challenge_methods_supported", json!("S256")),
        ("authorization_details_types_supported", json!("cds_usage")),
        ("response_types_supported", json!("code")),
        ("grant_types_supported", json!("authorization_code")),
        ("token_endpoint_auth_methods_supported", json!([1])),
        ("cds_oauth_version", json!(1)),
        ("cds_human_registration", json!("mailto:x@util.example")),
        ("cds_timezone", json!(-6)),
        ("cds_clients_api", json!("/clients")),
        ("cds_messages_api", json!(1)),
        ("cds_credentials_api", json!([])),
        ("cds_grants_api", json!("grants")),
        ("cds_scope_descriptions", json!(["cds_usage"])),
        ("cds_registration_fields", json!([])),
        ("pushed_authorization_request_endpoint", json!("par")),
        ("cds_test_accounts", json!(true)),
        ("cds_server_provided_files_api", json!("files")),
    ];
    for (field, bad) in cases {
        let case = format!("{field} = {bad}");
        let mut f = check(&with(|m| m[field] = bad.clone()));
        // A malformed list or map also leaves its dependants unchecked or unsatisfied;
        // only this rule is about the field itself.
        f.retain(|f| f.pointer == format!("/{field}"));
        assert_eq!(f.len(), 1, "{case}: {f:#?}");
        assert_eq!(f[0].rule, format!("OAUTH-TYPE:{field}"), "{case}");
        assert!(f[0].actual.is_some(), "{case}");
    }
    // A description or registration field that is not an object, and a document that
    // is not one.
    let f = assert_one(
        &with(|m| m["cds_scope_descriptions"]["cds_bill_statements"] = json!("Bills")),
        "OAUTH-TYPE:cds_scope_descriptions",
        Severity::Error,
        "scope not an object",
    );
    assert_eq!(f.pointer, "/cds_scope_descriptions/cds_bill_statements");
    let f = assert_one(
        &with(|m| m["cds_registration_fields"]["company_logo"] = json!(1)),
        "OAUTH-TYPE:cds_registration_fields",
        Severity::Error,
        "field not an object",
    );
    assert_eq!(f.pointer, "/cds_registration_fields/company_logo");
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
fn oauth_timezone() {
    for bad in [
        "CST",
        "america/chicago",
        "America/Springfield",
        "-06:00",
        "",
    ] {
        let f = assert_one(
            &with(|m| m["cds_timezone"] = json!(bad)),
            rules::OAUTH_TIMEZONE,
            Severity::Error,
            bad,
        );
        assert_eq!(f.pointer, "/cds_timezone");
    }
    for ok in ["Europe/Brussels", "UTC", "Pacific/Honolulu"] {
        assert_eq!(
            check(&with(|m| m["cds_timezone"] = json!(ok))),
            vec![],
            "{ok}"
        );
    }
}

/// One defective document per conditional, union, scope and registration-field rule,
/// each failing exactly that rule (table: case, document, rule, severity, pointer).
#[test]
fn one_rule_each() {
    let e = Severity::Error;
    let cases: Vec<(&str, Value, &str, Severity, &str)> = vec![
        missing(
            "no PAR endpoint while users authorize",
            "/pushed_authorization_request_endpoint",
            "OAUTH-PAR",
        ),
        missing(
            "no test accounts while users authorize",
            "/cds_test_accounts",
            "OAUTH-TEST-ACCOUNTS",
        ),
        missing(
            "no files API with a files scope",
            "/cds_server_provided_files_api",
            "OAUTH-FILES-API",
        ),
        (
            "undescribed scope",
            with(|m| {
                m["scopes_supported"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("openid"))
            }),
            "OAUTH-SCOPE-UNDESCRIBED",
            Severity::Info,
            "/scopes_supported/5",
        ),
        (
            "unlisted scope",
            with(|m| {
                m["scopes_supported"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|s| s != "cds_usage")
            }),
            "OAUTH-SCOPE-UNLISTED",
            e,
            "/cds_scope_descriptions/cds_usage",
        ),
        (
            "id differs from key",
            scope_with("cds_usage", |s| s["id"] = json!("cds_use")),
            "OAUTH-SCOPE-ID",
            e,
            "/cds_scope_descriptions/cds_usage/id",
        ),
        (
            "no grant type",
            scope_with("cds_grant_admin_1", |s| {
                s["grant_types_supported"] = json!([])
            }),
            "OAUTH-SCOPE-REQUIRED:grant_types_supported",
            e,
            "/cds_scope_descriptions/cds_grant_admin_1/grant_types_supported",
        ),
        (
            "authorization_code without S256",
            scope_with("cds_usage", |s| {
                s["code_challenge_methods_supported"] = json!([])
            }),
            "OAUTH-PKCE",
            e,
            "/cds_scope_descriptions/cds_usage/code_challenge_methods_supported",
        ),
        (
            "plain next to S256",
            with(|m| {
                m["code_challenge_methods_supported"] = json!(["S256", "plain"]);
                m["cds_scope_descriptions"]["cds_usage"]["code_challenge_methods_supported"] =
                    json!(["S256", "plain"]);
            }),
            "OAUTH-PKCE",
            e,
            "/cds_scope_descriptions/cds_usage/code_challenge_methods_supported",
        ),
        (
            "methods without authorization_code",
            with(|m| {
                m["cds_scope_descriptions"]["cds_grant_admin_1"]
                    ["code_challenge_methods_supported"] = json!(["S256"]);
            }),
            "OAUTH-PKCE",
            e,
            "/cds_scope_descriptions/cds_grant_admin_1/code_challenge_methods_supported",
        ),
        (
            "grant admin scope of another type",
            scope_with("cds_usage", |s| {
                s["grant_admin_scope"] = json!("cds_client_admin")
            }),
            "OAUTH-GRANT-ADMIN",
            e,
            "/cds_scope_descriptions/cds_usage/grant_admin_scope",
        ),
        (
            "grant admin scope not described",
            scope_with("cds_usage", |s| {
                s["grant_admin_scope"] = json!("cds_grant_admin_9")
            }),
            "OAUTH-GRANT-ADMIN",
            e,
            "/cds_scope_descriptions/cds_usage/grant_admin_scope",
        ),
        (
            "registration requirement not described",
            scope_with("cds_usage", |s| {
                s["registration_requirements"] = json!(["company_name", "tax_id"])
            }),
            "OAUTH-REG-FIELD",
            e,
            "/cds_scope_descriptions/cds_usage/registration_requirements/1",
        ),
        (
            "unknown coverage",
            scope_with("cds_bill_statements", |s| {
                s["coverages_supported"] = json!(["e1", "e9", "e2"])
            }),
            "OAUTH-COVERAGE-UNKNOWN",
            e,
            "/cds_scope_descriptions/cds_bill_statements/coverages_supported/1",
        ),
        (
            "registration field id differs from key",
            field_with("company_name", |f| f["id"] = json!("company")),
            "OAUTH-FIELD-REQUIRED:id",
            e,
            "/cds_registration_fields/company_name/id",
        ),
        (
            "client admin with a coverage",
            scope_with("cds_client_admin", |s| {
                s["coverages_supported"] = json!(["e1"])
            }),
            "OAUTH-CLIENT-ADMIN",
            Severity::Warning,
            "/cds_scope_descriptions/cds_client_admin",
        ),
        (
            "client admin with another grant",
            with(|m| {
                m["cds_scope_descriptions"]["cds_client_admin"]["grant_types_supported"] =
                    json!(["client_credentials", "refresh_token"]);
            }),
            "OAUTH-CLIENT-ADMIN",
            Severity::Warning,
            "/cds_scope_descriptions/cds_client_admin",
        ),
        (
            "client admin type under another id",
            with(|m| {
                let d = m["cds_scope_descriptions"].as_object_mut().unwrap();
                let mut s = d.remove("cds_client_admin").unwrap();
                s["id"] = json!("admin");
                d.insert("admin".into(), s);
                m["scopes_supported"][0] = json!("admin");
            }),
            "OAUTH-CLIENT-ADMIN",
            Severity::Warning,
            "/cds_scope_descriptions/admin",
        ),
    ];
    for (case, doc, rule, severity, pointer) in cases {
        let f = assert_one(&doc, rule, severity, case);
        assert_eq!(f.pointer, pointer, "{case}");
    }
}

#[test]
fn oauth_union_names_the_missing_values() {
    for field in [
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "code_challenge_methods_supported",
        "authorization_details_types_supported",
    ] {
        let doc = with(|m| {
            let s = &mut m["cds_scope_descriptions"]["cds_bill_statements"];
            s[field].as_array_mut().unwrap().push(json!("x_extra"));
        });
        let mut f = check(&doc);
        // A new grant type / method on a scope may also touch its PKCE or fixed shape;
        // none of these does for cds_bill_statements.
        f.retain(|f| f.rule != "OAUTH-PKCE");
        assert_eq!(f.len(), 1, "{field}: {f:#?}");
        assert_eq!(f[0].rule, format!("OAUTH-UNION:{field}"));
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].pointer, format!("/{field}"));
        assert!(f[0].message.contains("x_extra"), "{}", f[0].message);
        assert!(f[0].expected.as_deref().unwrap().contains("x_extra"));
    }
    // Two missing values are both named, once each.
    let doc = with(|m| {
        m["authorization_details_types_supported"] = json!(["cds_grant_admin_1"]);
    });
    let f = assert_one(
        &doc,
        "OAUTH-UNION:authorization_details_types_supported",
        Severity::Error,
        "two missing",
    );
    assert_eq!(
        f.expected.as_deref(),
        Some("also [\"cds_server_provided_files_01\",\"cds_usage\"]")
    );
}

#[test]
fn scope_required_each_field() {
    let members = [
        "id",
        "type",
        "name",
        "description",
        "documentation",
        "registration_requirements",
        "registration_optional",
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "code_challenge_methods_supported",
        "coverages_supported",
        "grant_admin_scope",
        "authorization_details_types_supported",
        "authorization_details_fields_supported",
    ];
    // The grant admin scope: nothing else depends on its members (its type aside).
    for field in members {
        let rule = format!("OAUTH-SCOPE-REQUIRED:{field}");
        let doc = scope_with("cds_bill_statements", |s| {
            s.remove(field);
        });
        let f = assert_one(&doc, &rule, Severity::Error, field);
        assert_eq!(
            f.pointer,
            format!("/cds_scope_descriptions/cds_bill_statements/{field}")
        );
    }
    // Wrong shapes are the same rule; `null` only passes for `grant_admin_scope`.
    let bad: Vec<(&str, Value)> = vec![
        ("id", json!(5)),
        ("type", json!(null)),
        ("name", json!(["Bills"])),
        ("documentation", json!("see the docs")),
        ("registration_requirements", json!("company_name")),
        ("coverages_supported", json!("e1")),
        ("grant_admin_scope", json!(false)),
        (
            "authorization_details_fields_supported",
            json!(["client_id"]),
        ),
    ];
    for (field, v) in bad {
        let case = format!("{field} = {v}");
        let doc = scope_with("cds_bill_statements", |s| s[field] = v.clone());
        let f = assert_one(
            &doc,
            &format!("OAUTH-SCOPE-REQUIRED:{field}"),
            Severity::Error,
            &case,
        );
        if !v.is_null() {
            assert!(f.actual.is_some(), "{case}");
        }
    }
}

#[test]
fn field_required_each_field() {
    for field in ["id", "type", "description", "documentation"] {
        let f = assert_one(
            &field_with("company_logo", |f| {
                f.remove(field);
            }),
            &format!("OAUTH-FIELD-REQUIRED:{field}"),
            Severity::Error,
            field,
        );
        assert_eq!(
            f.pointer,
            format!("/cds_registration_fields/company_logo/{field}")
        );
    }
    assert_one(
        &field_with("company_logo", |f| f["documentation"] = json!("logo docs")),
        "OAUTH-FIELD-REQUIRED:documentation",
        Severity::Error,
        "documentation not a URL",
    );
}

/// The false error of issue 15: a listed scope without description (e.g. `openid`) is
/// legal (§3.2), so `validate` must not fail the server for it.
#[test]
fn undescribed_scope_is_no_error() {
    let doc = with(|m| {
        m["scopes_supported"]
            .as_array_mut()
            .unwrap()
            .push(json!("openid"))
    });
    let f = check(&doc);
    assert!(f.iter().all(|f| f.severity == Severity::Info), "{f:#?}");
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
    assert_eq!(
        ids,
        [
            "cds_client_admin",
            "cds_grant_admin_1",
            "cds_server_provided_files_01",
            "cds_usage",
            "cds_bill_statements"
        ]
    );
    let usage = &m.scopes[3];
    assert_eq!(usage.documentation, None);
    assert_eq!(usage.coverages, ["e1"]);
    // The type is kept apart from the id (clients match by type, WG1-02 §3.3).
    assert_eq!(usage.scope_type.as_deref(), Some("util_usage"));
    assert_eq!(m.scopes[0].scope_type.as_deref(), Some("cds_client_admin"));
    assert_eq!(
        m.scopes[4].grant_types,
        ["authorization_code", "refresh_token"]
    );
    assert_eq!(m.scopes[4].name.as_deref(), Some("Bills"));
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
