//! Facet counts and entity grouping over the entries matching a filter.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Filter, SearchIndex, NFACETS};

/// For each field, `(value, number of matching entries having it)`, sorted by value, zero
/// counts left out. Values are shown normalised, as filters compare them: countries
/// uppercased, everything else lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    pub country: Vec<(String, usize)>,
    pub commodity: Vec<(String, usize)>,
    pub capability: Vec<(String, usize)>,
    pub infrastructure: Vec<(String, usize)>,
    pub role: Vec<(String, usize)>,
    /// The entry's `type`.
    #[serde(rename = "type")]
    pub kind: Vec<(String, usize)>,
    /// Scope ids.
    pub scope: Vec<(String, usize)>,
    /// Scope types (WG1-02 §3.4).
    pub scope_type: Vec<(String, usize)>,
}

/// Matching entries of one covered entity, grouped across servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityGroup {
    /// Uppercased country code.
    pub country: String,
    /// [`super::text::entity_key`] of the entity name: the grouping key.
    pub name_key: String,
    /// The `entity_name` of the group's first entry (by key), as published.
    pub entity_name: String,
    /// Entry positions, ascending (= by key).
    pub entries: Vec<usize>,
}

impl SearchIndex {
    /// Facet counts under `filter` (all of it, including the field being counted). Each
    /// entry counts once per value even when it lists the value twice.
    pub fn facets(&self, filter: &Filter) -> Facets {
        let q = self.compile(filter);
        let counts: [Vec<(String, usize)>; NFACETS] = if q.is_trivial() {
            // The posting lists' lengths are the counts.
            std::array::from_fn(|f| {
                let field = &self.fields[f];
                collect(field.values.iter().zip(field.postings.iter().map(Vec::len)))
            })
        } else {
            let matching = self.search_query(&q);
            std::array::from_fn(|f| {
                let field = &self.fields[f];
                let mut n = vec![0usize; field.values.len()];
                for &i in &matching {
                    for &v in field.entry_values(i as usize) {
                        n[v as usize] += 1;
                    }
                }
                collect(field.values.iter().zip(n))
            })
        };
        // Same order as the field constants in mod.rs.
        let [country, commodity, capability, infrastructure, role, kind, scope, scope_type] =
            counts;
        Facets {
            country,
            commodity,
            capability,
            infrastructure,
            role,
            kind,
            scope,
            scope_type,
        }
    }

    /// Matching entries grouped by (uppercased country, [`super::text::entity_key`] of
    /// `entity_name`), ordered by that name key, then country.
    pub fn entities(&self, filter: &Filter) -> Vec<EntityGroup> {
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for i in self.search(filter) {
            let (name, country) = self.entries[i].entity_key();
            groups.entry((name, country)).or_default().push(i);
        }
        groups
            .into_iter()
            .map(|((name, country), entries)| EntityGroup {
                country: country.to_owned(),
                name_key: name.to_owned(),
                entity_name: self.entry(entries[0]).entity_name().trim().to_owned(),
                entries,
            })
            .collect()
    }
}

fn collect<'a>(it: impl Iterator<Item = (&'a String, usize)>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = it
        .filter(|&(_, n)| n > 0)
        .map(|(s, n)| (s.clone(), n))
        .collect();
    v.sort();
    v
}
