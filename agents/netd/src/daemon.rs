//! The resident agent and `--dry-run`: load the config, apply, report readiness, and
//! re-apply on SIGHUP (a config reload) until SIGTERM/SIGINT.
//!
//! With `network.wan.mode = "dhcp"` the loop also drives the WAN's DHCP client: its
//! socket is polled next to the signalfd and its next timer bounds the poll. Readiness
//! does not wait for a lease (the LAN side works without one). On SIGTERM/SIGINT the
//! lease is released and taken off the interface; a SIGHUP that changes the WAN
//! (device or mode) releases the old lease and starts over. `--once` runs no client.
//!
//! A failed apply at start exits non-zero so init restarts netd with backoff; a failed
//! re-apply on SIGHUP keeps the last good state (the failed apply rolled itself back)
//! and keeps running.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::dhcp_client::{DhcpError, WanDhcp};
use crate::link::LinkOps;
use crate::netlink::Netlink;
use crate::nft::Nft;
use crate::{apply, dry_run_text, error_chain, plan, Args, NetdError};

/// Errors of the resident loop itself.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// An apply failed.
    #[error(transparent)]
    Apply(#[from] NetdError),
    /// Signal set-up or waiting failed.
    #[error("handling signals")]
    Signals(#[source] nix::errno::Errno),
    /// Readiness could not be reported.
    #[error("reporting readiness")]
    Ready(#[from] hearth_agent::ready::ReadyError),
    /// The WAN's DHCP client could not start.
    #[error(transparent)]
    Dhcp(#[from] DhcpError),
}

/// Print the plan and ruleset for the config; write nothing. Links are read (not
/// written) to resolve NICs.
pub fn dry_run(args: &Args) -> Result<String, NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let links = Netlink::open()?.links()?;
    let (plan, ruleset) = plan(&cfg.network, &links)?;
    Ok(dry_run_text(&plan, &ruleset))
}

/// Apply the config; returns the WAN device when it wants DHCP.
fn apply_config(args: &Args, nl: &mut Netlink, nft: &Nft) -> Result<Option<String>, NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let report = apply(&cfg.network, nl, nft, &args.proc_sys)?;
    log::info!("applied: {report}");
    if !matches!(cfg.network.wan, hearth_config::Wan::Dhcp) {
        return Ok(None);
    }
    let links = nl.links()?;
    let (plan, _) = plan(&cfg.network, &links)?;
    Ok(Some(plan.wan.name))
}

/// Start, keep or stop the DHCP client so that it runs on `want` (or not at all).
fn switch_dhcp(
    args: &Args,
    nl: &mut Netlink,
    dhcp: &mut Option<WanDhcp>,
    want: Option<String>,
) -> Result<(), DhcpError> {
    if dhcp.as_ref().map(|d| d.device()) == want.as_deref() {
        return Ok(());
    }
    if let Some(mut old) = dhcp.take() {
        old.stop(nl);
    }
    if let Some(device) = want {
        *dhcp = Some(WanDhcp::start(
            &device,
            nl,
            args.dhcp_timing(),
            &args.state_dir,
        )?);
    }
    Ok(())
}

/// Apply, become ready, and stay resident (or return after one apply with `--once`).
pub fn run(args: &Args) -> Result<(), DaemonError> {
    let nft = Nft::default();
    let mut nl = Netlink::open().map_err(NetdError::from)?;
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    if !args.once {
        mask.thread_block().map_err(DaemonError::Signals)?;
    }
    let wan_dhcp = apply_config(args, &mut nl, &nft)?;
    hearth_agent::ready::notify()?;
    if args.once {
        return Ok(());
    }
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(DaemonError::Signals)?;
    let mut dhcp = None;
    switch_dhcp(args, &mut nl, &mut dhcp, wan_dhcp)?;
    loop {
        let (signalled, dhcp_readable) = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(d) = &dhcp {
                fds.push(PollFd::new(d.fd(), PollFlags::POLLIN));
            }
            // Round up so a timer is never polled for a few microseconds early.
            let timeout = dhcp
                .as_ref()
                .and_then(WanDhcp::timeout)
                .map(|t| t.as_millis().saturating_add(1))
                .and_then(|ms| PollTimeout::try_from(ms).ok())
                .unwrap_or(PollTimeout::NONE);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(DaemonError::Signals(e)),
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if let Some(d) = &mut dhcp {
            if dhcp_readable {
                d.on_readable(&mut nl);
            }
            d.on_timer(&mut nl);
        }
        if !signalled {
            continue;
        }
        let signal = sfd.read_signal().ok().flatten().map(|s| s.ssi_signo);
        if signal == Some(Signal::SIGHUP as u32) {
            log::info!("SIGHUP: re-applying the config");
            match apply_config(args, &mut nl, &nft) {
                Ok(want) => {
                    if let Err(e) = switch_dhcp(args, &mut nl, &mut dhcp, want) {
                        log::error!("{}", error_chain(&e));
                    }
                }
                Err(e) => log::error!(
                    "re-apply failed, keeping the previous state: {}",
                    error_chain(&e)
                ),
            }
            continue;
        }
        log::info!("stopping (signal {})", signal.unwrap_or_default());
        if let Some(d) = &mut dhcp {
            d.stop(&mut nl);
        }
        return Ok(());
    }
}
