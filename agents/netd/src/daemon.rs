//! The resident agent and `--dry-run`: load the config, apply, report readiness, and
//! re-apply on SIGHUP (a config reload) until SIGTERM/SIGINT.
//!
//! With `network.wan.mode = "dhcp"` the loop also drives the WAN's DHCP client: its
//! socket is polled next to the signalfd and its next timer bounds the poll. Readiness
//! does not wait for a lease (the LAN side works without one). On SIGTERM/SIGINT the
//! lease is released and taken off the interface; a SIGHUP that changes the WAN
//! (device or mode) releases the old lease and starts over. `--once` runs no client.
//!
//! Link events ([`crate::events`]: a NIC appearing or vanishing, carrier up/down, a
//! managed link changed by someone else) re-apply after a 200 ms debounce, so a cable
//! out/in or a NIC that shows up late converges without a SIGHUP. A NIC the config
//! needs but the machine lacks does not stop the daemon: the field is logged, the rest
//! is applied (with no WAN: no masquerade, port forwards, default route or DHCP
//! client), readiness is reported, and the NIC is taken up when it appears. The
//! default config (`interfaces = []`) on a machine with no NIC at all thus gets its LAN
//! bridge, segments and firewall, and a WAN once a first NIC shows up.
//!
//! Every apply goes through [`Resident`], which remembers the last one: a SIGHUP with
//! the same config and no notification since the last full read of the kernel is the
//! quick pass (config bytes, firewall table digest, sysctls), anything else the full
//! one ([`crate::resident`]).
//!
//! A failed apply at start (bad config, a NIC matched twice, the kernel refusing
//! writes) exits non-zero so init restarts netd with backoff; a failed re-apply keeps
//! the last good state (the failed apply rolled itself back) and keeps running.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::dhcp_client::{DhcpError, WanDhcp};
use crate::events::{Debounce, EventsError, LinkEvents, DEBOUNCE};
use crate::link::LinkOps;
use crate::netlink::Netlink;
use crate::nft::Nft;
use crate::plan::{Missing, PlanProblem};
use crate::resident::{Pass, Resident};
use crate::{apply_with, dry_run_text, error_chain, plan, ApplyReport, Args, NetdError};

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
    /// The link-event subscription could not be opened.
    #[error(transparent)]
    Events(#[from] EventsError),
}

/// Print the plan and ruleset for the config; write nothing. Links are read (not
/// written) to resolve NICs.
pub fn dry_run(args: &Args) -> Result<String, NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let links = Netlink::open()?.links()?;
    let (plan, ruleset) = plan(&cfg.network, &links)?;
    Ok(dry_run_text(&plan, &ruleset))
}

/// Apply the config; returns the report and the WAN device when it wants DHCP.
fn apply_config(
    args: &Args,
    nl: &mut Netlink,
    nft: &Nft,
    missing: Missing,
) -> Result<(ApplyReport, Option<String>), NetdError> {
    let cfg = hearth_config::load(args.config_path())?;
    let report = apply_with(&cfg.network, nl, nft, &args.proc_sys, missing)?;
    let dhcp = match cfg.network.wan {
        hearth_config::Wan::Dhcp => report.wan.clone(),
        hearth_config::Wan::Static { .. } => None,
    };
    Ok((report, dhcp))
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

/// Log an apply's report: changes and new waits at info; a no-change re-apply after
/// link events (mostly the echo of netd's own writes) at debug, so link events cannot
/// flood the log.
fn log_report(report: &ApplyReport, waiting_before: &[PlanProblem], why: &str) {
    for w in report
        .waiting
        .iter()
        .filter(|w| !waiting_before.contains(w))
    {
        log::error!("{w}; waiting for it, applied everything that does not need it");
    }
    for w in waiting_before
        .iter()
        .filter(|w| !report.waiting.contains(w))
    {
        log::info!("resolved: {w}");
    }
    if report.unchanged() && why == LINK_EVENT {
        log::debug!("{why}: applied: {report}");
    } else {
        log::info!("{why}: applied: {report}");
    }
}

/// Why a re-apply triggered by link events runs.
const LINK_EVENT: &str = "link event";

/// Limits how many link-event lines outside input (a flapping cable) can log.
#[derive(Debug)]
struct LogLimit {
    window: Instant,
    count: u32,
    suppressed: u32,
}

impl LogLimit {
    const PER_WINDOW: u32 = 20;
    const WINDOW: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self {
            window: Instant::now(),
            count: 0,
            suppressed: 0,
        }
    }

    fn log(&mut self, line: &dyn std::fmt::Display) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Self::WINDOW {
            if self.suppressed > 0 {
                log::info!("{} more link event(s) not logged", self.suppressed);
            }
            *self = Self::new();
        }
        if self.count < Self::PER_WINDOW {
            self.count += 1;
            log::info!("{line}");
        } else {
            self.suppressed += 1;
        }
    }
}

/// The resident state: the kernel handles, the notification subscription and the
/// last apply, the DHCP client, what is missing.
struct Daemon<'a> {
    args: &'a Args,
    nl: Netlink,
    nft: Nft,
    resident: Resident,
    dhcp: Option<WanDhcp>,
    waiting: Vec<PlanProblem>,
}

impl Daemon<'_> {
    /// Apply again (SIGHUP, link events); on failure keep the previous state. With
    /// no notification since the last full read and the same config this is the
    /// quick pass ([`crate::resident`]).
    fn reapply(&mut self, why: &str) {
        let applied = self.resident.apply(
            self.args.config_path(),
            &mut self.nl,
            &self.nft,
            &self.args.proc_sys,
            Missing::Defer,
        );
        match applied {
            Ok(a) => {
                let (report, want) = (a.report, a.wan_dhcp);
                if a.pass == Pass::Quick {
                    log::debug!("{why}: no notification since the last apply, same config and firewall digest");
                }
                log_report(&report, &self.waiting, why);
                self.waiting = report.waiting;
                if let Err(e) = switch_dhcp(self.args, &mut self.nl, &mut self.dhcp, want) {
                    log::error!("{}", error_chain(&e));
                }
            }
            Err(e) => log::error!(
                "{why}: re-apply failed, keeping the previous state: {}",
                error_chain(&e)
            ),
        }
    }
}

/// Apply, become ready, and stay resident (or return after one apply with `--once`).
///
/// Resident, a NIC the config needs but the machine lacks is waited for
/// ([`Missing::Defer`]): everything that does not need it is applied, readiness is
/// reported, the missing field is logged, and link events re-apply until it appears.
/// `--once` rejects it as invalid input like `--dry-run`.
pub fn run(args: &Args) -> Result<(), DaemonError> {
    let nft = Nft::default();
    let mut nl = Netlink::open().map_err(NetdError::from)?;
    if args.once {
        let (report, _) = apply_config(args, &mut nl, &nft, Missing::Reject)?;
        log::info!("applied: {report}");
        hearth_agent::ready::notify()?;
        return Ok(());
    }
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().map_err(DaemonError::Signals)?;
    // Subscribe before the first apply so a NIC appearing during it is not missed.
    let links = nl.links().map_err(NetdError::from)?;
    let events = LinkEvents::open(links.into_iter().map(|l| (l.index, l.name, l.carrier)))?;
    let mut resident = Resident::new(events);
    let applied = resident.apply(
        args.config_path(),
        &mut nl,
        &nft,
        &args.proc_sys,
        Missing::Defer,
    )?;
    let (report, wan_dhcp) = (applied.report, applied.wan_dhcp);
    log_report(&report, &[], "start");
    hearth_agent::ready::notify()?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(DaemonError::Signals)?;
    let mut d = Daemon {
        args,
        nl,
        nft,
        resident,
        dhcp: None,
        waiting: report.waiting,
    };
    switch_dhcp(args, &mut d.nl, &mut d.dhcp, wan_dhcp)?;
    let mut debounce = Debounce::new(DEBOUNCE);
    let mut limit = LogLimit::new();
    loop {
        let (signalled, events_readable, dhcp_readable) = {
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(d.resident.fd(), PollFlags::POLLIN),
            ];
            if let Some(dh) = &d.dhcp {
                fds.push(PollFd::new(dh.fd(), PollFlags::POLLIN));
            }
            let now = Instant::now();
            let timeout = [
                d.dhcp.as_ref().and_then(WanDhcp::timeout),
                debounce.timeout(now),
            ]
            .into_iter()
            .flatten()
            .min()
            // Round up so a timer is never polled for a few microseconds early.
            .map(|t| t.as_millis().saturating_add(1))
            .and_then(|ms| PollTimeout::try_from(ms).ok())
            .unwrap_or(PollTimeout::NONE);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(DaemonError::Signals(e)),
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (
                ready(&fds[0]),
                ready(&fds[1]),
                fds.get(2).is_some_and(ready),
            )
        };
        if let Some(dh) = &mut d.dhcp {
            if dhcp_readable {
                dh.on_readable(&mut d.nl);
            }
            dh.on_timer(&mut d.nl);
        }
        if events_readable {
            match d.resident.drain() {
                Ok(list) => {
                    for e in list.iter().filter(|e| e.notable()) {
                        limit.log(e);
                    }
                    if !list.is_empty() {
                        debounce.event(Instant::now());
                    }
                }
                Err(e) => {
                    // Not fatal: SIGHUP still re-applies. Re-apply now in case.
                    log::error!("{}", error_chain(&e));
                    debounce.event(Instant::now());
                }
            }
        }
        if debounce.fire(Instant::now()) {
            d.reapply(LINK_EVENT);
        }
        if !signalled {
            continue;
        }
        let signal = sfd.read_signal().ok().flatten().map(|s| s.ssi_signo);
        if signal == Some(Signal::SIGHUP as u32) {
            log::info!("SIGHUP: re-applying the config");
            d.reapply("SIGHUP");
            continue;
        }
        log::info!("stopping (signal {})", signal.unwrap_or_default());
        if let Some(dh) = &mut d.dhcp {
            dh.stop(&mut d.nl);
        }
        return Ok(());
    }
}
