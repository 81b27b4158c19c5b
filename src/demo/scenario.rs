//! The utilities of the standard scenario ([`FixtureWeb`](super::FixtureWeb)), one
//! function each: what every host publishes.

use serde_json::json;

use super::counties::county;
use super::server::FixtureServer;
use super::utility::{EntrySpec, ScopeSpec, TerritoryFormat, UtilitySpec};
use super::web::{names, GREAT_LAKES_GAS_PATH};
use crate::cds::LEGACY_WELL_KNOWN_PATH;

pub(super) fn sierra_spec(s: &FixtureServer) -> UtilitySpec {
    UtilitySpec::new(names::SIERRA)
        .description(
            "Investor-owned electric and natural gas utility serving California's Central \
             Coast and the San Joaquin Valley (fictional).",
        )
        .dates("2022-01-01T00:00:00Z", "2024-05-01T12:00:00Z")
        .extra_capabilities(&["ieee1547"])
        .extra("ieee1547_setup", json!(s.url("/smart-inverters/setup")))
        .entry(
            EntrySpec::geographic(
                "sge-electric",
                names::SIERRA,
                "Central Coast electric service territory",
                &["06069", "06053", "06087"],
            )
            .abbreviation("SG&E")
            .description("Electric distribution in San Benito, Monterey and Santa Cruz counties.")
            .capabilities(&["oauth", "ieee1547"])
            .dates("2022-06-01T00:00:00Z", "2024-05-01T12:00:00Z")
            .with_map_png(),
        )
        .entry(
            EntrySpec::geographic(
                "sge-gas",
                names::SIERRA,
                "Natural gas service territory",
                &["06053", "06019"],
            )
            .abbreviation("SG&E")
            .description("Natural gas distribution in Monterey and Fresno counties.")
            .commodities(&["natural_gas"])
            .capabilities(&["oauth"])
            .dates("2022-06-01T00:00:00Z", "2024-03-01T00:00:00Z")
            .territory_format(TerritoryFormat::FeatureCollection),
        )
        .scope(ScopeSpec::new(
            "cds_current_account_details",
            "Current account details",
            "Service address, meter numbers and rate plan of the current account.",
            &["sge-electric", "sge-gas"],
        ))
        .scope(ScopeSpec::new(
            "cds_bill_statements",
            "Bill statements",
            "Past bill statements with line items.",
            &["sge-electric", "sge-gas"],
        ))
        .scope(ScopeSpec::new(
            "cds_usage",
            "Interval usage",
            "Smart-meter interval usage (15-minute electricity).",
            &["sge-electric"],
        ))
}

pub(super) fn lone_star_spec() -> UtilitySpec {
    UtilitySpec::new(names::LONE_STAR)
        .description("Member-owned electric cooperative in Central Texas (fictional).")
        .metadata_path(LEGACY_WELL_KNOWN_PATH)
        .dates("2021-09-01T00:00:00Z", "2023-11-20T08:30:00Z")
        .entry(
            EntrySpec::geographic(
                "lspc-service-area",
                names::LONE_STAR,
                "Cooperative service area",
                &["48453", "48491", "48209", "48021"],
            )
            .abbreviation("LSPC")
            .infrastructure(&["distribution_utility", "supplier"])
            .capabilities(&["green_button_connect"])
            .dates("2021-09-01T00:00:00Z", "2023-11-20T08:30:00Z")
            .territory_format(TerritoryFormat::Geometry),
        )
}

pub(super) fn old_dominion_spec() -> UtilitySpec {
    UtilitySpec::new(names::OLD_DOMINION)
        .description(
            "Public water and wastewater utility in Central Virginia (fictional); moved its \
             data-access host in 2024.",
        )
        .dates("2020-04-01T00:00:00Z", "2024-02-29T00:00:00Z")
        .entry(
            EntrySpec::geographic(
                "odw-water",
                names::OLD_DOMINION,
                "Water and wastewater service area",
                &["51003", "51065", "51079"],
            )
            .abbreviation("ODW")
            .commodities(&["water", "wastewater"])
            .dates("2020-04-01T00:00:00Z", "2024-02-29T00:00:00Z"),
        )
}

pub(super) fn great_lakes_electric_spec() -> UtilitySpec {
    UtilitySpec::new(names::GREAT_LAKES_ELECTRIC)
        .description("Electric distribution subsidiary of Great Lakes Holding (fictional).")
        .dates("2023-03-01T00:00:00Z", "2024-04-10T00:00:00Z")
        .entry(
            EntrySpec::geographic(
                "gle-electric",
                names::GREAT_LAKES_ELECTRIC,
                "Southeast Michigan electric territory",
                &["26161", "26093"],
            )
            .abbreviation("GLE")
            .dates("2023-03-01T00:00:00Z", "2024-04-10T00:00:00Z"),
        )
}

pub(super) fn great_lakes_gas_spec(root_url: &str) -> UtilitySpec {
    UtilitySpec::new(names::GREAT_LAKES_GAS)
        .description("Natural gas distribution subsidiary of Great Lakes Holding (fictional).")
        .metadata_path(GREAT_LAKES_GAS_PATH)
        .prefix("/cds/great-lakes-gas")
        .dates("2023-03-01T00:00:00Z", "2024-04-12T00:00:00Z")
        .related(root_url)
        .entry(
            EntrySpec::geographic(
                "glg-gas",
                names::GREAT_LAKES_GAS,
                "Mid-Michigan gas territory",
                &["26065", "26075"],
            )
            .abbreviation("GLG")
            .commodities(&["natural_gas"])
            .dates("2023-03-01T00:00:00Z", "2024-04-12T00:00:00Z"),
        )
}

pub(super) fn great_lakes_root_spec(related: [String; 2]) -> UtilitySpec {
    let [a, b] = related;
    UtilitySpec::new(names::GREAT_LAKES_HOLDING)
        .description(
            "Parent company of Great Lakes Electric and Great Lakes Gas (fictional); it \
             offers no capability itself.",
        )
        .dates("2023-03-01T00:00:00Z", "2024-04-12T00:00:00Z")
        .capabilities(&[])
        .related(a)
        .related(b)
}

/// One Prairie State entry: `(id, entity_name, name, FIPS, updated, commodities,
/// territory format)`.
type PrairieEntry = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    TerritoryFormat,
);

/// Prairie State's entries, one county each; all are role `official` with `oauth`.
#[rustfmt::skip]
const PRAIRIE_ENTRIES: [PrairieEntry; 7] = {
    use TerritoryFormat::{Feature, FeatureCollection};
    const E: &[&str] = &["electricity"];
    const G: &[&str] = &["natural_gas"];
    [
        ("pse-champaign-elec", "Champaign Valley Electric", "Champaign County electric", "17019", "2024-06-30T00:00:00Z", E, Feature),
        ("pse-mclean-elec", "Corn Belt Power & Light", "McLean County electric", "17113", "2024-06-20T00:00:00Z", E, Feature),
        ("pse-sangamon-elec", "Capital City Electric", "Sangamon County electric", "17167", "2024-06-10T00:00:00Z", E, Feature),
        ("pse-peoria-elec", "Illinois River Electric", "Peoria County electric", "17143", "2024-05-31T00:00:00Z", E, Feature),
        ("pse-macon-gas", "Decatur Gas Company", "Macon County gas", "17115", "2024-05-15T00:00:00Z", G, Feature),
        ("pse-vermilion-gas", "Vermilion Gas", "Vermilion County gas", "17183", "2024-04-01T00:00:00Z", G, FeatureCollection),
        ("pse-piatt-combined", "Piatt County Utilities", "Piatt County electric and gas", "17147", "2024-03-01T00:00:00Z", &["electricity", "natural_gas"], Feature),
    ]
};

pub(super) fn prairie_spec() -> UtilitySpec {
    let mut spec = UtilitySpec::new(names::PRAIRIE)
        .description(
            "State-run data hub giving access to the data of many Illinois utilities \
             (fictional).",
        )
        .dates("2023-01-01T00:00:00Z", "2024-06-30T00:00:00Z")
        .page_size(3);
    for (id, entity, name, fips, updated, commodities, format) in PRAIRIE_ENTRIES {
        spec = spec.entry(
            EntrySpec::geographic(id, entity, name, &[fips])
                .role("official")
                .commodities(commodities)
                .capabilities(&["oauth"])
                .dates("2023-01-01T00:00:00Z", updated)
                .territory_format(format),
        );
    }
    let all: Vec<&str> = PRAIRIE_ENTRIES.iter().map(|e| e.0).collect();
    spec.scope(ScopeSpec::new(
        "cds_usage",
        "Usage",
        "Monthly and interval usage from the hub's participating utilities.",
        &all,
    ))
}

pub(super) fn looping_spec() -> UtilitySpec {
    UtilitySpec::new(names::LOOPING)
        .description("A utility whose coverage listing pages point at each other (fictional).")
        .page_size(1)
        .entry(
            EntrySpec::geographic(
                "loop-franklin",
                names::LOOPING,
                "Franklin County electric",
                &["39049"],
            )
            .dates("2023-01-01T00:00:00Z", "2024-02-01T00:00:00Z"),
        )
        .entry(
            EntrySpec::geographic(
                "loop-delaware",
                names::LOOPING,
                "Delaware County electric",
                &["39041"],
            )
            .dates("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        )
}

fn single_county_spec(name: &str, id: &str, fips: &str, description: &str) -> UtilitySpec {
    let county_name = county(fips).map(|c| c.name.clone()).unwrap_or_default();
    UtilitySpec::new(name)
        .description(description)
        .entry(EntrySpec::geographic(
            id,
            name,
            &format!("{county_name} electric service"),
            &[fips],
        ))
}

pub(super) fn flaky_spec() -> UtilitySpec {
    single_county_spec(
        names::FLAKY,
        "flaky-electric",
        "32510",
        "A utility whose metadata endpoint is often in maintenance (fictional).",
    )
}

pub(super) fn slow_spec() -> UtilitySpec {
    single_county_spec(
        names::SLOW,
        "slow-electric",
        "08013",
        "A utility whose metadata endpoint answers slowly (fictional).",
    )
}

pub(super) fn green_mountain_spec() -> UtilitySpec {
    UtilitySpec::new(names::GREEN_MOUNTAIN)
        .description(
            "Aggregator of Vermont utility data for community solar and efficiency programs \
             (fictional).",
        )
        .dates("2023-05-01T00:00:00Z", "2024-05-20T00:00:00Z")
        .entry(
            EntrySpec::logical(
                "gma-community-solar",
                names::GREEN_MOUNTAIN,
                "Vermont community solar subscribers",
            )
            .description("Customers of any Vermont utility enrolled in a community solar array.")
            .role("aggregator")
            .infrastructure(&["service_provider"])
            .commodities(&["distributed_energy"])
            .capabilities(&["oauth"])
            .dates("2023-05-01T00:00:00Z", "2024-05-20T00:00:00Z"),
        )
        .entry(
            EntrySpec::geographic(
                "gma-northern-vermont",
                names::GREEN_MOUNTAIN,
                "Northern Vermont aggregated electric data",
                &["50007", "50023", "50015"],
            )
            .role("aggregator")
            .infrastructure(&["service_provider"])
            .capabilities(&["oauth"])
            .dates("2023-05-01T00:00:00Z", "2024-05-10T00:00:00Z")
            .territory_format(TerritoryFormat::Geometry),
        )
        .scope(ScopeSpec::new(
            "cds_usage",
            "Aggregated usage",
            "Monthly usage collected from the member utilities.",
            &["gma-community-solar", "gma-northern-vermont"],
        ))
}
