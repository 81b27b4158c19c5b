//! The document views and every validator layer on any (leniently parsed) JSON: never
//! panic; every finding has a rule and an RFC 6901 pointer.
#![no_main]

use cds_registry::cds::lenient::parse;
use cds_registry::cds::validate::{
    validate_coverage_entry, validate_coverage_page, validate_metadata, validate_server,
    EntryRef, MetadataContext,
};
use cds_registry::cds::{CoverageEntry, CoveragePageView, Finding, MetadataView};
use libfuzzer_sys::fuzz_target;

const URL: &str = "https://util.example/.well-known/cds-server-metadata.json";
const PAGE: &str = "https://util.example/cds/coverage";

fn check(findings: &[Finding]) {
    for f in findings {
        assert!(!f.rule.is_empty(), "{f:?}");
        assert!(f.pointer.is_empty() || f.pointer.starts_with('/'), "{f:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok((doc, _)) = parse(data) else {
        return;
    };
    let _ = MetadataView::from_value(&doc);
    check(&validate_metadata(&doc, &MetadataContext { fetched_url: URL }));
    // The same document read as a coverage page, its entries, and the whole server.
    check(&validate_coverage_page(&doc, PAGE));
    let page = CoveragePageView::from_value(&doc);
    let mut refs = Vec::new();
    for (index, entry) in page.entries.iter().enumerate() {
        let _ = CoverageEntry::from_value(entry);
        check(&validate_coverage_entry(entry, PAGE, &format!("/coverage_entries/{index}")));
        refs.push(EntryRef {
            page_url: PAGE,
            index,
            entry,
        });
    }
    check(&validate_server(&doc, URL, &refs));
});
