//! One UDP socket per served interface, bound to port 67 on 0.0.0.0 (clients without
//! an address send from 0.0.0.0 to 255.255.255.255) and to its device with
//! `SO_BINDTODEVICE`, so a request is answered from the pool of the interface it came
//! in on and replies leave through that interface.
//!
//! Replies to clients without an address are broadcast (RFC 2131 4.1 allows it when
//! the server does not unicast to the hardware address); every client we test with
//! (udhcpc, dhclient) listens on a raw socket and accepts them.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{Decodable, Decoder, Encodable, Encoder, Message, MIN_PACKET_SIZE};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

use super::server::{Dest, Server};

/// Server and client ports.
pub const SERVER_PORT: u16 = 67;
/// The client port.
pub const CLIENT_PORT: u16 = 68;

/// Errors setting up a socket; each names the interface.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("interface {iface}: {what}")]
    Setup {
        iface: String,
        what: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// A UDP socket on `0.0.0.0:port` bound to `iface`.
pub fn bind(iface: &str, port: u16) -> Result<UdpSocket, SocketError> {
    let err = |what| {
        let iface = iface.to_owned();
        move |source| SocketError::Setup {
            iface,
            what,
            source,
        }
    };
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("creating a UDP socket"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err("setting SO_REUSEADDR"))?;
    socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(err("setting SO_BROADCAST"))?;
    socket::setsockopt(&fd, sockopt::BindToDevice, &iface.into())
        .map_err(err("binding to the device (SO_BINDTODEVICE)"))?;
    let addr = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    socket::bind(fd.as_raw_fd(), &addr).map_err(err("binding UDP port 67"))?;
    Ok(UdpSocket::from(fd))
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Serve pool `pool` on `sock` forever. Bad packets are dropped (logged at most once
/// every few seconds); a lease that cannot be written is logged and not ACKed.
pub fn serve(server: Arc<Server>, pool: usize, sock: UdpSocket) {
    let iface = server.pools()[pool].interface.clone();
    let mut buf = vec![0u8; 4096];
    let mut quiet_until = Instant::now();
    let mut throttled = |msg: String| {
        let now = Instant::now();
        if now >= quiet_until {
            log::warn!("{iface}: {msg}");
            quiet_until = now + Duration::from_secs(5);
        }
    };
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                throttled(format!("receive: {e}"));
                continue;
            }
        };
        let req = match Message::decode(&mut Decoder::new(&buf[..n])) {
            Ok(m) => m,
            Err(e) => {
                throttled(format!("undecodable packet from {from}: {e}"));
                continue;
            }
        };
        let reply = match server.handle(pool, &req, unix_now()) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                log::error!("{e}; not acknowledging");
                continue;
            }
        };
        let mut out = Vec::with_capacity(600);
        if let Err(e) = reply.msg.encode(&mut Encoder::new(&mut out)) {
            throttled(format!("encoding reply: {e}"));
            continue;
        }
        // BOOTP relays and some clients drop replies shorter than 300 bytes; trailing
        // zeros are pad options.
        if out.len() < MIN_PACKET_SIZE {
            out.resize(MIN_PACKET_SIZE, 0);
        }
        let to = match reply.dest {
            Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Dest::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
            Dest::Relay(ip) => SocketAddrV4::new(ip, SERVER_PORT),
        };
        if let Err(e) = sock.send_to(&out, to) {
            throttled(format!("sending to {to}: {e}"));
        }
    }
}
