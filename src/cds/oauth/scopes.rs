//! Scope descriptions (WG1-02 §3.4) and their agreement with `scopes_supported` (§3.2).

use serde_json::{Map, Value};

use super::check::{list, show, Checker, Kind};
use super::top::Top;
use super::OAuthContext;
use crate::cds::finding::{pointer_token, Severity};
use crate::cds::validate::rules;

/// Every member of a scope description, all REQUIRED (WG1-02 §3.4).
const MEMBERS: [(&str, Kind); 15] = [
    ("id", Kind::Str),
    ("type", Kind::Str),
    ("name", Kind::Str),
    ("description", Kind::Str),
    ("documentation", Kind::Url),
    ("registration_requirements", Kind::StrList),
    ("registration_optional", Kind::StrList),
    ("response_types_supported", Kind::StrList),
    ("grant_types_supported", Kind::StrList),
    ("token_endpoint_auth_methods_supported", Kind::StrList),
    ("code_challenge_methods_supported", Kind::StrList),
    ("coverages_supported", Kind::StrList),
    ("grant_admin_scope", Kind::StrOrNull),
    ("authorization_details_types_supported", Kind::StrList),
    ("authorization_details_fields_supported", Kind::ObjList),
];

/// The server-provided files scope is the one fixed shape with no grant type (§3.3.3
/// says `[]`), against §3.4's "at least one"; the specific rule wins.
const FILES_TYPE: &str = "cds_server_provided_files";

pub(super) fn base(id: &str) -> String {
    format!("/cds_scope_descriptions/{}", pointer_token(id))
}

/// All checks of every description, then the two-way listing rule.
pub(super) fn check(
    c: &mut Checker<'_>,
    top: &Top<'_>,
    descriptions: &Map<String, Value>,
    ctx: &OAuthContext<'_>,
) {
    for (id, desc) in descriptions {
        let Some(d) = desc.as_object() else {
            let expected = "a scope description (JSON object)";
            c.type_error("cds_scope_descriptions", base(id), expected, desc);
            continue;
        };
        members(c, id, d);
        pkce(c, id, d);
        references(c, id, d, top, descriptions, ctx);
    }
    listing(c, top, descriptions);
}

/// Presence and shape of each member; `id` equals its key; at least one grant type.
fn members(c: &mut Checker<'_>, id: &str, d: &Map<String, Value>) {
    let base = base(id);
    let what = format!("scope description `{id}`");
    for (key, kind) in MEMBERS {
        c.member(d, key, &base, kind, rules::OAUTH_SCOPE_REQUIRED, &what);
    }
    // §3.4: `id` repeats the key; a different one leaves the scope ambiguous.
    if let Some(v) = d.get("id").and_then(Value::as_str) {
        if v != id {
            let message = format!("scope description `{id}` has `id` {v:?}; it must equal its key");
            let f = c
                .finding(
                    rules::OAUTH_SCOPE_ID,
                    Severity::Error,
                    format!("{base}/id"),
                    message,
                )
                .expected(show(&Value::from(id)))
                .actual(show(&Value::from(v)));
            c.push(f);
        }
    }
    let is_files = d.get("type").and_then(Value::as_str) == Some(FILES_TYPE);
    if list(d.get("grant_types_supported")).is_some_and(|g| g.is_empty()) && !is_files {
        let message =
            format!("scope description `{id}` offers no grant type; §3.4 requires at least one");
        let f = c
            .finding(
                format!("{}:grant_types_supported", rules::OAUTH_SCOPE_REQUIRED),
                Severity::Error,
                format!("{base}/grant_types_supported"),
                message,
            )
            .expected("at least one grant type")
            .actual("[]");
        c.push(f);
    }
}

/// §3.4 (RFC 7636, RFC 9700 §2.1.1): with `authorization_code` the scope offers `S256`
/// and never `plain` (which exposes the verifier, RFC 7636 §7.2); without it there is no
/// authorization request, so the list is `[]`.
fn pkce(c: &mut Checker<'_>, id: &str, d: &Map<String, Value>) {
    let (Some(grants), Some(methods)) = (
        list(d.get("grant_types_supported")),
        list(d.get("code_challenge_methods_supported")),
    ) else {
        return;
    };
    let problem = if grants.contains(&"authorization_code") {
        if !methods.contains(&"S256") {
            Some((
                "[\"S256\"]",
                "offers `authorization_code`, so it must offer PKCE method `S256`",
            ))
        } else if methods.contains(&"plain") {
            Some((
                "[\"S256\"]",
                "must not offer PKCE method `plain`, which exposes the code verifier",
            ))
        } else {
            None
        }
    } else if !methods.is_empty() {
        Some((
            "[]",
            "offers no `authorization_code` grant, so its code challenge methods must be `[]`",
        ))
    } else {
        None
    };
    if let Some((expected, why)) = problem {
        let ptr = format!("{}/code_challenge_methods_supported", base(id));
        let f = c
            .finding(
                rules::OAUTH_PKCE,
                Severity::Error,
                ptr,
                format!("scope `{id}` {why}"),
            )
            .expected(expected)
            .actual(show(&Value::from(methods)));
        c.push(f);
    }
}

/// Cross-references of one description: its grant admin scope (§3.4 `grant_admin_scope`),
/// its registration requirements (`cds_registration_fields`, §3.2) and its coverage ids
/// (the server's coverage entries, WG1-01 §4.3).
fn references(
    c: &mut Checker<'_>,
    id: &str,
    d: &Map<String, Value>,
    top: &Top<'_>,
    descriptions: &Map<String, Value>,
    ctx: &OAuthContext<'_>,
) {
    let base = base(id);
    if let Some(admin) = d.get("grant_admin_scope").and_then(Value::as_str) {
        let admin_type = descriptions.get(admin).and_then(|a| a.get("type"));
        if admin_type.and_then(Value::as_str) != Some("cds_grant_admin") {
            let actual = match admin_type {
                None if !descriptions.contains_key(admin) => "no such scope description".into(),
                t => format!("type {}", t.map(show).unwrap_or_else(|| "missing".into())),
            };
            let message = format!(
                "scope `{id}` names grant admin scope `{admin}`, which must be a described scope of type `cds_grant_admin`"
            );
            let f = c
                .finding(
                    rules::OAUTH_GRANT_ADMIN,
                    Severity::Error,
                    format!("{base}/grant_admin_scope"),
                    message,
                )
                .expected("a scope of type cds_grant_admin")
                .actual(actual);
            c.push(f);
        }
    }
    if let Some(fields) = top.registration_fields {
        let reqs = list(d.get("registration_requirements")).unwrap_or_default();
        for (i, r) in reqs.into_iter().enumerate() {
            if !fields.contains_key(r) {
                let message = format!(
                    "scope `{id}` requires registration field `{r}`, which `cds_registration_fields` does not describe"
                );
                let ptr = format!("{base}/registration_requirements/{i}");
                let f = c
                    .finding(rules::OAUTH_REG_FIELD, Severity::Error, ptr, message)
                    .actual(r);
                c.push(f);
            }
        }
    }
    let coverages = list(d.get("coverages_supported")).unwrap_or_default();
    for (i, cov) in coverages.into_iter().enumerate() {
        if !ctx.coverage_ids.contains(cov) {
            let message = format!(
                "scope `{id}` is offered for coverage `{cov}`, but the server's coverage listing has no entry with that id"
            );
            let ptr = format!("{base}/coverages_supported/{i}");
            let f = c
                .finding(rules::OAUTH_COVERAGE_UNKNOWN, Severity::Error, ptr, message)
                .actual(cov);
            c.push(f);
        }
    }
}

/// §3.2: `scopes_supported` is the described scope ids plus any other scope the server
/// supports (registered by another process, e.g. `openid`), so an undescribed listed
/// scope is only a remark; a described scope that is not listed is an error.
fn listing(c: &mut Checker<'_>, top: &Top<'_>, descriptions: &Map<String, Value>) {
    let Some(listed) = top.list("scopes_supported") else {
        return;
    };
    for (i, s) in listed.iter().enumerate() {
        if !descriptions.contains_key(*s) {
            let message = format!(
                "scope `{s}` is listed without a description, so clients register it by some process outside WG1-02 (allowed by §3.2)"
            );
            let ptr = format!("/scopes_supported/{i}");
            let f = c
                .finding(rules::OAUTH_SCOPE_UNDESCRIBED, Severity::Info, ptr, message)
                .actual(*s);
            c.push(f);
        }
    }
    for id in descriptions.keys() {
        if !listed.contains(&id.as_str()) {
            let message = format!(
                "scope `{id}` is described in `cds_scope_descriptions` but missing from `scopes_supported`"
            );
            let f = c
                .finding(
                    rules::OAUTH_SCOPE_UNLISTED,
                    Severity::Error,
                    base(id),
                    message,
                )
                .actual(id.clone());
            c.push(f);
        }
    }
}
