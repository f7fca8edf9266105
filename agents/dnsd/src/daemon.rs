//! The `dnsd` daemon: wire config, lease database and sockets together.
//!
//! DHCP runs on one thread per interface ([`dhcp::DhcpService`]); DNS on its own
//! tokio runtime ([`Dns`]), which also owns the main thread after readiness and
//! handles SIGHUP: a reload of both parts, all or nothing ([`crate::reload`]). Host
//! names from DHCP reach the DNS zone through the shared [`Hosts`] table.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dhcp;
use crate::dns::server::{Dns, DnsError, DnsOptions};
use crate::hosts::Hosts;
use crate::settings::InterfaceFlag;

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
    Dhcp(#[from] dhcp::ServiceError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("nothing to serve: no DHCP pool has an interface and no DNS address is bound")]
    Nothing,
}

/// Run until killed.
pub fn run(opts: &Options) -> Result<(), RunError> {
    let cfg = hearth_config::load(&opts.config)?;
    let hosts = Hosts::default();
    let dhcp = Arc::new(dhcp::DhcpService::start(
        &cfg,
        &opts.interfaces,
        &opts.state_dir,
        hosts.clone(),
    )?);
    let mut dns_opts = opts.dns.clone();
    dns_opts.downloads = Some(opts.state_dir.join("blocklists"));
    let dns = Dns::start(&cfg, &dns_opts, &hosts)?;
    if !dhcp.is_serving() && !dns.is_listening() {
        return Err(RunError::Nothing);
    }
    if let Err(e) = hearth_agent::ready::notify() {
        log::warn!("{e}");
    }
    log::info!("ready");
    // Serves DNS (if any address is bound) and handles SIGHUP; never returns.
    dns.serve(opts.config.clone(), vec![dhcp]);
    Ok(())
}
