//! The spec's own examples (WG1-01 overview, seeds/002) validate clean.

use super::*;
use crate::cds::lenient::{self, Parsed};

/// The overview's metadata example, verbatim.
const SPEC_METADATA: &str = r#"{
    "cds_metadata_version": "v1",
    "cds_metadata_url": "https://demoutility.com/.well-known/carbon-data-spec.json",

    "created": "2022-01-01T00:00:00.000000Z",
    "updated": "2022-06-01T00:00:00.000000Z",

    "name": "Demo Gas & Electric",
    "description": "A fictional utility that can be used for testing and demonstration purposes.",
    "website": "https://demoutility.com/data-access",
    "documentation": "https://demoutility.com/data-access/docs",
    "support": "https://demoutility.com/contact-us?type=developers",
    "capabilities": [
        "coverage",
        "oauth",
        "ieee1547"
    ],
    "related_metadata": ["https://static.demoutility.com/sister-company-cds.json"],

    "coverage": "https://static.demoutility.com/cds-coverage.json",

    "oauth_metadata": "https://demoutility.com/.well-known/oauth-authorization-server",

    "ieee1547_setup": "https://demoutility.com/smart-inverters/setup"
}"#;

/// The overview's coverage example, verbatim (trailing commas included).
const SPEC_COVERAGE: &str = r#"{
    "coverage_entries": [
        {
            "id": "dge_elec_west",

            "created": "2022-06-01T00:00:00.000000Z",
            "updated": "2022-06-01T00:00:00.000000Z",

            "entity_name": "Demo Gas & Electric",
            "entity_abbreviation": "DG&E",

            "country": "US",
            "name": "Western electric service territory",
            "description": "This is the electric service coverage for the western half of the region.",

            "type": "geographic",
            "role": "official",
            "infrastructure_types": [
                "distribution_utility",
            ],
            "commodity_types": [
                "electricity",
            ],
            "capabilities": [
                "oauth",
                "ieee1547"
            ],

            "map_resource": "https://static.example.com/cds-coverage-map.png",
            "map_content_type": "image/png",
            "geojson_resource": "https://static.example.com/cds-coverage-map-geo.json"
        }
    ],
    "next": null,
    "previous": null
}"#;

#[test]
fn spec_examples_validate_clean() {
    // The metadata example happens to be strict JSON; the coverage example is not.
    let (meta, how) = lenient::parse(SPEC_METADATA.as_bytes()).unwrap();
    assert_eq!(how, Parsed::Strict);
    let (cov, how) = lenient::parse(SPEC_COVERAGE.as_bytes()).unwrap();
    assert_eq!(how, Parsed::Lenient);

    // Content checks: fetched from its own (legacy-path) `cds_metadata_url`, nothing
    // to report; `ieee1547` is an extension capability, `oauth` has its URL.
    let own_url = "https://demoutility.com/.well-known/carbon-data-spec.json";
    assert_eq!(ids(&validate_metadata(&meta, &ctx(own_url))), set(&[]));
    let cov_url = "https://static.demoutility.com/cds-coverage.json";
    assert_eq!(ids(&validate_coverage_page(&cov, cov_url)), set(&[]));
    let pages = [(cov_url, cov)];
    assert_eq!(
        ids(&validate_server(&meta, own_url, &refs(&pages))),
        set(&[])
    );

    // Fetched from the current well-known path, its legacy `cds_metadata_url` differs.
    let current = "https://demoutility.com/.well-known/cds-server-metadata.json";
    assert_eq!(
        ids(&validate_metadata(&meta, &ctx(current))),
        set(&["META-URL-MISMATCH"])
    );
}
