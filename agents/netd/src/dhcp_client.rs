//! The WAN's DHCPv4 client: sockets, packets and the kernel side of a lease, around
//! the pure state machine in [`crate::dhcp_state`].
//!
//! Sockets. Requests go out of a UDP socket on `0.0.0.0:68` bound to the WAN device
//! (`SO_BINDTODEVICE`, `SO_BROADCAST`): with no address yet the kernel sends from
//! `0.0.0.0` to `255.255.255.255`, as RFC 2131 wants. Replies are read from an
//! `AF_PACKET` socket on the same device with a BPF filter for UDP port 68, because
//! netd sets `rp_filter = 1` and a broadcast OFFER from a server the router has no
//! route to yet is dropped as a martian before any UDP socket sees it. The UDP
//! socket's own copies are drained and ignored. DISCOVER and REQUEST set the
//! broadcast flag, so servers answer by broadcast while we have no address.
//!
//! A lease on the kernel (through the same [`LinkOps`] as the rest of netd, each
//! write only when it differs): the address with its prefix on the WAN, the default
//! route via the first router. Losing the lease removes both.
//!
//! The learned DNS servers are the DNS agent's upstreams: see [`DNS_FILE`] and the
//! crate README for the file's contract.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use nix::libc;
use nix::sys::socket::{setsockopt, sockopt};

use crate::dhcp_state::{Action, Client, Event, Lease, Reply, ReplyKind, Request, State, Timing};
use crate::link::{LinkError, LinkOps, LinkWrite};

/// The file in the state directory that holds the WAN's lease and DNS servers.
pub const DNS_FILE: &str = "wan-dns.json";

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// Why the DHCP client could not start or talk.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The WAN link is missing or has no MAC address.
    #[error("DHCP on {device}: no such link with a MAC address")]
    NoLink { device: String },
    /// A socket could not be set up.
    #[error("DHCP on {device}: {what}")]
    Socket {
        device: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Reading the link table failed.
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// The contents of `<state-dir>/wan-dns.json` (see the crate README).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WanLeaseFile {
    /// The WAN interface.
    pub interface: String,
    /// Our address with its prefix, e.g. `198.51.100.50/24`.
    pub address: String,
    /// The default gateway, if the server named one.
    pub gateway: Option<Ipv4Addr>,
    /// The DHCP server.
    pub server: Ipv4Addr,
    /// DNS servers, in the server's order: the DNS agent's upstreams.
    pub dns: Vec<Ipv4Addr>,
    /// Lease length in seconds (`None`: infinite).
    pub lease_secs: Option<u64>,
    /// When this lease was (re)acknowledged, Unix seconds.
    pub acked_unix: u64,
}

/// Build the wire form of a client message.
pub fn encode(req: &Request, mac: [u8; 6]) -> Vec<u8> {
    let (xid, kind, ciaddr) = match req {
        Request::Discover { xid } => (*xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED),
        Request::Select { xid, .. } => (*xid, MessageType::Request, Ipv4Addr::UNSPECIFIED),
        Request::Renew { xid, address, .. } | Request::Rebind { xid, address } => {
            (*xid, MessageType::Request, *address)
        }
        Request::Release { xid, address, .. } => (*xid, MessageType::Release, *address),
    };
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, ciaddr, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    let mut client_id = vec![1];
    client_id.extend_from_slice(&mac);
    o.insert(DhcpOption::ClientIdentifier(client_id));
    match req {
        Request::Select {
            server, address, ..
        } => {
            o.insert(DhcpOption::RequestedIpAddress(*address));
            o.insert(DhcpOption::ServerIdentifier(*server));
        }
        Request::Release { server, .. } => {
            o.insert(DhcpOption::ServerIdentifier(*server));
        }
        _ => {}
    }
    if kind != MessageType::Release {
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::AddressLeaseTime,
            OptionCode::ServerIdentifier,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        o.insert(DhcpOption::MaxMessageSize(1500));
    }
    let mut buf = Vec::with_capacity(300);
    // Encoding our own well-formed message into a Vec cannot fail.
    let _ = m.encode(&mut Encoder::new(&mut buf));
    buf
}

/// Decode a server reply meant for `mac`; `None` for anything else.
pub fn decode(payload: &[u8], mac: [u8; 6]) -> Option<Reply> {
    let m = Message::decode(&mut Decoder::new(payload)).ok()?;
    if m.opcode() != Opcode::BootReply || m.chaddr().get(..6) != Some(&mac[..]) {
        return None;
    }
    let o = m.opts();
    let kind = match o.msg_type()? {
        MessageType::Offer => ReplyKind::Offer,
        MessageType::Ack => ReplyKind::Ack,
        MessageType::Nak => ReplyKind::Nak,
        _ => return None,
    };
    let mut r = Reply {
        kind,
        xid: m.xid(),
        address: m.yiaddr(),
        subnet_mask: None,
        router: None,
        dns: Vec::new(),
        server: None,
        lease_secs: None,
        t1_secs: None,
        t2_secs: None,
    };
    for (_, opt) in o.iter() {
        match opt {
            DhcpOption::SubnetMask(m) => r.subnet_mask = Some(*m),
            DhcpOption::Router(v) => r.router = v.first().copied(),
            DhcpOption::DomainNameServer(v) => r.dns.clone_from(v),
            DhcpOption::ServerIdentifier(s) => r.server = Some(*s),
            DhcpOption::AddressLeaseTime(s) => r.lease_secs = Some(*s),
            DhcpOption::Renewal(s) => r.t1_secs = Some(*s),
            DhcpOption::Rebinding(s) => r.t2_secs = Some(*s),
            _ => {}
        }
    }
    Some(r)
}

/// The UDP payload of an IPv4 packet (as an `AF_PACKET`/`SOCK_DGRAM` socket reads it)
/// to port 68; `None` for anything else.
pub fn udp_to_client(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || *packet.get(9)? != 17 {
        return None;
    }
    let udp = packet.get(ihl..)?;
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if dport != CLIENT_PORT || len < 8 {
        return None;
    }
    udp.get(8..len)
}

/// The two sockets of one client.
struct Sockets {
    udp: UdpSocket,
    packet: OwnedFd,
}

fn socket_err<'a>(device: &'a str, what: &'static str) -> impl Fn(io::Error) -> DhcpError + 'a {
    move |source| DhcpError::Socket {
        device: device.to_owned(),
        what,
        source,
    }
}

impl Sockets {
    fn open(device: &str, index: u32) -> Result<Self, DhcpError> {
        let udp = udp_socket(device).map_err(socket_err(device, "opening UDP port 68"))?;
        let packet =
            packet_socket(index).map_err(socket_err(device, "opening the packet socket"))?;
        Ok(Self { udp, packet })
    }
}

fn udp_socket(device: &str) -> io::Result<UdpSocket> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(&fd, sockopt::BindToDevice, &device.into())?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, CLIENT_PORT))?;
    Ok(UdpSocket::from(fd))
}

/// Classic BPF over the IPv4 header: UDP, not a fragment, destination port 68.
const FILTER: [libc::sock_filter; 9] = {
    const fn op(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
    use libc::{
        BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX,
        BPF_MSH, BPF_RET,
    };
    [
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 9),
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 6, 17),
        op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 6),
        op(BPF_JMP | BPF_JSET | BPF_K, 4, 0, 0x1fff),
        op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0),
        op(BPF_LD | BPF_H | BPF_IND, 0, 0, 2),
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, CLIENT_PORT as u32),
        op(BPF_RET | BPF_K, 0, 0, 0xffff),
        op(BPF_RET | BPF_K, 0, 0, 0),
    ]
};

fn packet_socket(index: u32) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(proto),
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor we own and nothing else refers to.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let prog = libc::sock_fprog {
        len: FILTER.len() as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at FILTER (static, valid for the call; the kernel copies
    // it) and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value before we fill it.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The DHCP client of one WAN interface, driven by the daemon's poll loop: poll
/// [`WanDhcp::fd`] for reading, wake at [`WanDhcp::timeout`], then call
/// [`WanDhcp::on_readable`] / [`WanDhcp::on_timer`]; [`WanDhcp::stop`] releases.
pub struct WanDhcp {
    device: String,
    mac: [u8; 6],
    client: Client,
    sockets: Sockets,
    origin: Instant,
    lease_file: PathBuf,
    /// The lease a previous run left on the interface (from the lease file): replaced
    /// by the first lease of this run, so a restart does not leave two addresses.
    stale: Option<Lease>,
}

impl std::fmt::Debug for WanDhcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WanDhcp")
            .field("device", &self.device)
            .field("state", &self.client.state().name())
            .finish()
    }
}

impl WanDhcp {
    /// Open the sockets on `device` and send the first DISCOVER. The lease file goes
    /// to `state_dir/`[`DNS_FILE`].
    pub fn start(
        device: &str,
        ops: &mut dyn LinkOps,
        timing: Timing,
        state_dir: &Path,
    ) -> Result<Self, DhcpError> {
        let links = ops.links()?;
        let link = links
            .iter()
            .find(|l| l.name == device)
            .filter(|l| l.mac.is_some())
            .ok_or_else(|| DhcpError::NoLink {
                device: device.to_owned(),
            })?;
        let mac = link.mac.unwrap_or_default();
        let sockets = Sockets::open(device, link.index)?;
        let lease_file = state_dir.join(DNS_FILE);
        let stale = stale_lease(&lease_file, device);
        let mut me = Self {
            device: device.to_owned(),
            mac,
            client: Client::new(timing, seed()),
            sockets,
            origin: Instant::now(),
            lease_file,
            stale,
        };
        log::info!("DHCP on {device}: starting");
        me.feed(Event::Start, ops);
        Ok(me)
    }

    /// The WAN device.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The client's state.
    pub fn state(&self) -> &State {
        self.client.state()
    }

    /// The descriptor to poll for replies.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sockets.packet.as_fd()
    }

    /// How long until [`WanDhcp::on_timer`] is due (`None`: nothing scheduled).
    pub fn timeout(&self) -> Option<Duration> {
        let due = self.client.deadline()?;
        Some(due.saturating_sub(self.origin.elapsed()))
    }

    /// Read every pending packet and feed the replies to the state machine.
    pub fn on_readable(&mut self, ops: &mut dyn LinkOps) {
        let mut buf = [0u8; 2048];
        // The UDP socket's copies (when rp_filter lets them through) are not needed.
        while self.sockets.udp.recv_from(&mut buf).is_ok() {}
        loop {
            // SAFETY: `buf` is valid for writes of its length for the whole call.
            let n = unsafe {
                libc::recv(
                    self.sockets.packet.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            let Ok(n) = usize::try_from(n) else {
                return;
            };
            let reply = udp_to_client(&buf[..n]).and_then(|p| decode(p, self.mac));
            if let Some(r) = reply {
                log::debug!("DHCP on {}: {:?} xid {:#x}", self.device, r.kind, r.xid);
                self.feed(Event::Received(r), ops);
            }
        }
    }

    /// Handle a due timer (retransmission, T1, T2, expiry).
    pub fn on_timer(&mut self, ops: &mut dyn LinkOps) {
        if self.timeout().is_some_and(|t| t.is_zero()) {
            self.feed(Event::Timer, ops);
        }
    }

    /// Release the lease (if any) and take it off the interface.
    pub fn stop(&mut self, ops: &mut dyn LinkOps) {
        self.feed(Event::Stop, ops);
    }

    fn feed(&mut self, event: Event, ops: &mut dyn LinkOps) {
        let before = self.client.state().name();
        let actions = self.client.on_event(event, self.origin.elapsed());
        let after = self.client.state().name();
        if before != after {
            log::info!("DHCP on {}: {before} -> {after}", self.device);
        }
        for a in actions {
            self.perform(a, ops);
        }
    }

    fn perform(&mut self, action: Action, ops: &mut dyn LinkOps) {
        match action {
            Action::Send(req) => {
                let to = req.unicast_to().unwrap_or(Ipv4Addr::BROADCAST);
                let dest = SocketAddr::V4(SocketAddrV4::new(to, SERVER_PORT));
                log::debug!("DHCP on {}: sending {req:?} to {dest}", self.device);
                if let Err(e) = self.sockets.udp.send_to(&encode(&req, self.mac), dest) {
                    // Retransmission covers a lost send.
                    log::warn!("DHCP on {}: sending to {dest}: {e}", self.device);
                }
            }
            Action::Configure { lease, previous } => {
                let gateway = lease.gateway.map_or("none".into(), |g| g.to_string());
                let length = lease
                    .duration
                    .map_or("infinite".into(), |d| format!("{} s", d.as_secs()));
                log::info!(
                    "DHCP on {}: {} {} from {}, gateway {gateway}, dns {:?}, lease {length}",
                    self.device,
                    if previous.is_some() {
                        "renewed"
                    } else {
                        "leased"
                    },
                    lease.address,
                    lease.server,
                    lease.dns,
                );
                let previous = previous.or_else(|| self.stale.take());
                if let Err(e) = configure(ops, &self.device, &lease, previous.as_ref()) {
                    log::error!("DHCP on {}: configuring the lease: {e}", self.device);
                }
                if let Err(e) = self.write_lease_file(&lease) {
                    log::error!(
                        "DHCP on {}: {}: {e}",
                        self.device,
                        self.lease_file.display()
                    );
                }
            }
            Action::Deconfigure(lease) => {
                log::info!("DHCP on {}: dropping lease {}", self.device, lease.address);
                if let Err(e) = deconfigure(ops, &self.device, &lease) {
                    log::error!("DHCP on {}: removing the lease: {e}", self.device);
                }
                match std::fs::remove_file(&self.lease_file) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        log::error!(
                            "DHCP on {}: {}: {e}",
                            self.device,
                            self.lease_file.display()
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    fn write_lease_file(&self, lease: &Lease) -> io::Result<()> {
        let body = WanLeaseFile {
            interface: self.device.clone(),
            address: lease.address.to_string(),
            gateway: lease.gateway,
            server: lease.server,
            dns: lease.dns.clone(),
            lease_secs: lease.duration.map(|d| d.as_secs()),
            acked_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        let text = serde_json::to_string_pretty(&body).map_err(io::Error::other)? + "\n";
        if let Some(dir) = self.lease_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.lease_file.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.lease_file)
    }
}

/// The lease recorded in `path` for `device` by an earlier run, if any.
fn stale_lease(path: &Path, device: &str) -> Option<Lease> {
    let text = std::fs::read_to_string(path).ok()?;
    let f: WanLeaseFile = serde_json::from_str(&text).ok()?;
    if f.interface != device {
        return None;
    }
    Some(Lease {
        address: f.address.parse().ok()?,
        gateway: f.gateway,
        dns: f.dns,
        server: f.server,
        duration: f.lease_secs.map(Duration::from_secs),
        t1: Duration::ZERO,
        t2: Duration::ZERO,
        acquired: Duration::ZERO,
    })
}

/// Put `lease` on `device`, replacing `previous`; writes only what differs.
pub fn configure(
    ops: &mut dyn LinkOps,
    device: &str,
    lease: &Lease,
    previous: Option<&Lease>,
) -> Result<(), LinkError> {
    let links = ops.links()?;
    let have = links
        .iter()
        .find(|l| l.name == device)
        .map(|l| l.addresses.clone())
        .unwrap_or_default();
    if let Some(p) = previous.filter(|p| p.address != lease.address) {
        if have.contains(&p.address) {
            ops.write(&LinkWrite::DelAddress {
                link: device.to_owned(),
                address: p.address,
            })?;
        }
    }
    if !have.contains(&lease.address) {
        ops.write(&LinkWrite::AddAddress {
            link: device.to_owned(),
            address: lease.address,
        })?;
    }
    let route = ops.default_route()?;
    match lease.gateway {
        Some(g) if route != Some(g) => ops.write(&LinkWrite::SetDefaultRoute { gateway: Some(g) }),
        None if route.is_some() && route == previous.and_then(|p| p.gateway) => {
            ops.write(&LinkWrite::SetDefaultRoute { gateway: None })
        }
        _ => Ok(()),
    }
}

/// Take `lease` off `device`: its default route (if still ours) and its address.
pub fn deconfigure(ops: &mut dyn LinkOps, device: &str, lease: &Lease) -> Result<(), LinkError> {
    if lease.gateway.is_some() && ops.default_route()? == lease.gateway {
        ops.write(&LinkWrite::SetDefaultRoute { gateway: None })?;
    }
    let links = ops.links()?;
    if links
        .iter()
        .any(|l| l.name == device && l.addresses.contains(&lease.address))
    {
        ops.write(&LinkWrite::DelAddress {
            link: device.to_owned(),
            address: lease.address,
        })?;
    }
    Ok(())
}

/// A seed for xids and jitter that differs per process and start.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests;
