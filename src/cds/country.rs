//! ISO 3166-1 alpha-2 country codes.
//!
//! WG1-01 §4 requires each coverage entry's `country` to be an ISO 3166 alpha-2 code, and
//! the registry facets and groups entities by it, so a made-up or reserved code (`XX`,
//! `ZZ`, the exceptionally reserved `UK`) must be caught by the validator (COV-COUNTRY)
//! instead of creating a phantom country in search results.
//!
//! The table holds the 249 codes currently *officially assigned* by the ISO 3166
//! Maintenance Agency (the same set tzdata ships in `iso3166.tab`). User-assigned codes
//! (`AA`, `QM`..`QZ`, `XA`..`XZ`, `ZZ`), exceptionally reserved ones (`UK`, `EU`, `AC`...)
//! and withdrawn ones (`AN`, `CS`, `YU`...) are deliberately absent: none of them names a
//! country a utility can serve.

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted for binary search.
pub static ISO3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Whether `code` is an officially assigned ISO 3166-1 alpha-2 code.
///
/// Case-sensitive on purpose: the standard's codes are upper case and WG1-01 §4 examples use
/// them that way (`"US"`); accepting `"us"` would let two spellings of one country into the
/// index.
pub fn is_iso3166_alpha2(code: &str) -> bool {
    // Cheap shape check first; the table lookup is O(log n) either way.
    code.len() == 2 && ISO3166_ALPHA2.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete() {
        assert_eq!(ISO3166_ALPHA2.len(), 249);
        // Strictly increasing means sorted (binary search works) and free of duplicates.
        assert!(ISO3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO3166_ALPHA2
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn real_codes_are_valid() {
        for code in ["US", "CA", "MX", "GB", "DE", "AD", "ZW", "SS", "XK"] {
            // XK (Kosovo) is user-assigned, not official: it is the one expected miss.
            assert_eq!(is_iso3166_alpha2(code), code != "XK", "{code}");
        }
    }

    #[test]
    fn reserved_wrong_case_and_alpha3_are_invalid() {
        for code in [
            "UK", "XX", "ZZ", "EU", "AN", "us", "Us", "USA", "U", "", "U S",
        ] {
            assert!(!is_iso3166_alpha2(code), "{code}");
        }
    }
}
