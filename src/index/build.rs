//! Building an index from entries, and the next snapshot from an earlier one
//! ([`SearchIndex::update`]), in named steps: the distinct territories, the entries'
//! normalised values, the spatial structures, the lookup order.

use std::collections::HashMap;
use std::sync::Arc;

use geo::MultiPolygon;

use super::postings::Field;
use super::slot::{at, EntryRef, List, Slot};
use super::spatial::Spatial;
use super::*;

/// Role order of the lookup ranking: the spec's roles by authority, anything else last.
fn role_rank(role: &str) -> u8 {
    match role {
        "authoritative" => 0,
        "official" => 1,
        "aggregator" => 2,
        _ => 3,
    }
}

/// No old position: the entry is new in [`SearchIndex::update`].
const NEW: u32 = u32::MAX;

/// The slot of a new entry: its values packed, its lookup rank computed once.
fn slot(e: IndexEntry) -> Arc<Slot> {
    let rank = role_rank(&ranking_role(&e));
    Slot::new(e, rank)
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
pub(super) enum TerrKey {
    Id(i64),
    Ptr(usize),
}

impl SearchIndex {
    /// Build the index. Entries are reordered by key (stable for equal keys). Cost is
    /// linear in entries plus territory vertices (the 3,231 US counties: a few ms).
    pub fn build(mut entries: Vec<IndexEntry>) -> SearchIndex {
        entries.sort_by_key(|e| e.key);
        // Not `into_iter().map().collect()`: that reuses the entries' buffer in place, and
        // an `IndexEntry` (632 bytes) is 79 times the size of an `Arc`, so the index kept
        // 78 MiB of spare capacity per 100,000 entries (docs/PERFORMANCE.md).
        let mut builder = IndexBuilder::with_capacity(entries.len());
        for e in entries {
            builder.push(e);
        }
        builder.build()
    }
}

/// [`SearchIndex::build`] for entries that arrive one at a time (an API replica's load
/// from the store): each is packed into its slot as it comes, so the entry's own strings
/// are freed before the next one is made and the index's long-lived data is not
/// interleaved on the heap with 100,000 short-lived entries.
#[derive(Default)]
pub struct IndexBuilder {
    slots: Vec<Arc<Slot>>,
}

impl IndexBuilder {
    pub fn with_capacity(n: usize) -> IndexBuilder {
        IndexBuilder {
            slots: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, e: IndexEntry) {
        self.slots.push(slot(e));
    }

    /// The index of the entries pushed, ordered by key (stable for equal keys, as
    /// [`SearchIndex::build`]).
    pub fn build(mut self) -> SearchIndex {
        if !self.slots.is_sorted_by_key(|s| s.key) {
            self.slots.sort_by_key(|s| s.key);
        }
        self.slots.shrink_to_fit();
        SearchIndex::assemble(self.slots, None)
    }
}

impl SearchIndex {
    /// The next snapshot: this index without the entries `drop` selects, plus `added`
    /// (an added entry with the key of a kept one comes after it, as in a build from
    /// kept ++ added). Its answers equal those of [`SearchIndex::build`] on the same
    /// entries, but the work is proportional to the change, not the index: unchanged
    /// territories keep their polygon parts and exact-test data (shared, not copied), the
    /// point grid is recomputed only in the cells met by parts that came or went, and kept
    /// entries are shared with this index (their normalised values and folded names
    /// too). What remains linear in the index is integer and memory work
    /// (reference counts, posting lists, ranks, the grid copy, bulk-loading the R-tree of
    /// part boxes), no vertex or string is read again.
    ///
    /// A territory is reused when the new entry's territory is the same `Arc`, or has the
    /// same `territory_id` and equal coordinates (an API replica reads changed servers'
    /// rows again and decodes fresh copies of territories it already has).
    pub fn update(
        &self,
        drop: impl Fn(EntryRef<'_>) -> bool,
        mut added: Vec<IndexEntry>,
    ) -> SearchIndex {
        added.sort_by_key(|e| e.key);
        let mut entries = Vec::with_capacity(self.entries.len() + added.len());
        let mut old_pos = Vec::with_capacity(self.entries.len() + added.len());
        let mut added = added.into_iter().peekable();
        for (i, e) in self.entries.iter().enumerate() {
            if drop(EntryRef(e)) {
                continue;
            }
            while let Some(a) = added.next_if(|a| a.key < e.key) {
                entries.push(slot(a));
                old_pos.push(NEW);
            }
            entries.push(Arc::clone(e));
            old_pos.push(i as u32);
        }
        for a in added {
            entries.push(slot(a));
            old_pos.push(NEW);
        }
        SearchIndex::assemble(entries, Some((self, &old_pos)))
    }

    /// [`SearchIndex::build`] of entries already sorted by key; with `prev`, reusing what
    /// the earlier index has (`old_pos[i]`: entry `i`'s position there, or `NEW`).
    pub(super) fn assemble(
        entries: Vec<Arc<Slot>>,
        prev: Option<(&SearchIndex, &[u32])>,
    ) -> SearchIndex {
        assert!(
            entries.len() < u32::MAX as usize,
            "too many entries for u32 positions"
        );
        let terrs = Territories::of(&entries, prev.map(|(old, _)| old));
        let hidden = shadowed(&entries);
        let values = Values::of(&entries, prev, hidden.as_deref());
        let spatial = match prev {
            Some((old, _)) => old.spatial.update(terrs.geoms, &terrs.old_terr),
            None => Spatial::build(terrs.geoms),
        };
        let order = lookup_order(&entries, &terrs.entry_terr, &spatial, prev);
        let mut rank = vec![0u32; entries.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let (terr_offsets, terr_ranks) = ranks_by_territory(
            &terrs.entry_terr,
            &order,
            spatial.terrs.len(),
            hidden.as_deref(),
        );
        SearchIndex {
            entries,
            fields: values.fields,
            entry_terr: terrs.entry_terr,
            terr_offsets,
            terr_ranks,
            rank,
            by_rank: order,
            spatial,
            terr_of_key: terrs.of_key,
            hidden,
        }
    }
}

/// The distinct territories of a list of entries.
///
/// Keyed with foldhash, not SipHash: the keys are our own ids and addresses, and SipHash,
/// here and in the catch-up's filter (`live::reread`), one hash per entry each, was ~9 % of
/// a replica's catch-up CPU at 100,000 entries (docs/PERFORMANCE.md, "Catch-up").
struct Territories {
    /// Per entry: its territory id, `NO_TERR` for none.
    entry_terr: Vec<u32>,
    of_key: foldhash::HashMap<TerrKey, u32>,
    /// Per territory id: the geometry.
    geoms: Vec<Arc<MultiPolygon<f64>>>,
    /// Per territory id: the earlier index's territory with the same geometry, or
    /// `u32::MAX`.
    old_terr: Vec<u32>,
}

impl Territories {
    /// Territories with the same id, or the same `Arc`, are one.
    fn of(entries: &[Arc<Slot>], prev: Option<&SearchIndex>) -> Territories {
        let mut t = Territories {
            entry_terr: Vec::with_capacity(entries.len()),
            of_key: foldhash::HashMap::with_capacity_and_hasher(entries.len(), Default::default()),
            geoms: Vec::new(),
            old_terr: Vec::new(),
        };
        for e in entries {
            let terr = match &e.territory {
                None => NO_TERR,
                Some(g) => t.id_of(e.territory_id, g, prev),
            };
            t.entry_terr.push(terr);
        }
        t
    }

    fn id_of(
        &mut self,
        id: Option<i64>,
        g: &Arc<MultiPolygon<f64>>,
        prev: Option<&SearchIndex>,
    ) -> u32 {
        let k = match id {
            Some(id) => TerrKey::Id(id),
            None => TerrKey::Ptr(Arc::as_ptr(g) as usize),
        };
        *self.of_key.entry(k).or_insert_with(|| {
            self.geoms.push(Arc::clone(g));
            let reuse = prev.and_then(|old| {
                let o = *old.terr_of_key.get(&k)?;
                let og = &old.spatial.terrs[o as usize].geom;
                (Arc::ptr_eq(og, g) || **og == **g).then_some(o)
            });
            self.old_terr.push(reuse.unwrap_or(u32::MAX));
            (self.geoms.len() - 1) as u32
        })
    }
}

/// The entries' normalised field values.
struct Values {
    fields: [Field; NFIELDS],
}

impl Values {
    /// Kept entries (`old_pos[i] != NEW`) copy theirs from `prev`; the others are
    /// normalised afresh. A `hidden` entry (a copy shadowed by a better one) gets no
    /// values, so no filter and no facet finds it; a kept entry that was hidden before
    /// and is not now is normalised afresh.
    fn of(
        entries: &[Arc<Slot>],
        prev: Option<(&SearchIndex, &[u32])>,
        hidden: Option<&[bool]>,
    ) -> Values {
        let mut v = Values {
            fields: std::array::from_fn(|_| Field::new()),
        };
        // Per field: old value id -> new value id, filled as values are copied.
        let mut remap: Vec<Vec<u32>> = match prev {
            Some((old, _)) => old
                .fields
                .iter()
                .map(|f| vec![u32::MAX; f.values.len()])
                .collect(),
            None => Vec::new(),
        };
        for (i, e) in entries.iter().enumerate() {
            if hidden.is_some_and(|h| h[i]) {
                v.push_hidden();
                continue;
            }
            match prev {
                Some((old, old_pos))
                    if old_pos[i] != NEW && !old.is_hidden(old_pos[i] as usize) =>
                {
                    v.copy(old, old_pos[i] as usize, &mut remap)
                }
                _ => v.push(e),
            }
        }
        v
    }

    /// No values at all: the entry exists (by key and position) but matches nothing.
    fn push_hidden(&mut self) {
        for field in &mut self.fields {
            field.push_entry(std::iter::empty());
        }
    }

    fn copy(&mut self, old: &SearchIndex, o: usize, remap: &mut [Vec<u32>]) {
        for (f, field) in self.fields.iter_mut().enumerate() {
            field.push_entry_from(&old.fields[f], o, &mut remap[f]);
        }
    }

    fn push(&mut self, e: &Slot) {
        let fields = &mut self.fields;
        fields[COUNTRY].push_entry([norm_country(e.str(at::COUNTRY))]);
        fields[COMMODITY].push_entry(e.list(List::Commodity).map(norm_value));
        fields[CAPABILITY].push_entry(e.list(List::Capability).map(norm_value));
        fields[INFRASTRUCTURE].push_entry(e.list(List::Infrastructure).map(norm_value));
        fields[ROLE].push_entry([norm_value(e.str(at::ROLE))]);
        fields[KIND].push_entry([norm_value(e.str(at::KIND))]);
        fields[SCOPE].push_entry(norm_all(e.scopes()));
        fields[SCOPE_TYPE].push_entry(norm_all(e.scope_types()));
        fields[SCOPE_MATCH].push_entry(
            e.scopes()
                .iter()
                .chain(e.scope_types())
                .map(|s| norm_value(s)),
        );
    }
}

fn norm_all(v: &[String]) -> impl Iterator<Item = String> + '_ {
    v.iter().map(|s| norm_value(s))
}

/// The role an entry ranks by: a registry's copy ranks by the role its origin gave it
/// (the copy itself says `aggregator`), so a registry answers in the order of the ones it
/// federates (DESIGN.md, "Federation").
fn ranking_role(e: &IndexEntry) -> String {
    match &e.entry.origin {
        Some(o) if !o.role.trim().is_empty() => norm_value(&o.role),
        _ => norm_value(&e.entry.role),
    }
}

/// Entry positions in lookup order: role, then the smallest (most specific) territory,
/// then the fewest registries between the entry and its origin (an original before its
/// copies), then key.
///
/// With `prev` (an update), the earlier index's order of the kept entries is merged with
/// the sorted new ones instead of sorting all: a kept entry keeps its slot and territory,
/// so its keys are the same and its relative order too (positions move, but in the same
/// order). The full sort was ~2 % of a replica's catch-up at 100,000 entries. Should the
/// kept entries come out of order all the same (two territories of one id with different
/// geometry), the order is sorted afresh.
fn lookup_order(
    entries: &[Arc<Slot>],
    entry_terr: &[u32],
    spatial: &Spatial,
    prev: Option<(&SearchIndex, &[u32])>,
) -> Vec<u32> {
    type Key = (u8, f64, u32, u32);
    // The keys side by side, read once: a comparison reading them through each entry's
    // `Arc` and territory missed the cache at every step of the sort.
    let keyed: Vec<Key> = entries
        .iter()
        .zip(entry_terr)
        .enumerate()
        .map(|(i, (e, &t))| {
            let area = match t {
                NO_TERR => f64::INFINITY,
                t => spatial.terrs[t as usize].area,
            };
            (e.order.0, area, e.order.1, i as u32)
        })
        .collect();
    // The position breaks every tie, so an unstable sort gives the one order.
    let cmp = |a: &Key, b: &Key| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    };
    let sort_all = |mut keyed: Vec<Key>| {
        keyed.sort_unstable_by(cmp);
        keyed.into_iter().map(|k| k.3).collect()
    };
    let Some((old, old_pos)) = prev else {
        return sort_all(keyed);
    };
    let mut new_of_old = vec![u32::MAX; old.entries.len()];
    let mut added: Vec<Key> = Vec::new();
    for (i, &o) in old_pos.iter().enumerate() {
        if o == NEW {
            added.push(keyed[i]);
        } else {
            new_of_old[o as usize] = i as u32;
        }
    }
    added.sort_unstable_by(cmp);
    let mut added = added.into_iter().peekable();
    let mut order = Vec::with_capacity(entries.len());
    let mut last: Option<&Key> = None;
    for &o in &old.by_rank {
        let i = new_of_old[o as usize];
        if i == u32::MAX {
            continue;
        }
        let k = &keyed[i as usize];
        if last.is_some_and(|l| cmp(l, k).is_ge()) {
            return sort_all(keyed);
        }
        last = Some(k);
        while let Some(a) = added.next_if(|a| cmp(a, k).is_lt()) {
            order.push(a.3);
        }
        order.push(i);
    }
    order.extend(added.map(|a| a.3));
    order
}

/// Per entry: whether a better copy of the same entry is indexed (DESIGN.md,
/// "Federation"). Entries are the same when they name the same origin server and id
/// (`cds_registry_origin`; a server's own entry is its own origin); the one shown is the
/// one with the fewest registries between it and its origin, then the lowest key. `None`
/// when no entry is a copy, which is every index without federation: nothing to hide.
pub(super) fn shadowed(entries: &[Arc<Slot>]) -> Option<Vec<bool>> {
    if entries.iter().all(|s| s.origin().is_none()) {
        return None;
    }
    fn origin_of(e: &Slot) -> (&str, &str) {
        match e.origin() {
            Some(o) => (&o.server, &o.id),
            None => (&e.server_url, e.str(at::ID)),
        }
    }
    // Only origins that copies name can have more than one entry: key the map by those.
    let mut best: HashMap<(&str, &str), usize> = entries
        .iter()
        .filter(|e| e.origin().is_some())
        .map(|e| (origin_of(e), usize::MAX))
        .collect();
    let rank = |i: usize| (entries[i].order.1, entries[i].key);
    for (i, e) in entries.iter().enumerate() {
        if let Some(b) = best.get_mut(&origin_of(e)) {
            if *b == usize::MAX || rank(i) < rank(*b) {
                *b = i;
            }
        }
    }
    let mut hidden = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if best.get(&origin_of(e)).is_some_and(|&b| b != i) {
            hidden[i] = true;
        }
    }
    Some(hidden)
}

/// Territory -> ranks of its entries, ascending, in CSR form (offsets, ranks): walking by
/// rank fills each list in order.
/// Hidden entries are left out: no point or geometry finds them.
fn ranks_by_territory(
    entry_terr: &[u32],
    order: &[u32],
    nterr: usize,
    hidden: Option<&[bool]>,
) -> (Vec<u32>, Vec<u32>) {
    let shown = |i: usize| hidden.is_none_or(|h| !h[i]);
    let mut counts = vec![0u32; nterr + 1];
    for (i, &t) in entry_terr.iter().enumerate() {
        if t != NO_TERR && shown(i) {
            counts[t as usize + 1] += 1;
        }
    }
    for t in 0..nterr {
        counts[t + 1] += counts[t];
    }
    let terr_offsets = counts.clone();
    let mut fill = counts;
    let mut terr_ranks = vec![0u32; terr_offsets[nterr] as usize];
    for (r, &i) in order.iter().enumerate() {
        let t = entry_terr[i as usize];
        if t != NO_TERR && shown(i as usize) {
            terr_ranks[fill[t as usize] as usize] = r as u32;
            fill[t as usize] += 1;
        }
    }
    (terr_offsets, terr_ranks)
}
