//! The DNS half of dnsd: a local authoritative zone ([`zone`]), blocklists
//! ([`blocklist`], downloaded ones via [`download`]), an LRU answer cache ([`cache`]) with the
//! encoded hot set in front of it ([`wire_cache`]) and a forwarder to the upstreams
//! ([`forward`]) — configured, or learned on the WAN ([`wan_lease`]) — served over UDP
//! and TCP ([`server`]), with optional rate-limited query logging ([`query_log`]).
//!
//! Wire formats are `hickory-proto`'s; the sockets, the cache and the forwarding are
//! ours (a few hundred lines), which keeps the hot path — cache hit to reply — free of
//! the generic resolver machinery.

pub mod blocklist;
pub mod cache;
pub mod download;
pub mod forward;
pub mod listeners;
pub mod query_log;
pub mod resolver;
pub mod server;
pub mod udp_batch;
pub mod wan_lease;
pub mod wire_cache;
pub mod zone;
