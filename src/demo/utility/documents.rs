//! The CDS documents of a [`UtilitySpec`] as JSON: metadata (WG1-01 §2), coverage
//! entries and pages (§4), territories (§5) and OAuth metadata (WG1-02 §3).

use serde_json::{json, Map, Value};

use super::{EntrySpec, TerritoryFormat, UtilitySpec};
use crate::demo::counties::{county_feature_collection, territory_feature, territory_multipolygon};
use crate::demo::server::FixtureServer;

/// The metadata document of `spec` served by `server`.
pub fn metadata_document(server: &FixtureServer, spec: &UtilitySpec) -> Value {
    let mut m = Map::new();
    m.insert("cds_metadata_version".into(), json!("v1"));
    m.insert(
        "cds_metadata_url".into(),
        json!(server.url(&spec.metadata_path)),
    );
    m.insert("created".into(), json!(spec.created));
    m.insert("updated".into(), json!(spec.updated));
    m.insert("name".into(), json!(spec.name));
    m.insert("description".into(), json!(spec.description));
    m.insert("website".into(), json!(server.url("/")));
    m.insert(
        "documentation".into(),
        json!(server.url(&format!("{}/docs", spec.prefix))),
    );
    m.insert(
        "support".into(),
        json!(server.url("/contact-us?type=developers")),
    );
    m.insert("capabilities".into(), json!(spec.effective_capabilities()));
    if !spec.related_metadata.is_empty() {
        m.insert("related_metadata".into(), json!(spec.related_metadata));
    }
    if spec.has_coverage() {
        m.insert(
            "coverage".into(),
            json!(server.url(&spec.coverage_page_path(1))),
        );
    }
    if !spec.scopes.is_empty() {
        m.insert(
            "oauth_metadata".into(),
            json!(server.url(&spec.oauth_metadata_path())),
        );
    }
    for (k, v) in &spec.extra {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// One coverage entry as published by `server`.
pub fn entry_document(server: &FixtureServer, spec: &UtilitySpec, e: &EntrySpec) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(e.id));
    m.insert("created".into(), json!(e.created));
    m.insert("updated".into(), json!(e.updated));
    m.insert("entity_name".into(), json!(e.entity_name));
    m.insert("entity_abbreviation".into(), json!(e.entity_abbreviation));
    m.insert("country".into(), json!(e.country));
    m.insert("name".into(), json!(e.name));
    if let Some(d) = &e.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("type".into(), json!(e.kind()));
    m.insert("role".into(), json!(e.role));
    m.insert("infrastructure_types".into(), json!(e.infrastructure_types));
    m.insert("commodity_types".into(), json!(e.commodity_types));
    m.insert("capabilities".into(), json!(e.capabilities));
    if e.map_png {
        m.insert(
            "map_resource".into(),
            json!(server.url(&format!("{}/maps/{}.png", spec.prefix, e.id))),
        );
        m.insert("map_content_type".into(), json!("image/png"));
    }
    if !e.counties.is_empty() {
        m.insert(
            "geojson_resource".into(),
            json!(server.url(&spec.territory_path(&e.id))),
        );
    }
    for (k, v) in &e.extra {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// The territory GeoJSON of entry `e` (`None` for a logical entry).
pub fn territory_document(e: &EntrySpec) -> Option<Value> {
    if e.counties.is_empty() {
        return None;
    }
    let fips: Vec<&str> = e.counties.iter().map(String::as_str).collect();
    Some(match e.territory_format {
        TerritoryFormat::Feature => territory_feature(&e.name, &fips),
        TerritoryFormat::FeatureCollection => county_feature_collection(&fips),
        TerritoryFormat::Geometry => territory_multipolygon(&fips),
    })
}

/// The coverage listing pages of `spec` (first page first), with `next` / `previous`.
pub fn coverage_pages(server: &FixtureServer, spec: &UtilitySpec) -> Vec<(String, Value)> {
    let entries: Vec<Value> = spec
        .ordered_entries()
        .into_iter()
        .map(|e| entry_document(server, spec, e))
        .collect();
    let chunks: Vec<Vec<Value>> = if spec.page_size == 0 || entries.is_empty() {
        vec![entries]
    } else {
        entries
            .chunks(spec.page_size)
            .map(<[Value]>::to_vec)
            .collect()
    };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let page = i + 1;
            let link = |p: usize| json!(server.url(&spec.coverage_page_path(p)));
            let doc = json!({
                "coverage_entries": chunk,
                "next": if page < n { link(page + 1) } else { Value::Null },
                "previous": if page > 1 { link(page - 1) } else { Value::Null },
            });
            (spec.coverage_page_path(page), doc)
        })
        .collect()
}

/// RFC 8414 authorization server metadata conforming to WG1-02 §3 (every REQUIRED
/// field of §3.2, each scope description complete as §3.4 says, one registration field
/// as §3.5 says): `validate` finds nothing in it.
pub fn oauth_metadata_document(server: &FixtureServer, spec: &UtilitySpec) -> Value {
    let docs = server.url(&format!("{}/docs", spec.prefix));
    let mut descriptions = Map::new();
    for s in &spec.scopes {
        descriptions.insert(
            s.id.clone(),
            json!({
                "id": s.id,
                "type": s.scope_type,
                "name": s.name,
                "description": s.description,
                "documentation": format!("{docs}#scope-{}", s.id),
                "registration_requirements": ["company_name"],
                "registration_optional": [],
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                // PKCE: S256 only with the authorization code grant (§3.4, RFC 7636).
                "code_challenge_methods_supported": ["S256"],
                "coverages_supported": s.coverages_supported,
                "grant_admin_scope": null,
                "authorization_details_types_supported": [],
                "authorization_details_fields_supported": [],
            }),
        );
    }
    let scope_ids: Vec<&str> = spec.scopes.iter().map(|s| s.id.as_str()).collect();
    json!({
        "issuer": server.base,
        "authorization_endpoint": server.url("/oauth/authorize"),
        "token_endpoint": server.url("/oauth/token"),
        "registration_endpoint": server.url("/oauth/register"),
        "revocation_endpoint": server.url("/oauth/revoke"),
        "introspection_endpoint": server.url("/oauth/introspect"),
        "pushed_authorization_request_endpoint": server.url("/oauth/par"),
        "scopes_supported": scope_ids,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_details_types_supported": [],
        "service_documentation": docs,
        "op_policy_uri": server.url("/legal/oauth-policy"),
        "op_tos_uri": server.url("/legal/oauth-terms"),
        "cds_oauth_version": "v1",
        "cds_human_registration": server.url("/developers/register"),
        "cds_test_accounts": server.url("/developers/test-accounts"),
        "cds_timezone": "America/Chicago",
        "cds_clients_api": server.url("/cds-api/v1/clients"),
        "cds_messages_api": server.url("/cds-api/v1/messages"),
        "cds_credentials_api": server.url("/cds-api/v1/credentials"),
        "cds_grants_api": server.url("/cds-api/v1/grants"),
        "cds_scope_descriptions": descriptions,
        "cds_registration_fields": {
            "company_name": {
                "id": "company_name",
                "type": "registration_field",
                "field_name": "cds_company_name",
                "description": "The company name shown on the authorization form.",
                "documentation": format!("{docs}#registration-company_name"),
                "format": "string",
                "max_length": 200,
            }
        },
    })
}
