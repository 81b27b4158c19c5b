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
        /// Where the entry came from when `server` is a registry re-publishing it
        /// (`cds_registry_origin`: origin server and id, its role and capabilities there,
        /// the registries it passed through); `null` for a server's own entry.
        pub origin: Option<crate::cds::origin::Origin>,
    }
});

/// The OAuth side of a coverage entry (WG1-02 §3): the index's offer as it is.
pub type OAuthInfo = OAuthOffer;
/// One scope offered for an entry: the index's as it is.
pub type ScopeInfo = crate::cds::oauth::OfferedScope;

pub fn row(index: &SearchIndex, i: usize) -> CoverageRow {
    let e = index.entry(i).to_entry();
    let en = &e.entry;
    entry_fields!(entry_literal! {
        CoverageRow {
            id: e.key,
            entry_id: en.id.clone(),
        } from en {
            scopes: e.scopes.clone(),
            scope_types: e.scope_types.clone(),
            oauth: e.oauth.as_deref().cloned(),
            geometry: e
                .territory
                .as_ref()
                .map(|_| format!("/v1/coverage/{}/geometry", e.key)),
            server: ServerBrief {
                id: e.server_id,
                url: e.server_url.to_string(),
                name: e.server_name.to_string(),
            },
            origin: en.origin.clone(),
        }
    })
}
