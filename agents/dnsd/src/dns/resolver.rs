//! One query in, one answer out: the local zone first (never forwarded), then the
//! blocklists, then the cache, then the upstreams.
//!
//! The zone and blocklists sit behind one `Arc` that a reload replaces whole
//! ([`Resolver::swap`]): a query sees either the old or the new configuration, never a
//! mix, and a failed reload leaves the old one in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use hearth_config::BlockAction;
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use super::blocklist::Blocklists;
use super::cache::{Cache, Cached, Limits};
use super::forward::{Forwarder, EDNS_PAYLOAD};
use super::query_log::{rcode_name, QueryLog};
use super::wire_cache::{self, WireCache};
use super::zone::Zone;

/// TTL of synthesized answers for blocked names.
const BLOCKED_TTL: u32 = 60;

/// What a reload swaps.
#[derive(Debug)]
pub struct State {
    pub zone: Zone,
    pub blocks: Blocklists,
}

/// The next step for a query.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not answerable from memory: forward (see [`Resolver::forward`]).
    Forward(Box<Message>),
    /// Not a query we answer at all (a response, garbage without a header).
    Drop,
}

/// The resolver shared by every socket.
#[derive(Debug)]
pub struct Resolver {
    state: RwLock<Arc<State>>,
    cache: Cache,
    forwarder: Forwarder,
    /// Replaced by a reload; `logging` mirrors whether it is `Some`, so the hot
    /// path checks an atomic, not a lock.
    query_log: RwLock<Option<Arc<QueryLog>>>,
    logging: AtomicBool,
    wire: Option<WireCache>,
}

fn response_to(req: &Message) -> Message {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        resp.set_edns(e);
    }
    resp
}

/// Encode `resp`, truncating it (TC, empty sections) when it exceeds `limit`.
fn encode(resp: &Message, limit: Option<usize>) -> Vec<u8> {
    let bytes = resp.to_vec().unwrap_or_else(|e| {
        log::warn!("encoding an answer: {e}");
        let mut m = Message::error_msg(resp.metadata.id, OpCode::Query, ResponseCode::ServFail);
        m.queries = resp.queries.clone();
        m.to_vec().unwrap_or_default()
    });
    match limit {
        Some(l) if bytes.len() > l => resp.truncate().to_vec().unwrap_or_default(),
        _ => bytes,
    }
}

/// The UDP size limit for answers to `req`.
fn udp_limit(req: &Message) -> usize {
    match &req.edns {
        Some(e) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
        None => 512,
    }
}

impl Resolver {
    /// A resolver over `state`, with `cache` and `forwarder`.
    pub fn new(state: State, cache: Cache, forwarder: Forwarder) -> Self {
        Self {
            state: RwLock::new(Arc::new(state)),
            cache,
            forwarder,
            query_log: RwLock::new(None),
            logging: AtomicBool::new(false),
            wire: None,
        }
    }

    /// Serve repeated cached answers from `wire` ([`Resolver::answer_fast`]).
    pub fn with_wire_cache(mut self, wire: WireCache) -> Self {
        self.wire = Some(wire);
        self
    }

    /// The hot path: write the answer to the UDP query `req` into `out` if it is a
    /// stored cache answer (see [`wire_cache`]); `false` means use [`Resolver::prepare`].
    /// Off while queries are logged (a hit would not be).
    pub fn answer_fast(&self, req: &[u8], out: &mut Vec<u8>) -> bool {
        let logging = self.logging.load(Ordering::Relaxed);
        let Some(wire) = self.wire.as_ref().filter(|_| !logging) else {
            return false;
        };
        wire_cache::question(req).is_some_and(|q| wire.answer(req, &q, out))
    }

    /// Log queries into `log` (`None`: no query log).
    pub fn with_query_log(self, log: Option<QueryLog>) -> Self {
        self.set_query_log(log);
        self
    }

    /// Replace the query log (a reload; `None`: off).
    pub fn set_query_log(&self, log: Option<QueryLog>) {
        let on = log.is_some();
        *self.query_log.write().expect("query log lock") = log.map(Arc::new);
        self.logging.store(on, Ordering::Relaxed);
    }

    /// The query log, if on (the server flushes its summary).
    pub fn query_log(&self) -> Option<Arc<QueryLog>> {
        if !self.logging.load(Ordering::Relaxed) {
            return None;
        }
        self.query_log.read().expect("query log lock").clone()
    }

    fn log(&self, client: IpAddr, q: &Query, how: &str, rcode: ResponseCode) {
        if let Some(l) = self.query_log() {
            l.query(client, q, &format_args!("{how} {}", rcode_name(rcode)));
        }
    }

    /// New cache limits (a reload): the cache evicts down to them; the encoded hot
    /// set takes `wire_entries`/`wire_bytes` and starts empty.
    pub fn set_cache_limits(&self, limits: Limits, wire_entries: usize, wire_bytes: usize) {
        self.cache.set_limits(limits);
        if let Some(w) = &self.wire {
            w.set_limits(wire_entries, wire_bytes);
        }
    }

    /// Replace the zone and blocklists (a reload).
    pub fn swap(&self, state: State) {
        *self.state.write().expect("state lock") = Arc::new(state);
        if let Some(w) = &self.wire {
            w.clear();
        }
    }

    /// The current zone and blocklists.
    pub fn state(&self) -> Arc<State> {
        self.state.read().expect("state lock").clone()
    }

    /// The forwarder (to replace learned upstreams).
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// The cache (for stats).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The size limit for the answer to `req` (`None`: TCP, no limit).
    fn limit(req: &Message, udp: bool) -> Option<usize> {
        udp.then(|| udp_limit(req))
    }

    /// Answer `client`'s query from memory if possible.
    pub fn prepare(&self, bytes: &[u8], udp: bool, client: IpAddr) -> Step {
        let req = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) if bytes.len() >= 12 && bytes[2] & 0x80 == 0 => {
                let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return Step::Reply(m.to_vec().unwrap_or_default());
            }
            Err(_) => return Step::Drop,
        };
        if req.metadata.message_type != hickory_proto::op::MessageType::Query {
            return Step::Drop;
        }
        let mut resp = response_to(&req);
        let limit = Self::limit(&req, udp);
        if req.metadata.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return Step::Reply(encode(&resp, limit));
        }
        let [q] = req.queries.as_slice() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return Step::Reply(encode(&resp, limit));
        };
        // Before the state: an answer built from a state a reload replaced is stale.
        let generation = self.wire.as_ref().map(WireCache::generation);
        let state = self.state();
        if let Some(a) = state.zone.answer(&q.name, q.query_type) {
            resp.metadata.authoritative = true;
            resp.metadata.response_code = a.rcode;
            resp.answers = a.answers;
            resp.authorities = a.authorities;
            self.log(client, q, "local", a.rcode);
            return Step::Reply(encode(&resp, limit));
        }
        if let Some(action) = state.blocks.lookup(&q.name) {
            Self::blocked(&mut resp, q, action);
            self.log(client, q, "blocked", resp.metadata.response_code);
            return Step::Reply(encode(&resp, limit));
        }
        if let Some(c) = self
            .cache
            .get(&(q.name.clone(), q.query_type, q.query_class))
        {
            self.log(client, q, "cached", c.rcode);
            Self::fill(&mut resp, c);
            let out = encode(&resp, limit);
            if let (true, Some(w), Some(g)) = (udp, &self.wire, generation) {
                if let Some(wq) = wire_cache::question(bytes) {
                    w.insert(&wq, &out, g);
                }
            }
            return Step::Reply(out);
        }
        Step::Forward(Box::new(req))
    }

    fn blocked(resp: &mut Message, q: &Query, action: BlockAction) {
        match action {
            BlockAction::Nxdomain => resp.metadata.response_code = ResponseCode::NXDomain,
            BlockAction::Null => {
                let data = match q.query_type {
                    RecordType::A => Some(RData::A(A(Ipv4Addr::UNSPECIFIED))),
                    RecordType::AAAA => Some(RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED))),
                    _ => None,
                };
                if let Some(d) = data {
                    resp.add_answer(Record::from_rdata(q.name.clone(), BLOCKED_TTL, d));
                }
            }
        }
    }

    fn fill(resp: &mut Message, c: Cached) {
        resp.metadata.response_code = c.rcode;
        resp.answers = c.answers;
        resp.authorities = c.authorities;
        resp.additionals = c.additionals;
    }

    /// Forward `client`'s `req` (from [`Step::Forward`]), cache and encode the answer.
    pub async fn forward(&self, req: &Message, udp: bool, client: IpAddr) -> Vec<u8> {
        let mut resp = response_to(req);
        let q = &req.queries[0];
        match self.forwarder.resolve(q).await {
            Ok(m) => {
                self.cache
                    .insert((q.name.clone(), q.query_type, q.query_class), &m);
                resp.metadata.authentic_data = m.metadata.authentic_data;
                // An upstream refusing us is our failure, not the client's.
                let rcode = match m.metadata.response_code {
                    ResponseCode::Refused => ResponseCode::ServFail,
                    r => r,
                };
                Self::fill(
                    &mut resp,
                    Cached {
                        rcode,
                        answers: m.answers,
                        authorities: m.authorities,
                        additionals: m.additionals,
                    },
                );
            }
            Err(e) => {
                log::warn!("{} {}: {e}", q.name, q.query_type);
                resp.metadata.response_code = ResponseCode::ServFail;
            }
        }
        self.log(client, q, "forwarded", resp.metadata.response_code);
        encode(&resp, Self::limit(req, udp))
    }

    /// Answer `client`'s `bytes` completely (memory or upstream).
    pub async fn handle(&self, bytes: &[u8], udp: bool, client: IpAddr) -> Option<Vec<u8>> {
        match self.prepare(bytes, udp, client) {
            Step::Reply(b) => Some(b),
            Step::Forward(req) => Some(self.forward(&req, udp, client).await),
            Step::Drop => None,
        }
    }
}
