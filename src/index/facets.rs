//! Facet counts and entity grouping over the entries matching a filter.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Filter, SearchIndex, NFACETS};

/// How many matching entries have one value of a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

/// For each field, the values of the matching entries with their counts, sorted by value,
/// zero counts left out. Values are shown normalised, as filters compare them: countries
/// uppercased, everything else lowercased. `GET /v1/facets` sends this as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Facets {
    pub country: Vec<FacetCount>,
    pub commodity: Vec<FacetCount>,
    pub capability: Vec<FacetCount>,
    pub infrastructure: Vec<FacetCount>,
    pub role: Vec<FacetCount>,
    /// The entry's `type`.
    #[serde(rename = "type")]
    pub kind: Vec<FacetCount>,
    /// Scope ids.
    pub scope: Vec<FacetCount>,
    /// Scope types (WG1-02 §3.4); `scope=` takes these values too.
    pub scope_type: Vec<FacetCount>,
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
        let counts: [Vec<FacetCount>; NFACETS] = if q.is_trivial() {
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

fn collect<'a>(it: impl Iterator<Item = (&'a String, usize)>) -> Vec<FacetCount> {
    let mut v: Vec<FacetCount> = it
        .filter(|&(_, n)| n > 0)
        .map(|(value, count)| FacetCount {
            value: value.clone(),
            count,
        })
        .collect();
    v.sort_unstable_by(|a, b| a.value.cmp(&b.value));
    v
}
