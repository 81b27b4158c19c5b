//! Building an index from entries, and the next snapshot from an earlier one
//! ([`SearchIndex::update`]), in named steps: the distinct territories, the entries'
//! normalised values, the spatial structures, the lookup order.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use geo::MultiPolygon;

use super::postings::Field;
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
        SearchIndex::assemble(entries, None)
    }

    /// The next snapshot: this index without the entries `drop` selects, plus `added`
    /// (an added entry with the key of a kept one comes after it, as in a build from
    /// kept ++ added). Its answers equal those of [`SearchIndex::build`] on the same
    /// entries, but the work is proportional to the change, not the index: unchanged
    /// territories keep their polygon parts and interval trees (shared, not copied), the
    /// point grid is recomputed only in the cells met by parts that came or went, and kept
    /// entries reuse their normalised values and folded names. What remains linear in the
    /// index is integer and memory work (cloning kept entries, posting lists, ranks, the
    /// grid copy, bulk-loading the R-tree of part boxes), no vertex is read again.
    ///
    /// A territory is reused when the new entry's territory is the same `Arc`, or has the
    /// same `territory_id` and equal coordinates (an API replica reads changed servers'
    /// rows again and decodes fresh copies of territories it already has).
    pub fn update(
        &self,
        drop: impl Fn(&IndexEntry) -> bool,
        mut added: Vec<IndexEntry>,
    ) -> SearchIndex {
        added.sort_by_key(|e| e.key);
        let mut entries = Vec::with_capacity(self.entries.len() + added.len());
        let mut old_pos = Vec::with_capacity(self.entries.len() + added.len());
        let mut added = added.into_iter().peekable();
        for (i, e) in self.entries.iter().enumerate() {
            if drop(e) {
                continue;
            }
            while let Some(a) = added.next_if(|a| a.key < e.key) {
                entries.push(a);
                old_pos.push(NEW);
            }
            entries.push(e.clone());
            old_pos.push(i as u32);
        }
        for a in added {
            entries.push(a);
            old_pos.push(NEW);
        }
        SearchIndex::assemble(entries, Some((self, &old_pos)))
    }

    /// [`SearchIndex::build`] of entries already sorted by key; with `prev`, reusing what
    /// the earlier index has (`old_pos[i]`: entry `i`'s position there, or `NEW`).
    pub(super) fn assemble(
        entries: Vec<IndexEntry>,
        prev: Option<(&SearchIndex, &[u32])>,
    ) -> SearchIndex {
        assert!(
            entries.len() < u32::MAX as usize,
            "too many entries for u32 positions"
        );
        let terrs = Territories::of(&entries, prev.map(|(old, _)| old));
        let values = Values::of(&entries, prev);
        let spatial = match prev {
            Some((old, _)) => old.spatial.update(terrs.geoms, &terrs.old_terr),
            None => Spatial::build(terrs.geoms),
        };
        let order = lookup_order(&entries, &terrs.entry_terr, &spatial);
        let mut rank = vec![0u32; entries.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let (terr_offsets, terr_ranks) =
            ranks_by_territory(&terrs.entry_terr, &order, spatial.terrs.len());
        let n_rendered = entries.len();
        SearchIndex {
            entries,
            fields: values.fields,
            text: values.text,
            entity_keys: values.entity_keys,
            entry_terr: terrs.entry_terr,
            terr_offsets,
            terr_ranks,
            rank,
            by_rank: order,
            spatial,
            terr_of_key: terrs.of_key,
            rendered: (0..n_rendered).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// The distinct territories of a list of entries.
struct Territories {
    /// Per entry: its territory id, `NO_TERR` for none.
    entry_terr: Vec<u32>,
    of_key: HashMap<TerrKey, u32>,
    /// Per territory id: the geometry.
    geoms: Vec<Arc<MultiPolygon<f64>>>,
    /// Per territory id: the earlier index's territory with the same geometry, or
    /// `u32::MAX`.
    old_terr: Vec<u32>,
}

impl Territories {
    /// Territories with the same id, or the same `Arc`, are one.
    fn of(entries: &[IndexEntry], prev: Option<&SearchIndex>) -> Territories {
        let mut t = Territories {
            entry_terr: Vec::with_capacity(entries.len()),
            of_key: HashMap::new(),
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

/// The entries' normalised field values and folded names.
struct Values {
    fields: [Field; NFIELDS],
    text: Vec<String>,
    entity_keys: Vec<(String, String)>,
}

impl Values {
    /// Kept entries (`old_pos[i] != NEW`) copy theirs from `prev`; the others are
    /// normalised afresh.
    fn of(entries: &[IndexEntry], prev: Option<(&SearchIndex, &[u32])>) -> Values {
        let mut v = Values {
            fields: std::array::from_fn(|_| Field::new()),
            text: Vec::with_capacity(entries.len()),
            entity_keys: Vec::with_capacity(entries.len()),
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
            match prev {
                Some((old, old_pos)) if old_pos[i] != NEW => {
                    v.copy(old, old_pos[i] as usize, &mut remap)
                }
                _ => v.push(e),
            }
        }
        v
    }

    fn copy(&mut self, old: &SearchIndex, o: usize, remap: &mut [Vec<u32>]) {
        for (f, field) in self.fields.iter_mut().enumerate() {
            field.push_entry_from(&old.fields[f], o, &mut remap[f]);
        }
        self.text.push(old.text[o].clone());
        self.entity_keys.push(old.entity_keys[o].clone());
    }

    fn push(&mut self, e: &IndexEntry) {
        let c = &e.entry;
        let fields = &mut self.fields;
        fields[COUNTRY].push_entry([norm_country(&c.country)]);
        fields[COMMODITY].push_entry(norm_all(&c.commodity_types));
        fields[CAPABILITY].push_entry(norm_all(&c.capabilities));
        fields[INFRASTRUCTURE].push_entry(norm_all(&c.infrastructure_types));
        fields[ROLE].push_entry([norm_value(&c.role)]);
        fields[KIND].push_entry([norm_value(&c.kind)]);
        fields[SCOPE].push_entry(norm_all(&e.scopes));
        fields[SCOPE_TYPE].push_entry(norm_all(&e.scope_types));
        fields[SCOPE_MATCH]
            .push_entry(e.scopes.iter().chain(&e.scope_types).map(|s| norm_value(s)));

        let mut t = text::search_text(&c.entity_name);
        for extra in [c.entity_abbreviation.as_deref().unwrap_or(""), &c.name] {
            t.push('\n');
            t.push_str(&text::search_text(extra));
        }
        self.text.push(t);
        self.entity_keys
            .push((text::entity_key(&c.entity_name), norm_country(&c.country)));
    }
}

fn norm_all(v: &[String]) -> impl Iterator<Item = String> + '_ {
    v.iter().map(|s| norm_value(s))
}

/// Entry positions in lookup order: role, then the smallest (most specific) territory,
/// then key.
fn lookup_order(entries: &[IndexEntry], entry_terr: &[u32], spatial: &Spatial) -> Vec<u32> {
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    let area = |i: u32| match entry_terr[i as usize] {
        NO_TERR => f64::INFINITY,
        t => spatial.terrs[t as usize].area,
    };
    let roles: Vec<u8> = entries
        .iter()
        .map(|e| role_rank(&norm_value(&e.entry.role)))
        .collect();
    order.sort_by(|&a, &b| {
        roles[a as usize]
            .cmp(&roles[b as usize])
            .then(area(a).total_cmp(&area(b)))
            .then(a.cmp(&b))
    });
    order
}

/// Territory -> ranks of its entries, ascending, in CSR form (offsets, ranks): walking by
/// rank fills each list in order.
fn ranks_by_territory(entry_terr: &[u32], order: &[u32], nterr: usize) -> (Vec<u32>, Vec<u32>) {
    let mut counts = vec![0u32; nterr + 1];
    for &t in entry_terr {
        if t != NO_TERR {
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
        if t != NO_TERR {
            terr_ranks[fill[t as usize] as usize] = r as u32;
            fill[t as usize] += 1;
        }
    }
    (terr_offsets, terr_ranks)
}
