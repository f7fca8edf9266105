//! One pass from the `storage` config to running, mounted arrays — the decisions that
//! must never destroy data, kept apart from the loop that repeats them
//! ([`crate::agent`]) and from the tools that carry them out ([`MdAdmin`], [`FsAdmin`]).
//!
//! For each configured array, in this order:
//! 1. **Running already** (an md array whose members include one of its disks):
//!    add configured disks that are missing from it (spares, a returning member, a
//!    blank disk put in a member's slot), then make sure it is mounted.
//! 2. **Its superblocks exist** (a selected disk carries an md 1.2 superblock naming
//!    this array): assemble by UUID from every disk of that UUID, degraded (`--run`)
//!    when at least the level's minimum is present, else wait. Such a disk is never
//!    wiped, whatever `storage.wipe` says.
//! 3. **Otherwise create**: only when every member is present and every selected disk
//!    is blank or wipe-listed. One disk holding anything else refuses the whole array
//!    and nothing is written to *any* of its disks. Wipe-listed disks are wiped,
//!    the array created (metadata 1.2, named after the config), and a file system
//!    made — only ever on an array device that holds no signature at all, so it
//!    happens once.
//!
//! The result per array is an [`Outcome`] the agent logs when it changes and writes
//! to the status file.

use std::path::{Path, PathBuf};

use hearth_config::{Array, Storage};
use serde::Serialize;

use crate::boot::parse_mountinfo;
use crate::disk::Disk;
use crate::fs::{fs_type, FsAdmin};
use crate::md::mdadm::{CreateSpec, MdAdmin};
use crate::md::superblock::{self, Superblock};
use crate::md::{self, ArrayStatus};
use crate::select::{Role, SelectError, Selection, Slot};
use crate::signature::{self, DeviceFile, Found};
use crate::wipe;
use crate::Root;

/// What was done to an array that is now mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Created (and its file system made) in this pass.
    Created,
    /// Assembled from existing members in this pass.
    Assembled,
    /// Already running.
    Unchanged,
}

/// Where an array stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Running and mounted.
    Mounted {
        /// `md127`.
        device: String,
        /// The mount point.
        mount: PathBuf,
        /// What this pass did.
        action: Action,
    },
    /// Not enough disks yet; retried when disks appear.
    Waiting {
        /// Which disks are missing.
        reason: String,
    },
    /// Refused: a disk holds data, or the config picks a disk it may not. Nothing
    /// was written; retried (and refused again) until the config or disks change.
    Refused {
        /// Every problem, naming the disks.
        reason: String,
    },
    /// A tool failed; retried on the next pass.
    Failed {
        /// The error chain.
        reason: String,
    },
}

impl Outcome {
    /// The array device, when running.
    pub fn device(&self) -> Option<&str> {
        match self {
            Self::Mounted { device, .. } => Some(device),
            _ => None,
        }
    }

    /// The same state, ignoring what this pass did (for "did anything change").
    pub fn same_state(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Mounted { device: a, .. }, Self::Mounted { device: b, .. }) => a == b,
            _ => self == other,
        }
    }
}

/// What a selected disk holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Nothing recognised.
    Blank,
    /// An md 1.2 superblock (of this or another array).
    Member(Superblock),
    /// Something else (or an md superblock of another version).
    Other(Vec<Found>),
    /// The device could not be read.
    Unreadable(String),
}

/// Read what `disk` holds from its device node below `root`.
pub fn probe(root: &Root, disk: &str) -> Probe {
    let path = root.dev_node(disk);
    let dev = match DeviceFile::open(&path) {
        Ok(d) => d,
        Err(e) => return Probe::Unreadable(format!("{}: {e}", path.display())),
    };
    match superblock::read(&dev) {
        Ok(Some(sb)) => return Probe::Member(sb),
        Ok(None) => {}
        Err(e) => return Probe::Unreadable(format!("{}: {e}", path.display())),
    }
    match signature::scan(&dev) {
        Ok(found) if found.is_empty() => Probe::Blank,
        Ok(found) => Probe::Other(found),
        Err(e) => Probe::Unreadable(format!("{}: {e}", path.display())),
    }
}

/// The kernel and config state one pass works from.
#[derive(Debug)]
pub struct World<'a> {
    /// Where sysfs and device nodes are.
    pub root: &'a Root,
    /// The config section.
    pub storage: &'a Storage,
    /// Discovered disks.
    pub disks: &'a [Disk],
    /// The config's selectors resolved against them.
    pub selection: &'a Selection,
}

/// The tools a pass changes things with.
pub struct Tools<'a> {
    /// md changes.
    pub md: &'a mut dyn MdAdmin,
    /// File systems.
    pub fs: &'a mut dyn FsAdmin,
}

impl std::fmt::Debug for Tools<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tools")
    }
}

/// Reconcile every array; one outcome per configured array, in config order.
pub fn reconcile(world: &World, tools: &mut Tools) -> Vec<(String, Outcome)> {
    world
        .storage
        .arrays
        .iter()
        .map(|a| (a.name.to_string(), reconcile_array(world, tools, a)))
        .collect()
}

/// The running md array that has one of `disks` as a member.
pub fn running_array<'a>(running: &'a [ArrayStatus], disks: &[&Disk]) -> Option<&'a ArrayStatus> {
    running.iter().find(|a| {
        a.members
            .iter()
            .any(|m| disks.iter().any(|d| d.name == m.device))
    })
}

fn reconcile_array(world: &World, tools: &mut Tools, array: &Array) -> Outcome {
    let name = array.name.as_str();
    let slots: Vec<&Slot> = world
        .selection
        .slots
        .iter()
        .filter(|s| s.array == name)
        .collect();
    let hard: Vec<String> = world
        .selection
        .problems
        .iter()
        .filter(|p| match p {
            SelectError::NotFound { .. } => false,
            SelectError::Twice { array, .. } | SelectError::BootDisk { array, .. } => array == name,
        })
        .map(ToString::to_string)
        .collect();
    if !hard.is_empty() {
        return Outcome::Refused {
            reason: hard.join("; "),
        };
    }
    let found: Vec<(&Slot, &Disk)> = slots
        .iter()
        .filter_map(|s| {
            let d = world
                .disks
                .iter()
                .find(|d| Some(&d.name) == s.disk.as_ref())?;
            Some((*s, d))
        })
        .collect();
    let missing: Vec<String> = slots
        .iter()
        .filter(|s| s.disk.is_none())
        .map(|s| format!("{} ({})", s.field, s.selector))
        .collect();
    let running = match md::arrays(world.root) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed {
                reason: hearth_agent::error_chain(&e),
            }
        }
    };
    let disks: Vec<&Disk> = found.iter().map(|(_, d)| *d).collect();
    if let Some(md) = running_array(&running, &disks) {
        return ensure_running(world, tools, array, &found, md, Action::Unchanged);
    }

    let probes: Vec<(&Slot, &Disk, Probe)> = found
        .iter()
        .map(|(s, d)| (*s, *d, probe(world.root, &d.name)))
        .collect();
    let ours: Vec<(&Disk, &Superblock)> = probes
        .iter()
        .filter_map(|(_, d, p)| match p {
            Probe::Member(sb) if sb.array_name() == name => Some((*d, sb)),
            _ => None,
        })
        .collect();
    if !ours.is_empty() {
        return assemble(world, tools, array, &found, &ours, &missing);
    }
    create(world, tools, array, &probes, &missing)
}

fn assemble(
    world: &World,
    tools: &mut Tools,
    array: &Array,
    found: &[(&Slot, &Disk)],
    ours: &[(&Disk, &Superblock)],
    missing: &[String],
) -> Outcome {
    let name = array.name.as_str();
    // Disks of one array name but two UUIDs: the UUID with the most members (then
    // the freshest) wins; the others are left alone.
    let mut uuids: Vec<_> = ours.iter().map(|(_, sb)| sb.uuid).collect();
    uuids.sort();
    uuids.dedup();
    let group =
        |u| -> Vec<&(&Disk, &Superblock)> { ours.iter().filter(|(_, sb)| sb.uuid == u).collect() };
    let Some(uuid) = uuids.iter().copied().max_by_key(|u| {
        let g = group(*u);
        (g.len(), g.iter().map(|(_, sb)| sb.events).max())
    }) else {
        return Outcome::Failed {
            reason: "no superblock".into(),
        };
    };
    let members = group(uuid);
    let sb = members[0].1;
    if (members.len() as u64) < u64::from(sb.min_members()) {
        return Outcome::Waiting {
            reason: format!(
                "array {name} ({uuid}): {} of {} members present, it needs {} to start{}",
                members.len(),
                sb.raid_disks,
                sb.min_members(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", missing.join(", "))
                }
            ),
        };
    }
    let devices: Vec<PathBuf> = members
        .iter()
        .map(|(d, _)| world.root.dev_node(&d.name))
        .collect();
    log::info!(
        "assembling array {name} ({uuid}) from {}",
        members
            .iter()
            .map(|(d, _)| d.label())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Err(e) = tools.md.assemble(name, uuid, &devices) {
        return Outcome::Failed {
            reason: hearth_agent::error_chain(&e),
        };
    }
    after_change(world, tools, array, found, Action::Assembled)
}

fn create(
    world: &World,
    tools: &mut Tools,
    array: &Array,
    probes: &[(&Slot, &Disk, Probe)],
    missing: &[String],
) -> Outcome {
    let name = array.name.as_str();
    let missing_members: Vec<&String> =
        missing.iter().filter(|m| m.contains(".members[")).collect();
    if !missing_members.is_empty() {
        return Outcome::Waiting {
            reason: format!(
                "array {name} does not exist yet and member disks are missing: {}",
                missing_members
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let mut problems = Vec::new();
    let mut to_wipe = Vec::new();
    for (_, disk, probe) in probes {
        let path = world.root.dev_node(&disk.name);
        if !disk.holders.is_empty() {
            problems.push(format!(
                "disk {} ({}): in use by {}",
                disk.label(),
                path.display(),
                disk.holders.join(", ")
            ));
            continue;
        }
        match probe {
            Probe::Blank => {}
            Probe::Unreadable(e) => problems.push(format!("disk {}: {e}", disk.label())),
            Probe::Member(_) | Probe::Other(_) => {
                let verdict = DeviceFile::open(&path)
                    .map_err(|e| format!("disk {}: {}: {e}", disk.label(), path.display()))
                    .and_then(|dev| {
                        signature::check_blank(disk, &dev, &path, &world.storage.wipe)
                            .map_err(|e| format!("{} ({})", e, path.display()))
                    });
                match verdict {
                    Ok(signature::Verdict::Blank) => {}
                    Ok(signature::Verdict::Wipe(found)) => to_wipe.push((*disk, path, found)),
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    if !problems.is_empty() {
        return Outcome::Refused {
            reason: format!(
                "array {name} not created, no disk touched: {}",
                problems.join("; ")
            ),
        };
    }
    for (disk, path, found) in &to_wipe {
        let what: Vec<String> = found.iter().map(ToString::to_string).collect();
        log::warn!(
            "wiping {} ({}), listed in storage.wipe: {}",
            disk.label(),
            path.display(),
            what.join(", ")
        );
        if let Err(e) = wipe::wipe(path) {
            return Outcome::Failed {
                reason: hearth_agent::error_chain(&e),
            };
        }
    }
    let of_role = |role| -> Vec<PathBuf> {
        probes
            .iter()
            .filter(|(s, _, _)| s.role == role)
            .map(|(_, d, _)| world.root.dev_node(&d.name))
            .collect()
    };
    let spec = CreateSpec {
        name: name.to_owned(),
        level: array.level,
        members: of_role(Role::Member),
        spares: of_role(Role::Spare),
    };
    log::info!(
        "creating array {name} ({}) on {}",
        array.level,
        probes
            .iter()
            .map(|(s, d, _)| format!(
                "{} as {}",
                d.label(),
                match s.role {
                    Role::Member => "member",
                    Role::Spare => "spare",
                }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Err(e) = tools.md.create(&spec) {
        return Outcome::Failed {
            reason: hearth_agent::error_chain(&e),
        };
    }
    let found: Vec<(&Slot, &Disk)> = probes.iter().map(|(s, d, _)| (*s, *d)).collect();
    after_change(world, tools, array, &found, Action::Created)
}

/// After create/assemble: find the array the kernel started and finish it.
fn after_change(
    world: &World,
    tools: &mut Tools,
    array: &Array,
    found: &[(&Slot, &Disk)],
    action: Action,
) -> Outcome {
    let disks: Vec<&Disk> = found.iter().map(|(_, d)| *d).collect();
    let running = match md::arrays(world.root) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed {
                reason: hearth_agent::error_chain(&e),
            }
        }
    };
    match running_array(&running, &disks) {
        Some(md) => ensure_running(world, tools, array, found, md, action),
        None => Outcome::Failed {
            reason: format!(
                "mdadm reported success but no running md array has a member of {}",
                array.name
            ),
        },
    }
}

/// A running array: add its configured disks that are missing, mount it.
fn ensure_running(
    world: &World,
    tools: &mut Tools,
    array: &Array,
    found: &[(&Slot, &Disk)],
    md: &ArrayStatus,
    action: Action,
) -> Outcome {
    let name = array.name.as_str();
    let md_dev = world.root.dev_node(&md.device);
    if array.level.is_redundant() {
        for (slot, disk) in found {
            if md.members.iter().any(|m| m.device == disk.name) || !disk.holders.is_empty() {
                continue;
            }
            let ok = match probe(world.root, &disk.name) {
                Probe::Blank => true,
                Probe::Member(sb) => {
                    sb.array_name() == name && md.uuid.as_deref() == Some(&sb.uuid.sysfs())
                }
                Probe::Other(_) | Probe::Unreadable(_) => false,
            };
            if !ok {
                log::debug!(
                    "{} ({}) is not blank and not a member of {name}: not added",
                    disk.label(),
                    slot.field
                );
                continue;
            }
            let dev = world.root.dev_node(&disk.name);
            log::info!(
                "adding {} ({}) to array {name} ({})",
                disk.label(),
                slot.field,
                md.device
            );
            if let Err(e) = tools.md.add(&md_dev, &dev) {
                log::error!("{}", hearth_agent::error_chain(&e));
            }
        }
    }
    let mount = array.mount_point();
    if let Err(reason) = ensure_mounted(world.root, tools, array, &md_dev, &mount) {
        return Outcome::Failed { reason };
    }
    Outcome::Mounted {
        device: md.device.clone(),
        mount,
        action,
    }
}

fn ensure_mounted(
    root: &Root,
    tools: &mut Tools,
    array: &Array,
    md_dev: &Path,
    mount: &Path,
) -> Result<(), String> {
    let mounts = std::fs::read_to_string(root.mountinfo()).unwrap_or_default();
    if parse_mountinfo(&mounts)
        .iter()
        .any(|m| Path::new(&m.mount_point) == mount)
    {
        return Ok(());
    }
    let found = DeviceFile::open(md_dev)
        .and_then(|d| signature::scan(&d))
        .map_err(|e| format!("reading {}: {e}", md_dev.display()))?;
    if found.is_empty() {
        log::info!(
            "making {} on {} (array {})",
            fs_type(array.filesystem),
            md_dev.display(),
            array.name
        );
        tools
            .fs
            .mkfs(md_dev, array.filesystem, array.name.as_str())
            .map_err(|e| hearth_agent::error_chain(&e))?;
    }
    tools
        .fs
        .mount(md_dev, array.filesystem, mount)
        .map_err(|e| hearth_agent::error_chain(&e))?;
    log::info!(
        "array {} ({}) mounted at {}",
        array.name,
        md_dev.display(),
        mount.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
