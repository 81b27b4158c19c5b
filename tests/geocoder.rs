//! The geocoder client (`GET /v1/lookup?address=`, issue 18) against a fixture Nominatim on
//! loopback: answers, the cache, the rate limit toward the geocoder, and every way a
//! geocoder fails, each a classified error within the configured timeout.

mod common;

use std::time::Duration;

use cds_registry::geocode::{GeocodeError, Geocoder, GeocoderConfig, GeocoderKind};
use common::geocoder::{FixtureGeocoder, Mode};

fn config(fx: &FixtureGeocoder) -> GeocoderConfig {
    GeocoderConfig {
        url: Some(fx.url.parse().unwrap()),
        // Generous for the tests that expect answers; the failure tests lower it.
        max_requests_per_second: 1000,
        timeout_ms: 2_000,
        ..GeocoderConfig::default()
    }
}

async fn fixture() -> FixtureGeocoder {
    let fx = FixtureGeocoder::start().await;
    fx.place(
        "1 Main St, Monterey",
        36.6002,
        -121.8947,
        "1 Main St, Monterey, CA",
        0.61,
    );
    fx
}

#[tokio::test]
async fn an_address_is_geocoded_and_cached() {
    let fx = fixture().await;
    let g = Geocoder::new(&config(&fx), "cds-registry-test").unwrap();
    let p = g.geocode("1 Main St, Monterey").await.unwrap();
    assert_eq!((p.lat, p.lon), (36.6002, -121.8947));
    assert_eq!(p.display_name, "1 Main St, Monterey, CA");
    assert_eq!(p.importance, Some(0.61));
    assert_eq!(p.source, GeocoderKind::Nominatim);
    assert_eq!(fx.requests(), 1);
    // The same address, spelled with other spacing and case: from the cache.
    let again = g.geocode("  1 main st,   MONTEREY ").await.unwrap();
    assert_eq!(again, p);
    assert_eq!(fx.requests(), 1, "answered from the cache");
    // "Not found" is cached too.
    assert_eq!(g.geocode("nowhere").await, Err(GeocodeError::NotFound));
    assert_eq!(g.geocode("Nowhere").await, Err(GeocodeError::NotFound));
    assert_eq!(fx.requests(), 2);
}

#[tokio::test]
async fn a_failing_geocoder_is_an_upstream_error_and_is_asked_again_later() {
    let fx = fixture().await;
    let g = Geocoder::new(&config(&fx), "t").unwrap();
    fx.set_mode(Mode::Status(500));
    let e = g.geocode("1 Main St, Monterey").await.unwrap_err();
    assert!(
        matches!(&e, GeocodeError::Upstream(m) if m.contains("500")),
        "{e}"
    );
    // Failures are not cached: once the geocoder is back, the address resolves.
    fx.set_mode(Mode::Normal);
    assert!(g.geocode("1 Main St, Monterey").await.is_ok());
    assert_eq!(fx.requests(), 2);
}

#[tokio::test]
async fn oversized_answers_and_redirects_are_refused() {
    let fx = fixture().await;
    let g = Geocoder::new(&config(&fx), "t").unwrap();
    fx.set_mode(Mode::Huge);
    let e = g.geocode("a").await.unwrap_err();
    assert!(
        matches!(&e, GeocodeError::Upstream(m) if m.contains("bytes")),
        "{e}"
    );
    fx.set_mode(Mode::Redirect);
    let e = g.geocode("b").await.unwrap_err();
    assert!(
        matches!(&e, GeocodeError::Upstream(m) if m.contains("302")),
        "{e}"
    );
}

#[tokio::test]
async fn a_slow_geocoder_times_out_instead_of_hanging() {
    let fx = fixture().await;
    let g = Geocoder::new(
        &GeocoderConfig {
            timeout_ms: 200,
            ..config(&fx)
        },
        "t",
    )
    .unwrap();
    // The fixture would answer after 5 s; the request must end with Timeout before.
    fx.set_delay(Duration::from_secs(5));
    let e = tokio::time::timeout(Duration::from_secs(4), g.geocode("1 Main St, Monterey"))
        .await
        .expect("the geocode call ended on its own deadline")
        .unwrap_err();
    assert_eq!(e, GeocodeError::Timeout(200));
}

#[tokio::test]
async fn requests_to_the_geocoder_are_rate_limited() {
    let fx = fixture().await;
    fx.place("second", 1.0, 2.0, "Second", 0.5);
    let g = Geocoder::new(
        &GeocoderConfig {
            max_requests_per_second: 1,
            timeout_ms: 200,
            ..config(&fx)
        },
        "t",
    )
    .unwrap();
    assert!(g.geocode("1 Main St, Monterey").await.is_ok());
    // One request a second: the next distinct address waits for a permit longer than its
    // 200 ms deadline, so it times out without reaching the geocoder.
    assert_eq!(g.geocode("second").await, Err(GeocodeError::Timeout(200)));
    assert_eq!(fx.requests(), 1);
    // Cached addresses do not need a permit.
    assert!(g.geocode("1 main st, monterey").await.is_ok());
}

#[tokio::test]
async fn addresses_are_bounded() {
    let fx = fixture().await;
    let g = Geocoder::new(&config(&fx), "t").unwrap();
    assert_eq!(g.geocode("   ").await, Err(GeocodeError::BadAddress(300)));
    assert_eq!(
        g.geocode(&"x".repeat(301)).await,
        Err(GeocodeError::BadAddress(300))
    );
    assert_eq!(fx.requests(), 0);
}

// ---------------------------------------------------------------- through the API

both_backends!(
    an_address_lookup_answers_like_the_point_lookup,
    geocoder_failures_are_problems_with_their_own_status,
    without_a_geocoder_an_address_is_a_400_that_says_how_to_configure_one,
);

/// Monterey County, where Sierra Gas & Electric's fixture entries lie.
const COURTHOUSE: &str = "Monterey County Courthouse";

async fn registry_with_geocoder(
    backend: common::Backend,
    timeout_ms: u64,
) -> (
    FixtureGeocoder,
    cds_testkit::FixtureWeb,
    common::TestDb,
    cds_registry::cli::serve::Running,
) {
    let fx = FixtureGeocoder::start().await;
    let (lon, lat) = cds_testkit::county_interior_point("06053");
    fx.place(
        COURTHOUSE,
        lat,
        lon,
        "Courthouse, Salinas, Monterey County, CA",
        0.42,
    );
    let url = fx.url.clone();
    let (web, db, reg) = common::crawled_fixture_web_with(backend, |c| {
        c.geocoder = GeocoderConfig {
            url: Some(url.parse().unwrap()),
            timeout_ms,
            max_requests_per_second: 1000,
            ..GeocoderConfig::default()
        };
    })
    .await;
    (fx, web, db, reg)
}

async fn get(reg: &cds_registry::cli::serve::Running, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", reg.url())).await.unwrap()
}

async fn problem(r: reqwest::Response, status: u16) -> String {
    common::problem(r, status, "geocoder").await.detail
}

fn entry_ids(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    common::entry_ids(&v["results"])
}

async fn an_address_lookup_answers_like_the_point_lookup(backend: common::Backend) {
    let (fx, web, _db, reg) = registry_with_geocoder(backend, 2_000).await;
    let q = url::form_urlencoded::byte_serialize(COURTHOUSE.as_bytes()).collect::<String>();
    let r = get(
        &reg,
        &format!("/v1/lookup?address={q}&commodity=electricity"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let by_address: serde_json::Value = r.json().await.unwrap();
    let g = &by_address["geocoded"];
    assert_eq!(
        g["display_name"],
        "Courthouse, Salinas, Monterey County, CA"
    );
    assert_eq!(g["importance"], 0.42);
    assert_eq!(g["source"], "nominatim");
    let [lon, lat] =
        [&by_address["point"][0], &by_address["point"][1]].map(|x| x.as_f64().unwrap());
    assert_eq!(
        (g["lat"].as_f64().unwrap(), g["lon"].as_f64().unwrap()),
        (lat, lon)
    );
    let by_point: serde_json::Value = get(
        &reg,
        &format!("/v1/lookup?lat={lat}&lon={lon}&commodity=electricity"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        by_point.get("geocoded").is_none(),
        "only address lookups say how they geocoded"
    );
    let ids = entry_ids(&by_address);
    assert_eq!(ids, entry_ids(&by_point));
    assert!(ids.contains("sge-electric"), "{ids:?}");
    // The second time comes from the cache.
    let again = get(&reg, &format!("/v1/lookup?address={q}")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(fx.requests(), 1);
    // Both a point and an address: which one?
    let both = get(&reg, &format!("/v1/lookup?address={q}&lat=1&lon=2")).await;
    assert!(problem(both, 400).await.contains("not both"));
    web.shutdown().await;
}

async fn geocoder_failures_are_problems_with_their_own_status(backend: common::Backend) {
    let (fx, web, _db, reg) = registry_with_geocoder(backend, 300).await;
    let nowhere = get(&reg, "/v1/lookup?address=Nowhere%20Lane").await;
    assert!(problem(nowhere, 404).await.contains("no place"));
    fx.set_mode(Mode::Status(503));
    let down = get(&reg, "/v1/lookup?address=Down%20Street").await;
    assert!(problem(down, 502).await.contains("503"));
    fx.set_mode(Mode::Normal);
    fx.set_delay(Duration::from_secs(5));
    let slow = get(&reg, "/v1/lookup?address=Slow%20Road").await;
    assert!(problem(slow, 504).await.contains("300 ms"));
    web.shutdown().await;
}

async fn without_a_geocoder_an_address_is_a_400_that_says_how_to_configure_one(
    backend: common::Backend,
) {
    let (web, _db, reg) = common::crawled_fixture_web(backend).await;
    let r = get(&reg, "/v1/lookup?address=1%20Main%20St").await;
    let detail = problem(r, 400).await;
    assert!(
        detail.contains("[geocoder] url") && detail.contains("CDS_REGISTRY_GEOCODER__URL"),
        "{detail}"
    );
    web.shutdown().await;
}
