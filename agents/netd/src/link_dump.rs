//! Reading the link and IPv4 address tables (and the IPv4 routes, for the default
//! route) in plain rtnetlink dumps, parsed for exactly the fields netd uses.
//!
//! Why not rtnetlink's typed dump: every reconcile starts with this read, and on a
//! slow machine (QEMU TCG) it dominated the no-change reconcile. The typed path parses
//! every attribute of every link into owned enums — per-family config of IPv4 and IPv6
//! (a hundred-odd values per link), queue and GSO limits, permanent addresses, ... —
//! and hands each message through the connection task's channel; netd needs eight
//! attributes. This module sends the `RTM_GETLINK` (without statistics,
//! `RTEXT_FILTER_SKIP_STATS`) and `RTM_GETADDR` (IPv4) dumps on one blocking socket
//! and walks the attributes in place; the same for `RTM_GETROUTE` (IPv4), of which
//! only the main table's default route and netd's own static routes (protocol
//! [`RTPROT_HEARTH`]) matter. Writes still go through rtnetlink
//! ([`crate::netlink`]); only the reads are done here.
//!
//! A dump the kernel marks interrupted (`NLM_F_DUMP_INTR`: the table changed while it
//! was being read) is read again, up to [`DUMP_ATTEMPTS`] times.
//!
//! Wire format: linux/netlink.h (`nlmsghdr`, `nlattr`), linux/rtnetlink.h
//! (`ifinfomsg`, `ifaddrmsg`), linux/if_link.h (`IFLA_*`), linux/if_addr.h (`IFA_*`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use ipnet::Ipv4Net;
use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use crate::link::{LinkError, LinkState, Route, RTPROT_HEARTH};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTMSG_LEN: usize = 12;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const AF_INET: u8 = 2;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VLAN_ID: u16 = 1;
const RTEXT_FILTER_SKIP_STATS: u32 = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// `nla_type` without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// How often a dump interrupted by concurrent changes is retried.
pub const DUMP_ATTEMPTS: usize = 5;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes in `data` as (type, payload).
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(data, 0)?);
        let kind = u16_at(data, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[len.next_multiple_of(4).min(data.len())..];
        Some((kind, payload))
    })
}

/// A NUL-terminated string attribute.
fn string(payload: &[u8]) -> String {
    let s = payload.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(s).into_owned()
}

fn u32_attr(payload: &[u8]) -> Option<u32> {
    u32_at(payload, 0)
}

/// One link message's body (after `nlmsghdr`). Master and VLAN parent are left as
/// indices (`"7"`) for [`resolve_names`].
fn parse_link(body: &[u8]) -> Option<LinkState> {
    let index = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let mut l = LinkState {
        index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: flags & IFF_UP != 0,
        carrier: flags & IFF_LOWER_UP != 0,
        kind: None,
        master: None,
        alias: None,
        vlan: None,
        addresses: Vec::new(),
    };
    let (mut parent, mut vid) = (None, None);
    for (kind, p) in attrs(body.get(IFINFOMSG_LEN..)?) {
        match kind {
            IFLA_IFNAME => l.name = string(p),
            IFLA_ADDRESS => l.mac = <[u8; 6]>::try_from(p).ok(),
            IFLA_MTU => l.mtu = u32_attr(p).unwrap_or_default(),
            IFLA_IFALIAS => l.alias = Some(string(p)),
            IFLA_MASTER => l.master = u32_attr(p).map(|i| i.to_string()),
            IFLA_LINK => parent = u32_attr(p),
            IFLA_LINKINFO => {
                for (k, info) in attrs(p) {
                    match k {
                        IFLA_INFO_KIND => l.kind = Some(string(info)),
                        IFLA_INFO_DATA => {
                            vid = attrs(info)
                                .find(|(t, _)| *t == IFLA_VLAN_ID)
                                .and_then(|(_, v)| u16_at(v, 0));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if l.kind.as_deref() == Some("vlan") {
        if let (Some(p), Some(id)) = (parent, vid) {
            l.vlan = Some((p.to_string(), id));
        }
    }
    Some(l)
}

/// One IPv4 address message's body: (link index, address with prefix).
fn parse_address(body: &[u8]) -> Option<(u32, Ipv4Net)> {
    if *body.first()? != AF_INET {
        return None;
    }
    let prefix = *body.get(1)?;
    let index = u32_at(body, 4)?;
    let (mut local, mut address) = (None, None);
    for (kind, p) in attrs(body.get(IFADDRMSG_LEN..)?) {
        let v4 = <[u8; 4]>::try_from(p).ok().map(Ipv4Addr::from);
        match kind {
            IFA_LOCAL => local = v4,
            IFA_ADDRESS => address = v4,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    // point-to-point links).
    let addr = local.or(address)?;
    Some((index, Ipv4Net::new(addr, prefix).ok()?))
}

/// One IPv4 route message's body: the gateway when it is a default route of the main
/// table.
fn parse_default_route(body: &[u8]) -> Option<Ipv4Addr> {
    if *body.first()? != AF_INET || *body.get(1)? != 0 {
        return None;
    }
    let mut table = u32::from(*body.get(4)?);
    let mut gateway = None;
    for (kind, p) in attrs(body.get(RTMSG_LEN..)?) {
        match kind {
            RTA_TABLE => table = u32_attr(p).unwrap_or(table),
            RTA_GATEWAY => gateway = <[u8; 4]>::try_from(p).ok().map(Ipv4Addr::from),
            _ => {}
        }
    }
    (table == RT_TABLE_MAIN).then_some(gateway)?
}

/// One IPv4 route message's body: the route when it is one of netd's (protocol
/// [`RTPROT_HEARTH`]) in the main table, with a gateway.
fn parse_owned_route(body: &[u8]) -> Option<Route> {
    if *body.first()? != AF_INET || *body.get(5)? != RTPROT_HEARTH {
        return None;
    }
    let prefix = *body.get(1)?;
    let mut table = u32::from(*body.get(4)?);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    for (kind, p) in attrs(body.get(RTMSG_LEN..)?) {
        match kind {
            RTA_TABLE => table = u32_attr(p).unwrap_or(table),
            RTA_DST => dst = <[u8; 4]>::try_from(p).ok().map(Ipv4Addr::from)?,
            RTA_GATEWAY => gateway = <[u8; 4]>::try_from(p).ok().map(Ipv4Addr::from),
            _ => {}
        }
    }
    (table == RT_TABLE_MAIN).then_some(())?;
    Some(Route {
        destination: Ipv4Net::new(dst, prefix).ok()?,
        gateway: gateway?,
    })
}

/// Turn the index strings [`parse_link`] left in `master` and `vlan` into names.
fn resolve_names(links: &mut [LinkState]) {
    let names: HashMap<String, String> = links
        .iter()
        .map(|l| (l.index.to_string(), l.name.clone()))
        .collect();
    let name_of = |i: &str| names.get(i).cloned().unwrap_or_else(|| format!("if{i}"));
    for l in links {
        l.master = l.master.as_deref().map(name_of);
        if let Some((p, id)) = &l.vlan {
            l.vlan = Some((name_of(p), *id));
        }
    }
}

/// A blocking rtnetlink socket for dumps.
#[derive(Debug)]
pub struct Dumper {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn read_err(what: &'static str) -> impl Fn(Errno) -> LinkError {
    move |e| LinkError::Read {
        what,
        message: e.to_string(),
    }
}

impl Dumper {
    /// Open a socket in the caller's network namespace.
    pub fn open() -> Result<Self, LinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| LinkError::Connect(e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| LinkError::Connect(e.into()))?;
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Every link with its IPv4 addresses.
    pub fn links(&mut self) -> Result<Vec<LinkState>, LinkError> {
        let mut req = vec![0u8; IFINFOMSG_LEN]; // AF_UNSPEC: every link
        req.extend_from_slice(&8u16.to_ne_bytes());
        req.extend_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
        req.extend_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
        let mut links = Vec::new();
        self.dump("links", RTM_GETLINK, &req, RTM_NEWLINK, |body| {
            links.extend(parse_link(body));
        })?;
        resolve_names(&mut links);
        let mut req = vec![0u8; IFADDRMSG_LEN];
        req[0] = AF_INET;
        let mut addresses = Vec::new();
        self.dump("addresses", RTM_GETADDR, &req, RTM_NEWADDR, |body| {
            addresses.extend(parse_address(body));
        })?;
        for (index, net) in addresses {
            if let Some(l) = links.iter_mut().find(|l| l.index == index) {
                l.addresses.push(net);
            }
        }
        Ok(links)
    }

    /// The gateway of the main table's IPv4 default route, if there is one.
    pub fn default_route(&mut self) -> Result<Option<Ipv4Addr>, LinkError> {
        let mut req = vec![0u8; RTMSG_LEN];
        req[0] = AF_INET;
        let mut gateway = None;
        self.dump("routes", RTM_GETROUTE, &req, RTM_NEWROUTE, |body| {
            gateway = gateway.or_else(|| parse_default_route(body));
        })?;
        Ok(gateway)
    }

    /// The main table's IPv4 routes with protocol [`RTPROT_HEARTH`].
    pub fn owned_routes(&mut self) -> Result<Vec<Route>, LinkError> {
        let mut req = vec![0u8; RTMSG_LEN];
        req[0] = AF_INET;
        let mut routes = Vec::new();
        self.dump("routes", RTM_GETROUTE, &req, RTM_NEWROUTE, |body| {
            routes.extend(parse_owned_route(body));
        })?;
        Ok(routes)
    }

    /// Run one dump and call `each` with the body of every `reply` message, once the
    /// dump is known to be whole (an interrupted one is read again from scratch).
    fn dump(
        &mut self,
        what: &'static str,
        kind: u16,
        body: &[u8],
        reply: u16,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), LinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut bodies = Vec::new();
            if !self.dump_once(what, kind, body, reply, &mut bodies)? {
                continue;
            }
            for b in &bodies {
                each(b);
            }
            return Ok(());
        }
        Err(LinkError::Read {
            what,
            message: format!(
                "the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times in a row"
            ),
        })
    }

    /// One dump; `false` when the kernel marked it interrupted.
    fn dump_once(
        &mut self,
        what: &'static str,
        kind: u16,
        body: &[u8],
        reply: u16,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<bool, LinkError> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        send(self.fd.as_raw_fd(), &msg, MsgFlags::empty()).map_err(read_err(what))?;
        let mut intact = true;
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(0) => {
                    return Err(LinkError::Read {
                        what,
                        message: "the kernel closed the socket".into(),
                    })
                }
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(read_err(what)(e)),
            };
            let mut data = &self.buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32_at(data, 0).unwrap_or_default() as usize;
                if len < NLMSG_HDRLEN || len > data.len() {
                    break;
                }
                let ty = u16_at(data, 4).unwrap_or_default();
                let flags = u16_at(data, 6).unwrap_or_default();
                let seq = u32_at(data, 8).unwrap_or_default();
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[len.next_multiple_of(4).min(data.len())..];
                if seq != self.seq {
                    continue; // a stale reply to an earlier request
                }
                intact &= flags & NLM_F_DUMP_INTR == 0;
                match ty {
                    NLMSG_DONE => return Ok(intact),
                    NLMSG_ERROR => {
                        let errno = u32_at(payload, 0).map(|e| e as i32).unwrap_or(-1);
                        return Err(read_err(what)(Errno::from_raw(-errno)));
                    }
                    t if t == reply => out.push(payload.to_vec()),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn parses_a_vlan_link_and_resolves_names() {
        // ifinfomsg: family, pad, type, index 7, flags UP|LOWER_UP, change.
        let mut body = vec![0u8, 0, 1, 0];
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&(IFF_UP | IFF_LOWER_UP).to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        body.extend(attr(IFLA_IFNAME, b"vl-media\0"));
        body.extend(attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]));
        body.extend(attr(IFLA_MTU, &1500u32.to_ne_bytes()));
        body.extend(attr(IFLA_IFALIAS, b"hearth-netd\0"));
        body.extend(attr(IFLA_LINK, &3u32.to_ne_bytes()));
        let data = attr(IFLA_VLAN_ID, &10u16.to_ne_bytes());
        let mut info = attr(IFLA_INFO_KIND, b"vlan\0");
        info.extend(attr(IFLA_INFO_DATA | 0x8000, &data));
        body.extend(attr(IFLA_LINKINFO | 0x8000, &info));
        let l = parse_link(&body).unwrap();
        assert_eq!(
            (l.index, l.name.as_str(), l.mtu, l.up, l.carrier),
            (7, "vl-media", 1500, true, true)
        );
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 9]));
        assert!(l.owned());
        assert_eq!(l.kind.as_deref(), Some("vlan"));

        let mut bridge = l.clone();
        bridge.index = 3;
        bridge.name = "br-lan".into();
        let mut port = l.clone();
        port.index = 4;
        port.name = "lan0".into();
        port.vlan = None;
        port.master = Some("3".into());
        let mut links = vec![l, bridge, port];
        resolve_names(&mut links);
        assert_eq!(links[0].vlan, Some(("br-lan".into(), 10)));
        assert_eq!(links[2].master.as_deref(), Some("br-lan"));
    }

    #[test]
    fn parses_an_ipv4_address_preferring_local() {
        let mut body = vec![AF_INET, 24, 0, 0];
        body.extend_from_slice(&5u32.to_ne_bytes());
        body.extend(attr(IFA_ADDRESS, &[10, 0, 0, 2]));
        body.extend(attr(IFA_LOCAL, &[10, 0, 0, 1]));
        assert_eq!(
            parse_address(&body),
            Some((5, "10.0.0.1/24".parse().unwrap()))
        );
        body[0] = 10; // AF_INET6: not ours
        assert_eq!(parse_address(&body), None);
    }

    #[test]
    fn finds_the_main_tables_default_gateway() {
        // rtmsg: AF_INET, dst_len 0, src_len, tos, table main, proto, scope, type, flags.
        let mut body = vec![AF_INET, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
        body.extend(attr(RTA_TABLE, &254u32.to_ne_bytes()));
        body.extend(attr(RTA_GATEWAY, &[203, 0, 113, 1]));
        assert_eq!(
            parse_default_route(&body),
            Some(Ipv4Addr::new(203, 0, 113, 1))
        );
        let mut other_table = body.clone();
        other_table[12 + 4..12 + 8].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(parse_default_route(&other_table), None);
        let mut not_default = body.clone();
        not_default[1] = 24;
        assert_eq!(parse_default_route(&not_default), None);
    }

    #[test]
    fn finds_only_netds_own_routes() {
        // rtmsg: AF_INET, dst_len 24, src_len, tos, table main, proto hearth, ...
        let mut body = vec![AF_INET, 24, 0, 0, 254, RTPROT_HEARTH, 0, 1, 0, 0, 0, 0];
        body.extend(attr(RTA_TABLE, &254u32.to_ne_bytes()));
        body.extend(attr(RTA_DST, &[192, 168, 50, 0]));
        body.extend(attr(RTA_GATEWAY, &[192, 168, 1, 2]));
        assert_eq!(
            parse_owned_route(&body),
            Some(Route {
                destination: "192.168.50.0/24".parse().unwrap(),
                gateway: Ipv4Addr::new(192, 168, 1, 2),
            })
        );
        let mut foreign = body.clone();
        foreign[5] = 4; // RTPROT_STATIC: someone else's
        assert_eq!(parse_owned_route(&foreign), None);
        let mut other_table = body.clone();
        other_table[12 + 4..12 + 8].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(parse_owned_route(&other_table), None);
    }
}
