//! The DHCPv4 client state machine of RFC 2131 §4.4, as pure logic: no sockets, no
//! clock. [`Client::on_event`] takes an [`Event`] and the current time and returns
//! [`Action`]s (send this, configure that lease, drop that lease); the socket side
//! ([`crate::dhcp_client`]) performs them and calls back at [`Client::deadline`].
//! Keeping it pure is what lets the unit tests walk T1, T2, expiry, NAK and
//! retransmission with plain timestamps.
//!
//! Time is a [`Duration`] since any fixed origin (the runner uses its start instant).
//!
//! ```text
//!  INIT ─DISCOVER→ SELECTING ─OFFER/REQUEST→ REQUESTING ─ACK→ BOUND
//!    ↑                                          │NAK,timeout     │T1
//!    └──────────────────────────────────────────┘          RENEWING (unicast)
//!    ↑ expiry / NAK                                              │T2
//!    └──────────────────────────────────────────────────── REBINDING (broadcast)
//! ```
//!
//! Retransmission (§4.1): DISCOVER and REQUEST in SELECTING/REQUESTING are resent after
//! 4 s, 8 s, 16 s, ... up to 64 s, each ±1 s of jitter ([`Timing`]); REQUESTING gives up
//! after [`Timing::request_attempts`] and starts over. In RENEWING/REBINDING the
//! REQUEST is resent after half the time left until T2 (resp. expiry), but not more
//! often than [`Timing::min_renew_retransmit`] (60 s in the RFC).

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;

/// Retransmission timing; the defaults are RFC 2131's, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// First retransmission delay (doubles each time).
    pub initial: Duration,
    /// Upper bound of the doubling.
    pub max: Duration,
    /// Each delay is moved by a random amount in `-jitter..=jitter`.
    pub jitter: Duration,
    /// REQUESTs sent in REQUESTING before going back to INIT.
    pub request_attempts: u32,
    /// Smallest retransmission interval in RENEWING/REBINDING.
    pub min_renew_retransmit: Duration,
    /// After a NAK, wait this long before a new DISCOVER (no NAK storms).
    pub nak_backoff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(4),
            max: Duration::from_secs(64),
            jitter: Duration::from_secs(1),
            request_attempts: 4,
            min_renew_retransmit: Duration::from_secs(60),
            nak_backoff: Duration::from_secs(4),
        }
    }
}

/// A lease the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address with the subnet's prefix.
    pub address: Ipv4Net,
    /// The first router option, if any.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers (option 6), in the server's order.
    pub dns: Vec<Ipv4Addr>,
    /// The server identifier (option 54): where renewals and RELEASE go.
    pub server: Ipv4Addr,
    /// Lease time; `None` is infinite.
    pub duration: Option<Duration>,
    /// Renewal time T1 after `acquired`.
    pub t1: Duration,
    /// Rebinding time T2 after `acquired`.
    pub t2: Duration,
    /// When the REQUEST that got this lease was sent (RFC 2131 §4.4.1 counts from it).
    pub acquired: Duration,
}

impl Lease {
    /// When the lease ends, or `None` for an infinite lease.
    pub fn expires(&self) -> Option<Duration> {
        self.duration.map(|d| self.acquired + d)
    }
}

/// What the server said, decoded from a packet addressed to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// OFFER, ACK or NAK.
    pub kind: ReplyKind,
    /// Transaction id.
    pub xid: u32,
    /// `yiaddr`: the offered/acknowledged address.
    pub address: Ipv4Addr,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3, first entry.
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 54.
    pub server: Option<Ipv4Addr>,
    /// Option 51 in seconds (`u32::MAX` = infinite).
    pub lease_secs: Option<u32>,
    /// Option 58.
    pub t1_secs: Option<u32>,
    /// Option 59.
    pub t2_secs: Option<u32>,
}

/// The server messages a client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK.
    Ack,
    /// DHCPNAK.
    Nak,
}

/// The client messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// DHCPDISCOVER, broadcast.
    Discover { xid: u32 },
    /// DHCPREQUEST in SELECTING: broadcast, names the chosen server and address.
    Select {
        xid: u32,
        server: Ipv4Addr,
        address: Ipv4Addr,
    },
    /// DHCPREQUEST in RENEWING: unicast to `server` from our address (`ciaddr`).
    Renew {
        xid: u32,
        server: Ipv4Addr,
        address: Ipv4Addr,
    },
    /// DHCPREQUEST in REBINDING: broadcast, `ciaddr` set.
    Rebind { xid: u32, address: Ipv4Addr },
    /// DHCPRELEASE: unicast to `server`.
    Release {
        xid: u32,
        server: Ipv4Addr,
        address: Ipv4Addr,
    },
}

impl Request {
    /// Where it goes: `None` is the limited broadcast, else that server (unicast).
    pub fn unicast_to(&self) -> Option<Ipv4Addr> {
        match self {
            Self::Renew { server, .. } | Self::Release { server, .. } => Some(*server),
            Self::Discover { .. } | Self::Select { .. } | Self::Rebind { .. } => None,
        }
    }
}

/// Inputs of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin (INIT → SELECTING).
    Start,
    /// [`Client::deadline`] has passed.
    Timer,
    /// A reply arrived.
    Received(Reply),
    /// Shut down: release the lease, if any.
    Stop,
}

/// Outputs of the state machine, performed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message.
    Send(Request),
    /// Put this lease on the interface (address, default route, DNS servers).
    /// `previous` is the lease it replaces, whose address goes when it differs.
    Configure {
        lease: Lease,
        previous: Option<Lease>,
    },
    /// Take this lease off the interface (expired, NAKed or released).
    Deconfigure(Lease),
}

/// RFC 2131's client states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started, stopped, or waiting `until` before a new DISCOVER (after a NAK).
    Init { until: Option<Duration> },
    /// DISCOVER sent; waiting for an OFFER.
    Selecting {
        xid: u32,
        attempt: u32,
        resend: Duration,
    },
    /// REQUEST sent for an OFFER; waiting for ACK/NAK.
    Requesting {
        xid: u32,
        server: Ipv4Addr,
        address: Ipv4Addr,
        attempt: u32,
        resend: Duration,
        sent: Duration,
    },
    /// Lease on the interface; next is T1.
    Bound { lease: Lease },
    /// Past T1: unicasting REQUESTs to the server.
    Renewing {
        lease: Lease,
        xid: u32,
        resend: Duration,
        sent: Duration,
    },
    /// Past T2: broadcasting REQUESTs to any server.
    Rebinding {
        lease: Lease,
        xid: u32,
        resend: Duration,
        sent: Duration,
    },
}

impl State {
    /// The state's RFC name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Init { .. } => "INIT",
            Self::Selecting { .. } => "SELECTING",
            Self::Requesting { .. } => "REQUESTING",
            Self::Bound { .. } => "BOUND",
            Self::Renewing { .. } => "RENEWING",
            Self::Rebinding { .. } => "REBINDING",
        }
    }

    /// The lease in force, if any.
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            Self::Bound { lease }
            | Self::Renewing { lease, .. }
            | Self::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }
}

/// One client: its state, timing and random source (for xids and jitter).
#[derive(Debug, Clone)]
pub struct Client {
    state: State,
    timing: Timing,
    rng: u64,
}

impl Client {
    /// A client in INIT. `seed` feeds xids and jitter (any value but 0 is fine).
    pub fn new(timing: Timing, seed: u64) -> Self {
        Self {
            state: State::Init { until: None },
            timing,
            rng: seed | 1,
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// When [`Event::Timer`] is due next; `None` when nothing is scheduled.
    pub fn deadline(&self) -> Option<Duration> {
        match &self.state {
            State::Init { until } => *until,
            State::Selecting { resend, .. } | State::Requesting { resend, .. } => Some(*resend),
            State::Bound { lease } => {
                Some(lease.acquired + lease.t1).filter(|_| lease.duration.is_some())
            }
            State::Renewing { lease, resend, .. } => Some((*resend).min(lease.acquired + lease.t2)),
            State::Rebinding { lease, resend, .. } => {
                Some((*resend).min(lease.expires().unwrap_or(*resend)))
            }
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: statistically fine for xids and jitter, and deterministic in tests.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn xid(&mut self) -> u32 {
        (self.random() >> 32) as u32
    }

    /// The `attempt`-th (0-based) retransmission delay: initial · 2^attempt capped at
    /// max, ± jitter.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let t = &self.timing;
        let base = t.initial.saturating_mul(1u32 << attempt.min(16)).min(t.max);
        let j = t.jitter.as_millis() as u64;
        if j == 0 {
            return base;
        }
        let offset = self.random() % (2 * j + 1);
        let ms = (base.as_millis() as u64 + offset).saturating_sub(j);
        Duration::from_millis(ms.max(1))
    }

    /// Half the time left until `end`, at least `min_renew_retransmit`, at most `end`.
    fn renew_resend(&self, now: Duration, end: Duration) -> Duration {
        let half = end.saturating_sub(now) / 2;
        (now + half.max(self.timing.min_renew_retransmit)).min(end)
    }

    /// Feed one event at time `now`; returns what to do, in order.
    pub fn on_event(&mut self, event: Event, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Init { until: None });
        self.state = match (state, event) {
            (State::Init { .. }, Event::Start) => self.discover(now, &mut out),
            (State::Init { until: Some(u) }, Event::Timer) if now >= u => {
                self.discover(now, &mut out)
            }
            (s, Event::Stop) => {
                if let Some(lease) = s.lease() {
                    let xid = self.xid();
                    out.push(Action::Send(Request::Release {
                        xid,
                        server: lease.server,
                        address: lease.address.addr(),
                    }));
                    out.push(Action::Deconfigure(lease.clone()));
                }
                State::Init { until: None }
            }
            (
                State::Selecting {
                    xid,
                    attempt,
                    resend,
                },
                Event::Timer,
            ) if now >= resend => {
                out.push(Action::Send(Request::Discover { xid }));
                State::Selecting {
                    xid,
                    attempt: attempt + 1,
                    resend: now + self.backoff(attempt + 1),
                }
            }
            (State::Selecting { xid, .. }, Event::Received(r))
                if r.xid == xid && r.kind == ReplyKind::Offer && r.server.is_some() =>
            {
                let server = r.server.unwrap_or(Ipv4Addr::UNSPECIFIED);
                out.push(Action::Send(Request::Select {
                    xid,
                    server,
                    address: r.address,
                }));
                State::Requesting {
                    xid,
                    server,
                    address: r.address,
                    attempt: 0,
                    resend: now + self.backoff(0),
                    sent: now,
                }
            }
            (
                State::Requesting {
                    xid,
                    server,
                    address,
                    attempt,
                    resend,
                    sent,
                },
                Event::Timer,
            ) if now >= resend => {
                if attempt + 1 >= self.timing.request_attempts {
                    self.discover(now, &mut out)
                } else {
                    out.push(Action::Send(Request::Select {
                        xid,
                        server,
                        address,
                    }));
                    State::Requesting {
                        xid,
                        server,
                        address,
                        attempt: attempt + 1,
                        resend: now + self.backoff(attempt + 1),
                        sent,
                    }
                }
            }
            (
                State::Requesting {
                    xid, server, sent, ..
                },
                Event::Received(r),
            ) if r.xid == xid && r.kind != ReplyKind::Offer => match lease_of(&r, sent, server) {
                Some(lease) if r.kind == ReplyKind::Ack => {
                    out.push(Action::Configure {
                        lease: lease.clone(),
                        previous: None,
                    });
                    State::Bound { lease }
                }
                _ => self.nak(now, None, &mut out),
            },
            (State::Bound { lease }, Event::Timer)
                if now >= lease.acquired + lease.t1 && lease.duration.is_some() =>
            {
                let xid = self.xid();
                self.renew(lease, xid, now, now, &mut out)
            }
            (
                State::Renewing {
                    lease,
                    xid,
                    resend,
                    sent,
                },
                Event::Timer,
            ) if now >= resend.min(lease.acquired + lease.t2) => {
                if now >= lease.acquired + lease.t2 {
                    let xid = self.xid();
                    self.rebind(lease, xid, now, now, &mut out)
                } else {
                    self.renew(lease, xid, now, sent, &mut out)
                }
            }
            (
                State::Rebinding {
                    lease,
                    xid,
                    resend,
                    sent,
                },
                Event::Timer,
            ) if now >= resend.min(lease.expires().unwrap_or(resend)) => {
                if lease.expires().is_some_and(|e| now >= e) {
                    out.push(Action::Deconfigure(lease));
                    self.discover(now, &mut out)
                } else {
                    self.rebind(lease, xid, now, sent, &mut out)
                }
            }
            (
                State::Renewing {
                    lease, xid, sent, ..
                }
                | State::Rebinding {
                    lease, xid, sent, ..
                },
                Event::Received(r),
            ) if r.xid == xid && r.kind != ReplyKind::Offer => {
                let server = r.server.unwrap_or(lease.server);
                match lease_of(&r, sent, server) {
                    Some(new) if r.kind == ReplyKind::Ack => {
                        out.push(Action::Configure {
                            lease: new.clone(),
                            previous: Some(lease),
                        });
                        State::Bound { lease: new }
                    }
                    _ => self.nak(now, Some(lease), &mut out),
                }
            }
            // Anything else (a stray or duplicate reply, an early timer) changes nothing.
            (s, _) => s,
        };
        out
    }

    fn discover(&mut self, now: Duration, out: &mut Vec<Action>) -> State {
        let xid = self.xid();
        out.push(Action::Send(Request::Discover { xid }));
        State::Selecting {
            xid,
            attempt: 0,
            resend: now + self.backoff(0),
        }
    }

    fn nak(&mut self, now: Duration, lease: Option<Lease>, out: &mut Vec<Action>) -> State {
        if let Some(lease) = lease {
            out.push(Action::Deconfigure(lease));
        }
        State::Init {
            until: Some(now + self.timing.nak_backoff),
        }
    }

    /// Send (or resend) a renewal; `sent` is when this transaction's first went out.
    fn renew(
        &mut self,
        lease: Lease,
        xid: u32,
        now: Duration,
        sent: Duration,
        out: &mut Vec<Action>,
    ) -> State {
        out.push(Action::Send(Request::Renew {
            xid,
            server: lease.server,
            address: lease.address.addr(),
        }));
        let resend = self.renew_resend(now, lease.acquired + lease.t2);
        State::Renewing {
            lease,
            xid,
            resend,
            sent,
        }
    }

    fn rebind(
        &mut self,
        lease: Lease,
        xid: u32,
        now: Duration,
        sent: Duration,
        out: &mut Vec<Action>,
    ) -> State {
        out.push(Action::Send(Request::Rebind {
            xid,
            address: lease.address.addr(),
        }));
        let end = lease.expires().unwrap_or(now);
        let resend = self.renew_resend(now, end);
        State::Rebinding {
            lease,
            xid,
            resend,
            sent,
        }
    }
}

/// The lease an ACK grants, with T1/T2 defaults (0.5 and 0.875 of the lease) and
/// sanity (T1 < T2 < lease). `None` when the ACK lacks an address.
fn lease_of(r: &Reply, sent: Duration, server: Ipv4Addr) -> Option<Lease> {
    if r.address.is_unspecified() {
        return None;
    }
    let prefix = r
        .subnet_mask
        .and_then(|m| ipnet::ipv4_mask_to_prefix(m).ok())
        .unwrap_or(24);
    let address = Ipv4Net::new(r.address, prefix).ok()?;
    let secs = r.lease_secs.unwrap_or(u32::MAX);
    let (duration, t1, t2) = if secs == u32::MAX {
        (None, Duration::MAX / 4, Duration::MAX / 4)
    } else {
        let d = Duration::from_secs(secs.into());
        let mut t2 = r
            .t2_secs
            .map(|s| Duration::from_secs(s.into()))
            .filter(|t| *t < d)
            .unwrap_or(d * 7 / 8);
        let t1 = r
            .t1_secs
            .map(|s| Duration::from_secs(s.into()))
            .filter(|t| *t < t2)
            .unwrap_or(d / 2)
            .min(t2);
        t2 = t2.max(t1);
        (Some(d), t1, t2)
    };
    Some(Lease {
        address,
        gateway: r.router,
        dns: r.dns.clone(),
        server: r.server.unwrap_or(server),
        duration,
        t1,
        t2,
        acquired: sent,
    })
}

#[cfg(test)]
mod tests;
