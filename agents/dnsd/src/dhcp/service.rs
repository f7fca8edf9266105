//! The DHCP side of dnsd as one service: the [`Server`], one *slot* per served
//! interface (its socket and receive thread) and the config they follow.
//!
//! Slots are never taken away: a socket bound to an interface stays open for the
//! life of the process, so a reload never has to close and rebind a port 67 socket
//! (which a client's retransmission could hit in between). What a reload changes is
//! the pool behind each slot, swapped for all slots at once under the server's lock
//! ([`Server::replace_pools`]):
//!
//! * [`DhcpService::prepare`] (see [`crate::reload`]) derives the pools from the new
//!   config and binds a socket for every interface that has none yet; an error there
//!   refuses the reload and the prepared sockets are closed. Nothing a client sees
//!   has changed yet.
//! * The commit swaps the pools and starts a thread for each new socket. A slot whose
//!   interface the config no longer serves keeps its thread but its pool is empty:
//!   requests there are ignored ("no longer serving DHCP on X"); when a later config
//!   serves it again the slot and socket are reused.
//!
//! An interface the config names but that does not exist yet (netd creates `vl-S`
//! and the LAN bridge, possibly after dnsd started) is not forgotten: the service
//! keeps every pool of the last committed config and a background thread checks
//! every [`RECHECK`] whether a missing interface appeared, then binds and serves it
//! ("serving DHCP on X now"). With explicit `--interface` flags nothing is missing:
//! a flagged interface that does not exist fails the start or refuses the reload.
//!
//! An interface deleted and created again under the same name (netd recreates
//! `vl-S` when a segment's VLAN id changes) has a new index, and a socket bound to
//! the old device hears nothing: the same check notices the new index and binds a
//! new socket for the slot ("interface X was recreated"); the old socket's thread is
//! left idle on the dead device.
//!
//! The lease database is always opened, also when no pool is served at start, so
//! pools that a reload or a late interface adds work like the first ones.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hearth_config::Config;

use super::lease::{LeaseDb, LeaseError};
use super::pool::Pool;
use super::server::Server;
use super::socket::{self, SocketError};
use crate::hosts::Hosts;
use crate::reload::{Commit, PrepareError, Reloadable};
use crate::settings::{self, InterfaceFlag, SettingsError};

/// How often the background thread looks for interfaces that appeared.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Why the DHCP service could not start or refused a config.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("networks {first} and {second} are both on interface {iface}: one pool per interface")]
    SharedInterface {
        iface: String,
        first: String,
        second: String,
    },
}

/// Whether an interface exists; replaced in tests.
type Exists = Arc<dyn Fn(&str) -> bool + Send + Sync>;
/// An interface's index; replaced in tests.
type Index = Arc<dyn Fn(&str) -> Option<u32> + Send + Sync>;

/// How the service binds and finds interfaces. Tests bind port 0 on `lo` and decide
/// when an interface "appears".
#[derive(Clone)]
struct Env {
    port: u16,
    exists: Exists,
    index: Index,
    /// `None`: no background thread (tests call [`Shared::recheck`]).
    recheck: Option<Duration>,
}

impl Default for Env {
    fn default() -> Self {
        Self {
            port: socket::SERVER_PORT,
            exists: Arc::new(settings::interface_exists),
            index: Arc::new(settings::interface_index),
            recheck: Some(RECHECK),
        }
    }
}

/// The DHCP server, its slots and the config they follow.
pub struct DhcpService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DhcpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpService")
            .field("served", &self.served_interfaces())
            .finish_non_exhaustive()
    }
}

struct Shared {
    server: Arc<Server>,
    /// The `--interface` flags (fixed for the process).
    flags: Vec<InterfaceFlag>,
    env: Env,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The interface of every slot, in slot order; each has a socket and a thread.
    ifaces: Vec<String>,
    /// The index of each slot's interface when its socket was bound.
    indexes: Vec<Option<u32>>,
    /// Every pool of the last committed config, also those whose interface is
    /// missing.
    wanted: Vec<Pool>,
    /// What each slot serves (what the server was last given).
    served: Vec<Option<Pool>>,
    /// Missing interfaces whose bind failed, so each failure is logged once.
    bind_failed: HashSet<String>,
}

impl DhcpService {
    /// Open the lease database in `state_dir`, bind and serve every pool of `cfg`
    /// whose interface exists, and watch for the missing ones.
    pub fn start(
        cfg: &Config,
        flags: &[InterfaceFlag],
        state_dir: &Path,
        hosts: Hosts,
    ) -> Result<Self, ServiceError> {
        Self::start_with(cfg, flags, state_dir, hosts, Env::default())
    }

    fn start_with(
        cfg: &Config,
        flags: &[InterfaceFlag],
        state_dir: &Path,
        hosts: Hosts,
        env: Env,
    ) -> Result<Self, ServiceError> {
        let plan = plan(cfg, flags)?;
        let explicit = !flags.is_empty();
        let sockets = plan
            .iter()
            .filter(|p| explicit || (env.exists)(&p.interface))
            .map(|p| Ok((p.interface.clone(), socket::bind(&p.interface, env.port)?)))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let db = LeaseDb::open(state_dir)?;
        log::info!(
            "lease database {}: {} addresses",
            db.path().display(),
            db.iter().count()
        );
        let server = Arc::new(Server::new(Vec::new(), db, hosts, socket::unix_now()));
        let shared = Arc::new(Shared {
            server,
            flags: flags.to_vec(),
            env,
            inner: Mutex::new(Inner::default()),
        });
        shared.commit(plan, sockets);
        if let Some(every) = shared.env.recheck {
            let watcher = shared.clone();
            std::thread::Builder::new()
                .name("dhcp-watch".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    watcher.recheck();
                })
                .expect("spawning a thread");
        }
        Ok(Self { shared })
    }

    /// Whether any pool is served now.
    pub fn is_serving(&self) -> bool {
        self.shared.lock().served.iter().any(Option::is_some)
    }

    /// The interfaces served now, in slot order.
    pub fn served_interfaces(&self) -> Vec<String> {
        let inner = self.shared.lock();
        inner
            .served
            .iter()
            .flatten()
            .map(|p| p.interface.clone())
            .collect()
    }

    /// The server (leases, the pool of a slot).
    pub fn server(&self) -> &Arc<Server> {
        &self.shared.server
    }
}

impl Reloadable for DhcpService {
    fn name(&self) -> &'static str {
        "DHCP"
    }

    fn prepare(&self, cfg: &Config) -> Result<Commit, PrepareError> {
        let plan = plan(cfg, &self.shared.flags)?;
        let explicit = !self.shared.flags.is_empty();
        let mut sockets = Vec::new();
        {
            let inner = self.shared.lock();
            for p in &plan {
                let iface = &p.interface;
                if inner.ifaces.contains(iface) || !(explicit || (self.shared.env.exists)(iface)) {
                    continue;
                }
                let sock = socket::bind(iface, self.shared.env.port).map_err(ServiceError::from)?;
                sockets.push((iface.clone(), sock));
            }
        }
        let shared = self.shared.clone();
        Ok(Box::new(move || shared.commit(plan, sockets)))
    }
}

/// The config's pools, refused when two share an interface.
fn plan(cfg: &Config, flags: &[InterfaceFlag]) -> Result<Vec<Pool>, ServiceError> {
    let plan = settings::plan(cfg, flags)?;
    for (i, p) in plan.iter().enumerate() {
        if let Some(q) = plan[..i].iter().find(|q| q.interface == p.interface) {
            return Err(ServiceError::SharedInterface {
                iface: p.interface.clone(),
                first: q.segment.clone(),
                second: p.segment.clone(),
            });
        }
    }
    Ok(plan)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("DHCP service lock")
    }

    /// Serve `plan` from now on, with `sockets` (bound by prepare) as new slots.
    fn commit(&self, plan: Vec<Pool>, sockets: Vec<(String, UdpSocket)>) {
        let mut inner = self.lock();
        inner.wanted = plan;
        let mut fresh = Vec::new();
        for (iface, sock) in sockets {
            // The watcher may have bound it since prepare: keep that one.
            if !inner.ifaces.contains(&iface) {
                fresh.push((inner.ifaces.len(), sock));
                inner.indexes.push((self.env.index)(&iface));
                inner.ifaces.push(iface);
            }
        }
        for p in inner
            .wanted
            .iter()
            .filter(|p| !inner.ifaces.contains(&p.interface))
        {
            settings::warn_missing(p);
            log::info!(
                "network {}: serving it once {} appears (checked every {} s)",
                p.segment,
                p.interface,
                RECHECK.as_secs()
            );
        }
        self.install(&mut inner);
        self.spawn(&inner, fresh);
    }

    /// Serve the wanted pools whose interface appeared since the last look, and
    /// rebind the slots whose interface was recreated; returns the interfaces this
    /// (re)bound.
    fn recheck(&self) -> Vec<String> {
        let mut inner = self.lock();
        let mut fresh = self.rebind_recreated(&mut inner);
        let missing: Vec<String> = inner
            .wanted
            .iter()
            .map(|p| p.interface.clone())
            .filter(|i| !inner.ifaces.contains(i))
            .collect();
        for iface in missing {
            if !(self.env.exists)(&iface) {
                continue;
            }
            match socket::bind(&iface, self.env.port) {
                Ok(sock) => {
                    inner.bind_failed.remove(&iface);
                    let mtu = settings::interface_mtu(&iface);
                    for p in inner.wanted.iter_mut().filter(|p| p.interface == iface) {
                        p.mtu = mtu;
                    }
                    log::info!("serving DHCP on {iface} now");
                    fresh.push((inner.ifaces.len(), sock));
                    inner.indexes.push((self.env.index)(&iface));
                    inner.ifaces.push(iface);
                }
                Err(e) => {
                    if inner.bind_failed.insert(iface) {
                        log::warn!("{e}; retrying every {} s", RECHECK.as_secs());
                    }
                }
            }
        }
        if fresh.is_empty() {
            return Vec::new();
        }
        let added = fresh
            .iter()
            .map(|(slot, _)| inner.ifaces[*slot].clone())
            .collect();
        self.install(&mut inner);
        self.spawn(&inner, fresh);
        added
    }

    /// New sockets for the served slots whose interface now has another index (it
    /// was deleted and created again); the MTU is read again too.
    fn rebind_recreated(&self, inner: &mut Inner) -> Vec<(usize, UdpSocket)> {
        let mut fresh = Vec::new();
        for slot in 0..inner.ifaces.len() {
            let iface = inner.ifaces[slot].clone();
            let served = inner.served.get(slot).is_some_and(Option::is_some);
            let now = (self.env.index)(&iface);
            if !served || now.is_none() || now == inner.indexes[slot] {
                continue;
            }
            match socket::bind(&iface, self.env.port) {
                Ok(sock) => {
                    log::info!("interface {iface} was recreated: DHCP bound to it again");
                    inner.indexes[slot] = now;
                    let mtu = settings::interface_mtu(&iface);
                    for p in inner.wanted.iter_mut().filter(|p| p.interface == iface) {
                        p.mtu = mtu;
                    }
                    fresh.push((slot, sock));
                }
                Err(e) => {
                    if inner.bind_failed.insert(iface) {
                        log::warn!("{e}; retrying every {} s", RECHECK.as_secs());
                    }
                }
            }
        }
        fresh
    }

    /// Give every slot its wanted pool (or none) and log what changed.
    fn install(&self, inner: &mut Inner) {
        let slots: Vec<Option<Pool>> = inner
            .ifaces
            .iter()
            .map(|i| inner.wanted.iter().find(|p| p.interface == *i).cloned())
            .collect();
        for (i, new) in slots.iter().enumerate() {
            let old = inner.served.get(i).cloned().flatten();
            match (old, new) {
                (old, Some(p)) if old.as_ref() != Some(p) => log::info!(
                    "DHCP for {} on {}: {}-{}",
                    p.segment,
                    p.interface,
                    p.range.start(),
                    p.range.end()
                ),
                (Some(_), None) => {
                    log::info!("no longer serving DHCP on {}", inner.ifaces[i]);
                }
                _ => {}
            }
        }
        self.server.replace_pools(slots.clone(), socket::unix_now());
        inner.served = slots;
    }

    /// Start a receive thread (it runs for the life of the process) for each
    /// `(slot, socket)`; their pools are set.
    fn spawn(&self, inner: &Inner, sockets: Vec<(usize, UdpSocket)>) {
        for (slot, sock) in sockets {
            let server = self.server.clone();
            std::thread::Builder::new()
                .name(format!("dhcp-{}", inner.ifaces[slot]))
                .spawn(move || socket::serve(server, slot, sock))
                .expect("spawning a thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use dhcproto::v4::{DhcpOption, Message, MessageType};

    use super::*;

    fn config(bridge: &str, pool: &str, extra: &str) -> Config {
        let text = format!(
            r#"version = 1
[system]
hostname = "hearth"
[network.lan]
bridge = "{bridge}"
address = "10.9.0.1/24"
[dns]
domain = "home.arpa"
[dhcp]
pools = [ {pool} ]
{extra}
"#
        );
        hearth_config::parse(&text, "test.toml").unwrap()
    }

    const LAN: &str = r#"{ segment = "lan", range_start = "10.9.0.100", range_end = "10.9.0.120", lease_time = "1m" }"#;

    /// `lo` on port 0 (no root needed), appearing when `present` says so.
    fn env(present: &Arc<AtomicBool>) -> Env {
        env_with_index(present, &Arc::new(AtomicU32::new(1)))
    }

    /// Like [`env`]; `lo` has the index `index` holds while present.
    fn env_with_index(present: &Arc<AtomicBool>, index: &Arc<AtomicU32>) -> Env {
        let (present, here) = (present.clone(), present.clone());
        let index = index.clone();
        Env {
            port: 0,
            exists: Arc::new(move |i| i == "lo" && present.load(Ordering::SeqCst)),
            index: Arc::new(move |i| {
                (i == "lo" && here.load(Ordering::SeqCst)).then(|| index.load(Ordering::SeqCst))
            }),
            recheck: None,
        }
    }

    fn discover(s: &Server, slot: usize) -> Option<Ipv4Addr> {
        let mut m = Message::default();
        m.set_chaddr(&[2, 0, 0, 0, 0, 1]);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        s.handle(slot, &m, socket::unix_now())
            .unwrap()
            .map(|r| r.msg.yiaddr())
    }

    fn reload(svc: &DhcpService, cfg: &Config) -> Result<(), String> {
        crate::reload::apply(&[svc], cfg)
    }

    #[test]
    fn a_missing_interface_is_served_once_it_appears_and_a_reload_empties_and_refills_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let present = Arc::new(AtomicBool::new(false));
        let hosts = Hosts::default();
        let svc = DhcpService::start_with(
            &config("lo", LAN, ""),
            &[],
            dir.path(),
            hosts.clone(),
            env(&present),
        )
        .unwrap();
        // The database is open although nothing is served.
        assert!(dir.path().join(crate::dhcp::lease::LOG_NAME).exists());
        assert!(!svc.is_serving());
        assert!(svc.shared.recheck().is_empty());

        present.store(true, Ordering::SeqCst);
        assert_eq!(svc.shared.recheck(), ["lo"]);
        assert!(svc.is_serving());
        assert_eq!(svc.served_interfaces(), ["lo"]);
        assert_eq!(
            discover(svc.server(), 0),
            Some(Ipv4Addr::new(10, 9, 0, 100))
        );
        assert!(svc.shared.recheck().is_empty(), "served once only");

        // A config without the pool: the slot stays, empty, and ignores requests.
        let no_pool = config("lo", "", "");
        reload(&svc, &no_pool).unwrap();
        assert!(!svc.is_serving());
        assert_eq!(discover(svc.server(), 0), None);
        assert_eq!(svc.shared.lock().ifaces, ["lo"]);

        // Back again, with a reservation: same slot, new range, name published.
        let back = config(
            "lo",
            r#"{ segment = "lan", range_start = "10.9.0.110", range_end = "10.9.0.120" }"#,
            r#"reservations = [ { mac = "02:00:00:00:00:99", address = "10.9.0.50", hostname = "printer" } ]"#,
        );
        reload(&svc, &back).unwrap();
        assert_eq!(svc.shared.lock().ifaces, ["lo"]);
        assert_eq!(
            discover(svc.server(), 0),
            Some(Ipv4Addr::new(10, 9, 0, 110))
        );
        assert_eq!(hosts.lookup("printer"), Some(Ipv4Addr::new(10, 9, 0, 50)));
        reload(&svc, &no_pool).unwrap();
        assert_eq!(hosts.lookup("printer"), None);
    }

    #[test]
    fn a_recreated_interface_gets_its_slot_rebound_and_an_unserved_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let present = Arc::new(AtomicBool::new(true));
        let index = Arc::new(AtomicU32::new(7));
        let svc = DhcpService::start_with(
            &config("lo", LAN, ""),
            &[],
            dir.path(),
            Hosts::default(),
            env_with_index(&present, &index),
        )
        .unwrap();
        assert_eq!(svc.shared.lock().indexes, [Some(7)]);
        assert!(svc.shared.recheck().is_empty(), "same index: nothing to do");
        // Deleted: nothing to bind to yet.
        present.store(false, Ordering::SeqCst);
        assert!(svc.shared.recheck().is_empty());
        // Created again with a new index: the same slot, bound again, still serving.
        index.store(9, Ordering::SeqCst);
        present.store(true, Ordering::SeqCst);
        assert_eq!(svc.shared.recheck(), ["lo"]);
        assert_eq!(svc.shared.lock().ifaces, ["lo"]);
        assert_eq!(svc.shared.lock().indexes, [Some(9)]);
        assert_eq!(
            discover(svc.server(), 0),
            Some(Ipv4Addr::new(10, 9, 0, 100))
        );
        assert!(svc.shared.recheck().is_empty(), "rebound once only");
        // A slot the config no longer serves is left alone.
        reload(&svc, &config("lo", "", "")).unwrap();
        index.store(11, Ordering::SeqCst);
        assert!(svc.shared.recheck().is_empty());
    }

    #[test]
    fn a_prepared_but_uncommitted_reload_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let present = Arc::new(AtomicBool::new(false));
        let svc = DhcpService::start_with(
            &config("lo", LAN, ""),
            &[],
            dir.path(),
            Hosts::default(),
            env(&present),
        )
        .unwrap();
        present.store(true, Ordering::SeqCst);
        // Prepare binds lo (it now exists) but serves nothing until the commit.
        let commit = svc.prepare(&config("lo", LAN, "")).unwrap();
        assert!(!svc.is_serving());
        assert!(svc.shared.lock().ifaces.is_empty());
        drop(commit);
        assert!(!svc.is_serving());
        let commit = svc.prepare(&config("lo", LAN, "")).unwrap();
        commit();
        assert_eq!(svc.served_interfaces(), ["lo"]);
        // The watcher finds nothing left to do.
        assert!(svc.shared.recheck().is_empty());
    }

    #[test]
    fn a_refused_reload_keeps_the_old_pools() {
        let dir = tempfile::tempdir().unwrap();
        let present = Arc::new(AtomicBool::new(true));
        let flags: Vec<InterfaceFlag> = vec!["lo=lan".parse().unwrap()];
        let svc = DhcpService::start_with(
            &config("br-lan", LAN, ""),
            &flags,
            dir.path(),
            Hosts::default(),
            env(&present),
        )
        .unwrap();
        assert_eq!(svc.served_interfaces(), ["lo"]);
        // The flag names a pool the new config lacks.
        let err = reload(&svc, &config("br-lan", "", "")).unwrap_err();
        assert!(err.starts_with("DHCP: --interface lo=lan"), "{err}");
        assert_eq!(svc.served_interfaces(), ["lo"]);
        assert_eq!(
            discover(svc.server(), 0),
            Some(Ipv4Addr::new(10, 9, 0, 100))
        );
    }

    #[test]
    fn two_pools_on_one_interface_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let flags: Vec<InterfaceFlag> = vec!["lo=lan".parse().unwrap(), "lo=lan".parse().unwrap()];
        let err = DhcpService::start_with(
            &config("br-lan", LAN, ""),
            &flags,
            dir.path(),
            Hosts::default(),
            env(&Arc::new(AtomicBool::new(true))),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ServiceError::SharedInterface { iface, .. } if iface == "lo"),
            "{err}"
        );
    }
}
