//! IANA time zone names for `cds_timezone` (WG1-02 §2 "timezone", §3.2), vendored so no
//! lookup needs the network or the host's zoneinfo. `tz_names.txt` is generated from the
//! tz database's `tzdata.zi` (public domain; the command is in its header): every Zone
//! and Link name, so backward-compatible names such as `US/Central` are accepted too.

use std::collections::HashSet;
use std::sync::OnceLock;

static NAMES: &str = include_str!("tz_names.txt");

fn names() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        NAMES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Whether `name` is a zone name of the tz database (exact, case-sensitive match, as
/// the database's names are).
pub(super) fn is_iana_zone(name: &str) -> bool {
    names().contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_zones() {
        for z in [
            "America/Chicago",
            "Europe/Brussels",
            "UTC",
            "US/Central",
            "Etc/GMT+5",
        ] {
            assert!(is_iana_zone(z), "{z}");
        }
        for z in [
            "",
            "america/chicago",
            "America/Springfield",
            "CST",
            "+05:00",
            "# IANA",
        ] {
            assert!(!is_iana_zone(z), "{z}");
        }
    }
}
