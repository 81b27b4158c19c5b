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
