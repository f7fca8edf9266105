//! The DNS side of dnsd on a tokio runtime of its own (the DHCP side keeps its
//! threads): start-up, the background tasks, and the DNS part of a reload.
//!
//! Listen addresses: `--dns-listen ADDR:PORT` (repeatable; a bind failure is fatal;
//! never changed by a reload), else port 53 on the appliance's address in every
//! inside network (LAN and segment gateways; one that cannot be bound is skipped with
//! a warning), which a reload follows: new addresses are bound, removed ones stopped
//! ([`super::listeners`]).
//!
//! SIGHUP reloads the whole config in two phases ([`crate::reload`]): the DNS part
//! ([`DnsPart`]) builds the new zone and blocklists, works out upstreams, cache
//! limits and the query log rate and binds new listen addresses; only when every part
//! of dnsd accepted the new config is it swapped in, otherwise the old one keeps
//! serving and the error is logged. `url` blocklists are downloaded in the background
//! at start, after every SIGHUP and once a day ([`super::download`]); a changed copy
//! triggers the same reload.
//!
//! Upstreams: `--upstream` flags win; else `dns.upstreams`; with neither, the ones
//! netd learned on the WAN ([`super::wan_lease`]): the file is polled every second and
//! re-read on SIGHUP, and the forwarder's list is swapped when it changes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_config::Config;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use super::blocklist::{BlocklistError, Blocklists};
use super::cache::{Cache, Limits};
use super::download;
use super::forward::Forwarder;
use super::listeners::{self, Bound, Listeners, UDP_WORKERS};
use super::query_log::QueryLog;
use super::resolver::{Resolver, State};
use super::wan_lease::{self, WanLease};
use super::wire_cache::WireCache;
use super::zone::{self, Zone, ZoneError};
use crate::hosts::Hosts;
use crate::reload::{self, Commit, PrepareError, Reloadable};

/// How long an upstream gets before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
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

/// The cache limits `dns.cache` asks for.
fn limits(cfg: &Config) -> Limits {
    let c = &cfg.dns.cache;
    Limits {
        max_entries: usize::try_from(c.max_entries).unwrap_or(usize::MAX),
        max_bytes: usize::try_from(c.max_bytes.bytes()).unwrap_or(usize::MAX),
        min_ttl: u32::try_from(c.min_ttl.as_secs()).unwrap_or(u32::MAX),
        max_ttl: u32::try_from(c.max_ttl.as_secs()).unwrap_or(u32::MAX),
    }
}

/// The hot set's bounds for cache `limits`.
fn wire_limits(limits: &Limits) -> (usize, usize) {
    (
        limits.max_entries.min(WIRE_MAX_ENTRIES),
        limits.max_bytes.min(WIRE_MAX_BYTES),
    )
}

/// The configured upstreams: the flags', else the config's.
fn configured_upstreams(cfg: &Config, flags: &[SocketAddr]) -> Vec<SocketAddr> {
    if flags.is_empty() {
        cfg.dns.upstreams.iter().map(|u| u.addr()).collect()
    } else {
        flags.to_vec()
    }
}

/// The DNS resolver and sockets, ready to serve.
#[derive(Debug)]
pub struct Dns {
    runtime: Runtime,
    part: Arc<DnsPart>,
    /// Bound at start, served from [`Dns::serve`].
    bound: Vec<Bound>,
}

/// What follows the config on the DNS side. The [`Reloadable`] DNS part is
/// `Arc<DnsPart>`, so a commit holds the part itself.
#[derive(Debug)]
pub struct DnsPart {
    hosts: Hosts,
    resolver: Arc<Resolver>,
    listeners: Listeners,
    downloads: Option<PathBuf>,
    /// `--dns-listen` was given: the listen addresses never follow the config.
    explicit_listen: bool,
    /// `--upstream` flags: they win over the config.
    flag_upstreams: Vec<SocketAddr>,
    /// The configured upstreams in force (empty: the learned ones are used).
    configured: Mutex<Vec<SocketAddr>>,
    /// netd's WAN lease file, when `--wan-lease` names one.
    wan: Option<Mutex<WanLease>>,
}

/// A config the DNS part accepted, ready to commit.
struct Prepared {
    state: State,
    limits: Limits,
    log_rate: u32,
    configured: Vec<SocketAddr>,
    /// The listen addresses to keep (`None`: explicit ones, never changed) and the
    /// new ones, bound.
    keep: Option<Vec<SocketAddr>>,
    bound: Vec<Bound>,
}

impl DnsPart {
    /// Point the forwarder at the configured upstreams, or the learned ones.
    fn use_upstreams(&self) {
        let learned = self
            .wan
            .as_ref()
            .map(|w| w.lock().expect("WAN lease lock").learned().to_vec());
        let list = wan_lease::effective(
            &self.configured.lock().expect("upstreams lock"),
            learned.as_deref().unwrap_or(&[]),
        );
        let forwarder = self.resolver.forwarder();
        if *forwarder.upstreams() != list {
            if list.is_empty() {
                log::warn!("no DNS upstreams (yet): only local names will be answered");
            } else {
                log::info!("DNS upstreams {list:?}");
            }
            forwarder.set_upstreams(list);
        }
    }

    /// Re-read the WAN lease file (if `force`, even unchanged); swap the upstreams
    /// if the learned ones changed and are in use.
    fn refresh_wan(&self, force: bool) {
        let Some(wan) = &self.wan else { return };
        let changed = wan.lock().expect("WAN lease lock").refresh(force);
        if let Some(list) = changed {
            log::info!("DNS upstreams learned on the WAN: {list:?}");
            self.use_upstreams();
        }
    }

    /// Apply what [`Reloadable::prepare`] accepted.
    fn commit(&self, p: Prepared) {
        let resolver = &self.resolver;
        log::info!(
            "DNS reloaded: {} blocked names, zone {}",
            p.state.blocks.len(),
            p.state.zone.domain()
        );
        resolver.swap(p.state);
        let limits = p.limits;
        if resolver.cache().limits() != limits {
            log::info!(
                "DNS cache now {} entries / {} bytes, TTL {}-{} s",
                limits.max_entries,
                limits.max_bytes,
                limits.min_ttl,
                limits.max_ttl
            );
            let (entries, bytes) = wire_limits(&limits);
            resolver.set_cache_limits(limits, entries, bytes);
        }
        let rate = p.log_rate;
        if resolver.query_log().map_or(0, |l| l.per_sec()) != rate {
            log::info!("query log now at most {rate} lines a second (0: off)");
            resolver.set_query_log(QueryLog::new(rate));
        }
        *self.configured.lock().expect("upstreams lock") = p.configured;
        self.use_upstreams();
        if let Some(keep) = p.keep {
            self.listeners.retain(&keep);
        }
        for b in p.bound {
            self.listeners.start(b);
        }
    }
}

impl Reloadable for Arc<DnsPart> {
    fn name(&self) -> &'static str {
        "DNS"
    }

    fn prepare(&self, cfg: &Config) -> Result<Commit, PrepareError> {
        let state = state(cfg, &self.hosts, self.downloads.as_deref())?;
        let (keep, bound) = if self.explicit_listen {
            (None, Vec::new())
        } else {
            let want = default_listen(cfg);
            let have = self.listeners.addrs();
            let mut bound = Vec::new();
            for addr in want.iter().filter(|a| !have.contains(a)) {
                match listeners::bind(*addr, UDP_WORKERS) {
                    Ok(b) => bound.push(b),
                    Err(e) => log::warn!("DNS listen address {addr}: {e}; skipped"),
                }
            }
            (Some(want), bound)
        };
        let prepared = Prepared {
            state,
            limits: limits(cfg),
            log_rate: cfg.dns.log_queries,
            configured: configured_upstreams(cfg, &self.flag_upstreams),
            keep,
            bound,
        };
        let part = Arc::clone(self);
        Ok(Box::new(move || part.commit(prepared)))
    }
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
        let configured = configured_upstreams(cfg, &opts.upstreams);
        let wan = opts.wan_lease.as_ref().map(|path| {
            let mut w = WanLease::new(path);
            w.refresh(true);
            w
        });
        if let (true, Some(w)) = (configured.is_empty(), &wan) {
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
        let limits = limits(cfg);
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
        let (wire_entries, wire_bytes) = wire_limits(&limits);
        let resolver = Arc::new(
            Resolver::new(
                state,
                Cache::new(limits),
                Forwarder::new(upstreams, UPSTREAM_TIMEOUT),
            )
            .with_query_log(query_log)
            .with_wire_cache(WireCache::new(wire_entries, wire_bytes)),
        );
        let explicit = !opts.listen.is_empty();
        let addrs = if explicit {
            opts.listen.clone()
        } else {
            default_listen(cfg)
        };
        let mut bound = Vec::new();
        for addr in addrs {
            match listeners::bind(addr, UDP_WORKERS) {
                Ok(b) => bound.push(b),
                Err(source) if explicit => return Err(DnsError::Bind { addr, source }),
                Err(e) => log::warn!("DNS listen address {addr}: {e}; skipped"),
            }
        }
        let part = Arc::new(DnsPart {
            hosts: hosts.clone(),
            listeners: Listeners::new(resolver.clone(), runtime.handle().clone()),
            resolver,
            downloads: opts.downloads.clone(),
            explicit_listen: explicit,
            flag_upstreams: opts.upstreams.clone(),
            configured: Mutex::new(configured),
            wan: wan.map(Mutex::new),
        });
        Ok(Self {
            runtime,
            part,
            bound,
        })
    }

    /// Whether any address is bound.
    pub fn is_listening(&self) -> bool {
        !self.bound.is_empty()
    }

    /// Serve forever; SIGHUP reloads `config` into the DNS part and `others` (the
    /// DHCP part), all or nothing.
    pub fn serve(self, config: PathBuf, others: Vec<Arc<dyn Reloadable>>) {
        let Self {
            runtime,
            part,
            bound,
        } = self;
        let mut parts: Vec<Arc<dyn Reloadable>> = vec![Arc::new(part.clone())];
        parts.extend(others);
        let reloader = Arc::new(Reloader {
            config,
            parts,
            dns: part.clone(),
            download_now: Notify::new(),
        });
        runtime.block_on(async move {
            for b in bound {
                part.listeners.start(b);
            }
            if part.wan.is_some() {
                tokio::spawn(poll_wan_lease(part.clone()));
            }
            tokio::spawn(flush_query_log(part.resolver.clone()));
            if part.downloads.is_some() {
                tokio::spawn(download_blocklists(reloader.clone()));
            }
            reload_on_hangup(&reloader).await;
        });
    }
}

async fn poll_wan_lease(part: Arc<DnsPart>) {
    let mut tick = tokio::time::interval(wan_lease::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        part.refresh_wan(false);
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
struct Reloader {
    config: PathBuf,
    /// Every part, DNS first.
    parts: Vec<Arc<dyn Reloadable>>,
    dns: Arc<DnsPart>,
    /// Wakes [`download_blocklists`] (SIGHUP).
    download_now: Notify,
}

impl Reloader {
    /// Re-read the config and apply it to every part, or to none.
    fn reload(&self) {
        let cfg = match hearth_config::load(&self.config) {
            Ok(cfg) => cfg,
            Err(e) => {
                log::error!("reload refused, keeping the old config: {e}");
                return;
            }
        };
        let parts: Vec<&dyn Reloadable> = self.parts.iter().map(|p| p.as_ref()).collect();
        match reload::apply(&parts, &cfg) {
            Ok(()) => log::info!("reloaded {}", self.config.display()),
            Err(e) => log::error!("reload refused, keeping the old config: {e}"),
        }
    }
}

/// Download the `url` blocklists at start, on SIGHUP and every
/// [`download::REFRESH`]; reload when a copy changed.
async fn download_blocklists(reloader: Arc<Reloader>) {
    let Some(dir) = reloader.dns.downloads.clone() else {
        return;
    };
    loop {
        match hearth_config::load(&reloader.config) {
            Ok(cfg) if cfg.dns.blocklists.iter().any(|l| l.url.is_some()) => {
                let lists = cfg.dns.blocklists.clone();
                let dir = dir.clone();
                let changed =
                    tokio::task::spawn_blocking(move || download::fetch_all(&lists, &dir)).await;
                if changed.unwrap_or(false) {
                    reloader.reload();
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("blocklist downloads: {e}"),
        }
        tokio::select! {
            () = reloader.download_now.notified() => {}
            () = tokio::time::sleep(download::REFRESH) => {}
        }
    }
}

async fn reload_on_hangup(reloader: &Reloader) {
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
        reloader.dns.refresh_wan(true);
        reloader.reload();
        reloader.download_now.notify_one();
    }
}
