//! The resident agent and `--dry-run`: load the config, apply, report readiness, and
//! re-apply on SIGHUP (a config reload) until SIGTERM/SIGINT.
//!
//! A failed apply at start exits non-zero so init restarts netd with backoff; a failed
//! re-apply on SIGHUP keeps the last good state (the failed apply rolled itself back)
//! and keeps running.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

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
}

/// Print the plan and ruleset for the config; write nothing. Links are read (not
/// written) to resolve NICs.
pub fn dry_run(args: &Args) -> Result<String, NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let links = Netlink::open()?.links()?;
    let (plan, ruleset) = plan(&cfg.network, &links)?;
    Ok(dry_run_text(&plan, &ruleset))
}

fn apply_config(args: &Args, nl: &mut Netlink, nft: &Nft) -> Result<(), NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let report = apply(&cfg.network, nl, nft, &args.proc_sys)?;
    log::info!("applied: {report}");
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
    apply_config(args, &mut nl, &nft)?;
    hearth_agent::ready::notify()?;
    if args.once {
        return Ok(());
    }
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(DaemonError::Signals)?;
    loop {
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(DaemonError::Signals(e)),
        }
        let signal = sfd.read_signal().ok().flatten().map(|s| s.ssi_signo);
        if signal == Some(Signal::SIGHUP as u32) {
            log::info!("SIGHUP: re-applying the config");
            if let Err(e) = apply_config(args, &mut nl, &nft) {
                log::error!(
                    "re-apply failed, keeping the previous state: {}",
                    error_chain(&e)
                );
            }
            continue;
        }
        log::info!("stopping (signal {})", signal.unwrap_or_default());
        return Ok(());
    }
}
