//! The DNS sockets: UDP and TCP on every listen address, on a tokio runtime of its
//! own (the DHCP side keeps its threads), and the SIGHUP reload.
//!
//! Listen addresses: `--dns-listen ADDR:PORT` (repeatable; a bind failure is fatal),
//! else port 53 on the appliance's address in every inside network (LAN and segment
//! gateways; one that cannot be bound is skipped with a warning). IPv4 sockets are
//! bound with `IP_FREEBIND`, so dnsd may start before the addresses exist.
//!
//! SIGHUP re-reads the config and the blocklists and swaps the zone and blocklists in
//! one step; if anything is wrong the old ones keep serving and the error is logged.
//! `url` blocklists are downloaded in the background at start, after every SIGHUP and
//! once a day ([`super::download`]); a changed copy triggers the same reload.
//! Configured upstreams, listen addresses and cache limits are read at start only.
//!
//! With no upstream configured (neither `--upstream` nor `dns.upstreams`), the ones
//! netd learned on the WAN are used ([`super::wan_lease`]): the file is polled every
//! second and re-read on SIGHUP, and the forwarder's list is swapped when it changes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_config::Config;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use std::os::fd::{AsFd, AsRawFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};

use super::blocklist::{BlocklistError, Blocklists};
use super::cache::{Cache, Limits};
use super::download;
use super::forward::Forwarder;
use super::query_log::QueryLog;
use super::resolver::{Resolver, State, Step};
use super::udp_batch::{Peer, Receiver, Sender};
use super::wan_lease::{self, WanLease};
use super::wire_cache::WireCache;
use super::zone::{self, Zone, ZoneError};
use crate::hosts::Hosts;

/// How long an upstream gets before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long an idle TCP client is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP worker threads per listen address, each blocking on its own `SO_REUSEPORT`
/// socket (the kernel spreads clients over them). Measured with `dnsd bench dns` on
/// the 2-core build VM, dnsperf sharing the cores: see the README.
const UDP_WORKERS: usize = 2;
/// Forwarded UDP queries in flight at most; more are dropped (the client retries),
/// so a flood of cache misses cannot grow tasks and sockets without bound.
const MAX_FORWARDS: usize = 1024;
/// Bounds of the encoded hot set in front of the cache ([`WireCache`]), on top of
/// the cache's own limits.
const WIRE_MAX_ENTRIES: usize = 65_536;
const WIRE_MAX_BYTES: usize = 16 << 20;

/// Why DNS could not start (or reload).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error(transparent)]
    Blocklist(#[from] BlocklistError),
    #[error("DNS listen address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the DNS runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the command line says about DNS.
#[derive(Debug, Clone, Default)]
pub struct DnsOptions {
    /// `--dns-listen`; empty: the inside addresses on port 53.
    pub listen: Vec<SocketAddr>,
    /// `--upstream`; empty: `dns.upstreams`.
    pub upstreams: Vec<SocketAddr>,
    /// `--wan-lease`: netd's `wan-dns.json`, used when both of the above are empty;
    /// `None`: never learn upstreams.
    pub wan_lease: Option<PathBuf>,
    /// Where downloaded (`url`) blocklists are kept; `None`: they are not used.
    pub downloads: Option<PathBuf>,
}

/// Build the zone and blocklists from `cfg`; downloaded lists are read from
/// `downloads`.
pub fn state(cfg: &Config, hosts: &Hosts, downloads: Option<&Path>) -> Result<State, DnsError> {
    let dns = &cfg.dns;
    let ttl = u32::try_from(dns.cache.ttl.as_secs()).unwrap_or(u32::MAX);
    let zone = Zone::build(
        dns.domain.as_str(),
        &dns.records,
        ttl,
        zone::subnets(cfg),
        hosts.clone(),
    )?;
    let blocks = Blocklists::load(&dns.blocklists, downloads)?;
    Ok(State { zone, blocks })
}

fn default_listen(cfg: &Config) -> Vec<SocketAddr> {
    let mut addrs: Vec<IpAddr> = vec![cfg.network.lan.address.addr()];
    addrs.extend(cfg.network.segments.iter().map(|s| IpAddr::V4(s.gateway)));
    addrs.into_iter().map(|a| SocketAddr::new(a, 53)).collect()
}

/// Bound DNS sockets and the resolver, ready to serve.
#[derive(Debug)]
pub struct Dns {
    runtime: Runtime,
    resolver: Arc<Resolver>,
    sockets: Vec<Listener>,
    wan: Option<WanLease>,
    downloads: Option<PathBuf>,
}

/// One listen address: a blocking UDP socket per worker, and the TCP listener.
#[derive(Debug)]
struct Listener {
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
}

/// A socket bound to `addr`, non-blocking unless `blocking`; IPv4 ones with
/// `IP_FREEBIND`, so the inside addresses can be bound before netd has put them on
/// the interfaces. UDP ones with `SO_REUSEPORT` (one per worker).
fn socket_on(addr: SocketAddr, ty: SockType, blocking: bool) -> nix::Result<std::os::fd::OwnedFd> {
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

/// `workers` UDP sockets and a TCP listener on `addr` (call inside the runtime). A
/// port 0 is resolved by the first UDP socket; the others and TCP bind to the same.
fn bind(addr: SocketAddr, workers: usize) -> Result<Listener, std::io::Error> {
    let first = std::net::UdpSocket::from(socket_on(addr, SockType::Datagram, true)?);
    let addr = first.local_addr()?;
    let mut udp = vec![first];
    for _ in 1..workers {
        udp.push(socket_on(addr, SockType::Datagram, true)?.into());
    }
    let tcp = socket_on(addr, SockType::Stream, false)?;
    let tcp = TcpListener::from_std(std::net::TcpListener::from(tcp))?;
    Ok(Listener { udp, tcp })
}

impl Dns {
    /// Build the resolver and bind every listen address.
    pub fn start(cfg: &Config, opts: &DnsOptions, hosts: &Hosts) -> Result<Self, DnsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("dns")
            .enable_all()
            .build()
            .map_err(DnsError::Runtime)?;
        let state = state(cfg, hosts, opts.downloads.as_deref())?;
        let configured: Vec<SocketAddr> = if opts.upstreams.is_empty() {
            cfg.dns.upstreams.iter().map(|u| u.addr()).collect()
        } else {
            opts.upstreams.clone()
        };
        let mut wan = match &opts.wan_lease {
            Some(path) if configured.is_empty() => Some(WanLease::new(path)),
            _ => None,
        };
        if let Some(w) = &mut wan {
            w.refresh(true);
            log::info!(
                "no DNS upstreams configured: using the ones learned in {}",
                w.path().display()
            );
        }
        let upstreams =
            wan_lease::effective(&configured, wan.as_ref().map_or(&[], |w| w.learned()));
        if upstreams.is_empty() {
            log::warn!("no DNS upstreams (yet): only local names will be answered");
        }
        let c = &cfg.dns.cache;
        let limits = Limits {
            max_entries: usize::try_from(c.max_entries).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(c.max_bytes.bytes()).unwrap_or(usize::MAX),
            min_ttl: u32::try_from(c.min_ttl.as_secs()).unwrap_or(u32::MAX),
            max_ttl: u32::try_from(c.max_ttl.as_secs()).unwrap_or(u32::MAX),
        };
        log::info!(
            "DNS zone {}, {} blocked names, upstreams {:?}, cache {} entries / {} bytes",
            state.zone.domain(),
            state.blocks.len(),
            upstreams,
            limits.max_entries,
            limits.max_bytes
        );
        let query_log = QueryLog::new(cfg.dns.log_queries);
        if query_log.is_some() {
            log::info!(
                "logging queries, at most {} lines a second",
                cfg.dns.log_queries
            );
        }
        let wire = WireCache::new(
            limits.max_entries.min(WIRE_MAX_ENTRIES),
            limits.max_bytes.min(WIRE_MAX_BYTES),
        );
        let resolver = Arc::new(
            Resolver::new(
                state,
                Cache::new(limits),
                Forwarder::new(upstreams, UPSTREAM_TIMEOUT),
            )
            .with_query_log(query_log)
            .with_wire_cache(wire),
        );
        let explicit = !opts.listen.is_empty();
        let addrs = if explicit {
            opts.listen.clone()
        } else {
            default_listen(cfg)
        };
        let mut sockets = Vec::new();
        for addr in addrs {
            match runtime.block_on(async { bind(addr, UDP_WORKERS) }) {
                Ok(s) => {
                    log::info!("DNS on {addr} (UDP and TCP)");
                    sockets.push(s);
                }
                Err(source) if explicit => return Err(DnsError::Bind { addr, source }),
                Err(e) => log::warn!("DNS listen address {addr}: {e}; skipped"),
            }
        }
        Ok(Self {
            runtime,
            resolver,
            sockets,
            wan,
            downloads: opts.downloads.clone(),
        })
    }

    /// Whether any address is bound.
    pub fn is_listening(&self) -> bool {
        !self.sockets.is_empty()
    }

    /// Serve forever; SIGHUP reloads from `config`.
    pub fn serve(self, config: PathBuf, hosts: Hosts) {
        let Self {
            runtime,
            resolver,
            sockets,
            wan,
            downloads,
        } = self;
        let wan = wan.map(|w| Arc::new(Mutex::new(w)));
        let reload = Arc::new(Reload {
            config,
            hosts,
            resolver: resolver.clone(),
            downloads,
            download_now: Notify::new(),
        });
        runtime.block_on(async move {
            let permits = Arc::new(Semaphore::new(MAX_FORWARDS));
            for Listener { udp, tcp } in sockets {
                for sock in udp {
                    let worker = UdpWorker {
                        sock: Arc::new(sock),
                        resolver: resolver.clone(),
                        permits: permits.clone(),
                        runtime: tokio::runtime::Handle::current(),
                    };
                    let spawned = std::thread::Builder::new()
                        .name("dns-udp".into())
                        .spawn(move || worker.run());
                    if let Err(e) = spawned {
                        log::error!("starting a DNS UDP worker: {e}");
                    }
                }
                tokio::spawn(serve_tcp(tcp, resolver.clone()));
            }
            if let Some(wan) = &wan {
                tokio::spawn(poll_wan_lease(wan.clone(), resolver.clone()));
            }
            if resolver.query_log().is_some() {
                tokio::spawn(flush_query_log(resolver.clone()));
            }
            if reload.downloads.is_some() {
                tokio::spawn(download_blocklists(reload.clone()));
            }
            reload_on_hangup(&reload, wan.as_deref()).await;
        });
    }
}

/// Re-read the WAN lease file (if `force`, even unchanged) and swap the upstreams.
fn refresh_wan(wan: &Mutex<WanLease>, resolver: &Resolver, force: bool) {
    let changed = wan.lock().expect("WAN lease lock").refresh(force);
    if let Some(list) = changed {
        log::info!("DNS upstreams learned on the WAN: {list:?}");
        resolver.forwarder().set_upstreams(list);
    }
}

async fn poll_wan_lease(wan: Arc<Mutex<WanLease>>, resolver: Arc<Resolver>) {
    let mut tick = tokio::time::interval(wan_lease::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        refresh_wan(&wan, &resolver, false);
    }
}

/// Report suppressed query-log lines once a second.
async fn flush_query_log(resolver: Arc<Resolver>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(l) = resolver.query_log() {
            l.flush();
        }
    }
}

/// What a reload needs.
#[derive(Debug)]
struct Reload {
    config: PathBuf,
    hosts: Hosts,
    resolver: Arc<Resolver>,
    downloads: Option<PathBuf>,
    /// Wakes [`download_blocklists`] (SIGHUP).
    download_now: Notify,
}

impl Reload {
    /// Re-read the config and every blocklist and swap them in; on any error keep
    /// the old ones.
    fn reload(&self) {
        let loaded = hearth_config::load(&self.config)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                state(&cfg, &self.hosts, self.downloads.as_deref()).map_err(|e| e.to_string())
            });
        match loaded {
            Ok(s) => {
                log::info!("reloaded: {} blocked names", s.blocks.len());
                self.resolver.swap(s);
            }
            Err(e) => log::error!("reload refused, keeping the old config: {e}"),
        }
    }
}

/// Download the `url` blocklists at start, on SIGHUP and every
/// [`download::REFRESH`]; reload when a copy changed.
async fn download_blocklists(reload: Arc<Reload>) {
    let Some(dir) = reload.downloads.clone() else {
        return;
    };
    loop {
        match hearth_config::load(&reload.config) {
            Ok(cfg) if cfg.dns.blocklists.iter().any(|l| l.url.is_some()) => {
                let lists = cfg.dns.blocklists.clone();
                let dir = dir.clone();
                let changed =
                    tokio::task::spawn_blocking(move || download::fetch_all(&lists, &dir)).await;
                if changed.unwrap_or(false) {
                    reload.reload();
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("blocklist downloads: {e}"),
        }
        tokio::select! {
            () = reload.download_now.notified() => {}
            () = tokio::time::sleep(download::REFRESH) => {}
        }
    }
}

async fn reload_on_hangup(reload: &Reload, wan: Option<&Mutex<WanLease>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot watch SIGHUP ({e}); reload disabled");
            std::future::pending::<()>().await;
            return;
        }
    };
    while hup.recv().await.is_some() {
        if let Some(wan) = wan {
            refresh_wan(wan, &reload.resolver, true);
        }
        reload.reload();
        reload.download_now.notify_one();
    }
}

/// One UDP worker thread: a blocking batched receive ([`super::udp_batch`]), the hot
/// path inline, the full path inline too unless the query must be forwarded (a task
/// on the runtime then), and the batch's replies sent in one call.
struct UdpWorker {
    sock: Arc<std::net::UdpSocket>,
    resolver: Arc<Resolver>,
    permits: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
}

impl UdpWorker {
    fn run(self) {
        let (mut rx, mut tx) = (Receiver::new(), Sender::new());
        loop {
            let n = match rx.recv(self.sock.as_fd()) {
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let l = rt
            .block_on(async { bind("192.0.2.53:0".parse().unwrap(), 2) })
            .unwrap();
        let port = l.udp[0].local_addr().unwrap().port();
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
