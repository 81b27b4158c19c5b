//! Strict-then-lenient JSON: never panics; strict results are serde_json's, a lenient
//! result only where strict parsing fails.
#![no_main]

use cds_registry::cds::lenient::{parse, Parsed};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let strict = serde_json::from_slice::<Value>(data);
    match (strict, parse(data)) {
        (Ok(v), Ok((w, Parsed::Strict))) => assert_eq!(v, w),
        (Ok(_), other) => panic!("strict JSON not parsed strictly: {other:?}"),
        (Err(_), Ok((_, Parsed::Strict))) => panic!("invalid JSON parsed strictly"),
        (Err(_), _) => {}
    }
});
