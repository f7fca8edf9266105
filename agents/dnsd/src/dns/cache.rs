//! The answer cache for forwarded queries: our own LRU, bounded by entries and by
//! bytes (the wire size of each answer plus a fixed overhead), with the TTL clamped to
//! `[min_ttl, max_ttl]`.
//!
//! An entry is a whole upstream answer (rcode + sections) keyed by (name, type,
//! class). Its lifetime is the smallest TTL in it; negative answers (NXDOMAIN and
//! NODATA) live for the SOA's negative TTL, `min(SOA TTL, SOA minimum)` (RFC 2308
//! section 5); a negative answer without a SOA is not cached. SERVFAIL, REFUSED and
//! truncated answers are never cached. On a hit, every TTL is reduced by the time the
//! answer has spent in the cache.
//!
//! LRU order is a monotonically increasing tick per entry with a `BTreeMap` from tick
//! to key: `get` and `insert` are O(log n), eviction pops the smallest tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Per-entry bookkeeping counted against `max_bytes` on top of the answer's size.
const ENTRY_OVERHEAD: usize = 160;

/// Cache key: the question.
pub type Key = (Name, RecordType, DNSClass);

/// A cached answer.
#[derive(Debug, Clone)]
pub struct Cached {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

#[derive(Debug)]
struct Entry {
    value: Cached,
    stored: Instant,
    expires: Instant,
    bytes: usize,
    tick: u64,
}

/// Limits, from `dns.cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub min_ttl: u32,
    pub max_ttl: u32,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    order: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
}

/// The cache; shared by all server tasks.
#[derive(Debug)]
pub struct Cache {
    /// Replaced by a reload ([`Cache::set_limits`]).
    limits: RwLock<Limits>,
    inner: Mutex<Inner>,
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub entries: usize,
    pub bytes: usize,
}

/// How long `msg` may be cached, before clamping; `None` if it must not be.
fn lifetime(msg: &Message) -> Option<u32> {
    if msg.metadata.truncation {
        return None;
    }
    let rcode = msg.metadata.response_code;
    let negative = rcode == ResponseCode::NXDomain
        || (rcode == ResponseCode::NoError && msg.answers.is_empty());
    if negative {
        return msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        });
    }
    if rcode != ResponseCode::NoError {
        return None;
    }
    msg.answers
        .iter()
        .chain(&msg.authorities)
        .map(|r| r.ttl)
        .min()
}

impl Cache {
    /// An empty cache.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: RwLock::new(limits),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        *self.limits.read().expect("cache limits lock")
    }

    /// New limits (a reload): least recently used entries go until the cache fits;
    /// TTL clamps apply to what is stored from now on.
    pub fn set_limits(&self, limits: Limits) {
        *self.limits.write().expect("cache limits lock") = limits;
        let mut g = self.inner.lock().expect("cache lock");
        evict(&mut g, &limits);
    }

    /// The fresh answer for `key`, TTLs reduced by its age.
    pub fn get(&self, key: &Key) -> Option<Cached> {
        let now = Instant::now();
        let mut g = self.inner.lock().expect("cache lock");
        let inner = &mut *g;
        let entry = inner.map.get_mut(key)?;
        if entry.expires <= now {
            let e = inner.map.remove(key).expect("present");
            inner.order.remove(&e.tick);
            inner.bytes -= e.bytes;
            return None;
        }
        inner.tick += 1;
        inner.order.remove(&entry.tick);
        entry.tick = inner.tick;
        inner.order.insert(entry.tick, key.clone());
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let left = entry.expires.duration_since(now).as_millis().div_ceil(1000);
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        let mut v = entry.value.clone();
        for r in v
            .answers
            .iter_mut()
            .chain(&mut v.authorities)
            .chain(&mut v.additionals)
        {
            // Clamped up by min_ttl: never promise longer than we keep it.
            r.ttl = r.ttl.saturating_sub(age).clamp(1, left.max(1));
        }
        Some(v)
    }

    /// Remember `msg` (an upstream answer to `key`) if it may be cached.
    pub fn insert(&self, key: Key, msg: &Message) {
        let Some(ttl) = lifetime(msg) else {
            return;
        };
        let limits = self.limits();
        let ttl = ttl.clamp(limits.min_ttl, limits.max_ttl);
        if ttl == 0 {
            return;
        }
        let bytes = msg.to_vec().map(|v| v.len()).unwrap_or(512) + ENTRY_OVERHEAD;
        if bytes > limits.max_bytes {
            return;
        }
        let now = Instant::now();
        let value = Cached {
            rcode: msg.metadata.response_code,
            answers: msg.answers.clone(),
            authorities: msg.authorities.clone(),
            additionals: msg.additionals.clone(),
        };
        let mut g = self.inner.lock().expect("cache lock");
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let entry = Entry {
            value,
            stored: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
            bytes,
            tick,
        };
        if let Some(old) = inner.map.insert(key.clone(), entry) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        inner.order.insert(tick, key);
        inner.bytes += bytes;
        evict(inner, &limits);
    }

    /// Entries and bytes in use.
    pub fn stats(&self) -> Stats {
        let g = self.inner.lock().expect("cache lock");
        Stats {
            entries: g.map.len(),
            bytes: g.bytes,
        }
    }
}

/// Drop least recently used entries until `inner` fits `limits`.
fn evict(inner: &mut Inner, limits: &Limits) {
    while inner.map.len() > limits.max_entries || inner.bytes > limits.max_bytes {
        let Some((_, k)) = inner.order.pop_first() else {
            break;
        };
        if let Some(e) = inner.map.remove(&k) {
            inner.bytes -= e.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, SOA};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn key(s: &str) -> Key {
        (n(s), RecordType::A, DNSClass::IN)
    }

    fn answer(name: &str, ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            n(name),
            ttl,
            RData::A(A("192.0.2.1".parse().unwrap())),
        ));
        m
    }

    fn limits(max_entries: usize) -> Limits {
        Limits {
            max_entries,
            max_bytes: 1 << 20,
            min_ttl: 0,
            max_ttl: 86_400,
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let c = Cache::new(limits(2));
        c.insert(key("a."), &answer("a.", 60));
        c.insert(key("b."), &answer("b.", 60));
        assert!(c.get(&key("a.")).is_some()); // b is now the oldest
        c.insert(key("c."), &answer("c.", 60));
        assert!(c.get(&key("b.")).is_none());
        assert!(c.get(&key("a.")).is_some());
        assert!(c.get(&key("c.")).is_some());
        assert_eq!(c.stats().entries, 2);
    }

    #[test]
    fn smaller_limits_evict_the_least_recently_used_at_once() {
        let c = Cache::new(limits(10));
        for s in ["a.", "b.", "c.", "d."] {
            c.insert(key(s), &answer(s, 60));
        }
        assert!(c.get(&key("a.")).is_some()); // b is now the oldest
        c.set_limits(limits(2));
        assert_eq!(c.stats().entries, 2);
        assert!(c.get(&key("b.")).is_none());
        assert!(c.get(&key("c.")).is_none());
        assert!(c.get(&key("a.")).is_some());
        assert!(c.get(&key("d.")).is_some());
        assert_eq!(c.limits().max_entries, 2);
    }

    #[test]
    fn bytes_bound_evicts_too() {
        let one = answer("a.", 60).to_vec().unwrap().len() + ENTRY_OVERHEAD;
        let c = Cache::new(Limits {
            max_bytes: one * 2 + 1,
            ..limits(100)
        });
        for s in ["a.", "b.", "c."] {
            c.insert(key(s), &answer(s, 60));
        }
        assert_eq!(c.stats().entries, 2);
        assert!(c.stats().bytes <= one * 2 + 1);
    }

    #[test]
    fn ttl_clamps_and_zero_ttl() {
        let c = Cache::new(Limits {
            min_ttl: 30,
            max_ttl: 100,
            ..limits(10)
        });
        c.insert(key("big."), &answer("big.", 5000));
        assert_eq!(c.get(&key("big.")).unwrap().answers[0].ttl, 100);
        c.insert(key("zero."), &answer("zero.", 0));
        // min_ttl keeps it; the TTL handed out is at least 1.
        assert_eq!(c.get(&key("zero.")).unwrap().answers[0].ttl, 1);
        let c = Cache::new(limits(10));
        c.insert(key("zero."), &answer("zero.", 0));
        assert!(c.get(&key("zero.")).is_none());
    }

    #[test]
    fn negative_answers_use_the_soa_and_servfail_is_not_cached() {
        let c = Cache::new(limits(10));
        let mut m = Message::error_msg(1, OpCode::Query, ResponseCode::NXDomain);
        let soa = SOA::new(n("x."), n("h.x."), 1, 1, 1, 1, 42);
        m.add_authority(Record::from_rdata(n("x."), 300, RData::SOA(soa)));
        c.insert(key("nx.x."), &m);
        let got = c.get(&key("nx.x.")).unwrap();
        assert_eq!(got.rcode, ResponseCode::NXDomain);
        assert!(got.authorities[0].ttl <= 42);
        let m = Message::error_msg(1, OpCode::Query, ResponseCode::NXDomain);
        c.insert(key("nosoa."), &m);
        assert!(c.get(&key("nosoa.")).is_none());
        let m = Message::error_msg(1, OpCode::Query, ResponseCode::ServFail);
        c.insert(key("sf."), &m);
        assert!(c.get(&key("sf.")).is_none());
    }
}
