//! Which disks hold the running system, so that no config can ever select them.
//!
//! A disk is a boot disk when a device mounted at `/`, `/boot`, `/boot/efi` or `/usr`
//! (read from `<root>/proc/self/mountinfo`) lives on it: the whole disk, one of its
//! partitions, or a disk under a stacked device (md, dm) followed through sysfs
//! `slaves/`. Matching is by device number, which survives `/dev/root` and renamed
//! nodes, with the mount source's `/dev/<name>` as a fallback for file systems (btrfs)
//! that report an anonymous device number. Hearth's own image runs from an initramfs,
//! so there the boot medium is named explicitly instead (see [`crate::disk::discover`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::disk::{attr, list_dir, list_dir_lenient, DevNum, Disk, DiskError};
use crate::Root;

/// Mount points whose devices make a disk a boot disk.
pub const BOOT_MOUNTS: [&str; 4] = ["/", "/boot", "/boot/efi", "/usr"];

/// A mount from `mountinfo`: device number, mount point, source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device.
    pub dev: Option<DevNum>,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: String,
    /// The mount source (`/dev/vda1`, `proc`, ...).
    pub source: String,
}

/// Parse `/proc/self/mountinfo` text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                dev: DevNum::parse(fields.get(2)?),
                mount_point: unescape(fields.get(4)?),
                source: unescape(fields.get(sep + 2)?),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Names of the disks in `disks` that hold a boot mount.
pub fn boot_disks(root: &Root, disks: &[Disk]) -> Result<BTreeSet<String>, DiskError> {
    let path = root.mountinfo();
    let Ok(text) = std::fs::read_to_string(&path) else {
        log::debug!("{} is unreadable: no boot disk from mounts", path.display());
        return Ok(BTreeSet::new());
    };
    let index = BlockIndex::read(&root.sys_block())?;
    let mut found = BTreeSet::new();
    for m in parse_mountinfo(&text) {
        if !BOOT_MOUNTS.contains(&m.mount_point.as_str()) {
            continue;
        }
        let by_dev = m.dev.and_then(|d| index.by_dev.get(&d));
        let by_source = m
            .source
            .strip_prefix("/dev/")
            .filter(|n| index.parent.contains_key(*n));
        if let Some(name) = by_dev.map(String::as_str).or(by_source) {
            index.physical(name, 0, &mut found);
        }
    }
    found.retain(|n| disks.iter().any(|d| d.name == *n));
    Ok(found)
}

/// Every block device and partition: its number and the disk it belongs to.
struct BlockIndex {
    by_dev: BTreeMap<DevNum, String>,
    /// name → whole-device name (itself for a disk).
    parent: BTreeMap<String, String>,
    /// whole-device name → the devices it is stacked on.
    slaves: BTreeMap<String, Vec<String>>,
}

impl BlockIndex {
    fn read(block: &Path) -> Result<Self, DiskError> {
        let mut index = Self {
            by_dev: BTreeMap::new(),
            parent: BTreeMap::new(),
            slaves: BTreeMap::new(),
        };
        for name in list_dir(block)? {
            let dir = block.join(&name);
            index.add(&dir, &name, &name);
            index
                .slaves
                .insert(name.clone(), list_dir_lenient(&dir.join("slaves")));
            for part in list_dir_lenient(&dir) {
                if dir.join(&part).join("partition").exists() {
                    index.add(&dir.join(&part), &part, &name);
                }
            }
        }
        Ok(index)
    }

    fn add(&mut self, dir: &Path, name: &str, parent: &str) {
        if let Some(dev) = attr(&dir.join("dev")).as_deref().and_then(DevNum::parse) {
            self.by_dev.insert(dev, name.to_owned());
        }
        self.parent.insert(name.to_owned(), parent.to_owned());
    }

    /// The physical disks under `name`, following stacked devices.
    fn physical(&self, name: &str, depth: usize, out: &mut BTreeSet<String>) {
        let Some(disk) = self.parent.get(name) else {
            return;
        };
        match self.slaves.get(disk).filter(|s| !s.is_empty()) {
            Some(slaves) if depth < 8 => {
                for s in slaves {
                    self.physical(s, depth + 1, out);
                }
            }
            _ => {
                out.insert(disk.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::discover;
    use crate::fixture::{FakeDisk, Fixture};

    #[test]
    fn parses_real_mountinfo_lines() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                    22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    40 27 8:1 / /mnt/my\\040disk rw shared:1 - vfat /dev/sdb1 rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].dev,
            Some(DevNum {
                major: 254,
                minor: 0
            })
        );
        assert_eq!(m[0].mount_point, "/");
        assert_eq!(m[0].source, "/dev/vda");
        assert_eq!(m[2].mount_point, "/mnt/my disk");
        assert_eq!(m[2].source, "/dev/sdb1");
    }

    #[test]
    fn root_on_md_marks_every_member_disk() {
        let fx = Fixture::new();
        fx.disk(&FakeDisk::sata("sda", "M", "A", 1 << 30).partition(1, 1 << 29));
        fx.disk(&FakeDisk::sata("sdb", "M", "B", 1 << 30).partition(1, 1 << 29));
        fx.disk(&FakeDisk::sata("sdc", "M", "C", 1 << 30));
        fx.virtual_device("md0", 1 << 20);
        fx.slaves("md0", &["sda1", "sdb1"]);
        fx.mountinfo(&[("9:0", "/", "/dev/md0"), ("0:5", "/proc", "proc")]);
        let disks = discover(&fx.root(), &[]).unwrap();
        let boot: Vec<_> = disks.iter().filter(|d| d.boot).map(|d| &d.name).collect();
        assert_eq!(boot, ["sda", "sdb"]);
    }

    #[test]
    fn btrfs_anonymous_dev_falls_back_to_the_source() {
        let fx = Fixture::new();
        fx.disk(&FakeDisk::nvme("nvme0n1", "M", "N", 1 << 30).partition(2, 1 << 29));
        fx.disk(&FakeDisk::virtio("vdb", "S1", 1 << 30));
        fx.mountinfo(&[("0:31", "/", "/dev/nvme0n1p2")]);
        let disks = discover(&fx.root(), &[]).unwrap();
        assert!(disks[0].boot);
        assert!(!disks[1].boot);
    }
}
