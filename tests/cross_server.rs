//! XS-AUTH-CONFLICT (WG1-01 §4: only one server should be `authoritative` for the same
//! coverage and capability), recomputed and stored after every crawl run, on both backends.

mod common;

use std::collections::BTreeSet;

use cds_registry::cds::validate::rules;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::{FindingFilter, FindingRow, Store};
use cds_testkit::{publish, EntrySpec, FixtureServer, Published, UtilitySpec};
use common::{test_config, Backend, TestDb};

/// A utility with one geographic entry over `counties` (FIPS), with `role` and `caps`.
fn utility(name: &str, id: &str, counties: &[&str], role: &str, caps: &[&str]) -> UtilitySpec {
    UtilitySpec::new(name).entry(
        EntrySpec::geographic(id, name, &format!("{name} territory"), counties)
            .role(role)
            .capabilities(caps),
    )
}

struct Setup {
    store: Store,
    crawler: Crawler,
    _db: TestDb,
}

async fn setup(backend: Backend, servers: &[&FixtureServer]) -> Setup {
    let db = TestDb::new(backend).await;
    let hosts: Vec<String> = servers.iter().map(|s| s.host()).collect();
    let cfg = test_config(&db, hosts.clone());
    let store = db.store().await;
    let seeds: Vec<Seed> = hosts.into_iter().map(Seed::Host).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    Setup {
        store,
        crawler,
        _db: db,
    }
}

async fn conflicts(store: &Store) -> Vec<FindingRow> {
    store
        .list_findings(&FindingFilter {
            rule: Some(rules::XS_AUTH_CONFLICT.to_owned()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn server_id(store: &Store, p: &Published) -> i64 {
    store
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.url == p.metadata_url)
        .unwrap_or_else(|| panic!("{} not stored", p.metadata_url))
        .id
}

/// Findings of a server other than XS-AUTH-CONFLICT.
async fn own_findings(store: &Store, id: i64) -> usize {
    store
        .list_findings(&FindingFilter {
            server_id: Some(id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|f| f.rule != rules::XS_AUTH_CONFLICT)
        .count()
}

async fn overlapping_authoritative_claims_conflict_until_one_steps_back(backend: Backend) {
    let a = FixtureServer::start([127, 0, 0, 71].into()).await.unwrap();
    let b = FixtureServer::start([127, 0, 0, 72].into()).await.unwrap();
    // Both claim Monterey County (06053) for `ieee1547`.
    let pa = publish(
        &a,
        &utility(
            "Pacific Bluff Power",
            "pbp-grid",
            &["06069", "06053"],
            "authoritative",
            &["ieee1547", "green_button_connect"],
        ),
    );
    let b_spec = |role: &str| {
        utility(
            "Salinas Valley Electric",
            "sve-grid",
            &["06053", "06019"],
            role,
            &["ieee1547"],
        )
    };
    let pb = publish(&b, &b_spec("authoritative"));
    let s = setup(backend, &[&a, &b]).await;

    s.crawler.run("test", &[]).await.unwrap();
    let (ida, idb) = (
        server_id(&s.store, &pa).await,
        server_id(&s.store, &pb).await,
    );
    let own_a = own_findings(&s.store, ida).await;
    let found = conflicts(&s.store).await;
    assert_eq!(found.len(), 2, "{found:#?}");
    let servers: BTreeSet<i64> = found.iter().filter_map(|f| f.server_id).collect();
    assert_eq!(
        servers,
        BTreeSet::from([ida, idb]),
        "one finding per server"
    );
    for f in &found {
        let (page, other) = if f.server_id == Some(ida) {
            (&pa, &pb)
        } else {
            (&pb, &pa)
        };
        assert_eq!(f.severity.as_str(), "warning");
        assert_eq!(
            &f.url,
            page.coverage_url.as_ref().unwrap(),
            "reported at the entry"
        );
        assert_eq!(f.pointer, "/coverage_entries/0");
        assert_eq!(f.actual.as_deref(), Some(other.metadata_url.as_str()));
        assert!(f.message.contains("`ieee1547`"), "{}", f.message);
        assert!(!f.message.contains("green_button_connect"), "{}", f.message);
        assert!(f.message.contains(&other.entry_ids[0]), "{}", f.message);
    }

    // An unchanged crawl leaves the same two, without computing them again: the change
    // log has not moved since the refresh that computed them (issue 17).
    let refreshed_at = s.store.last_cross_seq().await.unwrap();
    assert_eq!(refreshed_at, Some(s.store.max_change_seq().await.unwrap()));
    let again = s.crawler.run("test", &[]).await.unwrap();
    assert_eq!(conflicts(&s.store).await.len(), 2);
    let newest: Option<i64> = sqlx::query_scalar("SELECT cross_seq FROM crawl_runs WHERE id = $1")
        .bind(again.run_id)
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    assert_eq!(newest, None, "the unchanged run skipped the refresh");
    assert_eq!(s.store.last_cross_seq().await.unwrap(), refreshed_at);

    // Salinas Valley is now only the `official` source there: no conflict left, and the
    // other findings are untouched.
    publish(&b, &b_spec("official"));
    s.crawler.run("test", &[]).await.unwrap();
    let left = conflicts(&s.store).await;
    assert!(left.is_empty(), "{left:#?}");
    assert_eq!(own_findings(&s.store, ida).await, own_a);

    // Claiming it again brings the conflict back.
    publish(&b, &b_spec("authoritative"));
    s.crawler.run("test", &[]).await.unwrap();
    assert_eq!(conflicts(&s.store).await.len(), 2);
}

async fn neighbours_and_other_claims_do_not_conflict(backend: Backend) {
    let auth = "authoritative";
    let cap = ["ieee1547"];
    let specs = [
        // San Benito County.
        utility("San Benito Power", "sbp", &["06069"], auth, &cap),
        // Fresno County borders San Benito: their boxes overlap and the shapes touch,
        // but they share no territory.
        utility("Fresno Light", "fl", &["06019"], auth, &cap),
        // Same territory, another capability.
        utility(
            "Benito Data",
            "bd",
            &["06069"],
            auth,
            &["green_button_connect"],
        ),
        // Same territory and capability, but `official`.
        utility("Benito Hub", "bh", &["06069"], "official", &cap),
        // Same territory and capability, another country (a wrong one, but not a conflict
        // over the same coverage).
        UtilitySpec::new("Benito Norte").entry(
            EntrySpec::geographic("bn", "Benito Norte", "Norte", &["06069"])
                .role(auth)
                .capabilities(&cap)
                .country("MX"),
        ),
    ];
    let mut servers = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let srv = FixtureServer::start([127, 0, 0, 81 + i as u8].into())
            .await
            .unwrap();
        publish(&srv, spec);
        servers.push(srv);
    }
    let refs: Vec<&FixtureServer> = servers.iter().collect();
    let s = setup(backend, &refs).await;
    let summary = s.crawler.run("test", &[]).await.unwrap();
    assert_eq!(summary.totals.hosts_ok, specs.len() as i64, "{summary:?}");
    let found = conflicts(&s.store).await;
    assert!(found.is_empty(), "{found:#?}");
}

both_backends!(
    overlapping_authoritative_claims_conflict_until_one_steps_back,
    neighbours_and_other_claims_do_not_conflict,
);
