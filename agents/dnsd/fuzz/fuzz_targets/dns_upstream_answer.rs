//! An answer from an upstream server (which an attacker on the WAN may spoof):
//! parsed, put in the cache (TTL clamps, negative caching from the SOA, byte
//! accounting, LRU eviction) and read back as a cache hit.
#![no_main]

use std::sync::OnceLock;

use dnsd::dns::cache::{Cache, Limits};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| {
        Cache::new(Limits {
            max_entries: 64,
            max_bytes: 64 << 10,
            min_ttl: 5,
            max_ttl: 3600,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::from_vec(data) else {
        return;
    };
    let Some(q) = msg.queries.first() else {
        return;
    };
    let key = (q.name.clone(), q.query_type, q.query_class);
    cache().insert(key.clone(), &msg);
    if let Some(hit) = cache().get(&key) {
        // A hit is re-encoded into the reply to a client.
        let mut reply = Message::response(1, hickory_proto::op::OpCode::Query);
        reply.answers = hit.answers;
        reply.authorities = hit.authorities;
        reply.additionals = hit.additionals;
        let _ = reply.to_vec();
    }
});
