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
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn};

use super::server::{Dest, Reply, Server};

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
    // Above net.core.rmem_max needs CAP_NET_ADMIN (we are root in the appliance);
    // without it the default buffer is kept.
    if socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
    }
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

/// Most requests answered with one fsync of the lease log. An fsync on a busy disk
/// can take tens of milliseconds; everything that queued meanwhile goes into the
/// next batch, so the batch (and the socket buffer, [`RCVBUF`]) must hold that much.
const BATCH: usize = 1024;
/// Receive buffer asked for: ~2000 queued requests at the kernel's per-packet cost.
const RCVBUF: usize = 4 << 20;

/// Serve slot `pool` on `sock` forever (a slot whose pool was removed by a reload
/// ignores what arrives; see [`Server::replace_pools`]). Waits for a request, then takes every
/// further one already queued on the socket (up to [`BATCH`]) and answers them as
/// one batch ([`Server::handle_batch_early`]: one fsync for all their leases, the
/// ACKs after it; OFFERs and NAKs, which promise nothing durable, before it). Bad packets are dropped (logged at most once every few seconds); a
/// batch whose leases cannot be written is logged and not answered.
pub fn serve(server: Arc<Server>, pool: usize, sock: UdpSocket) {
    // A slot keeps its interface for the life of the process.
    let iface = server
        .pool(pool)
        .map_or_else(|| format!("DHCP slot {pool}"), |p| p.interface);
    let mut buf = vec![0u8; 4096];
    let mut quiet_until = Instant::now();
    let mut throttled = |msg: String| {
        let now = Instant::now();
        if now >= quiet_until {
            log::warn!("{iface}: {msg}");
            quiet_until = now + Duration::from_secs(5);
        }
    };
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    let mut out = Vec::with_capacity(600);
    loop {
        batch.clear();
        // Block for the first request, then drain what is already queued.
        let mut flags = MsgFlags::empty();
        while batch.len() < BATCH {
            let n = match socket::recv(sock.as_raw_fd(), &mut buf, flags) {
                Ok(n) => n,
                Err(nix::Error::EAGAIN) => break,
                Err(e) => {
                    throttled(format!("receive: {e}"));
                    break;
                }
            };
            flags = MsgFlags::MSG_DONTWAIT;
            match Message::decode(&mut Decoder::new(&buf[..n])) {
                Ok(m) => batch.push(m),
                Err(e) => throttled(format!("undecodable packet ({n} bytes): {e}")),
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut send = |reply: &Reply| {
            out.clear();
            if let Err(e) = reply.msg.encode(&mut Encoder::new(&mut out)) {
                throttled(format!("encoding reply: {e}"));
                return true;
            }
            // BOOTP relays and some clients drop replies shorter than 300 bytes;
            // trailing zeros are pad options.
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
            true
        };
        // OFFERs and NAKs leave before the fsync; ACKs after it.
        let replies = match server.handle_batch_early(pool, &batch, unix_now(), &mut send) {
            Ok(r) => r,
            Err(e) => {
                log::error!("{e}; not acknowledging {} requests", batch.len());
                continue;
            }
        };
        for reply in replies.iter().flatten() {
            send(reply);
        }
    }
}
