//! Link events: an rtnetlink socket subscribed to `RTNLGRP_LINK`, so the daemon learns
//! when a NIC appears (late driver, hot-plug), vanishes, or loses or regains carrier
//! (cable out, cable in), and when someone changes a link netd manages. It also joins
//! the IPv4 address and route groups (`RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV4_ROUTE`):
//! the plan and the diff depend on addresses and the default route too, and the
//! resident daemon ([`crate::resident`]) skips re-reading the kernel while no
//! notification at all arrived since its last full read — so every change that could
//! make a reconcile write something must show up here.
//!
//! Every link notification asks for a re-apply; the daemon debounces them
//! ([`Debounce`]) so a burst (a NIC appearing sends several, netd's own writes send
//! some too) costs one apply. Re-applying after netd's own writes is harmless: that
//! apply finds nothing to change and writes nothing, so it sends no further events.
//!
//! The socket is non-blocking and polled by the daemon's loop next to the signalfd;
//! [`LinkEvents::drain`] reads everything queued. A full socket buffer (`ENOBUFS`:
//! notifications were lost) is reported as an event too, since the only safe answer
//! to lost notifications is to re-read the kernel, which an apply does.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::link::OWNER_ALIAS;

/// The multicast groups joined: links, IPv4 addresses, IPv4 routes.
const GROUPS: u32 = rtnetlink::constants::RTMGRP_LINK
    | rtnetlink::constants::RTMGRP_IPV4_IFADDR
    | rtnetlink::constants::RTMGRP_IPV4_ROUTE;

/// How long the daemon waits after the first event of a burst before re-applying.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Opening or reading the event socket failed.
#[derive(Debug, thiserror::Error)]
#[error("link events: {action}")]
pub struct EventsError {
    /// What failed.
    pub action: &'static str,
    #[source]
    pub source: Errno,
}

/// One thing that happened to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link the socket had not seen.
    Added { name: String, carrier: bool },
    /// A link was deleted.
    Removed { name: String },
    /// Carrier came (`true`) or went (`false`).
    Carrier { name: String, up: bool },
    /// Some other change (flags, master, MTU, ...), or any change of a link netd
    /// created (its bridge's carrier follows the ports: noise in a log).
    Changed { name: String },
    /// An IPv4 address was added to or removed from the link with this index.
    Address { index: u32 },
    /// An IPv4 route was added or removed.
    Route,
    /// Notifications were lost (`ENOBUFS`); state must be re-read.
    Overrun,
}

impl LinkEvent {
    /// Whether a person would want to see it in the log (NIC-level events; not the
    /// echo of netd's own writes).
    pub fn notable(&self) -> bool {
        !matches!(
            self,
            Self::Changed { .. } | Self::Address { .. } | Self::Route
        )
    }
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Added { name, carrier } => write!(
                f,
                "link {name} appeared (carrier {})",
                if *carrier { "up" } else { "down" }
            ),
            Self::Removed { name } => write!(f, "link {name} removed"),
            Self::Carrier { name, up: true } => write!(f, "link {name} carrier up"),
            Self::Carrier { name, up: false } => write!(f, "link {name} carrier down"),
            Self::Changed { name } => write!(f, "link {name} changed"),
            Self::Address { index } => write!(f, "an IPv4 address of link {index} changed"),
            Self::Route => write!(f, "an IPv4 route changed"),
            Self::Overrun => write!(f, "link notifications lost (socket buffer full)"),
        }
    }
}

/// The subscribed socket and what it has seen (index → (name, carrier)).
#[derive(Debug)]
pub struct LinkEvents {
    fd: OwnedFd,
    known: HashMap<u32, (String, bool)>,
}

impl LinkEvents {
    /// Subscribe to link notifications in the caller's network namespace. `links` are
    /// the links that exist now (index, name, carrier), so their later notifications
    /// are not reported as new.
    pub fn open(links: impl IntoIterator<Item = (u32, String, bool)>) -> Result<Self, EventsError> {
        let err = |action| move |source| EventsError { action, source };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(err("opening the rtnetlink socket"))?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, GROUPS),
        )
        .map_err(err("subscribing to link, address and route notifications"))?;
        let known = links
            .into_iter()
            .map(|(i, name, carrier)| (i, (name, carrier)))
            .collect();
        Ok(Self { fd, known })
    }

    /// The socket, to poll for `POLLIN`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Read every queued notification.
    pub fn drain(&mut self) -> Result<Vec<LinkEvent>, EventsError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut buf,
                MsgFlags::empty(),
            ) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(out),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    out.push(LinkEvent::Overrun);
                    continue;
                }
                Err(source) => {
                    return Err(EventsError {
                        action: "reading notifications",
                        source,
                    })
                }
            };
            self.parse(&buf[..n], &mut out);
        }
    }

    /// Parse one datagram (one or more netlink messages).
    fn parse(&mut self, mut data: &[u8], out: &mut Vec<LinkEvent>) {
        while data.len() >= 16 {
            let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if len < 16 || len > data.len() {
                return;
            }
            if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[..len]) {
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                        out.push(self.on_new(&m));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                        let name = self
                            .known
                            .remove(&m.header.index)
                            .map(|(n, _)| n)
                            .or_else(|| name_of(&m))
                            .unwrap_or_else(|| format!("if{}", m.header.index));
                        out.push(LinkEvent::Removed { name });
                    }
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m),
                    ) => out.push(LinkEvent::Address {
                        index: m.header.index,
                    }),
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_),
                    ) => out.push(LinkEvent::Route),
                    _ => {}
                }
            }
            // Messages are 4-byte aligned.
            data = &data[len.next_multiple_of(4).min(data.len())..];
        }
    }

    fn on_new(&mut self, m: &LinkMessage) -> LinkEvent {
        let carrier = m.header.flags.contains(LinkFlags::LowerUp);
        let name = name_of(m).unwrap_or_else(|| format!("if{}", m.header.index));
        let owned = m
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::IfAlias(x) if x == OWNER_ALIAS));
        match self.known.insert(m.header.index, (name.clone(), carrier)) {
            _ if owned => LinkEvent::Changed { name },
            None => LinkEvent::Added { name, carrier },
            Some((_, was)) if was != carrier => LinkEvent::Carrier { name, up: carrier },
            Some(_) => LinkEvent::Changed { name },
        }
    }
}

fn name_of(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// Coalesces bursts of events into one action: the first event arms a deadline
/// [`DEBOUNCE`] later; later events do not move it, so a flapping link causes at
/// most one apply per period instead of starving the apply forever.
#[derive(Debug, Clone, Default)]
pub struct Debounce {
    due: Option<Instant>,
    period: Duration,
}

impl Debounce {
    /// A debouncer with `period`.
    pub fn new(period: Duration) -> Self {
        Self { due: None, period }
    }

    /// Something happened at `now`.
    pub fn event(&mut self, now: Instant) {
        self.due.get_or_insert(now + self.period);
    }

    /// Time left until due, if armed (zero when overdue).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.due.map(|d| d.saturating_duration_since(now))
    }

    /// True (and disarmed) when the deadline has passed.
    pub fn fire(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|d| d <= now) {
            self.due = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debounce_coalesces_and_does_not_starve() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(200));
        assert_eq!(d.timeout(t0), None);
        assert!(!d.fire(t0));
        d.event(t0);
        d.event(t0 + ms(50));
        d.event(t0 + ms(150));
        assert_eq!(d.timeout(t0 + ms(150)), Some(ms(50)), "not pushed back");
        assert!(!d.fire(t0 + ms(199)));
        assert!(d.fire(t0 + ms(200)));
        assert!(!d.fire(t0 + ms(300)), "disarmed after firing");
        assert_eq!(d.timeout(t0 + ms(300)), None);
        d.event(t0 + ms(400));
        assert_eq!(d.timeout(t0 + ms(700)), Some(Duration::ZERO));
    }

    #[test]
    fn notable_events_are_nic_level() {
        assert!(LinkEvent::Added {
            name: "eth0".into(),
            carrier: true
        }
        .notable());
        assert!(!LinkEvent::Changed {
            name: "br-lan".into()
        }
        .notable());
        assert_eq!(
            LinkEvent::Carrier {
                name: "eth1".into(),
                up: false
            }
            .to_string(),
            "link eth1 carrier down"
        );
    }
}
