//! The DNS sockets of every listen address, started and stopped as a reload adds and
//! removes addresses.
//!
//! Per address: [`UDP_WORKERS`] threads, each blocking on its own `SO_REUSEPORT`
//! socket with batched I/O ([`super::udp_batch`]; the kernel spreads clients over
//! them), and one TCP accept task on the runtime. Binding ([`bind`]) is separate from
//! serving ([`Listeners::start`]) so a reload can bind every new address before it
//! changes anything. IPv4 sockets are bound with `IP_FREEBIND`, so the inside
//! addresses can be bound before netd has put them on the interfaces.
//!
//! Stopping an address: its workers see a stop flag, woken by `shutdown(SHUT_RD)` on
//! their sockets (which makes a blocked receive return), and the TCP task is aborted;
//! the sockets close when the last worker lets go of them.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, Shutdown, SockFlag, SockType, SockaddrStorage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::resolver::{Resolver, Step};
use super::udp_batch::{Peer, Receiver, Sender};

/// UDP worker threads per listen address. Measured with `dnsd bench dns` on the
/// 2-core build VM, dnsperf sharing the cores: see the README.
pub const UDP_WORKERS: usize = 2;
/// Forwarded UDP queries in flight at most; more are dropped (the client retries),
/// so a flood of cache misses cannot grow tasks and sockets without bound.
const MAX_FORWARDS: usize = 1024;
/// How long an idle TCP client is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A socket bound to `addr`, non-blocking unless `blocking`; IPv4 ones with
/// `IP_FREEBIND`; UDP ones with `SO_REUSEPORT` (one per worker).
fn socket_on(addr: SocketAddr, ty: SockType, blocking: bool) -> nix::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = if blocking {
        SockFlag::SOCK_CLOEXEC
    } else {
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK
    };
    let fd = socket::socket(family, ty, flags, None)?;
    if addr.is_ipv4() {
        socket::setsockopt(&fd, sockopt::IpFreebind, &true)?;
    }
    if ty == SockType::Stream {
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    } else {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if ty == SockType::Stream {
        socket::listen(&fd, Backlog::MAXCONN)?;
    }
    Ok(fd)
}

/// One address's sockets, bound but not yet served.
#[derive(Debug)]
pub struct Bound {
    /// The address (a port 0 asked for is resolved).
    pub addr: SocketAddr,
    udp: Vec<UdpSocket>,
    tcp: std::net::TcpListener,
}

/// Bind `workers` UDP sockets and a TCP listener on `addr`. A port 0 is resolved by
/// the first UDP socket; the others and TCP bind to the same.
pub fn bind(addr: SocketAddr, workers: usize) -> Result<Bound, std::io::Error> {
    let first = UdpSocket::from(socket_on(addr, SockType::Datagram, true)?);
    let addr = first.local_addr()?;
    let mut udp = vec![first];
    for _ in 1..workers {
        udp.push(socket_on(addr, SockType::Datagram, true)?.into());
    }
    let tcp = std::net::TcpListener::from(socket_on(addr, SockType::Stream, false)?);
    Ok(Bound { addr, udp, tcp })
}

/// One address being served.
struct Serving {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    udp: Vec<Arc<UdpSocket>>,
    tcp: JoinHandle<()>,
}

/// Every address being served, and what their workers share.
pub struct Listeners {
    resolver: Arc<Resolver>,
    runtime: Handle,
    permits: Arc<Semaphore>,
    serving: Mutex<Vec<Serving>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("addrs", &self.addrs())
            .finish_non_exhaustive()
    }
}

impl Listeners {
    /// No address yet; workers will answer with `resolver`, forwarding on `runtime`.
    pub fn new(resolver: Arc<Resolver>, runtime: Handle) -> Self {
        Self {
            resolver,
            runtime,
            permits: Arc::new(Semaphore::new(MAX_FORWARDS)),
            serving: Mutex::new(Vec::new()),
        }
    }

    /// The addresses being served.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let s = self.serving.lock().expect("listeners lock");
        s.iter().map(|s| s.addr).collect()
    }

    /// Serve `bound`: start its UDP workers and its TCP accept task.
    pub fn start(&self, bound: Bound) {
        let Bound { addr, udp, tcp } = bound;
        let stop = Arc::new(AtomicBool::new(false));
        let mut socks = Vec::new();
        for sock in udp {
            let sock = Arc::new(sock);
            socks.push(sock.clone());
            let worker = UdpWorker {
                sock,
                stop: stop.clone(),
                resolver: self.resolver.clone(),
                permits: self.permits.clone(),
                runtime: self.runtime.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("dns-udp".into())
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                log::error!("starting a DNS UDP worker for {addr}: {e}");
            }
        }
        let resolver = self.resolver.clone();
        let tcp = self.runtime.spawn(async move {
            match TcpListener::from_std(tcp) {
                Ok(l) => serve_tcp(l, resolver).await,
                Err(e) => log::error!("DNS TCP on {addr}: {e}"),
            }
        });
        self.serving.lock().expect("listeners lock").push(Serving {
            addr,
            stop,
            udp: socks,
            tcp,
        });
        log::info!("DNS on {addr} (UDP and TCP)");
    }

    /// Stop serving every address not in `keep`.
    pub fn retain(&self, keep: &[SocketAddr]) {
        let mut serving = self.serving.lock().expect("listeners lock");
        let (kept, gone): (Vec<Serving>, Vec<Serving>) =
            serving.drain(..).partition(|s| keep.contains(&s.addr));
        *serving = kept;
        for s in gone {
            s.stop.store(true, Ordering::SeqCst);
            for u in &s.udp {
                // On an unconnected UDP socket this reports ENOTCONN but still marks
                // the socket shut and wakes a blocked receive, which is all we want.
                let _ = socket::shutdown(u.as_raw_fd(), Shutdown::Read);
            }
            s.tcp.abort();
            log::info!("DNS no longer on {}", s.addr);
        }
    }
}

/// One UDP worker thread: a blocking batched receive, the hot path inline, the full
/// path inline too unless the query must be forwarded (a task on the runtime then),
/// and the batch's replies sent in one call.
struct UdpWorker {
    sock: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    resolver: Arc<Resolver>,
    permits: Arc<Semaphore>,
    runtime: Handle,
}

impl UdpWorker {
    fn run(self) {
        let (mut rx, mut tx) = (Receiver::new(), Sender::new());
        loop {
            let n = rx.recv(self.sock.as_fd());
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    log::debug!("DNS UDP receive: {e}");
                    continue;
                }
            };
            for i in 0..n {
                let (req, peer) = rx.get(i);
                self.answer(req, peer, tx.next(peer));
            }
            tx.flush(self.sock.as_fd());
        }
    }

    /// Answer `req` into `out` (the hot path or the full one); left empty when
    /// there is nothing to send now: dropped, or forwarded (a task replies later).
    fn answer(&self, req: &[u8], peer: Peer, out: &mut Vec<u8>) {
        if self.resolver.answer_fast(req, out) {
            return;
        }
        out.clear();
        let Some(peer) = peer.socket_addr() else {
            return;
        };
        match self.resolver.prepare(req, true, peer.ip()) {
            Step::Reply(reply) => *out = reply,
            Step::Forward(req) => {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    log::debug!("{MAX_FORWARDS} queries in flight upstream; dropping one");
                    return;
                };
                let (sock, resolver) = (self.sock.clone(), self.resolver.clone());
                self.runtime.spawn(async move {
                    let out = resolver.forward(&req, true, peer.ip()).await;
                    // A UDP send does not block on a socket buffer worth waiting for.
                    let _ = sock.send_to(&out, peer);
                    drop(permit);
                });
            }
            Step::Drop => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(tcp_client(stream, peer.ip(), resolver.clone()));
            }
            Err(e) => {
                log::debug!("DNS TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_client(mut s: TcpStream, peer: IpAddr, resolver: Arc<Resolver>) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, s.read_u16()).await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        let Ok(Ok(_)) = tokio::time::timeout(TCP_IDLE, s.read_exact(&mut buf)).await else {
            return;
        };
        let Some(out) = resolver.handle(&buf, false, peer).await else {
            return;
        };
        let Ok(n) = u16::try_from(out.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&out);
        if s.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_address_this_host_does_not_have_yet() {
        let l = bind("192.0.2.53:0".parse().unwrap(), 2).unwrap();
        let port = l.addr.port();
        assert_ne!(port, 0);
        assert_eq!(l.udp.len(), 2);
        for u in &l.udp {
            assert_eq!(
                u.local_addr().unwrap().to_string(),
                format!("192.0.2.53:{port}")
            );
        }
        assert_eq!(
            l.tcp.local_addr().unwrap().to_string(),
            format!("192.0.2.53:{port}")
        );
    }
}
