//! `[storage]`: md RAID arrays built from disks picked by serial or by-id name, and
//! the disks the appliance may wipe.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{path, Findings};
use crate::value::{list, AbsPath, DiskSelector, Duration, Name, RaidLevel};
use crate::Config;

/// `[storage]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// RAID arrays.
    #[serde(default)]
    pub arrays: Vec<Array>,
    /// Serials of disks whose old contents may be destroyed when an array is first
    /// created. A disk with data that is not listed here is never touched.
    #[serde(default)]
    pub wipe: Vec<String>,
    /// Which disks may replace a failed member automatically. Default `spares-only`.
    #[serde(default)]
    pub replace: ReplacePolicy,
    /// How often every redundant array is scrubbed (md `check`: read everything,
    /// count mismatches). At least `1h`; unset means never.
    #[serde(default)]
    pub scrub: Option<Duration>,
}

/// `storage.replace`: what a degraded array may rebuild onto by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReplacePolicy {
    /// Only the disks the config lists for the array (its `spares`, or a member slot
    /// whose disk was swapped for a blank one).
    #[default]
    SparesOnly,
    /// Also any blank disk inserted while the appliance runs (not the boot disk, not
    /// selected by another array, holding no partition table, file system or RAID
    /// signature, at least as large as the array's members).
    BlankDisks,
}

/// The shortest `storage.scrub` interval: a scrub reads every disk end to end.
pub const MIN_SCRUB_SECS: u64 = 3600;

/// `[[storage.arrays]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Array {
    /// Array name (md name, share references).
    pub name: Name,
    /// RAID level.
    pub level: RaidLevel,
    /// Active member disks.
    #[serde(deserialize_with = "list")]
    pub members: Vec<DiskSelector>,
    /// Hot spares.
    #[serde(default, deserialize_with = "list")]
    pub spares: Vec<DiskSelector>,
    /// File system. Default ext4.
    #[serde(default)]
    pub filesystem: Filesystem,
    /// Mount point. Default `/srv/<name>`.
    #[serde(default)]
    pub mount: Option<AbsPath>,
}

impl Array {
    /// Every disk of the array: members first, then spares, in config order.
    pub fn disks(&self) -> impl Iterator<Item = &DiskSelector> {
        self.members.iter().chain(&self.spares)
    }

    /// Where the array is mounted: `mount`, or `/srv/<name>`.
    pub fn mount_point(&self) -> PathBuf {
        match &self.mount {
            Some(m) => m.as_path().to_path_buf(),
            None => PathBuf::from(format!("/srv/{}", self.name)),
        }
    }
}

/// A file system for an array.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    /// ext4.
    #[default]
    Ext4,
    /// btrfs (single device, on top of md).
    Btrfs,
}

/// Mount points that belong to the system.
const RESERVED_MOUNTS: [&str; 9] = [
    "/", "/etc", "/usr", "/proc", "/sys", "/dev", "/run", "/boot", "/var",
];

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let storage = &cfg.storage;
    let arr = |i: usize| path("storage.arrays").at(i);
    out.duplicates(
        (storage.arrays.iter().enumerate()).map(|(i, a)| (arr(i).key("name"), a.name.as_str())),
        |n| format!("array name {n:?} is used twice"),
    );
    // Arrays with a duplicate name are reported above; their default mount points
    // would clash too, so only the first array of each name takes part here.
    let first_of_name = |i: usize, a: &Array| !storage.arrays[..i].iter().any(|b| b.name == a.name);
    out.duplicates(
        (storage.arrays.iter().enumerate())
            .filter(|(i, a)| first_of_name(*i, a))
            .map(|(i, a)| (arr(i).key("mount"), a.mount_point())),
        |m| format!("mount point {} is used twice", m.display()),
    );
    for (i, a) in storage.arrays.iter().enumerate() {
        let n = a.members.len();
        let min = a.level.min_members();
        if n < min {
            out.push(
                arr(i).key("members"),
                format!("{} needs at least {min} member disks, found {n}", a.level),
            );
        } else if a.level == RaidLevel::Raid10 && n % 2 != 0 {
            out.push(
                arr(i).key("members"),
                format!("raid10 needs an even number of member disks, found {n}"),
            );
        }
        if !a.level.is_redundant() && !a.spares.is_empty() {
            out.push(
                arr(i).key("spares"),
                "raid0 has no redundancy, so spares are never used",
            );
        }
        let mp = a.mount_point();
        if RESERVED_MOUNTS
            .iter()
            .any(|r| mp == std::path::Path::new(r))
        {
            out.push(
                arr(i).key("mount"),
                format!("{} belongs to the system", mp.display()),
            );
        }
    }
    // Every disk is used once: as one member or spare of one array.
    let disks = storage.arrays.iter().enumerate().flat_map(|(i, a)| {
        let members =
            (a.members.iter().enumerate()).map(move |(j, d)| (arr(i).key("members").at(j), d));
        let spares =
            (a.spares.iter().enumerate()).map(move |(j, d)| (arr(i).key("spares").at(j), d));
        members.chain(spares)
    });
    out.duplicates(disks, |d| format!("disk {d} is already used"));
    out.duplicates(
        (storage.wipe.iter().enumerate()).map(|(i, s)| (path("storage.wipe").at(i), s)),
        |s| format!("serial {s:?} is listed twice"),
    );
    if let Some(every) = storage.scrub {
        if every.as_secs() < MIN_SCRUB_SECS {
            out.push(
                path("storage").key("scrub"),
                format!("a scrub reads every disk end to end: {every} is too often (at least 1h)"),
            );
        }
    }
    for (i, s) in storage.wipe.iter().enumerate() {
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
            out.push(
                path("storage.wipe").at(i),
                format!("{s:?} is not a disk serial (non-empty, no '/' or whitespace)"),
            );
        }
    }
}
