//! A coverage entry as the search endpoints (and the export's Feature properties) show
//! it: [`CoverageRow`], built from the index by [`row`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::cds::oauth::OAuthOffer;
use crate::cds::{entry_fields, entry_literal, entry_struct};
use crate::index::SearchIndex;

/// The server offering an entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerBrief {
    pub id: i64,
    pub url: String,
    pub name: String,
}

entry_fields!(entry_struct! {
    /// One coverage entry (WG1-01 §4) as the search endpoints return it.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct CoverageRow {
        /// Registry id of the entry (stable across crawls while the entry exists).
        pub id: i64,
        /// The entry's own `id` on its server.
        pub entry_id: String,
    } {
        /// OAuth scopes offered for this entry (WG1-02): their ids.
        pub scopes: Vec<String>,
        /// The distinct `type`s of those scopes (WG1-02 §3.4). Clients match scopes by type,
        /// not id (§3.3); `oauth.scopes` pairs each id with its type.
        pub scope_types: Vec<String>,
        /// How to get those scopes here: the server's registration links and each scope's
        /// description (WG1-02 §3); `null` when the server publishes no OAuth metadata.
        pub oauth: Option<OAuthInfo>,
        /// Path of the territory as GeoJSON, when the entry has one.
        pub geometry: Option<String>,
        pub server: ServerBrief,
    }
});

/// The OAuth side of a coverage entry (WG1-02 §3).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthInfo {
    /// RFC 7591 dynamic client registration endpoint of the entry's server.
    pub registration_endpoint: Option<String>,
    /// Where a person registers a client by hand (`cds_human_registration`).
    pub human_registration: Option<String>,
    /// The scopes offered for this entry (its id is in their `coverages_supported`).
    pub scopes: Vec<ScopeInfo>,
}

/// One scope offered for an entry, from the server's `cds_scope_descriptions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeInfo {
    /// The scope id.
    pub scope: String,
    /// The scope's `type` (WG1-02 §3.4), what clients match on (§3.3); `null` when the
    /// description gives none.
    #[serde(rename = "type")]
    pub scope_type: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Link to the scope's documentation.
    pub documentation: Option<String>,
    pub grant_types: Vec<String>,
}

fn oauth_info(o: &OAuthOffer) -> OAuthInfo {
    OAuthInfo {
        registration_endpoint: o.registration_endpoint.clone(),
        human_registration: o.human_registration.clone(),
        scopes: o
            .scopes
            .iter()
            .map(|s| ScopeInfo {
                scope: s.id.clone(),
                scope_type: s.scope_type.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                documentation: s.documentation.clone(),
                grant_types: s.grant_types.clone(),
            })
            .collect(),
    }
}

pub fn row(index: &SearchIndex, i: usize) -> CoverageRow {
    let e = index.entry(i);
    let en = &e.entry;
    entry_fields!(entry_literal! {
        CoverageRow {
            id: e.key,
            entry_id: en.id.clone(),
        } from en {
            scopes: e.scopes.clone(),
            scope_types: e.scope_types.clone(),
            oauth: e.oauth.as_deref().map(oauth_info),
            geometry: e
                .territory
                .as_ref()
                .map(|_| format!("/v1/coverage/{}/geometry", e.key)),
            server: ServerBrief {
                id: e.server_id,
                url: e.server_url.clone(),
                name: e.server_name.clone(),
            },
        }
    })
}
