//! `stord`: the storage agent. It turns the `storage` section of the appliance config
//! into md RAID arrays built from disks the config picks by serial or by-id name, and
//! above everything else it never destroys data.
//!
//! The read side, in the order a pass uses it:
//! 1. **Discover** ([`disk::discover`]): every disk under `<root>/sys/block` with its
//!    identity and the `/dev/disk/by-id` names udev would give it (the image has no
//!    udevd), skipping virtual devices and marking boot disks ([`boot`]).
//! 2. **Select** ([`select::resolve`]): the config's selectors resolved to disks; every
//!    problem names its config field and array, and a boot disk is never picked.
//! 3. **Check blank** ([`signature::check_blank`]): a disk holding a partition table,
//!    file system, md superblock, LUKS or LVM header is refused unless its serial is
//!    listed in `storage.wipe`; [`md::superblock`] says which array a member belongs to.
//! 4. **Read arrays** ([`md::arrays`]): the kernel's view of every md array as a typed
//!    [`md::ArrayStatus`] with one [`md::Health`] summary.
//!
//! The write side: [`reconcile`] decides per array (assemble, create, refuse, wait)
//! and acts through two narrow traits, [`md::mdadm::MdAdmin`] (mdadm) and
//! [`fs::FsAdmin`] (mkfs, mount), plus [`wipe`]. The agent ([`agent`]) runs a pass,
//! reports ready, then watches: [`uevent`] for disks coming and going, [`health`] for
//! degraded arrays, rebuilds and scrubs, and writes the status file.
//! `stord status` ([`status`]) shows disks and arrays at any time.
//!
//! All reads go below a [`Root`] (`/` on a machine, a temp dir in tests).

pub mod agent;
pub mod boot;
pub mod disk;
pub mod fs;
pub mod health;
pub mod md;
pub mod reconcile;
pub mod select;
pub mod signature;
pub mod status;
pub mod uevent;
pub mod wipe;

#[cfg(test)]
pub(crate) mod fixture;

use std::path::{Path, PathBuf};

/// The directory stord reads `sys/block`, `proc/self/mountinfo` and `dev/<name>` under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Default for Root {
    fn default() -> Self {
        Self::new("/")
    }
}

impl Root {
    /// A root at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The root itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<root>/sys/block`.
    pub fn sys_block(&self) -> PathBuf {
        self.0.join("sys/block")
    }

    /// `<root>/proc/self/mountinfo`.
    pub fn mountinfo(&self) -> PathBuf {
        self.0.join("proc/self/mountinfo")
    }

    /// `<root>/dev/<name>`: the node of block device `name`.
    pub fn dev_node(&self, name: &str) -> PathBuf {
        self.0.join("dev").join(name)
    }
}

/// Command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "stord",
    about = "Hearth storage agent: disks and md RAID arrays"
)]
pub struct Args {
    /// What to do; without a subcommand, run the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Agent flags (bare `stord`).
    #[command(flatten)]
    pub agent: agent::AgentArgs,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the agent (the same as bare `stord`): create or assemble the configured
    /// arrays, mount them, watch their health, rebuild and scrub.
    Run(agent::AgentArgs),
    /// Print disks and arrays: which disks the config selects, spares, wipe-listed,
    /// boot disks, and whether each disk is blank or what it holds.
    Status(status::StatusArgs),
}
