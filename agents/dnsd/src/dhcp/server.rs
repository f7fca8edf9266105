//! The DHCPv4 state machine (RFC 2131 4.3): one request in, at most one reply out.
//!
//! [`Server::handle`] is free of sockets so unit tests drive it directly. It holds one
//! lock over the lease database and the outstanding offers while it decides and
//! commits, which is what makes "never one address for two clients" hold across the
//! threads serving different interfaces. [`Server::handle_batch`] does the same for
//! every request that arrived together, with one fsync for the batch (group commit):
//! no ACK of the batch leaves before its leases are durable; OFFERs and NAKs, which
//! promise nothing durable, may leave before the fsync ([`Server::handle_batch_early`]). The server is authoritative for its subnets:
//! a REQUEST for an address it cannot give gets a NAK.
//!
//! Pools live in *slots*, one per served interface, stable for the life of the
//! process; a reload swaps the whole set under the same lock
//! ([`Server::replace_pools`]), so every request is decided against one consistent
//! set. An empty slot (its interface is no longer served) ignores requests. A
//! client holding an address the new pools no longer give it (outside a shrunk
//! range, now reserved for another MAC) gets a NAK when it renews, and that lease
//! ends then, so the address is free for the client it is now meant for.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use ipnet::Ipv4Net;

use super::lease::{Lease, LeaseDb, LeaseError, Mac};
use super::pool::{Offers, Pool, OFFER_HOLD_SECS};
use crate::hosts::Hosts;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// 255.255.255.255:68 on the pool's interface (clients without an address).
    Broadcast,
    /// The client's current address, port 68 (renewals, INFORM).
    Unicast(Ipv4Addr),
    /// A relay agent (`giaddr`), port 67.
    Relay(Ipv4Addr),
}

/// A reply and its destination.
#[derive(Debug)]
pub struct Reply {
    /// The message.
    pub msg: Message,
    /// Where it goes.
    pub dest: Dest,
}

impl Reply {
    /// Whether sending this reply promises nothing that must survive a crash: an
    /// OFFER (held in memory only; the REQUEST's ACK is what commits) or a NAK.
    pub fn promises_nothing(&self) -> bool {
        matches!(
            self.msg.opts().msg_type(),
            Some(MessageType::Offer | MessageType::Nak)
        )
    }
}

/// Longest quarantine for an address a client declined.
const DECLINE_SECS: u64 = 3600;

struct State {
    db: LeaseDb,
    offers: Offers,
    /// The pool of every slot; `None`: the slot's interface is not served.
    pools: Vec<Option<Pool>>,
}

/// The DHCP server for every pool, sharing one lease database.
pub struct Server {
    state: Mutex<State>,
    hosts: Hosts,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock().expect("lease lock");
        f.debug_struct("Server")
            .field("pools", &st.pools)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `pools` (pool `i` in slot `i`) over `db`; publishes reservation
    /// names and leased host names into `hosts`.
    pub fn new(pools: Vec<Pool>, db: LeaseDb, hosts: Hosts, now: u64) -> Self {
        let server = Self {
            state: Mutex::new(State {
                db,
                offers: Offers::new(),
                pools: pools.into_iter().map(Some).collect(),
            }),
            hosts,
        };
        server.publish_all(now);
        server
    }

    /// The pool served in `slot` (a copy), if any.
    pub fn pool(&self, slot: usize) -> Option<Pool> {
        let st = self.state.lock().expect("lease lock");
        st.pools.get(slot).cloned().flatten()
    }

    /// Serve `slots` from now on (slot `i` is what `handle(i, ..)` answers from;
    /// slots beyond the vector are empty). Reservation names that are gone leave
    /// the host table, new ones enter it. Leases are untouched: one the new pools
    /// no longer allow is NAKed at its renewal.
    pub fn replace_pools(&self, slots: Vec<Option<Pool>>, now: u64) {
        let mut st = self.state.lock().expect("lease lock");
        let names = |pools: &[Option<Pool>]| -> Vec<(String, Ipv4Addr)> {
            let mut v: Vec<_> = pools
                .iter()
                .flatten()
                .flat_map(|p| p.reservations.values())
                .map(|r| (r.hostname.clone(), r.ip))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let (old, new) = (names(&st.pools), names(&slots));
        for (name, ip) in old.iter().filter(|n| !new.contains(n)) {
            self.hosts.remove(name, *ip);
        }
        for (name, ip) in new.iter().filter(|n| !old.contains(n)) {
            self.hosts.insert(name, *ip);
        }
        // Offers made from the old pools are checked again at the REQUEST; drop the
        // expired ones now.
        st.offers.retain(|_, (_, until)| *until > now);
        st.pools = slots;
    }

    /// Every lease in the database (for status and tests).
    pub fn leases(&self) -> Vec<Lease> {
        let st = self.state.lock().expect("lease lock");
        st.db.iter().cloned().collect()
    }

    fn publish_all(&self, now: u64) {
        let st = self.state.lock().expect("lease lock");
        for pool in st.pools.iter().flatten() {
            for r in pool.reservations.values() {
                self.hosts.insert(&r.hostname, r.ip);
            }
        }
        for l in st.db.iter().filter(|l| l.active(now)) {
            if let Some(h) = &l.hostname {
                self.hosts.insert(h, l.ip);
            }
        }
    }

    /// Answer `req`, received on slot `pool`'s interface at unix time `now` (`None`
    /// when the slot is empty). Errors only when the lease could not be made
    /// durable; no ACK is sent then.
    pub fn handle(
        &self,
        pool: usize,
        req: &Message,
        now: u64,
    ) -> Result<Option<Reply>, LeaseError> {
        let mut st = self.state.lock().expect("lease lock");
        let reply = self.decide(&mut st, pool, req, now)?;
        st.db.sync()?;
        Ok(reply)
    }

    /// Answer a batch of requests received together on pool `pool`'s interface, with
    /// one fsync of the lease log for all of them (group commit). The replies come
    /// back in order; when the log cannot be made durable every reply is withheld
    /// (the clients retry) and the error is returned.
    pub fn handle_batch(
        &self,
        pool: usize,
        reqs: &[Message],
        now: u64,
    ) -> Result<Vec<Option<Reply>>, LeaseError> {
        self.handle_batch_early(pool, reqs, now, &mut |_| false)
    }

    /// [`Server::handle_batch`], handing each reply that promises nothing durable
    /// (OFFER, NAK: see [`Reply::promises_nothing`]) to `early` *before* the fsync;
    /// those `early` took (returned `true`, e.g. sent) come back as `None`. ACKs still
    /// leave only after their leases are on stable storage.
    pub fn handle_batch_early(
        &self,
        pool: usize,
        reqs: &[Message],
        now: u64,
        early: &mut dyn FnMut(&Reply) -> bool,
    ) -> Result<Vec<Option<Reply>>, LeaseError> {
        let mut st = self.state.lock().expect("lease lock");
        let mut replies = Vec::with_capacity(reqs.len());
        let mut failed = None;
        for req in reqs {
            match self.decide(&mut st, pool, req, now) {
                Ok(r) => replies.push(r),
                Err(e) => {
                    replies.push(None);
                    failed.get_or_insert(e);
                }
            }
        }
        for slot in &mut replies {
            if slot
                .as_ref()
                .is_some_and(|r| r.promises_nothing() && early(r))
            {
                *slot = None;
            }
        }
        let synced = st.db.sync();
        match failed.map_or(synced, Err) {
            Ok(()) => Ok(replies),
            Err(e) => Err(e),
        }
    }

    /// The decision for one request, with its lease lines staged (not yet synced).
    fn decide(
        &self,
        st: &mut State,
        slot: usize,
        req: &Message,
        now: u64,
    ) -> Result<Option<Reply>, LeaseError> {
        let State { db, offers, pools } = st;
        let Some(pool) = pools.get(slot).and_then(Option::as_ref) else {
            return Ok(None);
        };
        // dhcproto's `chaddr()` slices its 16-byte field by `hlen` and panics on a
        // larger one (found by the dhcp_packet fuzz target): such a packet is garbage.
        if req.opcode() != Opcode::BootRequest || usize::from(req.hlen()) > 16 {
            return Ok(None);
        }
        let (Some(mac), Some(kind)) = (Mac::from_chaddr(req.chaddr()), req.opts().msg_type())
        else {
            return Ok(None);
        };
        let requested = match req.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let server_id = match req.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        offers.retain(|_, (_, until)| *until > now);
        match kind {
            MessageType::Discover => {
                let Some(ip) = pool.choose(db, offers, mac, requested, now) else {
                    match pool.reservation(mac) {
                        Some(r) => log::warn!(
                            "{}: no address for {mac}: its reserved {} is still leased to \
                             another client",
                            pool.segment,
                            r.ip
                        ),
                        None => log::warn!(
                            "{}: no address for {mac}: pool {}-{} exhausted",
                            pool.segment,
                            pool.range.start(),
                            pool.range.end()
                        ),
                    }
                    return Ok(None);
                };
                offers.insert(ip, (mac, now + OFFER_HOLD_SECS));
                log::debug!("{}: offer {ip} to {mac}", pool.segment);
                Ok(Some(reply(pool, req, MessageType::Offer, Some(ip))))
            }
            MessageType::Request => {
                if server_id.is_some_and(|s| s != pool.server_ip) {
                    // The client chose another server's offer.
                    offers.retain(|_, (m, _)| *m != mac);
                    return Ok(None);
                }
                // SELECTING and INIT-REBOOT name the address in option 50;
                // RENEWING and REBINDING in ciaddr.
                let ip = match (requested, req.ciaddr()) {
                    (Some(ip), _) => ip,
                    (None, ci) if !ci.is_unspecified() => ci,
                    _ => return Ok(Some(nak(pool, req))),
                };
                let reserved_elsewhere = pool.reservation(mac).is_some_and(|r| r.ip != ip);
                if reserved_elsewhere || !pool.available(db, offers, mac, ip, now) {
                    log::info!("{}: NAK {ip} for {mac}", pool.segment);
                    // A NAK for the client's own lease (a reload took the address out
                    // of the range or reserved it for another MAC): the client must
                    // stop using it, so the lease ends now and the address is free
                    // for the client it is meant for.
                    let own = db
                        .get(ip)
                        .filter(|l| l.mac == Some(mac) && l.active(now))
                        .filter(|_| pool.subnet.contains(&ip))
                        .cloned();
                    if let Some(l) = own {
                        if let Some(h) = &l.hostname {
                            self.hosts.remove(h, ip);
                        }
                        db.stage(Lease { expires: now, ..l })?;
                        log::info!("{}: lease of {ip} to {mac} ended", pool.segment);
                    }
                    return Ok(Some(nak(pool, req)));
                }
                let previous = db.get(ip).cloned();
                let hostname = pool
                    .reservation(mac)
                    .map(|r| r.hostname.clone())
                    .or_else(|| client_hostname(req))
                    .or_else(|| previous.as_ref().and_then(|l| l.hostname.clone()));
                let lease = Lease {
                    ip,
                    mac: Some(mac),
                    expires: now + u64::from(pool.lease_secs),
                    hostname: hostname.clone(),
                };
                db.stage(lease)?;
                offers.remove(&ip);
                if let Some(old) = previous.and_then(|l| l.hostname) {
                    self.hosts.remove(&old, ip);
                }
                if let Some(h) = &hostname {
                    self.hosts.insert(h, ip);
                }
                log::info!(
                    "{}: ACK {ip} to {mac}{}",
                    pool.segment,
                    hostname.map(|h| format!(" ({h})")).unwrap_or_default()
                );
                Ok(Some(reply(pool, req, MessageType::Ack, Some(ip))))
            }
            MessageType::Decline => {
                let Some(ip) = requested else { return Ok(None) };
                let ours = db.get(ip).is_some_and(|l| l.mac == Some(mac))
                    || offers.get(&ip).is_some_and(|(m, _)| *m == mac);
                if ours && pool.subnet.contains(&ip) {
                    log::warn!(
                        "{}: {mac} declined {ip}: in use by another host",
                        pool.segment
                    );
                    if let Some(h) = db.get(ip).and_then(|l| l.hostname.clone()) {
                        self.hosts.remove(&h, ip);
                    }
                    let quarantine = DECLINE_SECS.min(u64::from(pool.lease_secs));
                    db.stage(Lease {
                        ip,
                        mac: None,
                        expires: now + quarantine,
                        hostname: None,
                    })?;
                    offers.remove(&ip);
                }
                Ok(None)
            }
            MessageType::Release => {
                let ip = req.ciaddr();
                if let Some(l) = db.get(ip).filter(|l| l.mac == Some(mac)).cloned() {
                    if let Some(h) = &l.hostname {
                        self.hosts.remove(h, ip);
                    }
                    // Keep the client's claim (it gets the address back next time) but
                    // end the lease now.
                    db.stage(Lease {
                        expires: now.min(l.expires),
                        ..l
                    })?;
                    log::info!("{}: {mac} released {ip}", pool.segment);
                }
                Ok(None)
            }
            MessageType::Inform => Ok(Some(reply(pool, req, MessageType::Ack, None))),
            _ => Ok(None),
        }
    }
}

/// A sanitised first label of option 12: lowercase letters, digits and `-`.
fn client_hostname(req: &Message) -> Option<String> {
    let Some(DhcpOption::Hostname(h)) = req.opts().get(OptionCode::Hostname) else {
        return None;
    };
    let label: String = h
        .split('.')
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    (!label.is_empty()).then(|| label.to_owned())
}

fn base(pool: &Pool, req: &Message, kind: MessageType) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(pool.server_ip));
    m
}

fn dest(req: &Message, kind: MessageType) -> Dest {
    if !req.giaddr().is_unspecified() {
        Dest::Relay(req.giaddr())
    } else if kind != MessageType::Nak && !req.ciaddr().is_unspecified() {
        Dest::Unicast(req.ciaddr())
    } else {
        Dest::Broadcast
    }
}

fn nak(pool: &Pool, req: &Message) -> Reply {
    Reply {
        msg: base(pool, req, MessageType::Nak),
        dest: dest(req, MessageType::Nak),
    }
}

/// An OFFER or ACK; `yiaddr` is `None` for the ACK to an INFORM (no lease).
fn reply(pool: &Pool, req: &Message, kind: MessageType, yiaddr: Option<Ipv4Addr>) -> Reply {
    let mut m = base(pool, req, kind);
    m.set_ciaddr(req.ciaddr());
    let o = m.opts_mut();
    o.insert(DhcpOption::SubnetMask(pool.subnet.netmask()));
    o.insert(DhcpOption::BroadcastAddr(pool.subnet.broadcast()));
    o.insert(DhcpOption::Router(vec![pool.server_ip]));
    o.insert(DhcpOption::DomainNameServer(vec![pool.server_ip]));
    o.insert(DhcpOption::DomainName(pool.domain.clone()));
    if let Some(mtu) = pool.mtu {
        o.insert(DhcpOption::InterfaceMtu(mtu));
    }
    if !pool.ntp.is_empty() {
        o.insert(DhcpOption::NtpServers(pool.ntp.clone()));
    }
    let wants_121 = matches!(
        req.opts().get(OptionCode::ParameterRequestList),
        Some(DhcpOption::ParameterRequestList(l)) if l.contains(&OptionCode::ClasslessStaticRoute)
    );
    if wants_121 {
        // RFC 3442: a client that gets option 121 ignores option 3, so the default
        // route is repeated here, first.
        let mut routes = vec![(Ipv4Net::default(), pool.server_ip)];
        routes.extend(pool.routes.iter().copied());
        o.insert(DhcpOption::ClasslessStaticRoute(routes));
    }
    if let Some(ip) = yiaddr {
        m.set_yiaddr(ip);
        let secs = pool.lease_secs;
        let o = m.opts_mut();
        o.insert(DhcpOption::AddressLeaseTime(secs));
        o.insert(DhcpOption::Renewal(secs / 2));
        o.insert(DhcpOption::Rebinding(secs / 8 * 7));
    }
    Reply {
        dest: dest(req, kind),
        msg: m,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::RangeInclusive;

    use super::*;
    use crate::dhcp::pool::Reservation;

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

    fn server(dir: &std::path::Path) -> Server {
        let mut reservations = HashMap::new();
        reservations.insert(
            Mac([2, 0, 0, 0, 0, 0x99]),
            Reservation {
                ip: Ipv4Addr::new(10, 9, 0, 50),
                hostname: "printer".into(),
            },
        );
        let pool = Pool {
            segment: "lan".into(),
            interface: "test0".into(),
            server_ip: SERVER,
            subnet: "10.9.0.0/24".parse().unwrap(),
            range: Ipv4Addr::new(10, 9, 0, 100)..=Ipv4Addr::new(10, 9, 0, 101),
            lease_secs: 600,
            domain: "home.arpa".into(),
            mtu: Some(1500),
            reservations,
            ntp: vec![Ipv4Addr::new(10, 9, 0, 2)],
            routes: vec![(
                "192.168.50.0/24".parse().unwrap(),
                Ipv4Addr::new(10, 9, 0, 3),
            )],
        };
        Server::new(
            vec![pool],
            LeaseDb::open(dir).unwrap(),
            Hosts::default(),
            1000,
        )
    }

    fn msg(mac: u8, kind: MessageType) -> Message {
        let mut m = Message::default();
        m.set_chaddr(&[2, 0, 0, 0, 0, mac]);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    fn dora(s: &Server, mac: u8, now: u64) -> Option<Ipv4Addr> {
        let offer = s
            .handle(0, &msg(mac, MessageType::Discover), now)
            .unwrap()?;
        assert_eq!(offer.dest, Dest::Broadcast);
        let mut req = msg(mac, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.msg.yiaddr()));
        req.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        let ack = s.handle(0, &req, now).unwrap().unwrap();
        assert_eq!(ack.msg.opts().msg_type(), Some(MessageType::Ack));
        Some(ack.msg.yiaddr())
    }

    #[test]
    fn dora_reservation_exhaustion_release_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert_eq!(dora(&s, 1, 1000), Some(Ipv4Addr::new(10, 9, 0, 100)));
        assert_eq!(dora(&s, 2, 1000), Some(Ipv4Addr::new(10, 9, 0, 101)));
        assert_eq!(dora(&s, 0x99, 1000), Some(Ipv4Addr::new(10, 9, 0, 50)));
        assert_eq!(s.hosts.lookup("printer"), Some(Ipv4Addr::new(10, 9, 0, 50)));
        // Exhausted: no offer.
        assert!(s
            .handle(0, &msg(3, MessageType::Discover), 1000)
            .unwrap()
            .is_none());
        // Someone else's address: NAK.
        let mut req = msg(3, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 9, 0, 100)));
        let nak = s.handle(0, &req, 1000).unwrap().unwrap();
        assert_eq!(nak.msg.opts().msg_type(), Some(MessageType::Nak));
        // Client 1 releases; client 3 can now have an address...
        let mut rel = msg(1, MessageType::Release);
        rel.set_ciaddr(Ipv4Addr::new(10, 9, 0, 100));
        assert!(s.handle(0, &rel, 1001).unwrap().is_none());
        assert_eq!(dora(&s, 3, 1002), Some(Ipv4Addr::new(10, 9, 0, 100)));
        // ...and once client 2's lease expires, client 1 gets that one.
        assert_eq!(dora(&s, 1, 1000 + 601), Some(Ipv4Addr::new(10, 9, 0, 101)));
    }

    #[test]
    fn renew_is_unicast_and_inform_has_no_lease() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let ip = dora(&s, 1, 1000).unwrap();
        let mut renew = msg(1, MessageType::Request);
        renew.set_ciaddr(ip);
        let ack = s.handle(0, &renew, 1100).unwrap().unwrap();
        assert_eq!(ack.dest, Dest::Unicast(ip));
        assert_eq!(s.leases()[0].expires, 1700);
        let mut inform = msg(7, MessageType::Inform);
        inform.set_ciaddr(Ipv4Addr::new(10, 9, 0, 7));
        let ack = s.handle(0, &inform, 1100).unwrap().unwrap();
        assert_eq!(ack.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(ack.msg.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(ack.msg.opts().get(OptionCode::Router).is_some());
    }

    #[test]
    fn options_ntp_mtu_and_classless_routes() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let mut disc = msg(1, MessageType::Discover);
        disc.opts_mut()
            .insert(DhcpOption::ParameterRequestList(vec![
                OptionCode::ClasslessStaticRoute,
                OptionCode::NtpServers,
            ]));
        let offer = s.handle(0, &disc, 1000).unwrap().unwrap().msg;
        assert_eq!(
            offer.opts().get(OptionCode::NtpServers),
            Some(&DhcpOption::NtpServers(vec![Ipv4Addr::new(10, 9, 0, 2)]))
        );
        assert_eq!(
            offer.opts().get(OptionCode::InterfaceMtu),
            Some(&DhcpOption::InterfaceMtu(1500))
        );
        assert_eq!(
            offer.opts().get(OptionCode::ClasslessStaticRoute),
            Some(&DhcpOption::ClasslessStaticRoute(vec![
                (Ipv4Net::default(), SERVER),
                (
                    "192.168.50.0/24".parse().unwrap(),
                    Ipv4Addr::new(10, 9, 0, 3)
                ),
            ]))
        );
        // Not requested: no option 121 (the client uses option 3).
        let offer = s.handle(0, &msg(2, MessageType::Discover), 1000).unwrap();
        let offer = offer.unwrap().msg;
        assert!(offer.opts().get(OptionCode::ClasslessStaticRoute).is_none());
    }

    #[test]
    fn a_batch_is_answered_in_order_and_durable_before_the_replies() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let offers = s
            .handle_batch(
                0,
                &[msg(1, MessageType::Discover), msg(2, MessageType::Discover)],
                1000,
            )
            .unwrap();
        let ips: Vec<Ipv4Addr> = offers
            .iter()
            .map(|o| o.as_ref().unwrap().msg.yiaddr())
            .collect();
        assert_ne!(ips[0], ips[1]);
        let reqs: Vec<Message> = [1u8, 2]
            .iter()
            .zip(&ips)
            .map(|(mac, ip)| {
                let mut r = msg(*mac, MessageType::Request);
                r.opts_mut().insert(DhcpOption::RequestedIpAddress(*ip));
                r
            })
            .collect();
        let acks = s.handle_batch(0, &reqs, 1000).unwrap();
        for (a, ip) in acks.iter().zip(&ips) {
            let a = a.as_ref().unwrap();
            assert_eq!(a.msg.opts().msg_type(), Some(MessageType::Ack));
            assert_eq!(a.msg.yiaddr(), *ip);
        }
        // OFFERs go early, ACKs never do.
        let reqs2 = [msg(1, MessageType::Discover), reqs[1].clone()];
        let mut sent = Vec::new();
        let rest = s
            .handle_batch_early(0, &reqs2, 1000, &mut |r| {
                sent.push(r.msg.opts().msg_type());
                true
            })
            .unwrap();
        assert_eq!(sent, [Some(MessageType::Offer)]);
        assert!(rest[0].is_none());
        let ack = rest[1].as_ref().unwrap();
        assert_eq!(ack.msg.opts().msg_type(), Some(MessageType::Ack));
        // What a crash right now would leave: both leases.
        let text = std::fs::read(dir.path().join(crate::dhcp::lease::LOG_NAME)).unwrap();
        let db = crate::dhcp::lease::parse_log(dir.path(), &text).unwrap();
        assert!(ips.iter().all(|ip| db[ip].expires == 1600));
    }

    #[test]
    fn a_hardware_address_longer_than_chaddr_is_dropped() {
        // hlen 250 on a 16-byte chaddr: the fuzzer's crash input, minimised.
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        use dhcproto::v4::{Decodable, Decoder, Encodable, Encoder};
        let mut wire = Vec::new();
        msg(1, MessageType::Discover)
            .encode(&mut Encoder::new(&mut wire))
            .unwrap();
        wire[2] = 250; // hlen
        let m = Message::decode(&mut Decoder::new(&wire)).unwrap();
        assert_eq!(m.hlen(), 250);
        assert!(s.handle(0, &m, 1000).unwrap().is_none());
    }

    #[test]
    fn decline_quarantines_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let ip = dora(&s, 1, 1000).unwrap();
        let mut dec = msg(1, MessageType::Decline);
        dec.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        assert!(s.handle(0, &dec, 1000).unwrap().is_none());
        assert_ne!(dora(&s, 1, 1001), Some(ip));
    }

    /// The test pool with `range` and `reservations` instead.
    fn pool_with(
        s: &Server,
        range: RangeInclusive<Ipv4Addr>,
        reservations: &[(u8, u8, &str)],
    ) -> Pool {
        let mut p = s.pool(0).unwrap();
        p.range = range;
        p.reservations = reservations
            .iter()
            .map(|(mac, last, name)| {
                (
                    Mac([2, 0, 0, 0, 0, *mac]),
                    Reservation {
                        ip: Ipv4Addr::new(10, 9, 0, *last),
                        hostname: (*name).into(),
                    },
                )
            })
            .collect();
        p
    }

    fn renew(s: &Server, mac: u8, ip: Ipv4Addr, now: u64) -> MessageType {
        let mut r = msg(mac, MessageType::Request);
        r.set_ciaddr(ip);
        let reply = s.handle(0, &r, now).unwrap().unwrap();
        reply.msg.opts().msg_type().unwrap()
    }

    const fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 9, 0, last)
    }

    #[test]
    fn a_shrunk_range_naks_a_renewal_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert_eq!(dora(&s, 1, 1000), Some(ip(100)));
        assert_eq!(dora(&s, 2, 1000), Some(ip(101)));
        s.replace_pools(vec![Some(pool_with(&s, ip(101)..=ip(110), &[]))], 1100);
        // .101 is still in range: renewed. .100 is not: NAK, and the lease ends.
        assert_eq!(renew(&s, 2, ip(101), 1100), MessageType::Ack);
        assert_eq!(renew(&s, 1, ip(100), 1100), MessageType::Nak);
        let l = s.leases().into_iter().find(|l| l.ip == ip(100)).unwrap();
        assert!(!l.active(1100), "{l:?}");
        // The client's DISCOVER gets an address of the new range.
        assert_eq!(dora(&s, 1, 1100), Some(ip(102)));
    }

    #[test]
    fn a_new_reservation_never_takes_an_address_leased_to_another_client() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        // Client 1 holds .100; the new config reserves .100 for client 7.
        assert_eq!(dora(&s, 1, 1000), Some(ip(100)));
        let reserved = pool_with(&s, ip(100)..=ip(110), &[(7, 100, "nas")]);
        s.replace_pools(vec![Some(reserved)], 1010);
        // While client 1's lease is active client 7 gets nothing: no offer, a NAK
        // for the address itself.
        assert!(s
            .handle(0, &msg(7, MessageType::Discover), 1010)
            .unwrap()
            .is_none());
        let mut req = msg(7, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(ip(100)));
        let nak = s.handle(0, &req, 1010).unwrap().unwrap();
        assert_eq!(nak.msg.opts().msg_type(), Some(MessageType::Nak));
        // The name is published for the reserved address already.
        assert_eq!(s.hosts.lookup("nas"), Some(ip(100)));
        // Client 1's renewal is NAKed, which ends its lease; it moves on...
        assert_eq!(renew(&s, 1, ip(100), 1020), MessageType::Nak);
        assert_eq!(dora(&s, 1, 1020), Some(ip(101)));
        // ...and client 7 gets its reservation, each address with one client.
        assert_eq!(dora(&s, 7, 1021), Some(ip(100)));
        let owners: HashMap<Ipv4Addr, Mac> = s
            .leases()
            .into_iter()
            .filter(|l| l.active(1021))
            .map(|l| (l.ip, l.mac.unwrap()))
            .collect();
        assert_eq!(owners[&ip(100)], Mac([2, 0, 0, 0, 0, 7]));
        assert_eq!(owners[&ip(101)], Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(owners.len(), 2);
    }

    #[test]
    fn a_reserved_client_gets_its_address_once_the_other_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert_eq!(dora(&s, 1, 1000), Some(ip(100)));
        assert_eq!(dora(&s, 2, 1000), Some(ip(101)));
        let reserved = pool_with(&s, ip(100)..=ip(110), &[(7, 100, "nas"), (8, 101, "tv")]);
        s.replace_pools(vec![Some(reserved)], 1010);
        assert_eq!(dora(&s, 7, 1010), None);
        assert_eq!(dora(&s, 8, 1010), None);
        // Client 1 releases: client 7 may have .100 now.
        let mut rel = msg(1, MessageType::Release);
        rel.set_ciaddr(ip(100));
        assert!(s.handle(0, &rel, 1011).unwrap().is_none());
        assert_eq!(dora(&s, 7, 1012), Some(ip(100)));
        // Client 2's lease (600 s) expires: client 8 may have .101.
        assert_eq!(dora(&s, 8, 1599), None);
        assert_eq!(dora(&s, 8, 1600), Some(ip(101)));
    }

    #[test]
    fn reservation_names_follow_the_pools() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        assert_eq!(s.hosts.lookup("printer"), Some(ip(50)));
        // The printer moves to .60 and a NAS appears.
        let p = pool_with(
            &s,
            ip(100)..=ip(101),
            &[(0x99, 60, "printer"), (7, 70, "nas")],
        );
        s.replace_pools(vec![Some(p)], 1000);
        assert_eq!(s.hosts.lookup("printer"), Some(ip(60)));
        assert_eq!(s.hosts.lookup("nas"), Some(ip(70)));
        // Both go.
        let p = pool_with(&s, ip(100)..=ip(101), &[]);
        s.replace_pools(vec![Some(p)], 1000);
        assert_eq!(s.hosts.lookup("printer"), None);
        assert_eq!(s.hosts.lookup("nas"), None);
        // A leased name (not a reservation's) stays.
        let mut disc = msg(1, MessageType::Discover);
        disc.opts_mut()
            .insert(DhcpOption::Hostname("laptop".into()));
        let offer = s.handle(0, &disc, 1000).unwrap().unwrap();
        let mut req = msg(1, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.msg.yiaddr()));
        req.opts_mut().insert(DhcpOption::Hostname("laptop".into()));
        s.handle(0, &req, 1000).unwrap().unwrap();
        s.replace_pools(vec![None], 1000);
        assert_eq!(s.hosts.lookup("laptop"), Some(ip(100)));
    }

    #[test]
    fn an_empty_slot_ignores_requests() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let ip100 = dora(&s, 1, 1000).unwrap();
        s.replace_pools(vec![None, Some(s.pool(0).unwrap())], 1000);
        assert!(s.pool(0).is_none());
        for kind in [
            MessageType::Discover,
            MessageType::Request,
            MessageType::Inform,
            MessageType::Release,
        ] {
            let mut m = msg(1, kind);
            m.set_ciaddr(ip100);
            assert!(s.handle(0, &m, 1000).unwrap().is_none(), "{kind:?}");
        }
        // A slot past the end is empty too.
        assert!(s
            .handle(5, &msg(1, MessageType::Discover), 1000)
            .unwrap()
            .is_none());
        // Slot 1 serves the pool, and the lease survived the swap.
        assert_eq!(renew_slot(&s, 1, 1, ip100), MessageType::Ack);
    }

    fn renew_slot(s: &Server, slot: usize, mac: u8, ip: Ipv4Addr) -> MessageType {
        let mut r = msg(mac, MessageType::Request);
        r.set_ciaddr(ip);
        let reply = s.handle(slot, &r, 1000).unwrap().unwrap();
        reply.msg.opts().msg_type().unwrap()
    }
}
