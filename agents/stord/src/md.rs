//! md RAID arrays as the kernel reports them under `<root>/sys/block/md*/md/` — the
//! read side of the md boundary, shared by `stord status` and the health
//! watcher.
//!
//! The kernel's attributes are kept as read ([`ArrayStatus`]) and summarised once in
//! [`Health`], the single place that decides what "degraded" or "rebuilding" means:
//! `array_state` says whether the array runs at all, `degraded` how many slots lack a
//! working member, `sync_action` + `sync_completed` what background work runs and how
//! far it got (in 512-byte sectors), `mismatch_cnt` what the last `check` found.
//! Values and formats follow `Documentation/admin-guide/md.rst`.

pub mod mdadm;
pub mod superblock;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::disk::{attr, list_dir, list_dir_lenient, required, DiskError};
use crate::Root;

/// Why an array could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MdError {
    /// sysfs could not be read.
    #[error(transparent)]
    Sysfs(#[from] DiskError),
    /// An attribute held something the kernel does not write there.
    #[error("{path}: {value:?} is not {what}")]
    Parse {
        /// The attribute path.
        path: String,
        /// What it held.
        value: String,
        /// What it should have been.
        what: &'static str,
    },
}

/// `md/array_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrayState {
    /// No devices, no settings.
    Clear,
    /// Configured but not started.
    Inactive,
    /// Started, I/O blocked.
    Suspended,
    /// Read-only.
    Readonly,
    /// Read-only until the first write.
    ReadAuto,
    /// Running, no writes pending.
    Clean,
    /// Running, writes in flight.
    Active,
    /// Waiting for metadata to be written.
    WritePending,
    /// Running, about to be marked clean.
    ActiveIdle,
    /// RAID0/linear with a member missing: unusable.
    Broken,
}

impl ArrayState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "clear" => Self::Clear,
            "inactive" => Self::Inactive,
            "suspended" => Self::Suspended,
            "readonly" => Self::Readonly,
            "read-auto" => Self::ReadAuto,
            "clean" => Self::Clean,
            "active" => Self::Active,
            "write-pending" => Self::WritePending,
            "active-idle" => Self::ActiveIdle,
            "broken" => Self::Broken,
            _ => return None,
        })
    }
}

/// `md/sync_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncAction {
    /// Nothing running.
    Idle,
    /// Making parity/mirrors consistent after creation or an unclean stop.
    Resync,
    /// Rebuilding onto a spare or replacement.
    Recover,
    /// Scrub: reading everything, counting mismatches.
    Check,
    /// Scrub that also rewrites mismatches.
    Repair,
    /// Changing geometry.
    Reshape,
    /// Background work suspended.
    Frozen,
}

impl SyncAction {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => Self::Idle,
            "resync" => Self::Resync,
            "recover" => Self::Recover,
            "check" => Self::Check,
            "repair" => Self::Repair,
            "reshape" => Self::Reshape,
            "frozen" => Self::Frozen,
            _ => return None,
        })
    }
}

/// How far a sync got, from `sync_completed` (`done / total` sectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Sectors done.
    pub done: u64,
    /// Sectors in all.
    pub total: u64,
}

impl Progress {
    /// `"123 / 456"`; `None` for `none`, `delayed` and other words.
    pub fn parse(s: &str) -> Option<Self> {
        let (done, total) = s.split_once('/')?;
        Some(Self {
            done: done.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
        })
    }

    /// Percent done, 0.0–100.0.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        // Sector counts fit f64's 52-bit mantissa for any disk that exists.
        self.done as f64 * 100.0 / self.total as f64
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}%", self.percent())
    }
}

/// A member device (`md/dev-<name>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The component device (`vdb`, `sda1`).
    pub device: String,
    /// Role in the array; `None` for spares and failed devices.
    pub slot: Option<u32>,
    /// `state` flags: `in_sync`, `spare`, `faulty`, `write_mostly`, `blocked`, ...
    pub state: Vec<String>,
}

impl Member {
    /// Whether `state` has `flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.state.iter().any(|s| s == flag)
    }

    /// Failed.
    pub fn is_faulty(&self) -> bool {
        self.has("faulty")
    }

    /// A spare (idle, or being rebuilt onto).
    pub fn is_spare(&self) -> bool {
        self.has("spare")
    }
}

/// Everything the kernel says about one array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArrayStatus {
    /// `md127`.
    pub device: String,
    /// `md/array_state`.
    pub state: ArrayState,
    /// `md/level` (`raid5`); `None` before the level is set.
    pub level: Option<String>,
    /// `md/metadata_version` (`1.2`).
    pub metadata: Option<String>,
    /// `md/uuid`, when the kernel has it.
    pub uuid: Option<String>,
    /// `md/raid_disks`: slots in the array.
    pub raid_disks: u32,
    /// `md/degraded`: slots without a working member.
    pub degraded: u32,
    /// `md/sync_action`.
    pub sync_action: Option<SyncAction>,
    /// `md/sync_completed`, while a sync runs.
    pub progress: Option<Progress>,
    /// `md/sync_speed` in KiB/s, while a sync runs.
    pub sync_speed_kib: Option<u64>,
    /// `md/mismatch_cnt`: sectors the last check/repair found inconsistent.
    pub mismatch_cnt: Option<u64>,
    /// `md/dev-*`, by device name.
    pub members: Vec<Member>,
    /// The summary.
    pub health: Health,
}

/// What an array's state means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Health {
    /// Running, every slot in sync, no writes pending.
    Clean,
    /// Running, every slot in sync, writes in flight.
    Active,
    /// Running, read-only.
    ReadOnly,
    /// Running with `missing` slots empty and nothing rebuilding.
    Degraded {
        /// Empty slots.
        missing: u32,
    },
    /// Initial or post-crash resync (redundancy not yet trustworthy).
    Resyncing {
        /// How far.
        progress: Option<Progress>,
    },
    /// Rebuilding onto a spare; `missing` slots are still degraded until it ends.
    Recovering {
        /// Empty slots.
        missing: u32,
        /// How far.
        progress: Option<Progress>,
    },
    /// A scrub (`check` or `repair`) is running.
    Checking {
        /// `repair` rather than `check`.
        repair: bool,
        /// How far.
        progress: Option<Progress>,
    },
    /// Changing geometry.
    Reshaping {
        /// How far.
        progress: Option<Progress>,
    },
    /// Assembled but not started, or torn down.
    Inactive,
    /// Lost more members than the level survives.
    Broken,
}

impl Health {
    /// Whether the array is running without a missing slot or a rebuild.
    pub fn is_healthy(&self) -> bool {
        matches!(
            self,
            Self::Clean | Self::Active | Self::ReadOnly | Self::Checking { .. }
        )
    }

    fn of(
        state: ArrayState,
        degraded: u32,
        action: Option<SyncAction>,
        progress: Option<Progress>,
    ) -> Self {
        match state {
            ArrayState::Clear | ArrayState::Inactive => return Self::Inactive,
            ArrayState::Broken => return Self::Broken,
            _ => {}
        }
        match action {
            Some(SyncAction::Recover) => Self::Recovering {
                missing: degraded,
                progress,
            },
            Some(SyncAction::Reshape) => Self::Reshaping { progress },
            _ if degraded > 0 => Self::Degraded { missing: degraded },
            Some(SyncAction::Resync) => Self::Resyncing { progress },
            Some(SyncAction::Check) => Self::Checking {
                repair: false,
                progress,
            },
            Some(SyncAction::Repair) => Self::Checking {
                repair: true,
                progress,
            },
            _ => match state {
                ArrayState::Readonly | ArrayState::ReadAuto => Self::ReadOnly,
                ArrayState::Clean => Self::Clean,
                _ => Self::Active,
            },
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |p: &Option<Progress>| p.map(|p| format!(" {p}")).unwrap_or_default();
        match self {
            Self::Clean => f.write_str("clean"),
            Self::Active => f.write_str("active"),
            Self::ReadOnly => f.write_str("read-only"),
            Self::Degraded { missing } => write!(f, "degraded ({missing} missing)"),
            Self::Resyncing { progress } => write!(f, "resyncing{}", pct(progress)),
            Self::Recovering { missing, progress } => {
                write!(
                    f,
                    "degraded ({missing} missing), recovering{}",
                    pct(progress)
                )
            }
            Self::Checking { repair, progress } => {
                let what = if *repair { "repairing" } else { "checking" };
                write!(f, "{what}{}", pct(progress))
            }
            Self::Reshaping { progress } => write!(f, "reshaping{}", pct(progress)),
            Self::Inactive => f.write_str("inactive"),
            Self::Broken => f.write_str("broken"),
        }
    }
}

/// Every md array under `<root>/sys/block`, sorted by device name.
pub fn arrays(root: &Root) -> Result<Vec<ArrayStatus>, MdError> {
    let block = root.sys_block();
    let mut out = Vec::new();
    for name in list_dir(&block)? {
        let md = block.join(&name).join("md");
        if name.starts_with("md") && md.is_dir() {
            out.push(read_array(&name, &md)?);
        }
    }
    Ok(out)
}

/// One array from its `md/` directory.
pub fn read_array(device: &str, md: &Path) -> Result<ArrayStatus, MdError> {
    let path = |rel: &str| md.join(rel);
    let bad = |rel: &str, value: &str, what| MdError::Parse {
        path: path(rel).display().to_string(),
        value: value.to_owned(),
        what,
    };
    let state_text = required(&path("array_state"))?;
    let state = ArrayState::parse(&state_text)
        .ok_or_else(|| bad("array_state", &state_text, "an md array state"))?;
    let number = |rel: &str| -> Result<Option<u64>, MdError> {
        match attr(&path(rel)) {
            None => Ok(None),
            Some(v) if v == "none" => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(rel, &v, "a number")),
        }
    };
    let small = |rel: &str| -> Result<u32, MdError> {
        number(rel)?.map_or(Ok(0), |n| {
            u32::try_from(n).map_err(|_| bad(rel, &n.to_string(), "a disk count"))
        })
    };
    let sync_action = match attr(&path("sync_action")) {
        None => None,
        Some(v) => {
            Some(SyncAction::parse(&v).ok_or_else(|| bad("sync_action", &v, "an md sync action"))?)
        }
    };
    let progress = attr(&path("sync_completed"))
        .as_deref()
        .and_then(Progress::parse);
    let degraded = small("degraded")?;
    let mut members = Vec::new();
    for entry in list_dir_lenient(md) {
        let Some(dev) = entry.strip_prefix("dev-") else {
            continue;
        };
        let dir = md.join(&entry);
        let slot = match attr(&dir.join("slot")) {
            None => None,
            Some(v) if v == "none" => None,
            Some(v) => Some(v.parse().map_err(|_| MdError::Parse {
                path: dir.join("slot").display().to_string(),
                value: v.clone(),
                what: "a slot number or none",
            })?),
        };
        let state = attr(&dir.join("state"))
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        members.push(Member {
            device: dev.to_owned(),
            slot,
            state,
        });
    }
    let running = sync_action.filter(|a| !matches!(a, SyncAction::Idle | SyncAction::Frozen));
    Ok(ArrayStatus {
        device: device.to_owned(),
        health: Health::of(state, degraded, running, progress),
        state,
        level: attr(&path("level")),
        metadata: attr(&path("metadata_version")),
        uuid: attr(&path("uuid")),
        raid_disks: small("raid_disks")?,
        degraded,
        sync_action,
        progress: running.and(progress),
        sync_speed_kib: if running.is_some() {
            number("sync_speed")?
        } else {
            None
        },
        mismatch_cnt: number("mismatch_cnt")?,
        members,
    })
}

#[cfg(test)]
mod tests;
