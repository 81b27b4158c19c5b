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

/// Append entry `i`'s [`CoverageRow`] as JSON: the same bytes `serde_json` writes for
/// [`row`], read in place from the index instead of copied into a `CoverageRow` first.
/// The lookup writes every hit this way. Keeping each entry's serialized row instead cost
/// ~600 bytes per entry for the life of a snapshot (58 MiB for a replica that had answered
/// lookups over a 100,000-territory aggregator, docs/PERFORMANCE.md "A replica in steady
/// state"); serializing `row()` cost ~8,000 instructions per hit. The keys are constants,
/// and the entry's strings are copied between quotes as they are when none of them needs
/// escaping ([`crate::index::EntryRef::json_plain`], decided once when the entry was
/// indexed). A field added to `CoverageRow` must be written here too: the test
/// `written_rows_are_the_serialized_rows` compares the two on random entries.
pub fn write_row(out: &mut Vec<u8>, index: &SearchIndex, i: usize) {
    let e = index.entry(i);
    let plain = e.json_plain();
    let f = e.row_fields();
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(int.format(e.key()).as_bytes());
    let mut w = RowWriter { out, plain };
    w.str(b",\"entry_id\":", f.id);
    w.str(b",\"entity_name\":", f.entity_name);
    w.opt(b",\"entity_abbreviation\":", f.entity_abbreviation);
    w.str(b",\"country\":", f.country);
    w.str(b",\"name\":", f.name);
    w.opt(b",\"description\":", f.description);
    w.str(b",\"type\":", f.kind);
    w.str(b",\"role\":", f.role);
    let keys: [&[u8]; 3] = [
        b",\"infrastructure_types\":",
        b",\"commodity_types\":",
        b",\"capabilities\":",
    ];
    let (lens, mut items) = e.lists();
    for (key, len) in keys.into_iter().zip(lens) {
        w.list(key, items.by_ref().take(len));
    }
    w.opt(b",\"map_resource\":", f.map_resource);
    w.opt(b",\"map_content_type\":", f.map_content_type);
    w.opt(b",\"geojson_resource\":", f.geojson_resource);
    // Scopes, OAuth and origins are rare (and their strings are not covered by the
    // entry's plain flag): serde writes them.
    let out = w.out;
    if e.scopes().is_empty() && e.scope_types().is_empty() && e.oauth().is_none() {
        out.extend_from_slice(b",\"scopes\":[],\"scope_types\":[],\"oauth\":null");
    } else {
        out.extend_from_slice(b",\"scopes\":");
        serde_json::to_writer(&mut *out, e.scopes()).expect("strings serialize");
        out.extend_from_slice(b",\"scope_types\":");
        serde_json::to_writer(&mut *out, e.scope_types()).expect("strings serialize");
        out.extend_from_slice(b",\"oauth\":");
        serde_json::to_writer(&mut *out, &e.oauth()).expect("an OAuth offer serializes");
    }
    out.extend_from_slice(b",\"geometry\":");
    if e.territory().is_some() {
        out.extend_from_slice(b"\"/v1/coverage/");
        out.extend_from_slice(int.format(e.key()).as_bytes());
        out.extend_from_slice(b"/geometry\"");
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"server\":{\"id\":");
    out.extend_from_slice(int.format(e.server_id()).as_bytes());
    let mut w = RowWriter { out, plain };
    w.str(b",\"url\":", e.server_url());
    w.str(b",\"name\":", e.server_name());
    let out = w.out;
    match e.origin() {
        None => out.extend_from_slice(b"},\"origin\":null}"),
        Some(o) => {
            out.extend_from_slice(b"},\"origin\":");
            serde_json::to_writer(&mut *out, o).expect("an origin serializes");
            out.push(b'}');
        }
    }
}

/// Writes `key` and a string value, copied as it is when the entry's strings need no
/// escaping, else through serde.
struct RowWriter<'o> {
    out: &'o mut Vec<u8>,
    plain: bool,
}

impl RowWriter<'_> {
    fn value(&mut self, v: &str) {
        if self.plain {
            self.out.push(b'"');
            self.out.extend_from_slice(v.as_bytes());
            self.out.push(b'"');
        } else {
            serde_json::to_writer(&mut *self.out, v).expect("a string serializes");
        }
    }

    fn str(&mut self, key: &[u8], v: &str) {
        self.out.extend_from_slice(key);
        self.value(v);
    }

    fn opt(&mut self, key: &[u8], v: Option<&str>) {
        self.out.extend_from_slice(key);
        match v {
            Some(v) => self.value(v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn list<'a>(&mut self, key: &[u8], items: impl Iterator<Item = &'a str>) {
        self.out.extend_from_slice(key);
        self.out.push(b'[');
        for (n, v) in items.enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            self.value(v);
        }
        self.out.push(b']');
    }
}
