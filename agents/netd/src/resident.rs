//! What the resident daemon remembers between applies, so that a re-apply that finds
//! nothing to do costs almost nothing.
//!
//! A full apply ([`crate::apply_with`]) reads every link, address, the default
//! route and netd's static routes, parses the config, plans and generates the
//! ruleset. Under QEMU TCG that is tens of milliseconds for 40 links and ~500 rules,
//! and the daemon re-applies on every SIGHUP. But the daemon is subscribed to link, IPv4 address and IPv4 route
//! notifications ([`crate::events`]) — everything the plan and the link diff read —
//! so it *knows* whether the kernel changed since its last full read. [`Resident`]
//! keeps, after each successful apply, the config file's bytes, the ruleset's digest
//! and what the apply reported; a later apply takes the **quick pass** when
//!
//! - the config file's bytes are the same (compared byte for byte: cheaper than
//!   hashing them: reading and SHA-256ing the benchmark's 27 kB config took 3.3 ms
//!   under TCG, reading and comparing it a fraction of that),
//! - no notification arrived since the last full read (none drained and none queued
//!   on the socket), and
//! - the loaded firewall table still carries the ruleset's digest (one
//!   `NFT_MSG_GETTABLE`, [`crate::nft_table`]: the firewall sends no rtnetlink
//!   notification, so it is checked every time),
//!
//! and then only re-checks the sysctls (no notification covers them either; seven
//! small reads). Anything else takes the **full pass**: a notification (a link changed
//! by hand, a NIC appearing, netd's own writes echoing back), a changed config, a
//! missing or different table, or a previous failure. The full pass still reuses what
//! the same config bytes pin: the parsed config, and the generated ruleset when the plan
//! comes out the same.
//!
//! Lost notifications (`ENOBUFS`) and a failed read of the socket count as a change.
//! The one-shot `netd --once` has no subscription and always takes the full pass.

use std::os::fd::BorrowedFd;
use std::path::Path;

use hearth_config::{LoadError, Network, Wan};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::events::{EventsError, LinkEvent, LinkEvents};
use crate::link::LinkOps;
use crate::nft::Nft;
use crate::plan::{Missing, Plan, SYSCTLS};
use crate::reconcile::{Change, LinkReport};
use crate::ruleset::Ruleset;
use crate::{converge, sysctl, ApplyReport, NetdError};

/// Which way an apply went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Nothing changed since the last full read: config bytes, firewall digest and
    /// sysctls checked, nothing else read.
    Quick,
    /// Links, addresses and the route read and reconciled.
    Full,
}

/// An apply's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What it did.
    pub report: ApplyReport,
    /// The WAN device when the config wants DHCP on it (and it exists).
    pub wan_dhcp: Option<String>,
    /// Quick or full.
    pub pass: Pass,
}

/// What the last successful apply was made from.
#[derive(Debug)]
struct Last {
    config: Vec<u8>,
    missing: Missing,
    net: Network,
    plan: Plan,
    ruleset: Ruleset,
    report: ApplyReport,
    wan_dhcp: Option<String>,
}

/// The daemon's subscription plus its memory of the last apply.
#[derive(Debug)]
pub struct Resident {
    events: LinkEvents,
    last: Option<Last>,
    /// A notification was drained since the last full read.
    dirty: bool,
}

impl Resident {
    /// Remember applies on top of `events` (subscribed before the first apply, so
    /// nothing that happens during it is missed).
    pub fn new(events: LinkEvents) -> Self {
        Self {
            events,
            last: None,
            dirty: true,
        }
    }

    /// The notification socket, to poll for `POLLIN`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.events.fd()
    }

    /// Read every queued notification. Any at all (or a failed read) makes the next
    /// apply a full one.
    pub fn drain(&mut self) -> Result<Vec<LinkEvent>, EventsError> {
        let drained = self.events.drain();
        if !drained.as_ref().is_ok_and(Vec::is_empty) {
            self.dirty = true;
        }
        drained
    }

    /// Whether a notification is queued and not drained yet (left for the daemon's
    /// loop to drain and log).
    fn queued(&self) -> bool {
        let mut fds = [PollFd::new(self.events.fd(), PollFlags::POLLIN)];
        // An error here is treated like a queued notification: take the full pass.
        nix::poll::poll(&mut fds, PollTimeout::ZERO)
            .map(|n| n > 0)
            .unwrap_or(true)
    }

    /// Apply the config at `config`: the quick pass when nothing changed, the full
    /// one otherwise (module docs). A failure forgets the last apply, so the next one
    /// is full.
    pub fn apply(
        &mut self,
        config: &Path,
        ops: &mut dyn LinkOps,
        nft: &Nft,
        proc_sys: &Path,
        missing: Missing,
    ) -> Result<Applied, NetdError> {
        let bytes = std::fs::read(config).map_err(|source| LoadError::Io {
            path: config.to_owned(),
            source,
        })?;
        let last = self.last.take();
        let quick = match &last {
            Some(l) if l.config == bytes && l.missing == missing && !self.dirty => {
                !self.queued() && nft.loaded_digest()?.as_deref() == Some(l.ruleset.digest.as_str())
            }
            _ => false,
        };
        if let (true, Some(l)) = (quick, last.as_ref()) {
            let sysctls = sysctl::apply(proc_sys, SYSCTLS)?;
            let report = ApplyReport {
                links: LinkReport::default(),
                sysctls,
                firewall: Change::Unchanged,
                wan: l.report.wan.clone(),
                waiting: l.report.waiting.clone(),
            };
            let wan_dhcp = l.wan_dhcp.clone();
            self.last = last;
            return Ok(Applied {
                report,
                wan_dhcp,
                pass: Pass::Quick,
            });
        }
        // Full pass. Notifications from here on describe changes after this read.
        self.dirty = false;
        let (net, kept) = match last {
            Some(l) if l.config == bytes => (l.net, Some((l.plan, l.ruleset))),
            _ => {
                let text = std::str::from_utf8(&bytes).map_err(|e| LoadError::Io {
                    path: config.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?;
                let cfg = hearth_config::parse(text, &config.display().to_string())
                    .map_err(LoadError::Invalid)?;
                (cfg.network, None)
            }
        };
        let links = ops.links()?;
        let plan = crate::plan::resolve(&net, &links, missing)?;
        let ruleset = match kept {
            Some((p, r)) if p == plan => r,
            _ => crate::ruleset::generate(&plan, &net.firewall, &net.wan),
        };
        let report = converge(ops, nft, proc_sys, &links, plan.clone(), &ruleset)?;
        let wan_dhcp = match net.wan {
            Wan::Dhcp => report.wan.clone(),
            Wan::Static { .. } => None,
        };
        self.last = Some(Last {
            config: bytes,
            missing,
            net,
            plan,
            ruleset,
            report: report.clone(),
            wan_dhcp: wan_dhcp.clone(),
        });
        Ok(Applied {
            report,
            wan_dhcp,
            pass: Pass::Full,
        })
    }
}
