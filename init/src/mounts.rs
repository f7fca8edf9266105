//! The API file systems PID 1 mounts before anything else, and unmounting them again
//! at shutdown.
//!
//! Mounts that are already there (per `/proc/self/mountinfo`) are left alone and not
//! unmounted later: init only undoes what it did.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// One early mount.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec {
    pub source: &'static str,
    /// Absolute path inside the image.
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
}

const SECURE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// In order: `/proc` first so later mounts can be checked against mountinfo.
pub const EARLY_MOUNTS: [MountSpec; 7] = [
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: SECURE,
        data: "",
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: SECURE,
        data: "",
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0620,ptmxmode=0666",
    },
    MountSpec {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
];

/// Errors mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("creating mount point {target}")]
    MountPoint {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting {fstype} on {target}")]
    Mount {
        target: PathBuf,
        fstype: &'static str,
        #[source]
        source: Errno,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: Errno,
    },
}

/// What init mounted, in mount order.
#[derive(Debug, Default, Clone)]
pub struct Mounted {
    pub targets: Vec<PathBuf>,
}

/// Mount [`EARLY_MOUNTS`] below `root`. Failures are collected, not fatal.
pub fn mount_early(root: &Path) -> (Mounted, Vec<MountError>) {
    let mut mounted = Mounted::default();
    let mut errors = Vec::new();
    for spec in EARLY_MOUNTS {
        let target = root.join(spec.target.trim_start_matches('/'));
        if is_mounted(root, &target) {
            continue;
        }
        if let Err(source) = std::fs::create_dir_all(&target) {
            errors.push(MountError::MountPoint { target, source });
            continue;
        }
        let data = (!spec.data.is_empty()).then_some(spec.data);
        match mount(
            Some(spec.source),
            &target,
            Some(spec.fstype),
            spec.flags,
            data,
        ) {
            Ok(()) => mounted.targets.push(target),
            // Already mounted (e.g. a kernel with DEVTMPFS_MOUNT): not ours to undo.
            Err(Errno::EBUSY) => {}
            Err(source) => errors.push(MountError::Mount {
                target,
                fstype: spec.fstype,
                source,
            }),
        }
    }
    (mounted, errors)
}

/// Unmount in reverse order; busy file systems are detached lazily. Returns every
/// error (teardown never stops at the first).
pub fn unmount_all(mounted: &Mounted) -> Vec<MountError> {
    let mut errors = Vec::new();
    for target in mounted.targets.iter().rev() {
        let result = match umount2(target, MntFlags::empty()) {
            Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH),
            other => other,
        };
        if let Err(source) = result {
            errors.push(MountError::Unmount {
                target: target.clone(),
                source,
            });
        }
    }
    errors
}

/// Is `target` a mount point according to `<root>/proc/self/mountinfo`?
pub fn is_mounted(root: &Path, target: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join("proc/self/mountinfo")) else {
        return false;
    };
    mount_points(&text).iter().any(|m| {
        // mountinfo paths are absolute in the mount namespace; compare below root.
        root.join(m.strip_prefix("/").unwrap_or(m)) == target
    })
}

/// The mount points (field 5) of a mountinfo text, with `\040`-style escapes decoded.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 1 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_mount_points() {
        assert_eq!(
            mount_points(MOUNTINFO),
            [
                PathBuf::from("/proc"),
                PathBuf::from("/sys"),
                PathBuf::from("/mnt/with space")
            ]
        );
    }

    #[test]
    fn checks_mounts_below_a_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::write(root.path().join("proc/self/mountinfo"), MOUNTINFO).unwrap();
        assert!(is_mounted(root.path(), &root.path().join("sys")));
        assert!(!is_mounted(root.path(), &root.path().join("run")));
    }

    #[test]
    fn early_mounts_start_with_proc_and_cover_the_contract() {
        let targets: Vec<&str> = EARLY_MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(
            targets,
            ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp"]
        );
    }
}
