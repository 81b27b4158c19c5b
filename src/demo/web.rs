//! [`FixtureWeb`]: the standard scenario of twelve fixture hosts. What a crawl of it must
//! produce (the test oracle) is in the `cds-testkit` crate.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use super::scenario;
use super::server::FixtureServer;
use super::utility::{publish, Published, UtilitySpec};
use crate::cds::{LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH};

/// Server names of the scenario (the `name` of each metadata document).
pub mod names {
    pub const SIERRA: &str = "Sierra Gas & Electric";
    pub const LONE_STAR: &str = "Lone Star Power Cooperative";
    pub const OLD_DOMINION: &str = "Old Dominion Water";
    pub const GREAT_LAKES_HOLDING: &str = "Great Lakes Holding";
    pub const GREAT_LAKES_ELECTRIC: &str = "Great Lakes Electric";
    pub const GREAT_LAKES_GAS: &str = "Great Lakes Gas";
    pub const PRAIRIE: &str = "Prairie State Energy Data Hub";
    pub const LOOPING: &str = "Looping Listing Utility";
    pub const FLAKY: &str = "Flaky Utility";
    pub const GONE: &str = "Gone Utility";
    pub const SLOW: &str = "Slow Utility";
    pub const GREEN_MOUNTAIN: &str = "Green Mountain Aggregator";
}

/// A FIPS code inside no fixture territory (Sedgwick County, Kansas).
pub const UNCOVERED_FIPS: &str = "20173";

/// `Retry-After` the Flaky Utility answers with while failing.
pub const FLAKY_RETRY_AFTER: u64 = 120;

/// Path of Great Lakes Gas's metadata on the Great Lakes Holding host.
pub const GREAT_LAKES_GAS_PATH: &str = "/cds/great-lakes-gas.json";

/// The standard scenario: twelve fixture hosts on consecutive loopback addresses
/// (`127.0.0.2` … `127.0.0.13` by default), each on its own port.
///
/// | field | default IP | serves |
/// |---|---|---|
/// | `sierra` | .2 | Sierra Gas & Electric: current well-known path, coverage (2 entries), oauth metadata, `ieee1547` |
/// | `lone_star` | .3 | Lone Star Power Cooperative: legacy well-known path only (current one 404) |
/// | `old_dominion_old` | .4 | 301 from both well-known paths to `old_dominion_new` |
/// | `old_dominion_new` | .5 | Old Dominion Water (not in seeds) |
/// | `great_lakes` | .6 | Great Lakes Holding (root, `capabilities: []`) and Great Lakes Gas at [`GREAT_LAKES_GAS_PATH`] |
/// | `great_lakes_electric` | .7 | Great Lakes Electric (not in seeds, reached through `related_metadata`) |
/// | `prairie` | .8 | Prairie State Energy Data Hub: role official, 7 entries over 3 pages |
/// | `looping` | .9 | Looping Listing Utility: page 2's `next` is page 1 |
/// | `flaky` | .10 | Flaky Utility: 503 + `Retry-After: 120` on its metadata until [`flaky_recover`](Self::flaky_recover) |
/// | `gone` | .11 | Gone Utility: 404 on both well-known paths |
/// | `slow` | .12 | Slow Utility: metadata delayed by [`set_slow_delay`](Self::set_slow_delay) (0 by default) |
/// | `green_mountain` | .13 | Green Mountain Aggregator: role aggregator, one logical and one geographic entry |
pub struct FixtureWeb {
    pub sierra: FixtureServer,
    pub lone_star: FixtureServer,
    pub old_dominion_old: FixtureServer,
    pub old_dominion_new: FixtureServer,
    pub great_lakes: FixtureServer,
    pub great_lakes_electric: FixtureServer,
    pub prairie: FixtureServer,
    pub looping: FixtureServer,
    pub flaky: FixtureServer,
    pub gone: FixtureServer,
    pub slow: FixtureServer,
    pub green_mountain: FixtureServer,
    /// What was published for each utility with a metadata document, in scenario order.
    pub published: Vec<Published>,
    specs: Vec<UtilitySpec>,
}

fn ip_at(first: Ipv4Addr, i: u8) -> Ipv4Addr {
    let [a, b, c, d] = first.octets();
    Ipv4Addr::new(a, b, c, d.wrapping_add(i))
}

impl FixtureWeb {
    /// Start the scenario on `127.0.0.2` … `127.0.0.13`. Ports are ephemeral, so several
    /// webs (parallel tests) can run at once.
    pub async fn start() -> anyhow::Result<FixtureWeb> {
        Self::start_at(Ipv4Addr::new(127, 0, 0, 2)).await
    }

    /// Start the scenario on twelve consecutive addresses from `first` (must be a
    /// loopback address whose last octet is at most 244).
    pub async fn start_at(first: Ipv4Addr) -> anyhow::Result<FixtureWeb> {
        anyhow::ensure!(
            first.is_loopback() && first.octets()[3] <= 244,
            "fixture web needs 12 loopback addresses from {first}"
        );
        let mut servers = Vec::with_capacity(12);
        for i in 0..12u8 {
            servers.push(FixtureServer::start(ip_at(first, i)).await?);
        }
        let mut it = servers.into_iter();
        let mut next = || it.next().expect("twelve servers");
        // Fields are initialised in the order written: address order, as documented above.
        let mut web = FixtureWeb {
            sierra: next(),
            lone_star: next(),
            old_dominion_old: next(),
            old_dominion_new: next(),
            great_lakes: next(),
            great_lakes_electric: next(),
            prairie: next(),
            looping: next(),
            flaky: next(),
            gone: next(),
            slow: next(),
            green_mountain: next(),
            published: Vec::new(),
            specs: Vec::new(),
        };
        web.publish_scenario();
        Ok(web)
    }

    /// Publish `spec` on the host `on` picks, and remember both.
    fn put(&mut self, on: fn(&Self) -> &FixtureServer, spec: UtilitySpec) -> Published {
        let p = publish(on(self), &spec);
        self.specs.push(spec);
        self.published.push(p.clone());
        p
    }

    /// Publish every utility of the scenario and set up the hosts' special behaviour.
    fn publish_scenario(&mut self) {
        // 1. Sierra Gas & Electric.
        let spec = scenario::sierra_spec(&self.sierra);
        self.put(|w| &w.sierra, spec);
        self.sierra.set_raw(
            "/smart-inverters/setup",
            "text/html; charset=utf-8",
            "<!doctype html><title>Smart inverter setup</title><p>IEEE 1547 settings.</p>",
        );

        // 2. Lone Star: legacy path only; the current one stays 404.
        self.put(|w| &w.lone_star, scenario::lone_star_spec());

        // 3. Old Dominion Water moved: the old host redirects both well-known paths.
        let new_meta = self
            .put(|w| &w.old_dominion_new, scenario::old_dominion_spec())
            .metadata_url;
        let old = &self.old_dominion_old;
        old.redirect(WELL_KNOWN_PATH, 301, new_meta.clone());
        old.redirect(LEGACY_WELL_KNOWN_PATH, 301, new_meta);

        // 4. Great Lakes: root ↔ gas cycle, electric on another host.
        let root_url = self.great_lakes.url(WELL_KNOWN_PATH);
        let electric = self.put(
            |w| &w.great_lakes_electric,
            scenario::great_lakes_electric_spec(),
        );
        let gas = self.put(
            |w| &w.great_lakes,
            scenario::great_lakes_gas_spec(&root_url),
        );
        let root = scenario::great_lakes_root_spec([electric.metadata_url, gas.metadata_url]);
        self.put(|w| &w.great_lakes, root);

        // 5. Prairie State: 7 entries over 3 pages.
        self.put(|w| &w.prairie, scenario::prairie_spec());

        // 6. Looping listing: page 2's `next` is page 1.
        let p = self.put(|w| &w.looping, scenario::looping_spec());
        let first_page = self.looping.url(&p.page_paths[0]);
        self.looping
            .update_json(&p.page_paths[1], |v| v["next"] = Value::String(first_page));

        // 7. Flaky: 503 + Retry-After until recovered.
        self.put(|w| &w.flaky, scenario::flaky_spec());
        self.flaky_fail();

        // 8. Gone: nothing at all.

        // 9. Slow: delay 0 until set_slow_delay.
        self.put(|w| &w.slow, scenario::slow_spec());

        // 10. Green Mountain Aggregator.
        self.put(|w| &w.green_mountain, scenario::green_mountain_spec());
    }

    /// Every host, in address order.
    pub fn servers(&self) -> [&FixtureServer; 12] {
        [
            &self.sierra,
            &self.lone_star,
            &self.old_dominion_old,
            &self.old_dominion_new,
            &self.great_lakes,
            &self.great_lakes_electric,
            &self.prairie,
            &self.looping,
            &self.flaky,
            &self.gone,
            &self.slow,
            &self.green_mountain,
        ]
    }

    /// The seeds a crawl starts from: `host:port` of ten hosts (all but
    /// `old_dominion_new` and `great_lakes_electric`, which the crawler must find through
    /// the 301 and `related_metadata`).
    pub fn seeds(&self) -> Vec<String> {
        let found = [
            self.old_dominion_new.host(),
            self.great_lakes_electric.host(),
        ];
        self.servers()
            .iter()
            .map(|s| s.host())
            .filter(|h| !found.contains(h))
            .collect()
    }

    /// The seeds file text: one host per line, with a comment header.
    pub fn seeds_file(&self) -> String {
        let mut s = String::from("# cds-registry fixture web (loopback)\n");
        for h in self.seeds() {
            s.push_str(&h);
            s.push('\n');
        }
        s
    }

    /// `host:port` of every fixture host: each must be allowed plain HTTP.
    pub fn allow_http(&self) -> Vec<String> {
        self.servers().iter().map(|s| s.host()).collect()
    }

    /// Private ranges the crawler must be allowed to reach: `127.0.0.0/8`.
    pub fn allow_private(&self) -> Vec<String> {
        vec!["127.0.0.0/8".to_owned()]
    }

    /// Delay the Slow Utility's metadata by `d` (`Duration::ZERO`: no delay).
    pub fn set_slow_delay(&self, d: Duration) {
        self.slow.set_delay(WELL_KNOWN_PATH, d);
    }

    /// Make the Flaky Utility answer its metadata normally.
    pub fn flaky_recover(&self) {
        self.flaky.clear_status(WELL_KNOWN_PATH);
    }

    /// Make the Flaky Utility fail again (503, `Retry-After: 120`).
    pub fn flaky_fail(&self) {
        self.flaky
            .set_status(WELL_KNOWN_PATH, 503, Some(FLAKY_RETRY_AFTER));
    }

    /// Zero the counters of every host.
    pub fn reset_counts(&self) {
        for s in self.servers() {
            s.reset_counts();
        }
    }

    /// Requests answered 200 on all hosts.
    pub fn count_200(&self) -> u64 {
        self.servers().iter().map(|s| s.count_200()).sum()
    }

    /// Requests answered 304 on all hosts.
    pub fn count_304(&self) -> u64 {
        self.servers().iter().map(|s| s.count_304()).sum()
    }

    /// Requests on all hosts.
    pub fn total_hits(&self) -> u64 {
        self.servers().iter().map(|s| s.total_hits()).sum()
    }

    /// What was published for the utility named `name`.
    pub fn published(&self, name: &str) -> Option<&Published> {
        self.published.iter().find(|p| p.name == name)
    }

    /// The utilities published, in scenario order (parallel to [`published`](Self::published)).
    pub fn specs(&self) -> &[UtilitySpec] {
        &self.specs
    }

    /// Stop every host.
    pub async fn shutdown(self) {
        let all = [
            self.sierra,
            self.lone_star,
            self.old_dominion_old,
            self.old_dominion_new,
            self.great_lakes,
            self.great_lakes_electric,
            self.prairie,
            self.looping,
            self.flaky,
            self.gone,
            self.slow,
            self.green_mountain,
        ];
        futures::future::join_all(all.into_iter().map(FixtureServer::shutdown)).await;
    }
}
