//! The hot path for repeated questions: encoded answers keyed by the query's wire
//! bytes, so a cache hit costs one receive, one hash lookup and one send — no
//! `hickory` parsing, no allocation.
//!
//! Only answers the resolver built from its [`super::cache`] go in (never local-zone
//! or blocklist answers, which stay on the full path), and only plain queries: one
//! question, no answer/authority records, at most one additional that is an EDNS0 OPT
//! with version 0 and no options but COOKIE and PADDING (ignored by the full path
//! too: neither is echoed). Anything else is a miss and takes the full path,
//! which answers exactly as before.
//!
//! The key is the question with the name lowercased (ASCII), type, class and one byte
//! of what changes the answer's bytes: RD and CD (echoed), EDNS present (OPT echoed)
//! and DO. On a hit the stored answer is copied into the worker's buffer and patched:
//! the client's ID, the client's spelling of the question (same length), and every
//! TTL (the OPT's excepted) reduced by the seconds since the answer was stored, at
//! least 1. An entry expires when its smallest TTL would reach 0, so it never
//! outlives the [`super::cache`] entry it was built from. An answer larger than the
//! client's UDP limit is a miss (the full path truncates it).
//!
//! The bound is crude on purpose: when the entry or byte limit would be exceeded the
//! whole map is cleared (the hot set comes back from the main cache in one query per
//! name). A reload clears it too, so a name newly blocked or made local is never
//! served from here.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::forward::EDNS_PAYLOAD;

/// Longest key: a 255-byte name, type, class, flags.
const KEY_MAX: usize = 255 + 5;
const DNS_HEADER: usize = 12;
const TYPE_OPT: u16 = 41;

/// A parsed plain query: its key and where its question ends.
#[derive(Debug)]
pub struct Question {
    key: [u8; KEY_MAX],
    key_len: usize,
    /// Offset just after QTYPE/QCLASS.
    question_end: usize,
    /// The largest UDP answer the client takes.
    pub udp_limit: usize,
}

impl Question {
    /// The cache key.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse `req` if it is a plain query the hot path may answer.
pub fn question(req: &[u8]) -> Option<Question> {
    if req.len() < DNS_HEADER {
        return None;
    }
    let (f1, f2) = (req[2], req[3]);
    // QR = 0 and OPCODE = QUERY.
    if f1 & 0xF8 != 0 {
        return None;
    }
    let counts = (be16(req, 4)?, be16(req, 6)?, be16(req, 8)?, be16(req, 10)?);
    let arcount = match counts {
        (1, 0, 0, ar @ (0 | 1)) => ar,
        _ => return None,
    };
    let mut key = [0u8; KEY_MAX];
    let mut k = 0;
    let mut at = DNS_HEADER;
    loop {
        let len = usize::from(*req.get(at)?);
        if len == 0 {
            break;
        }
        // A name is at most 255 bytes on the wire, its final zero included.
        if len > 63 || k + 1 + len + 1 > 255 {
            return None;
        }
        let label = req.get(at + 1..at + 1 + len)?;
        key[k] = req[at];
        for (dst, src) in key[k + 1..k + 1 + len].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        k += 1 + len;
        at += 1 + len;
    }
    key[k] = 0;
    key[k + 1..k + 5].copy_from_slice(req.get(at + 1..at + 5)?);
    let question_end = at + 5;
    let rd = f1 & 0x01;
    let cd = (f2 & 0x10) >> 3;
    let (mut flags, mut udp_limit) = (rd | cd, 512);
    if arcount == 1 {
        // Root name, TYPE OPT, CLASS payload, TTL = ext-rcode, version, DO+Z, RDLEN.
        let opt = req.get(question_end..)?;
        if opt.len() < 11 || opt[0] != 0 || be16(opt, 1)? != TYPE_OPT {
            return None;
        }
        if opt[5] != 0 || opt[6] != 0 || usize::from(be16(opt, 9)?) != opt.len() - 11 {
            return None;
        }
        if !ignorable_options(&opt[11..]) {
            return None;
        }
        let payload = be16(opt, 3)?;
        udp_limit = usize::from(payload.clamp(512, EDNS_PAYLOAD));
        flags |= 0x04 | ((opt[7] & 0x80) >> 4);
    } else if req.len() != question_end {
        return None;
    }
    key[k + 5] = flags;
    Some(Question {
        key,
        key_len: k + 6,
        question_end,
        udp_limit,
    })
}

/// Whether the EDNS options `rdata` are well formed and only ones the full path
/// ignores too: COOKIE (10; `dig` sends one by default, never echoed) and PADDING (12).
fn ignorable_options(mut rdata: &[u8]) -> bool {
    while !rdata.is_empty() {
        let (Some(code), Some(len)) = (be16(rdata, 0), be16(rdata, 2)) else {
            return false;
        };
        let len = usize::from(len);
        let cookie = code == 10 && (len == 8 || (16..=40).contains(&len));
        if !(cookie || code == 12) || rdata.len() < 4 + len {
            return false;
        }
        rdata = &rdata[4 + len..];
    }
    true
}

/// Skip the name at `at` in `msg`; the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return Some(at + 2),
            l if l & 0xC0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The offsets of every TTL in the encoded answer `msg` (not the OPT's).
fn ttl_offsets(msg: &[u8]) -> Option<Vec<u16>> {
    let qd = be16(msg, 4)?;
    let rrs = usize::from(be16(msg, 6)?) + usize::from(be16(msg, 8)?) + usize::from(be16(msg, 10)?);
    let mut at = DNS_HEADER;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..rrs {
        at = skip_name(msg, at)?;
        let ty = be16(msg, at)?;
        let rdlen = usize::from(be16(msg, at + 8)?);
        if ty != TYPE_OPT {
            out.push(u16::try_from(at + 4).ok()?);
        }
        at += 10 + rdlen;
    }
    (at == msg.len()).then_some(out)
}

#[derive(Debug)]
struct Entry {
    answer: Box<[u8]>,
    ttls: Box<[u16]>,
    stored: Instant,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<[u8]>, Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Bumped by every [`WireCache::clear`].
    generation: u64,
}

impl Inner {
    /// Drop every entry; answers built from the state before this are refused by
    /// [`WireCache::insert`] (the generation moves on).
    fn forget_all(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.generation += 1;
    }
}

/// The encoded-answer cache; shared by every UDP worker.
#[derive(Debug)]
pub struct WireCache {
    inner: RwLock<Inner>,
}

/// Per-entry bookkeeping counted against the byte limit.
const ENTRY_OVERHEAD: usize = 96;

impl WireCache {
    /// An empty cache of at most `max_entries` answers and `max_bytes`.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: RwLock::new(Inner {
                max_entries,
                max_bytes,
                ..Inner::default()
            }),
        }
    }

    /// New bounds (a reload); everything stored is forgotten, as by [`Self::clear`].
    pub fn set_limits(&self, max_entries: usize, max_bytes: usize) {
        let mut g = self.inner.write().expect("wire cache lock");
        g.max_entries = max_entries;
        g.max_bytes = max_bytes;
        g.forget_all();
    }

    /// Write the answer to `req` (parsed as `q`) into `out` if one is stored and fresh.
    pub fn answer(&self, req: &[u8], q: &Question, out: &mut Vec<u8>) -> bool {
        let now = Instant::now();
        let g = self.inner.read().expect("wire cache lock");
        let Some(e) = g.map.get(q.key()) else {
            return false;
        };
        if e.expires <= now || e.answer.len() > q.udp_limit {
            return false;
        }
        let age = u32::try_from(now.duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        out.clear();
        out.extend_from_slice(&e.answer);
        out[..2].copy_from_slice(&req[..2]);
        out[DNS_HEADER..q.question_end].copy_from_slice(&req[DNS_HEADER..q.question_end]);
        if age > 0 {
            for &t in e.ttls.iter() {
                let t = usize::from(t);
                let ttl = u32::from_be_bytes([out[t], out[t + 1], out[t + 2], out[t + 3]]);
                let ttl = ttl.saturating_sub(age).max(1);
                out[t..t + 4].copy_from_slice(&ttl.to_be_bytes());
            }
        }
        true
    }

    /// The current generation: read it before the resolver state an answer is built
    /// from, and pass it to [`WireCache::insert`].
    pub fn generation(&self) -> u64 {
        self.inner.read().expect("wire cache lock").generation
    }

    /// Remember `answer`, the full path's encoded reply to `q`, if it can be patched
    /// and no reload happened since `generation` was read (it may be stale).
    pub fn insert(&self, q: &Question, answer: &[u8], generation: u64) {
        // Truncated answers are never stored.
        if answer.len() < DNS_HEADER || answer[2] & 0x02 != 0 {
            return;
        }
        let Some(ttls) = ttl_offsets(answer) else {
            return;
        };
        let min = ttls
            .iter()
            .map(|&t| {
                let t = usize::from(t);
                u32::from_be_bytes([answer[t], answer[t + 1], answer[t + 2], answer[t + 3]])
            })
            .min();
        let Some(min) = min.filter(|&m| m > 0) else {
            return;
        };
        let now = Instant::now();
        let bytes = answer.len() + q.key_len + ttls.len() * 2 + ENTRY_OVERHEAD;
        let entry = Entry {
            answer: answer.into(),
            ttls: ttls.into(),
            stored: now,
            expires: now + Duration::from_secs(u64::from(min)),
        };
        let mut g = self.inner.write().expect("wire cache lock");
        if g.generation != generation {
            return;
        }
        if let Some(old) = g.map.remove(q.key()) {
            g.bytes -= old.answer.len() + q.key_len + old.ttls.len() * 2 + ENTRY_OVERHEAD;
        }
        if g.map.len() >= g.max_entries || g.bytes + bytes > g.max_bytes {
            g.map.clear();
            g.bytes = 0;
        }
        if bytes > g.max_bytes || g.max_entries == 0 {
            return;
        }
        g.bytes += bytes;
        g.map.insert(q.key().into(), entry);
    }

    /// Forget everything (a reload).
    pub fn clear(&self) {
        self.inner.write().expect("wire cache lock").forget_all();
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.inner.read().expect("wire cache lock").map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::cache::{Cache, Limits};
    use crate::dns::forward::Forwarder;
    use crate::dns::resolver::{Resolver, Step};
    use crate::hosts::Hosts;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

    /// A query whose name is longer than DNS allows: refused, not a panic (found by
    /// the `dns_wire_cache` fuzz target).
    #[test]
    fn names_longer_than_255_bytes_are_not_plain_queries() {
        for total in [253usize, 254, 255, 256] {
            let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            let mut left = total;
            while left > 0 {
                let len = (left - 1).min(63);
                q.push(len as u8);
                q.extend(std::iter::repeat_n(b'a', len));
                left -= len + 1;
            }
            q.extend([0, 0, 1, 0, 1]);
            // `total` label bytes plus the final zero.
            assert_eq!(
                question(&q).is_some(),
                total < 255,
                "name of {} bytes",
                total + 1
            );
        }
    }

    const CONFIG: &str = r#"version = 1
[system]
hostname = "hearth"
[network.lan]
bridge = "br-lan"
address = "10.77.0.1/24"
[dns]
domain = "home.arpa"
records = [{ name = "nas", type = "A", value = "10.77.0.10" }]
"#;

    fn resolver() -> Resolver {
        let cfg = hearth_config::parse(CONFIG, "test.toml").unwrap();
        let state = crate::dns::server::state(&cfg, &Hosts::default(), None).unwrap();
        let limits = Limits {
            max_entries: 100,
            max_bytes: 1 << 20,
            min_ttl: 0,
            max_ttl: 86_400,
        };
        Resolver::new(
            state,
            Cache::new(limits),
            Forwarder::new(Vec::new(), Duration::from_millis(1)),
        )
        .with_wire_cache(WireCache::new(100, 1 << 20))
    }

    fn query(id: u16, name: &str, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some(p) = edns {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// Cache an upstream answer for `name` with `n` A records of TTL `ttl`.
    fn cache_answer(r: &Resolver, name: &str, n: u8, ttl: u32) {
        let owner = Name::from_ascii(name).unwrap();
        let mut m = Message::new(9, MessageType::Response, OpCode::Query);
        for i in 0..n {
            let a = RData::A(A(std::net::Ipv4Addr::new(192, 0, 2, i)));
            m.add_answer(Record::from_rdata(owner.clone(), ttl, a));
        }
        r.cache().insert((owner, RecordType::A, DNSClass::IN), &m);
    }

    fn full(r: &Resolver, req: &[u8]) -> Vec<u8> {
        match r.prepare(req, true, "10.77.0.2".parse().unwrap()) {
            Step::Reply(b) => b,
            other => panic!("not answered from memory: {other:?}"),
        }
    }

    #[test]
    fn a_hit_is_the_full_paths_answer_with_the_clients_id_and_spelling() {
        let r = resolver();
        cache_answer(&r, "www.example.", 2, 300);
        let mut out = Vec::new();
        for edns in [None, Some(1232), Some(4096)] {
            // Payload sizes share an entry.
            let stored = edns == Some(4096);
            assert_eq!(
                r.answer_fast(&query(1, "www.example.", edns), &mut out),
                stored
            );
            full(&r, &query(1, "www.example.", edns)); // stores it
            let req = query(0xBEEF, "www.example.", edns);
            assert!(r.answer_fast(&req, &mut out), "{edns:?}");
            assert_eq!(out, full(&r, &req), "{edns:?}");
            assert_eq!(out[..2], [0xBE, 0xEF]);
            // Another spelling shares the entry. The bytes differ only in that the
            // answer's owner names point at the client's question (hickory compresses
            // case-sensitively): the same message.
            let req = query(7, "WwW.ExAmple.", edns);
            assert!(r.answer_fast(&req, &mut out), "{edns:?}");
            let (fast, slow) = (Message::from_vec(&out).unwrap(), full(&r, &req));
            let slow = Message::from_vec(&slow).unwrap();
            assert_eq!(fast.metadata, slow.metadata);
            assert_eq!(fast.queries[0].name().to_string(), "WwW.ExAmple.");
            assert_eq!(fast.queries, slow.queries);
            assert_eq!(fast.answers, slow.answers);
            assert_eq!(fast.edns, slow.edns);
        }
    }

    #[test]
    fn local_blocked_truncated_and_odd_queries_stay_on_the_full_path() {
        let r = resolver();
        let mut out = Vec::new();
        // Local zone: answered by the full path, never stored.
        full(&r, &query(1, "nas.home.arpa.", None));
        assert!(!r.answer_fast(&query(2, "nas.home.arpa.", None), &mut out));
        // Too big for 512 bytes: stored for EDNS clients only; others get TC.
        cache_answer(&r, "big.example.", 40, 300);
        full(&r, &query(1, "big.example.", Some(1232)));
        assert!(r.answer_fast(&query(2, "big.example.", Some(1232)), &mut out));
        assert!(!r.answer_fast(&query(2, "big.example.", Some(512)), &mut out));
        let tc = full(&r, &query(3, "big.example.", None));
        assert_ne!(tc[2] & 0x02, 0, "truncated");
        assert!(!r.answer_fast(&query(4, "big.example.", None), &mut out));
        // Two questions, a response, garbage: not plain queries.
        let mut two = Message::new(1, MessageType::Query, OpCode::Query);
        for n in ["a.example.", "b.example."] {
            two.add_query(Query::query(Name::from_ascii(n).unwrap(), RecordType::A));
        }
        assert!(question(&two.to_vec().unwrap()).is_none());
        let mut resp = query(1, "www.example.", None);
        resp[2] |= 0x80;
        assert!(question(&resp).is_none());
        assert!(question(&[0; 5]).is_none());
        // EDNS options: a cookie (dig's default) is ignored, anything else is not.
        let with_option = |code: u16, len: u16| {
            let mut q = query(1, "www.example.", Some(1232));
            let rdlen = q.len() - 2;
            q[rdlen..].copy_from_slice(&(len + 4).to_be_bytes());
            q.extend_from_slice(&code.to_be_bytes());
            q.extend_from_slice(&len.to_be_bytes());
            q.resize(q.len() + usize::from(len), 7);
            q
        };
        let plain = question(&query(1, "www.example.", Some(1232))).unwrap();
        assert_eq!(question(&with_option(10, 8)).unwrap().key(), plain.key());
        assert!(question(&with_option(8, 8)).is_none(), "client subnet");
        let mut torn = with_option(10, 8);
        torn.pop();
        assert!(question(&torn).is_none());
        let mut trailing = query(1, "www.example.", None);
        trailing.push(0);
        assert!(question(&trailing).is_none());
    }

    #[test]
    fn ttls_age_and_entries_expire_with_the_smallest_ttl() {
        let c = WireCache::new(10, 1 << 20);
        let r = resolver();
        cache_answer(&r, "t.example.", 1, 100);
        let req = query(1, "t.example.", None);
        let answer = full(&r, &req);
        let q = question(&req).unwrap();
        c.insert(&q, &answer, c.generation());
        let mut out = Vec::new();
        assert!(c.answer(&req, &q, &mut out));
        let ttl_at = usize::from(ttl_offsets(&answer).unwrap()[0]);
        let ttl = |b: &[u8]| u32::from_be_bytes(b[ttl_at..ttl_at + 4].try_into().unwrap());
        assert_eq!(ttl(&out), 100);
        // Pretend it was stored 30 s ago, then 100 s ago.
        let age = |secs| {
            let mut g = c.inner.write().unwrap();
            let e = g.map.values_mut().next().unwrap();
            e.stored = Instant::now() - Duration::from_secs(secs);
            e.expires = e.stored + Duration::from_secs(100);
        };
        age(30);
        assert!(c.answer(&req, &q, &mut out));
        assert_eq!(ttl(&out), 70);
        age(100);
        assert!(!c.answer(&req, &q, &mut out));
    }

    #[test]
    fn a_reload_clears_and_refuses_stale_inserts_and_the_bounds_hold() {
        let r = resolver();
        cache_answer(&r, "x.example.", 1, 100);
        let req = query(1, "x.example.", None);
        let answer = full(&r, &req);
        let q = question(&req).unwrap();
        let c = WireCache::new(2, 1 << 20);
        let before = c.generation();
        c.insert(&q, &answer, before);
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
        c.insert(&q, &answer, before);
        assert!(c.is_empty(), "stale generation");
        // The entry bound: a third name clears the map first.
        for (i, n) in ["a.example.", "b.example.", "c.example."]
            .iter()
            .enumerate()
        {
            cache_answer(&r, n, 1, 100);
            let req = query(1, n, None);
            let answer = full(&r, &req);
            c.insert(&question(&req).unwrap(), &answer, c.generation());
            assert_eq!(c.len(), if i == 2 { 1 } else { i + 1 });
        }
        // The byte bound: nothing bigger than it is stored.
        let tiny = WireCache::new(10, 10);
        tiny.insert(&q, &answer, tiny.generation());
        assert!(tiny.is_empty());
    }

    #[test]
    fn a_reload_empties_the_hot_path_so_new_blocks_and_zones_apply() {
        let r = resolver();
        cache_answer(&r, "ads.example.", 1, 100);
        full(&r, &query(1, "ads.example.", None));
        let mut out = Vec::new();
        assert!(r.answer_fast(&query(2, "ads.example.", None), &mut out));
        let cfg = hearth_config::parse(CONFIG, "test.toml").unwrap();
        r.swap(crate::dns::server::state(&cfg, &Hosts::default(), None).unwrap());
        assert!(!r.answer_fast(&query(3, "ads.example.", None), &mut out));
    }
}
