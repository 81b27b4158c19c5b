//! [`Expected`]: the facts a crawl of the standard fixture scenario
//! ([`FixtureWeb`]) must produce. The test oracle lives here, not in the service, so the
//! installed binary carries none of it.

use cds_registry::cds::validate::rules;
use cds_registry::cds::{LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH};
use cds_registry::demo::counties::{county, county_interior_point};
use cds_registry::demo::web::{
    names, FixtureWeb, FLAKY_RETRY_AFTER, GREAT_LAKES_GAS_PATH, UNCOVERED_FIPS,
};
use cds_registry::demo::FixtureServer;

/// [`FixtureWeb::expected`](ExpectedExt::expected): the oracle of the scenario.
pub trait ExpectedExt {
    /// The facts a crawl of [`FixtureWeb::seeds`] must produce, in the scenario's default
    /// state (Flaky failing, Slow without delay).
    fn expected(&self) -> Expected;
}

impl ExpectedExt for FixtureWeb {
    fn expected(&self) -> Expected {
        let host_of = |name: &str| -> &FixtureServer {
            match name {
                names::SIERRA => &self.sierra,
                names::LONE_STAR => &self.lone_star,
                names::OLD_DOMINION => &self.old_dominion_new,
                names::GREAT_LAKES_HOLDING | names::GREAT_LAKES_GAS => &self.great_lakes,
                names::GREAT_LAKES_ELECTRIC => &self.great_lakes_electric,
                names::PRAIRIE => &self.prairie,
                names::LOOPING => &self.looping,
                names::FLAKY => &self.flaky,
                names::SLOW => &self.slow,
                _ => &self.green_mountain,
            }
        };
        let root_url = self.great_lakes.url(WELL_KNOWN_PATH);
        let mut servers = Vec::new();
        for (spec, p) in self.specs().iter().zip(&self.published) {
            let name = spec.name.as_str();
            let host = host_of(name);
            let (seed, parent) = match name {
                names::OLD_DOMINION => (Some(self.old_dominion_old.host()), None),
                names::GREAT_LAKES_ELECTRIC | names::GREAT_LAKES_GAS => {
                    (None, Some(root_url.clone()))
                }
                _ => (Some(host.host()), None),
            };
            let mut rules_expected = vec![rules::HTTP_NOT_HTTPS];
            match name {
                names::LONE_STAR => rules_expected.push(rules::WK_LEGACY),
                names::LOOPING => rules_expected.push(rules::COV_PAGE_LOOP),
                _ => {}
            }
            servers.push(ExpectedServer {
                name: name.to_owned(),
                metadata_url: p.metadata_url.clone(),
                host: host.host(),
                seed,
                parent,
                moved_from: (name == names::OLD_DOMINION)
                    .then(|| self.old_dominion_old.url(WELL_KNOWN_PATH)),
                legacy_path: spec.metadata_path == LEGACY_WELL_KNOWN_PATH,
                coverage_pages: p.page_paths.len(),
                entries: p.entry_ids.len(),
                entry_ids: p.entry_ids.clone(),
                stored_by_default: name != names::FLAKY,
                rules: rules_expected,
            });
        }

        // One point per county of any entry, plus an uncovered one.
        let mut fips_list: Vec<&str> = Vec::new();
        for spec in self.specs() {
            for e in &spec.entries {
                for f in &e.counties {
                    if !fips_list.contains(&f.as_str()) {
                        fips_list.push(f);
                    }
                }
            }
        }
        fips_list.push(UNCOVERED_FIPS);
        let points = fips_list
            .iter()
            .map(|fips| {
                let (lon, lat) = county_interior_point(fips);
                let served_by = self
                    .specs()
                    .iter()
                    .filter(|s| s.name != names::FLAKY)
                    .flat_map(|s| {
                        s.ordered_entries()
                            .into_iter()
                            .filter(|e| e.counties.iter().any(|c| c == fips))
                            .map(|e| ServedBy {
                                server: s.name.clone(),
                                entry_id: e.id.clone(),
                                role: e.role.clone(),
                                commodity_types: e.commodity_types.clone(),
                            })
                    })
                    .collect();
                ExpectedPoint {
                    lon,
                    lat,
                    fips: (*fips).to_owned(),
                    county: county(fips).map(|c| c.name.clone()).unwrap_or_default(),
                    served_by,
                }
            })
            .collect();

        let scopes = self
            .specs()
            .iter()
            .flat_map(|s| {
                s.scopes.iter().map(|sc| ExpectedScope {
                    server: s.name.clone(),
                    scope: sc.id.clone(),
                    coverages_supported: sc.coverages_supported.clone(),
                })
            })
            .collect();

        let gas_url = self.great_lakes.url(GREAT_LAKES_GAS_PATH);
        let electric_url = self.great_lakes_electric.url(WELL_KNOWN_PATH);
        Expected {
            servers,
            points,
            scopes,
            related: vec![
                (root_url.clone(), electric_url),
                (root_url.clone(), gas_url.clone()),
                (gas_url, root_url),
            ],
            moved: vec![ExpectedMove {
                old_host: self.old_dominion_old.host(),
                old_url: self.old_dominion_old.url(WELL_KNOWN_PATH),
                new_url: self.old_dominion_new.url(WELL_KNOWN_PATH),
            }],
            failing: vec![
                ExpectedFailure {
                    host: self.flaky.host(),
                    name: names::FLAKY.to_owned(),
                    status: 503,
                    retry_after: Some(FLAKY_RETRY_AFTER),
                },
                ExpectedFailure {
                    host: self.gone.host(),
                    name: names::GONE.to_owned(),
                    status: 404,
                    retry_after: None,
                },
            ],
        }
    }
}

/// One metadata document of the scenario and what a crawl must store for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedServer {
    /// The document's `name`.
    pub name: String,
    /// Its canonical URL (`cds_metadata_url`, where it is finally fetched from).
    pub metadata_url: String,
    /// The host serving it.
    pub host: String,
    /// The seed host that leads to it (`None`: reached only through `related_metadata`).
    pub seed: Option<String>,
    /// Metadata URL of the document whose `related_metadata` lists it.
    pub parent: Option<String>,
    /// The old well-known URL that answers 301 to `metadata_url`.
    pub moved_from: Option<String>,
    /// Served only on the legacy well-known path.
    pub legacy_path: bool,
    /// Coverage listing pages (0: no coverage).
    pub coverage_pages: usize,
    /// Entries a crawl stores (for the looping listing: the entries seen before the loop).
    pub entries: usize,
    /// Entry ids in listing order.
    pub entry_ids: Vec<String>,
    /// Stored by a crawl of the default state (false for the Flaky Utility while it
    /// answers 503).
    pub stored_by_default: bool,
    /// Rule ids a crawl must report for it (besides the `info` HTTP-NOT-HTTPS every
    /// fixture gets, only WK-LEGACY for Lone Star and COV-PAGE-LOOP for the looping one).
    pub rules: Vec<&'static str>,
}

/// Who serves a point.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedBy {
    pub server: String,
    pub entry_id: String,
    pub role: String,
    pub commodity_types: Vec<String>,
}

/// A point strictly inside one county and the entries whose territory holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedPoint {
    pub lon: f64,
    pub lat: f64,
    pub fips: String,
    pub county: String,
    /// In the default state (Flaky's entry excluded); empty for an uncovered point.
    pub served_by: Vec<ServedBy>,
}

/// A scope of some server's OAuth metadata and the entries it is offered for.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedScope {
    pub server: String,
    pub scope: String,
    pub coverages_supported: Vec<String>,
}

/// A moved server: the old host's well-known URL answers 301 to `new_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedMove {
    pub old_host: String,
    pub old_url: String,
    pub new_url: String,
}

/// A seed host that stores nothing in the default state.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedFailure {
    pub host: String,
    pub name: String,
    /// Status of its current well-known path.
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// The facts a crawl of [`FixtureWeb::seeds`] must produce (default state).
///
/// Summary: 11 metadata documents, of which 10 are stored ([`stored_servers`](Self::stored_servers);
/// Flaky fails with 503, Gone has none, the moved Old Dominion counts once), holding 18
/// entries ([`stored_entries`](Self::stored_entries)).
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// Every metadata document in the scenario (Flaky included, with
    /// `stored_by_default: false`).
    pub servers: Vec<ExpectedServer>,
    pub points: Vec<ExpectedPoint>,
    pub scopes: Vec<ExpectedScope>,
    /// `(parent metadata URL, related metadata URL)`, the cycle back to the root included.
    pub related: Vec<(String, String)>,
    pub moved: Vec<ExpectedMove>,
    pub failing: Vec<ExpectedFailure>,
}

impl Expected {
    /// Servers a crawl of the default state stores (10).
    pub fn stored_servers(&self) -> usize {
        self.servers.iter().filter(|s| s.stored_by_default).count()
    }

    /// Entries a crawl of the default state stores (18).
    pub fn stored_entries(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.stored_by_default)
            .map(|s| s.entries)
            .sum()
    }

    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&ExpectedServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The point inside county `fips`.
    pub fn point(&self, fips: &str) -> Option<&ExpectedPoint> {
        self.points.iter().find(|p| p.fips == fips)
    }
}
