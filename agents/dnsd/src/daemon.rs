//! The `dnsd` daemon: wire config, lease database and sockets together.
//!
//! DHCP runs on one thread per interface; DNS on its own tokio runtime ([`Dns`]),
//! which also owns the main thread after readiness (SIGHUP reload). Host names from
//! DHCP reach the DNS zone through the shared [`Hosts`] table.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dhcp::{self, LeaseDb, Server};
use crate::dns::server::{Dns, DnsError, DnsOptions};
use crate::hosts::Hosts;
use crate::settings::{self, InterfaceFlag};

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The appliance config.
    pub config: PathBuf,
    /// Where the lease database lives.
    pub state_dir: PathBuf,
    /// Explicit `IFNAME=NETWORK` pairs (see [`settings`]).
    pub interfaces: Vec<InterfaceFlag>,
    /// DNS listen addresses and upstreams from the command line.
    pub dns: DnsOptions,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] hearth_config::LoadError),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Lease(#[from] dhcp::LeaseError),
    #[error(transparent)]
    Socket(#[from] dhcp::socket::SocketError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("nothing to serve: no DHCP pool has an interface and no DNS address is bound")]
    Nothing,
}

/// Run until killed.
pub fn run(opts: &Options) -> Result<(), RunError> {
    let cfg = hearth_config::load(&opts.config)?;
    let hosts = Hosts::default();
    let pools = settings::pools(&cfg, &opts.interfaces)?;
    let mut threads = Vec::new();
    if !pools.is_empty() {
        let sockets = pools
            .iter()
            .map(|p| dhcp::socket::bind(&p.interface, dhcp::socket::SERVER_PORT))
            .collect::<Result<Vec<_>, _>>()?;
        let db = LeaseDb::open(&opts.state_dir)?;
        log::info!(
            "lease database {}: {} addresses",
            db.path().display(),
            db.iter().count()
        );
        let server = Arc::new(Server::new(
            pools.clone(),
            db,
            hosts.clone(),
            dhcp::socket::unix_now(),
        ));
        for (i, (sock, pool)) in sockets.into_iter().zip(&pools).enumerate() {
            log::info!(
                "DHCP for {} on {}: {}-{}",
                pool.segment,
                pool.interface,
                pool.range.start(),
                pool.range.end()
            );
            let server = server.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("dhcp-{}", pool.interface))
                    .spawn(move || dhcp::socket::serve(server, i, sock))
                    .expect("spawning a thread"),
            );
        }
    }
    let mut dns_opts = opts.dns.clone();
    dns_opts.downloads = Some(opts.state_dir.join("blocklists"));
    let dns = Dns::start(&cfg, &dns_opts, &hosts)?;
    if threads.is_empty() && !dns.is_listening() {
        return Err(RunError::Nothing);
    }
    if let Err(e) = hearth_agent::ready::notify() {
        log::warn!("{e}");
    }
    log::info!("ready");
    // Serves DNS (if any address is bound) and handles SIGHUP; never returns.
    dns.serve(opts.config.clone(), Vec::new());
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
