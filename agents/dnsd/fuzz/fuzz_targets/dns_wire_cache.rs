//! The resolver's hot path for cached names (`dns::wire_cache`): every client query
//! is first parsed by `question` without hickory, and a hit copies a stored answer
//! and patches in the client's ID, the client's spelling of the name and aged TTLs.
//! The cache holds one answer (for `nas.home.arpa A`, the seed's question), so inputs
//! near the seed reach the patching code.
#![no_main]

use std::sync::OnceLock;

use dnsd::dns::wire_cache::{question, WireCache};
use libfuzzer_sys::fuzz_target;

/// `nas.home.arpa A IN`, recursion desired, no EDNS.
const QUERY: &[u8] = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03nas\x04home\x04arpa\x00\x00\x01\x00\x01";
/// Its answer: one A record (name compressed to the question), TTL 300.
const ANSWER: &[u8] = b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03nas\x04home\x04arpa\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x0a\x4d\x00\x0a";

fn cache() -> &'static WireCache {
    static C: OnceLock<WireCache> = OnceLock::new();
    C.get_or_init(|| {
        let cache = WireCache::new(16, 1 << 16);
        let q = question(QUERY).expect("the seed query is plain");
        cache.insert(&q, ANSWER, cache.generation());
        cache
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(q) = question(data) {
        let mut out = Vec::new();
        if cache().answer(data, &q, &mut out) {
            // A hit answers with the client's ID.
            assert_eq!(out[..2], data[..2]);
        }
    }
});
