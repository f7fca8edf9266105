//! A hosts-format blocklist (a downloaded one is entirely outside our control):
//! parsed line by line; every name it yields must be a valid lowercase name that a
//! DNS query can be matched against.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(names) = dnsd::dns::blocklist::parse(&text, Path::new("fuzz.hosts")) {
        for n in names {
            assert!(!n.is_empty() && n.len() <= 253, "{n:?}");
            assert_eq!(n, n.to_ascii_lowercase());
        }
    }
});
