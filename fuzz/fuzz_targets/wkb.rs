//! WKB reader on arbitrary bytes: never panics (counts are bounded by the bytes left, so
//! libFuzzer's -rss_limit_mb catches any absurd allocation); what it reads re-encodes
//! to a fixed point.
#![no_main]

use cds_registry::territory::{from_wkb, to_wkb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mp) = from_wkb(data) else {
        return;
    };
    // NaN never equals itself, so a ring starting with NaN is "closed" again on every
    // read; our writer never stores one (territories are checked finite first).
    let finite = mp.0.iter().all(|p| {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .all(|r| r.0.iter().all(|c| c.x.is_finite() && c.y.is_finite()))
    });
    if !finite {
        return;
    }
    let once = to_wkb(&mp);
    let again = from_wkb(&once).expect("our own WKB reads back");
    assert_eq!(to_wkb(&again), once);
});
