//! `netd`: turns the `network` section of the appliance config into kernel state —
//! NICs, the LAN bridge, one 802.1Q VLAN per segment, addresses, the default route,
//! static routes (owned through the route protocol [`link::RTPROT_HEARTH`]), router
//! sysctls, and the zone firewall with NAT — and keeps it there.
//!
//! One apply, in order:
//! 1. **Read** the kernel's links ([`link::LinkOps::links`]).
//! 2. **Plan** ([`plan::resolve`]): the config resolved against those links (NICs by
//!    name or MAC). Any problem — a missing NIC, a NIC matched twice — stops here,
//!    every one reported with its config field, and nothing is written. The resident
//!    daemon instead defers a missing NIC ([`plan::Missing::Defer`]): it applies what
//!    does not depend on it and re-applies when link events show it appeared.
//! 3. **Generate** the ruleset ([`ruleset::generate`]) and compare its digest with the
//!    one in the loaded table's comment (read over netlink, [`nft_table`]).
//! 4. **Reconcile links** ([`reconcile::reconcile`]): diff, write only differences,
//!    roll back this apply's writes on failure.
//! 5. **Sysctls** ([`sysctl::apply`]), then **load the firewall** ([`nft::Nft`]) in one
//!    transaction unless the loaded table already carries this ruleset's digest. If
//!    nft refuses it, the old ruleset stays loaded (one transaction) and the link
//!    writes of step 4 are undone ([`reconcile::rollback`]), so a refused ruleset
//!    leaves the machine as it was. (There is no separate `nft -c` pass first: it
//!    would parse and check the whole ruleset a second time, doubling the cost of
//!    every firewall change, for an outcome the rollback gives anyway.)
//!
//! The result ([`ApplyReport`]) says per object `created`/`changed`/`unchanged`/
//! `removed`; a second apply with the same config writes nothing.
//!
//! A `dhcp` WAN is brought up without an address by the apply; the resident daemon
//! then runs the DHCPv4 client ([`dhcp_client`] over the pure state machine in
//! [`dhcp_state`]), which adds the leased address and default route through the same
//! [`link::LinkOps`] and publishes the DNS servers in `<state-dir>/wan-dns.json`.
//!
//! The daemon ([`daemon`]) re-applies on SIGHUP and on rtnetlink link events
//! ([`events`]: a NIC appearing or vanishing, carrier up/down), debounced. It
//! remembers its last apply ([`resident`]): while no link, address or route
//! notification arrived and the config file is byte for byte the same, a re-apply
//! only checks the loaded firewall's digest and the sysctls.
//!
//! `netd bench` ([`bench`]) times a full apply against the equivalent `ip` + `nft -f`
//! script and a no-change reconcile, one-shot and resident.
//!
//! Not done yet (see the crate README): IPv6.

pub mod bench;
pub mod daemon;
pub mod dhcp_client;
pub mod dhcp_state;
pub mod events;
pub mod fake;
pub mod link;
pub mod link_dump;
pub mod netlink;
pub mod nft;
pub mod nft_table;
pub mod plan;
pub mod reconcile;
pub mod resident;
pub mod ruleset;
pub mod sysctl;

use std::fmt;
use std::path::{Path, PathBuf};

use hearth_config::Network;

use crate::link::{LinkError, LinkOps, LinkState};
use crate::nft::{Nft, NftError};
use crate::plan::{Missing, Plan, PlanError, PlanProblem, SYSCTLS};
use crate::reconcile::{Change, LinkReport, ReconcileError};
use crate::ruleset::Ruleset;
use crate::sysctl::SysctlError;

/// Command-line flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "netd",
    about = "Hearth network agent: links, VLAN segments and the zone firewall"
)]
pub struct Args {
    /// A subcommand instead of the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The appliance config.
    #[arg(long, default_value = "/etc/hearth/config.toml")]
    pub config: PathBuf,
    /// The config, as a positional argument (same as --config).
    #[arg(value_name = "CONFIG", conflicts_with = "config")]
    pub config_pos: Option<PathBuf>,
    /// Print the link plan and the exact nft ruleset; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply once and exit instead of staying resident.
    #[arg(long)]
    pub once: bool,
    /// Runtime state: `wan-dns.json` (the DHCP lease and DNS servers) lives here.
    #[arg(long, default_value = "/run/hearth/netd")]
    pub state_dir: PathBuf,
    /// First DHCP retransmission delay in ms (RFC 2131: 4 s, doubling to 64 s).
    #[arg(long, default_value_t = 4000, hide = true)]
    pub dhcp_retransmit_ms: u64,
    /// DHCP retransmission jitter in ms (RFC 2131: ±1 s).
    #[arg(long, default_value_t = 1000, hide = true)]
    pub dhcp_jitter_ms: u64,
    /// Where `/proc/sys` is (tests point this elsewhere).
    #[arg(long, default_value = "/proc/sys", hide = true)]
    pub proc_sys: PathBuf,
}

/// `netd` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Time a full apply (32 VLANs, ~500 rules) against the equivalent `ip` + `nft -f`
    /// script, and a no-change reconcile. Root and a kernel with 8021q.
    Bench(bench::BenchArgs),
}

impl Args {
    /// The config file to read.
    pub fn config_path(&self) -> &Path {
        self.config_pos.as_deref().unwrap_or(&self.config)
    }

    /// DHCP retransmission timing from the (hidden, test-only) flags.
    pub fn dhcp_timing(&self) -> dhcp_state::Timing {
        let ms = std::time::Duration::from_millis;
        dhcp_state::Timing {
            initial: ms(self.dhcp_retransmit_ms),
            max: ms(self.dhcp_retransmit_ms.saturating_mul(16)),
            jitter: ms(self.dhcp_jitter_ms),
            nak_backoff: ms(self.dhcp_retransmit_ms),
            ..dhcp_state::Timing::default()
        }
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] hearth_config::LoadError),
    /// The config does not fit this machine (nothing was written).
    #[error("the network config cannot be applied to this machine:\n{0}")]
    Plan(#[from] PlanError),
    /// Talking to netlink failed before anything was written.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Link writes failed (and were rolled back).
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// A sysctl could not be set.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// nft refused the ruleset or could not run.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// nft refused the ruleset after the links were written; those writes were undone
    /// (except the ones in `rollback`).
    #[error("{source}\n  the link changes of this apply were rolled back{}", rollback_text(.rollback))]
    FirewallRefused {
        #[source]
        source: NftError,
        rollback: Vec<LinkError>,
    },
}

fn rollback_text(failed: &[LinkError]) -> String {
    failed
        .iter()
        .map(|e| format!("\n  rollback failed: {e}"))
        .collect()
}

impl NetdError {
    /// Whether the input (config) is at fault: exit code 2 instead of 1.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Plan(_))
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Links, ports, addresses, route.
    pub links: LinkReport,
    /// Sysctl keys written.
    pub sysctls: Vec<&'static str>,
    /// The firewall table.
    pub firewall: Change,
    /// The WAN device the plan used (`None` while it is missing).
    pub wan: Option<String>,
    /// NICs the config needs that are missing; their part was left out
    /// ([`Missing::Defer`] only).
    pub waiting: Vec<PlanProblem>,
}

impl ApplyReport {
    /// True when the apply wrote nothing at all.
    pub fn unchanged(&self) -> bool {
        self.links.unchanged() && self.sysctls.is_empty() && self.firewall == Change::Unchanged
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting: String = self
            .waiting
            .iter()
            .map(|w| format!("; waiting for a NIC: {w}"))
            .collect();
        if self.unchanged() {
            return write!(f, "unchanged{waiting}");
        }
        let mut parts: Vec<String> = self
            .links
            .objects
            .iter()
            .filter(|(_, c)| *c != Change::Unchanged)
            .map(|(o, c)| format!("{o} {c}"))
            .collect();
        if !self.sysctls.is_empty() {
            parts.push(format!("sysctls changed ({})", self.sysctls.len()));
        }
        if self.firewall != Change::Unchanged {
            parts.push(format!("firewall {}", self.firewall));
        }
        write!(f, "{}{waiting}", parts.join(", "))
    }
}

/// The plan and ruleset for `net` on a machine with `links`; a missing NIC is an
/// error.
pub fn plan(net: &Network, links: &[LinkState]) -> Result<(Plan, Ruleset), PlanError> {
    plan_with(net, links, Missing::Reject)
}

/// [`plan`], with a choice of what a missing NIC means.
pub fn plan_with(
    net: &Network,
    links: &[LinkState],
    missing: Missing,
) -> Result<(Plan, Ruleset), PlanError> {
    let plan = plan::resolve(net, links, missing)?;
    let ruleset = ruleset::generate(&plan, &net.firewall, &net.wan);
    Ok((plan, ruleset))
}

/// The `--dry-run` output: the link plan, a blank line, the ruleset.
pub fn dry_run_text(plan: &Plan, ruleset: &Ruleset) -> String {
    let mut out = String::from("# link plan\n");
    out.push_str(&plan.to_string());
    out.push_str("\n# nft ruleset (nft -f)\n");
    out.push_str(&ruleset.text);
    out
}

/// Converge the kernel to `net`; a missing NIC is invalid input. See the crate docs
/// for the order.
pub fn apply(
    net: &Network,
    ops: &mut dyn LinkOps,
    nft: &Nft,
    proc_sys: &Path,
) -> Result<ApplyReport, NetdError> {
    apply_with(net, ops, nft, proc_sys, Missing::Reject)
}

/// [`apply`], with a choice of what a missing NIC means (the daemon defers).
pub fn apply_with(
    net: &Network,
    ops: &mut dyn LinkOps,
    nft: &Nft,
    proc_sys: &Path,
    missing: Missing,
) -> Result<ApplyReport, NetdError> {
    let links = ops.links()?;
    let (plan, ruleset) = plan_with(net, &links, missing)?;
    converge(ops, nft, proc_sys, &links, plan, &ruleset)
}

/// Steps 3–5 of an apply: converge the kernel, whose links were just read as `links`,
/// to `plan` and `ruleset` (made from those links). The resident daemon
/// ([`resident`]) calls this with a ruleset it kept from the previous apply when the
/// config and the plan are the same.
pub fn converge(
    ops: &mut dyn LinkOps,
    nft: &Nft,
    proc_sys: &Path,
    links: &[LinkState],
    plan: Plan,
    ruleset: &Ruleset,
) -> Result<ApplyReport, NetdError> {
    let loaded = nft.loaded_digest()?;
    let firewall = match loaded.as_deref() {
        Some(d) if d == ruleset.digest => Change::Unchanged,
        Some(_) => Change::Changed,
        None => Change::Created,
    };
    let links = reconcile::reconcile_from(ops, &plan, links)?;
    let sysctls = sysctl::apply(proc_sys, SYSCTLS)?;
    if firewall != Change::Unchanged {
        if let Err(source) = nft.apply(ruleset) {
            let rollback = reconcile::rollback(ops, &links.undo);
            return Err(NetdError::FirewallRefused { source, rollback });
        }
    }
    Ok(ApplyReport {
        links,
        sysctls,
        firewall,
        wan: plan.wan.map(|w| w.name),
        waiting: plan.waiting,
    })
}

pub use hearth_agent::error_chain;

#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod tests;
