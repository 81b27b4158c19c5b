//! The registry as a CDS server itself (issue 18, DESIGN.md "Federation"): its index
//! re-published as a WG1-01 metadata document and a coverage listing, so any CDS client
//! (and another registry) can read it with the client it already has.
//!
//! Pure functions over an index snapshot; the HTTP side (routes, conditional requests)
//! is `api::publish`.
//!
//! What is published:
//! - every entry a search returns (active and stale servers; a copy hidden by a better
//!   copy of the same entry is not, so federated registries do not multiply entries),
//!   with role `aggregator` (WG1-01 §4.5: "offers capabilities by proxy"), the registry's
//!   own stable id (its row id), the entry's own fields, `geojson_resource` pointing at
//!   the registry's stored territory, and the extension field `cds_registry_origin`
//!   ([`crate::cds::origin`]) naming where it came from and the registries it passed;
//! - only entries that pass the validator with no error: a registry does not
//!   re-publish a defect it reported (the source's own findings stay in `/v1/findings`);
//! - without capabilities the registry cannot offer by proxy: `oauth` needs the server's
//!   own `oauth_metadata` (WG1-02 §3), which a registry does not have. The origin's full
//!   list stays in `cds_registry_origin.capabilities`.
//!
//! The listing is ordered newest `updated` first (WG1-01 §3, a MUST), then by id, and
//! paged by keyset cursors, so a page boundary does not move when entries change
//! between two page reads.

use std::ops::Range;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use crate::cds::origin::{Origin, ORIGIN_FIELD};
use crate::cds::validate::validate_coverage_entry;
use crate::cds::{Severity, CAP_COVERAGE, CAP_OAUTH, WELL_KNOWN_PATH};
use crate::index::{Filter, IndexEntry, SearchIndex};

/// Path of the published coverage listing.
pub const COVERAGE_PATH: &str = "/v1/cds/coverage";

/// Capabilities a registry cannot offer by proxy: each needs a document of the server
/// that offers it (`oauth`: its `oauth_metadata`, WG1-02 §3).
const NOT_PROXIED: &[&str] = &[CAP_OAUTH];

/// `[publish]`: the registry's own CDS metadata. Off by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Serve `/.well-known/cds-server-metadata.json` and the coverage listing.
    pub enabled: bool,
    /// The registry's public base URL, as clients reach it (`https://registry.example`):
    /// every URL in the published documents starts with it. Unset: `http://` + the
    /// address the registry listens on, when that is a specific one.
    pub base_url: Option<Url>,
    /// Metadata `name` and `description` (WG1-01 §2).
    pub name: String,
    pub description: String,
    /// Metadata `website`, `documentation` and `support`; unset, they are the map page,
    /// the API documentation (`/docs`) and the map page under `base_url`.
    pub website: Option<Url>,
    pub documentation: Option<Url>,
    pub support: Option<Url>,
    /// Entries per listing page when the client gives no `limit`.
    pub page_size: usize,
    /// Largest `limit` (and most `ids`) a client may ask for.
    pub max_page_size: usize,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            enabled: false,
            base_url: None,
            name: "cds-registry".to_owned(),
            description: "Coverage of the utilities this registry crawls, re-published as a \
                          CDS aggregator"
                .to_owned(),
            website: None,
            documentation: None,
            support: None,
            page_size: 500,
            max_page_size: 5_000,
        }
    }
}

impl PublishConfig {
    /// Checks run at configuration load, so a bad `[publish]` stops the start, not a
    /// client. Without `base_url`, the registry publishes at `http://` + the address it
    /// listens on ([`PublishConfig::at`]), which needs a specific one: behind `0.0.0.0`
    /// no client-reachable URL can be guessed.
    pub fn check(&self, listen: std::net::SocketAddr) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        match &self.base_url {
            None => anyhow::ensure!(
                !listen.ip().is_unspecified(),
                "publish.enabled with `listen` on {listen} needs publish.base_url, the registry's \
                 public URL as clients reach it (e.g. https://registry.example.org); every \
                 published link starts with it"
            ),
            Some(base) => anyhow::ensure!(
                matches!(base.scheme(), "http" | "https")
                    && base.host().is_some()
                    && base.query().is_none()
                    && base.fragment().is_none(),
                "publish.base_url must be an http(s) URL without query or fragment, got {base}"
            ),
        }
        anyhow::ensure!(
            (1..=self.max_page_size).contains(&self.page_size),
            "publish.page_size must be 1..=publish.max_page_size ({}), got {}",
            self.max_page_size,
            self.page_size
        );
        Ok(())
    }

    /// This configuration for a registry listening on `addr`: without `base_url`, it
    /// publishes at `http://addr` (a specific address and port; else nothing is filled).
    pub fn at(&self, addr: std::net::SocketAddr) -> PublishConfig {
        let mut c = self.clone();
        if c.base_url.is_none() && !addr.ip().is_unspecified() && addr.port() != 0 {
            c.base_url = Url::parse(&format!("http://{addr}")).ok();
        }
        c
    }

    /// `base_url` without a trailing slash, when publishing is on.
    fn base(&self) -> Option<String> {
        let b = self.base_url.as_ref().filter(|_| self.enabled)?;
        Some(b.as_str().trim_end_matches('/').to_owned())
    }

    /// The published metadata URL (`None`: publishing is off).
    pub fn metadata_url(&self) -> Option<String> {
        self.base().map(|b| format!("{b}{WELL_KNOWN_PATH}"))
    }

    /// The published coverage listing's URL.
    pub fn coverage_url(&self) -> Option<String> {
        self.base().map(|b| format!("{b}{COVERAGE_PATH}"))
    }

    fn link(&self, given: &Option<Url>, path: &str) -> String {
        match given {
            Some(u) => u.to_string(),
            None => format!("{}{path}", self.base().unwrap_or_default()),
        }
    }
}

/// One published entry: its index position and its place in the listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    /// `updated` in µs since the epoch, negated: ascending order is newest first.
    neg_updated_us: i64,
    key: i64,
    pos: u32,
}

impl Item {
    fn order_key(&self) -> (i64, i64) {
        (self.neg_updated_us, self.key)
    }
}

/// Where a listing page starts: after or before an entry (by its `updated` and id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub before: bool,
    pub updated_us: i64,
    pub key: i64,
}

impl Cursor {
    /// The cursor's text, as `next`/`previous` links carry it: `a<µs>.<id>` (after) or
    /// `b<µs>.<id>` (before).
    pub fn text(&self) -> String {
        let dir = if self.before { 'b' } else { 'a' };
        format!("{dir}{}.{}", self.updated_us, self.key)
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let before = match s.as_bytes().first()? {
            b'a' => false,
            b'b' => true,
            _ => return None,
        };
        let (u, k) = s[1..].split_once('.')?;
        Some(Cursor {
            before,
            updated_us: u.parse().ok()?,
            key: k.parse().ok()?,
        })
    }

    fn order_key(&self) -> (i64, i64) {
        (self.updated_us.saturating_neg(), self.key)
    }
}

/// What one index snapshot publishes: the entries in listing order, the capability
/// union, and the registry's dates. Built once per index snapshot (the API caches it).
#[derive(Debug)]
pub struct Published {
    items: Vec<Item>,
    /// WG1-01 §2: `coverage` plus the union of the published entries' capabilities.
    pub capabilities: Vec<String>,
    /// When the registry's content was first and last changed (ms since the epoch).
    pub created_ms: i64,
    pub updated_ms: i64,
}

fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Absolute `http(s)` URLs only: a relative link was relative to a page the client of
/// the registry never sees.
fn absolute(u: &Option<String>) -> Option<&str> {
    u.as_deref()
        .filter(|s| Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
}

impl Published {
    /// Publish what `index` serves. `changed_ms`: (first, last) change of the registry's
    /// content, for the metadata's `created` and `updated`.
    pub fn of(index: &SearchIndex, cfg: &PublishConfig, changed_ms: (i64, i64)) -> Published {
        let mut items = Vec::new();
        let mut caps: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let url = cfg.coverage_url().unwrap_or_default();
        for pos in index.search(&Filter::default()) {
            let doc = entry_json(index, pos, cfg);
            let conforming = !validate_coverage_entry(&doc, &url, "")
                .iter()
                .any(|f| f.severity == Severity::Error);
            let updated = doc
                .get("updated")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
            let (true, Some(updated)) = (conforming, updated) else {
                continue;
            };
            if let Some(list) = doc.get("capabilities").and_then(Value::as_array) {
                caps.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            items.push(Item {
                neg_updated_us: updated.timestamp_micros().saturating_neg(),
                key: index.key(pos),
                pos: pos as u32,
            });
        }
        items.sort_unstable_by_key(Item::order_key);
        caps.insert(CAP_COVERAGE.to_owned());
        Published {
            items,
            capabilities: caps.into_iter().collect(),
            created_ms: changed_ms.0,
            updated_ms: changed_ms.1,
        }
    }

    /// Entries published.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The metadata document (WG1-01 §2).
    pub fn metadata(&self, cfg: &PublishConfig) -> Value {
        json!({
            "cds_metadata_version": "v1",
            "cds_metadata_url": cfg.metadata_url(),
            "created": rfc3339_ms(self.created_ms),
            "updated": rfc3339_ms(self.updated_ms),
            "name": cfg.name,
            "description": cfg.description,
            "website": cfg.link(&cfg.website, "/"),
            "documentation": cfg.link(&cfg.documentation, "/docs"),
            "support": cfg.link(&cfg.support, "/"),
            "capabilities": self.capabilities,
            "coverage": cfg.coverage_url(),
        })
    }

    /// The range of the listing a page shows: the first `limit` entries, or those after
    /// or before a cursor.
    fn range(&self, at: Option<Cursor>, limit: usize) -> Range<usize> {
        let n = self.items.len();
        match at {
            None => 0..limit.min(n),
            Some(c) => {
                let k = c.order_key();
                if c.before {
                    let end = self.items.partition_point(|i| i.order_key() < k);
                    end.saturating_sub(limit)..end
                } else {
                    let start = self.items.partition_point(|i| i.order_key() <= k);
                    start..(start + limit).min(n)
                }
            }
        }
    }

    fn cursor_at(&self, i: usize, before: bool) -> Cursor {
        let it = self.items[i];
        Cursor {
            before,
            updated_us: it.neg_updated_us.saturating_neg(),
            key: it.key,
        }
    }

    /// One page of the listing (WG1-01 §3): `coverage_entries`, `next`, `previous`.
    /// `page_link` makes the URL of a page from its cursor.
    pub fn page(
        &self,
        index: &SearchIndex,
        cfg: &PublishConfig,
        at: Option<Cursor>,
        limit: usize,
        page_link: impl Fn(&Cursor) -> String,
    ) -> Value {
        let r = self.range(at, limit);
        let entries: Vec<Value> = self.items[r.clone()]
            .iter()
            .map(|i| entry_json(index, i.pos as usize, cfg))
            .collect();
        let next = (r.end < self.items.len() && !r.is_empty())
            .then(|| page_link(&self.cursor_at(r.end - 1, false)));
        let previous = (r.start > 0).then(|| page_link(&self.cursor_at(r.start, true)));
        json!({"coverage_entries": entries, "next": next, "previous": previous})
    }

    /// The `ids` filter (WG1-01 §4.2, a MUST): the published entries with these ids, in
    /// listing order, on one page. Ids the registry does not publish match nothing.
    pub fn by_ids(&self, index: &SearchIndex, cfg: &PublishConfig, ids: &[&str]) -> Value {
        let wanted: std::collections::HashSet<i64> =
            ids.iter().filter_map(|s| s.parse().ok()).collect();
        let entries: Vec<Value> = self
            .items
            .iter()
            .filter(|i| wanted.contains(&i.key))
            .map(|i| entry_json(index, i.pos as usize, cfg))
            .collect();
        json!({"coverage_entries": entries, "next": null, "previous": null})
    }
}

/// Entry `pos` of `index` as the registry publishes it (see the module docs).
pub fn entry_json(index: &SearchIndex, pos: usize, cfg: &PublishConfig) -> Value {
    let e: IndexEntry = index.entry(pos).to_entry();
    let en = &e.entry;
    let me = cfg.metadata_url().unwrap_or_default();
    let origin = match &en.origin {
        Some(o) => Origin {
            via: o.via.iter().cloned().chain([me]).collect(),
            ..o.clone()
        },
        None => Origin {
            server: e.server_url.to_string(),
            id: en.id.clone(),
            role: en.role.clone(),
            capabilities: en.capabilities.clone(),
            via: vec![me],
        },
    };
    let capabilities: Vec<&String> = en
        .capabilities
        .iter()
        .filter(|c| !NOT_PROXIED.contains(&c.as_str()) && c.as_str() != CAP_COVERAGE)
        .collect();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(e.key.to_string()));
    put("created", json!(en.created));
    put("updated", json!(en.updated));
    put("entity_name", json!(en.entity_name));
    put("entity_abbreviation", json!(en.entity_abbreviation));
    put("country", json!(en.country));
    put("name", json!(en.name));
    if let Some(d) = &en.description {
        put("description", json!(d));
    }
    put("type", json!(en.kind));
    put("role", json!("aggregator"));
    put("infrastructure_types", json!(en.infrastructure_types));
    put("commodity_types", json!(en.commodity_types));
    put("capabilities", json!(capabilities));
    if let (Some(map), Some(ct)) = (absolute(&en.map_resource), &en.map_content_type) {
        put("map_resource", json!(map));
        put("map_content_type", json!(ct));
    }
    let geojson = match &e.territory {
        Some(_) => cfg
            .base()
            .map(|b| format!("{b}/v1/coverage/{}/geometry", e.key)),
        None => absolute(&en.geojson_resource).map(str::to_owned),
    };
    if let Some(g) = geojson {
        put("geojson_resource", json!(g));
    }
    put(
        ORIGIN_FIELD,
        serde_json::to_value(origin).unwrap_or(Value::Null),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        for c in [
            Cursor {
                before: false,
                updated_us: 1_700_000_000_000_000,
                key: 42,
            },
            Cursor {
                before: true,
                updated_us: -5,
                key: 0,
            },
        ] {
            assert_eq!(Cursor::parse(&c.text()), Some(c));
        }
        for bad in ["", "x1.2", "a1", "a.2", "a1.x", "b1.2.3"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_enabled_publish_needs_a_base_url_or_a_specific_address() {
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut c = PublishConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(c.check(any).unwrap_err().to_string().contains("base_url"));
        c.check(local).unwrap();
        assert_eq!(
            c.at(local).metadata_url().unwrap(),
            "http://127.0.0.1:8080/.well-known/cds-server-metadata.json"
        );
        assert_eq!(c.at(any).metadata_url(), None);
        c.base_url = Some(Url::parse("ftp://x/").unwrap());
        assert!(c.check(local).is_err());
        c.base_url = Some(Url::parse("https://registry.example/").unwrap());
        c.check(any).unwrap();
        assert_eq!(
            c.at(local).base_url,
            c.base_url,
            "a configured base_url wins"
        );
        assert_eq!(
            c.metadata_url().unwrap(),
            "https://registry.example/.well-known/cds-server-metadata.json"
        );
        assert_eq!(
            c.coverage_url().unwrap(),
            "https://registry.example/v1/cds/coverage"
        );
        c.enabled = false;
        assert_eq!(c.metadata_url(), None, "off: nothing is published");
    }
}
