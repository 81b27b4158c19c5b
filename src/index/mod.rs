//! The in-memory search index: every query of the HTTP API is answered from here, never by
//! scanning SQL (DESIGN.md). Pure data structures, no I/O, except in [`live`], which keeps
//! the served index current from the store.
//!
//! A [`SearchIndex`] is built once from all current coverage entries
//! ([`SearchIndex::build`]), is immutable afterwards, and is `Send + Sync`, so the API can
//! share it as an `Arc` and swap in a rebuilt one atomically after each crawl.
//!
//! Entries are addressed by their *position* (`usize`, `0..len()`), positions are ordered
//! by [`IndexEntry::key`], so "sorted by position" is "sorted by key".
//!
//! Queries:
//! - [`SearchIndex::search`]: entries matching a [`Filter`], by key;
//! - [`SearchIndex::lookup`] / [`SearchIndex::lookup_batch`] /
//!   [`SearchIndex::lookup_batch_csr`]: who serves a point, ranked (see [`SearchIndex::lookup`]);
//! - [`SearchIndex::intersecting`]: entries whose territory intersects a geometry, ranked;
//! - [`SearchIndex::facets`], [`SearchIndex::entities`]: counts and grouping under a filter;
//! - [`SearchIndex::territory_of`]: a territory by entry key.
//!
//! Structures: posting lists per enum value (`postings.rs`), folded name strings for `q`
//! (`text.rs`), and per polygon *part* of every territory a bounding box in an rstar
//! R-tree, a cell list in a two-level grid for points (`grid.rs`) and an exact
//! point-in-polygon test (`pip.rs`: geo's interval tree for large parts, packed rings for
//! small ones).
//! Indexing parts rather than territories keeps antimeridian territories exact and cheap.
//!
//! Filter semantics (DESIGN.md, HTTP API): OR within one field's values, AND across
//! fields. Values of the enum-like fields are compared case-insensitively (country codes
//! uppercased, the rest lowercased, both trimmed); values outside the spec's enums are
//! indexed like any other. An empty list (or one of only blank strings) does not filter.

mod build;
mod facets;
mod grid;
pub mod live;
pub mod pip;
mod postings;
mod slot;
mod spatial;
pub mod text;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use geo::{Geometry, MultiPolygon};

use crate::cds::CoverageEntry;
pub use build::IndexBuilder;
pub use facets::{EntityGroup, FacetCount, Facets};
use postings::{intersect, Field};
pub use slot::{id_hash as entry_id_hash, plain_in_json, EntryRef, RowFields};
use spatial::{Bbox, Spatial};
pub use spatial::{OverBudget, WorkBudget};

/// One coverage entry as the index needs it: the entry, the server offering it, its
/// territory and the OAuth scopes offered for it.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// Stable database row id of the coverage entry; the order of results. Keys should be
    /// distinct ([`SearchIndex::territory_of`] finds one entry per key).
    pub key: i64,
    pub server_id: i64,
    /// The server's metadata URL and name: one shared copy for all of a server's entries
    /// (an aggregator has 100,000 of them).
    pub server_url: Arc<str>,
    pub server_name: Arc<str>,
    pub entry: CoverageEntry,
    /// Territories with the same id are indexed once (so are entries sharing one `Arc`).
    pub territory_id: Option<i64>,
    /// The territory, rings oriented (as [`crate::territory::parse_territory`] returns it).
    /// `None` for logical entries: they never match a point, a box or a geometry.
    pub territory: Option<Arc<MultiPolygon<f64>>>,
    /// OAuth scopes offered for this entry (may be empty): their ids.
    pub scopes: Vec<String>,
    /// The `type`s of those scopes (WG1-02 §3.4), distinct. `Filter::scope` matches an
    /// id or a type: clients MUST match scopes by type, ids are arbitrary (§3.3).
    pub scope_types: Vec<String>,
    /// What the API shows about OAuth for this entry (WG1-02 §3: the server's
    /// registration links, the scopes offered here with their descriptions), so a search
    /// row needs no database read. `None` when the server has no OAuth metadata; the
    /// index itself never looks at it.
    pub oauth: Option<Arc<crate::cds::oauth::OAuthOffer>>,
}

/// A search filter; `Default` matches everything. See the module docs for the semantics.
#[derive(Default, Clone, Debug)]
pub struct Filter {
    pub country: Vec<String>,
    pub commodity: Vec<String>,
    pub capability: Vec<String>,
    pub infrastructure: Vec<String>,
    pub role: Vec<String>,
    /// The entry's `type`.
    pub kind: Vec<String>,
    /// A scope offered for the entry, by id or by `type` (WG1-02 §3.3).
    pub scope: Vec<String>,
    /// Text in `entity_name`, `entity_abbreviation` or the entry `name`: case- and
    /// accent-insensitive; every whitespace/punctuation-separated token must occur as a
    /// substring (`montreal` finds "Montréal", `hydro queb` finds "Hydro-Québec").
    pub q: Option<String>,
    /// `(lon, lat)`: the point lies strictly inside the entry's territory.
    pub point: Option<(f64, f64)>,
    /// `[min_lon, min_lat, max_lon, max_lat]`: the bounding box of a part of the entry's
    /// territory intersects this box. `min_lon > max_lon` means a box across the
    /// antimeridian; NaN or `min_lat > max_lat` matches nothing.
    pub bbox: Option<[f64; 4]>,
}

/// The enum-like fields, in the order of `SearchIndex::fields`.
const COUNTRY: usize = 0;
const COMMODITY: usize = 1;
const CAPABILITY: usize = 2;
const INFRASTRUCTURE: usize = 3;
const ROLE: usize = 4;
const KIND: usize = 5;
/// Scope ids (the `scope` facet).
const SCOPE: usize = 6;
/// Scope types (the `scope_type` facet).
const SCOPE_TYPE: usize = 7;
/// Scope ids and types together: what `Filter::scope` matches, one posting list per
/// value so the filter stays a plain union. Not a facet.
const SCOPE_MATCH: usize = 8;
/// The fields counted by [`SearchIndex::facets`]: all but `SCOPE_MATCH`.
const NFACETS: usize = 8;
const NFIELDS: usize = 9;

fn norm_country(s: &str) -> String {
    s.trim().to_uppercase()
}

fn norm_value(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Filter {
    fn values(&self, field: usize) -> &[String] {
        match field {
            COUNTRY => &self.country,
            COMMODITY => &self.commodity,
            CAPABILITY => &self.capability,
            INFRASTRUCTURE => &self.infrastructure,
            ROLE => &self.role,
            KIND => &self.kind,
            SCOPE_MATCH => &self.scope,
            // Facet-only fields: the `scope` filter goes through SCOPE_MATCH.
            _ => &[],
        }
    }
}

/// A filter resolved against one index: value ids instead of strings.
struct Query {
    /// `(field, sorted value ids)` for every constrained field.
    fields: Vec<(usize, Vec<u32>)>,
    tokens: Vec<String>,
    point: Option<(f64, f64)>,
    bbox: Option<Bbox>,
    /// Some constraint can match nothing (only unknown values, an invalid box).
    nothing: bool,
}

impl Query {
    fn is_trivial(&self) -> bool {
        !self.nothing
            && self.fields.is_empty()
            && self.tokens.is_empty()
            && self.point.is_none()
            && self.bbox.is_none()
    }
}

/// Per-point lookup results in compressed sparse row form: the hits of point `i` are
/// `hits[offsets[i] as usize..offsets[i + 1] as usize]` (entry positions, ranked).
/// One allocation for a whole batch instead of one per point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchHits {
    pub offsets: Vec<u32>,
    pub hits: Vec<u32>,
}

impl BatchHits {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ranked entry positions for point `i`.
    pub fn get(&self, i: usize) -> &[u32] {
        &self.hits[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// The immutable search index. See the module docs.
pub struct SearchIndex {
    /// By key: each entry with its folded names and entity key.
    entries: Vec<Arc<slot::Slot>>,
    fields: [Field; NFIELDS],
    /// Per entry: its territory id, `u32::MAX` for none.
    entry_terr: Vec<u32>,
    /// Per territory: the *ranks* of its entries, ascending (CSR).
    terr_offsets: Vec<u32>,
    terr_ranks: Vec<u32>,
    /// Entry position -> rank in the lookup order, and back.
    rank: Vec<u32>,
    by_rank: Vec<u32>,
    spatial: Spatial,
    /// Territory key -> territory id: lets [`SearchIndex::update`] find the territories it
    /// can reuse.
    terr_of_key: foldhash::HashMap<build::TerrKey, u32>,
    /// Per entry: a better copy of the same entry is indexed, so no query returns this one
    /// (`None`: no entry is hidden). See `build::shadowed` and DESIGN.md, "Federation".
    hidden: Option<Vec<bool>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("entries", &self.entries.len())
            .field("territories", &self.spatial.terrs.len())
            .field("parts", &self.spatial.parts.len())
            .finish()
    }
}

const NO_TERR: u32 = u32::MAX;

impl SearchIndex {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at position `i` (panics when out of range).
    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        EntryRef(&self.entries[i])
    }

    /// The key of the entry at position `i` (panics when out of range).
    pub fn key(&self, i: usize) -> i64 {
        self.entries[i].key
    }

    /// All entries, by key.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + Clone {
        self.entries.iter().map(|s| EntryRef(s))
    }

    /// Position of the entry with this key.
    pub fn position(&self, key: i64) -> Option<usize> {
        self.entries.binary_search_by_key(&key, |s| s.key).ok()
    }

    /// The territory of the entry with this key (`None`: no such key, or a logical entry).
    pub fn territory_of(&self, key: i64) -> Option<&Arc<MultiPolygon<f64>>> {
        self.entry(self.position(key)?).territory()
    }

    /// Unsigned planar area (square degrees) of entry `i`'s territory, the lookup's
    /// tie-breaker after role.
    pub fn territory_area(&self, i: usize) -> Option<f64> {
        match self.entry_terr[i] {
            NO_TERR => None,
            t => Some(self.spatial.terrs[t as usize].area),
        }
    }

    /// Is entry `i` hidden by a better copy of the same entry (DESIGN.md, "Federation")?
    /// A hidden entry keeps its key and position (its geometry stays reachable) but no
    /// search, lookup or facet returns or counts it.
    pub fn is_hidden(&self, i: usize) -> bool {
        self.hidden.as_ref().is_some_and(|h| h[i])
    }

    fn terr_ranks(&self, t: u32) -> &[u32] {
        &self.terr_ranks
            [self.terr_offsets[t as usize] as usize..self.terr_offsets[t as usize + 1] as usize]
    }

    fn compile(&self, f: &Filter) -> Query {
        let mut q = Query {
            fields: Vec::new(),
            tokens: f.q.as_deref().map(text::query_tokens).unwrap_or_default(),
            point: f.point,
            bbox: None,
            nothing: false,
        };
        for field in 0..NFIELDS {
            let values = f.values(field);
            // Most requests constrain no field or one: skip the others before any
            // iterator or vector is set up (a lookup compiles its filter every call).
            if values.is_empty() {
                continue;
            }
            let norm = if field == COUNTRY {
                norm_country
            } else {
                norm_value
            };
            let wanted: Vec<String> = values
                .iter()
                .map(|v| norm(v))
                .filter(|v| !v.is_empty())
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let mut ids: Vec<u32> = wanted
                .iter()
                .filter_map(|v| self.fields[field].id_of(v))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            q.nothing |= ids.is_empty();
            q.fields.push((field, ids));
        }
        if let Some(b) = f.bbox {
            match Bbox::new(b) {
                Some(b) => q.bbox = Some(b),
                None => q.nothing = true,
            }
        }
        if let Some((x, y)) = f.point {
            q.nothing |= !(x.is_finite() && y.is_finite());
        }
        q
    }

    fn has_any(&self, field: usize, i: usize, ids: &[u32]) -> bool {
        self.fields[field]
            .entry_values(i)
            .iter()
            .any(|v| ids.binary_search(v).is_ok())
    }

    fn text_matches(&self, i: usize, tokens: &[String]) -> bool {
        // A hidden entry's names match nothing, as its field values do.
        tokens.is_empty()
            || (!self.is_hidden(i)
                && tokens
                    .iter()
                    .all(|t| self.entries[i].text().contains(t.as_str())))
    }

    /// Does entry `i` satisfy every part of `q`? (For small candidate sets; `search` uses
    /// the posting lists instead.)
    fn matches(&self, i: usize, q: &Query) -> bool {
        if q.nothing {
            return false;
        }
        if !q.fields.iter().all(|(f, ids)| self.has_any(*f, i, ids))
            || !self.text_matches(i, &q.tokens)
        {
            return false;
        }
        if q.point.is_none() && q.bbox.is_none() {
            return true;
        }
        let t = self.entry_terr[i];
        if t == NO_TERR {
            return false;
        }
        q.point
            .is_none_or(|(x, y)| self.spatial.territory_contains(t, x, y))
            && q.bbox
                .as_ref()
                .is_none_or(|b| self.spatial.territory_meets_bbox(t, b))
    }

    /// Entry positions of the given territories, sorted by position and distinct.
    fn entries_of_terrs(&self, mut terrs: Vec<u32>) -> Vec<u32> {
        terrs.sort_unstable();
        terrs.dedup();
        let mut out: Vec<u32> = terrs
            .iter()
            .flat_map(|&t| self.terr_ranks(t).iter().map(|&r| self.by_rank[r as usize]))
            .collect();
        out.sort_unstable();
        out
    }

    /// Entry positions matching `filter`, ascending (= by key). Enum fields are answered
    /// from posting lists (union within a field, intersection across fields), `point` and
    /// `bbox` from the R-tree, `q` by scanning the remaining candidates' folded names.
    pub fn search(&self, filter: &Filter) -> Vec<usize> {
        let q = self.compile(filter);
        self.search_query(&q)
            .into_iter()
            .map(|i| i as usize)
            .collect()
    }

    fn search_query(&self, q: &Query) -> Vec<u32> {
        if q.nothing {
            return Vec::new();
        }
        let n = self.entries.len();
        // `None` = every entry is still a candidate.
        let mut cand: Option<Vec<u32>> = None;
        if let Some((x, y)) = q.point {
            let mut terrs = Vec::new();
            self.spatial.territories_at(x, y, |t| terrs.push(t));
            cand = Some(self.entries_of_terrs(terrs));
        }
        // Most selective field first, so later intersections are cheap.
        let mut fields: Vec<(usize, &[u32], usize)> = q
            .fields
            .iter()
            .map(|(f, ids)| {
                let size = ids
                    .iter()
                    .map(|&id| self.fields[*f].postings[id as usize].len())
                    .sum();
                (*f, ids.as_slice(), size)
            })
            .collect();
        fields.sort_by_key(|&(_, _, size)| size);
        for (f, ids, size) in fields {
            cand = Some(match cand {
                // A handful of candidates: checking each is cheaper than a union.
                Some(mut c) if c.len() * 8 < size => {
                    c.retain(|&i| self.has_any(f, i as usize, ids));
                    c
                }
                Some(c) => intersect(&c, &self.fields[f].union(ids, n)),
                None => self.fields[f].union(ids, n),
            });
            if cand.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        if let Some(b) = &q.bbox {
            cand = Some(match cand {
                Some(mut c) => {
                    c.retain(|&i| {
                        let t = self.entry_terr[i as usize];
                        t != NO_TERR && self.spatial.territory_meets_bbox(t, b)
                    });
                    c
                }
                None => {
                    let mut terrs = Vec::new();
                    self.spatial.territories_meeting_bbox(b, &mut terrs);
                    self.entries_of_terrs(terrs)
                }
            });
        }
        let mut out = cand.unwrap_or_else(|| match &self.hidden {
            None => (0..n as u32).collect(),
            // Hidden entries have no values and no territory ranks, so every other path
            // already leaves them out; "everything" must too.
            Some(h) => (0..n as u32).filter(|&i| !h[i as usize]).collect(),
        });
        if !q.tokens.is_empty() {
            out.retain(|&i| self.text_matches(i as usize, &q.tokens));
        }
        out
    }

    /// Ranks -> ranked entry positions that also match `q`.
    fn ranked(&self, mut ranks: Vec<u32>, q: &Query) -> Vec<usize> {
        ranks.sort_unstable();
        ranks.dedup();
        let trivial = q.is_trivial();
        ranks
            .into_iter()
            .map(|r| self.by_rank[r as usize] as usize)
            .filter(|&i| trivial || self.matches(i, q))
            .collect()
    }

    /// Who serves the point `(lon, lat)`: entries whose territory strictly contains it and
    /// that match `filter`, ranked: role `authoritative`, `official`, `aggregator`, then
    /// any other role; within a role the smallest territory (unsigned planar area) first;
    /// then by key. A point exactly on a boundary may match either side, or neither.
    /// Every part of `filter` applies, its own `point` and `bbox` too (AND).
    pub fn lookup(&self, lon: f64, lat: f64, filter: &Filter) -> Vec<usize> {
        let q = self.compile(filter);
        if q.nothing {
            return Vec::new();
        }
        let mut ranks = Vec::new();
        self.spatial
            .territories_at(lon, lat, |t| ranks.extend_from_slice(self.terr_ranks(t)));
        self.ranked(ranks, &q)
    }

    /// [`SearchIndex::lookup`] for many `[lon, lat]` points, one ranked list per point.
    /// Prefer [`SearchIndex::lookup_batch_csr`] for large batches (no allocation per point).
    pub fn lookup_batch(&self, points: &[[f64; 2]], filter: &Filter) -> Vec<Vec<usize>> {
        let b = self.lookup_batch_csr(points, filter);
        (0..b.len())
            .map(|i| b.get(i).iter().map(|&h| h as usize).collect())
            .collect()
    }

    /// [`SearchIndex::lookup`] for many `[lon, lat]` points in one pass, as flat arrays.
    /// The filter is resolved once into a bitmap over ranks, so a filtered batch costs
    /// about as much per point as an unfiltered one.
    pub fn lookup_batch_csr(&self, points: &[[f64; 2]], filter: &Filter) -> BatchHits {
        self.lookup_batch_csr_within(points, filter, None)
            .expect("no deadline, never over budget")
    }

    /// [`SearchIndex::lookup_batch_csr`] that stops with [`OverBudget::Time`] once
    /// `deadline` has passed (checked every 1,024 points).
    pub fn lookup_batch_csr_within(
        &self,
        points: &[[f64; 2]],
        filter: &Filter,
        deadline: Option<std::time::Instant>,
    ) -> Result<BatchHits, OverBudget> {
        let q = self.compile(filter);
        let mut offsets = Vec::with_capacity(points.len() + 1);
        offsets.push(0u32);
        if q.nothing {
            offsets.resize(points.len() + 1, 0);
            return Ok(BatchHits {
                offsets,
                hits: Vec::new(),
            });
        }
        let allowed: Option<Vec<u64>> = (!q.is_trivial()).then(|| {
            let mut bits = vec![0u64; self.entries.len().div_ceil(64)];
            for i in self.search_query(&q) {
                let r = self.rank[i as usize];
                bits[r as usize / 64] |= 1 << (r % 64);
            }
            bits
        });
        let mut hits: Vec<u32> = Vec::with_capacity(points.len());
        for (n, &[x, y]) in points.iter().enumerate() {
            if n % 1024 == 1023 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(OverBudget::Time);
            }
            let start = hits.len();
            self.spatial.territories_at(x, y, |t| {
                let rs = self.terr_ranks(t);
                match &allowed {
                    None => hits.extend_from_slice(rs),
                    Some(bits) => hits.extend(
                        rs.iter()
                            .filter(|&&r| bits[r as usize / 64] & (1 << (r % 64)) != 0),
                    ),
                }
            });
            let mine = &mut hits[start..];
            if mine.len() > 1 {
                mine.sort_unstable();
                // Overlapping parts of one territory can report it twice.
                let mut n = 1;
                for j in 1..mine.len() {
                    if mine[j] != mine[n - 1] {
                        mine[n] = mine[j];
                        n += 1;
                    }
                }
                hits.truncate(start + n);
            }
            for h in &mut hits[start..] {
                *h = self.by_rank[*h as usize];
            }
            offsets.push(hits.len() as u32);
        }
        Ok(BatchHits { offsets, hits })
    }

    /// Entries whose territory intersects `geometry` (exactly, boundaries touching count)
    /// and that match `filter`, ranked like [`SearchIndex::lookup`].
    pub fn intersecting(&self, geometry: &Geometry<f64>, filter: &Filter) -> Vec<usize> {
        self.intersecting_within(geometry, filter, &WorkBudget::UNLIMITED)
            .expect("an unlimited budget is never exceeded")
    }

    /// [`SearchIndex::intersecting`] that gives up once `budget` is spent (the API's
    /// geometry lookups: an untrusted geometry must not cost unbounded CPU).
    pub fn intersecting_within(
        &self,
        geometry: &Geometry<f64>,
        filter: &Filter,
        budget: &WorkBudget,
    ) -> Result<Vec<usize>, OverBudget> {
        let q = self.compile(filter);
        if q.nothing {
            return Ok(Vec::new());
        }
        let mut terrs = Vec::new();
        self.spatial
            .territories_intersecting(geometry, budget, &mut terrs)?;
        terrs.sort_unstable();
        terrs.dedup();
        let ranks = terrs
            .iter()
            .flat_map(|&t| self.terr_ranks(t).iter().copied())
            .collect();
        Ok(self.ranked(ranks, &q))
    }
}

// The API shares one index between request handlers and swaps it after each crawl.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SearchIndex>();
};
