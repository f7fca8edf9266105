//! Finding the control port without udev.
//!
//! The kernel lists every virtio-serial port under `/sys/class/virtio-ports/vportNpM`
//! with the host-given name in `name` and the char device number in `dev`. The image
//! has no udev, and devtmpfs may or may not have created `/dev/vportNpM` yet, so the
//! node is created from `dev` when missing. Paths are taken relative to [`SysRoots`] so
//! unit tests run on temp-dir fixtures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::stat::{mknod, Mode, SFlag};

use crate::Error;

/// The port name QEMU gives the control channel (`hearth::qemu::CONTROL_PORT_NAME`).
pub const CONTROL_PORT_NAME: &str = "org.hearth.ctl";

/// Where sysfs and the device nodes live.
#[derive(Debug, Clone)]
pub struct SysRoots {
    /// Normally `/sys`.
    pub sys: PathBuf,
    /// Normally `/dev`.
    pub dev: PathBuf,
}

impl SysRoots {
    /// `/sys` and `/dev`.
    pub fn real() -> Self {
        SysRoots {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// A virtio-serial port found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// `vportNpM`.
    pub kernel_name: String,
    /// Where its device node is (or should be).
    pub dev_path: PathBuf,
    pub major: u64,
    pub minor: u64,
}

/// Look up the port named `name`; `Ok(None)` when no such port exists (yet).
pub fn find_port(roots: &SysRoots, name: &str) -> Result<Option<Port>, Error> {
    let class = roots.sys.join("class/virtio-ports");
    let entries = match std::fs::read_dir(&class) {
        Ok(entries) => entries,
        // The class appears only once virtio_console has bound a device.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: class,
                source,
            })
        }
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for kernel_name in names {
        let dir = class.join(&kernel_name);
        // A port without a name file, or with a name not yet set, is not ours.
        let Ok(port_name) = std::fs::read_to_string(dir.join("name")) else {
            continue;
        };
        if port_name.trim() != name {
            continue;
        }
        let dev_file = dir.join("dev");
        let value = std::fs::read_to_string(&dev_file).map_err(|source| Error::Read {
            path: dev_file.clone(),
            source,
        })?;
        let (major, minor) = parse_dev(&value).ok_or_else(|| Error::BadDevNumber {
            path: dev_file.clone(),
            value: value.clone(),
        })?;
        let kernel_name = kernel_name.to_string_lossy().into_owned();
        return Ok(Some(Port {
            dev_path: roots.dev.join(&kernel_name),
            kernel_name,
            major,
            minor,
        }));
    }
    Ok(None)
}

/// Parse sysfs `dev` contents: `MAJOR:MINOR\n`.
fn parse_dev(value: &str) -> Option<(u64, u64)> {
    let (major, minor) = value.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Create the port's char device node unless something already exists at its path.
pub fn ensure_node(port: &Port) -> Result<(), Error> {
    if port.dev_path.symlink_metadata().is_ok() {
        return Ok(());
    }
    let dev = nix::sys::stat::makedev(port.major, port.minor);
    mknod(
        &port.dev_path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        dev,
    )
    .map_err(|source| Error::Mknod {
        path: port.dev_path.clone(),
        major: port.major,
        minor: port.minor,
        source,
    })
}

/// Poll sysfs until the port named `name` appears (or `timeout` passes), make sure its
/// device node exists and return the node's path.
pub fn wait_for_port(roots: &SysRoots, name: &str, timeout: Duration) -> Result<PathBuf, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(port) = find_port(roots, name)? {
            ensure_node(&port)?;
            return Ok(port.dev_path);
        }
        if Instant::now() >= deadline {
            return Err(Error::PortMissing {
                name: name.to_string(),
                sys: roots.sys.clone(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture(ports: &[(&str, Option<&str>, &str)]) -> (tempfile::TempDir, SysRoots) {
        let dir = tempfile::tempdir().unwrap();
        let roots = SysRoots {
            sys: dir.path().join("sys"),
            dev: dir.path().join("dev"),
        };
        fs::create_dir_all(&roots.dev).unwrap();
        for (kernel_name, name, dev) in ports {
            let port = roots.sys.join("class/virtio-ports").join(kernel_name);
            fs::create_dir_all(&port).unwrap();
            if let Some(name) = name {
                fs::write(port.join("name"), format!("{name}\n")).unwrap();
            }
            fs::write(port.join("dev"), format!("{dev}\n")).unwrap();
        }
        (dir, roots)
    }

    #[test]
    fn finds_the_named_port() {
        let (_dir, roots) = fixture(&[
            ("vport0p0", None, "251:0"),
            ("vport1p1", Some("org.qemu.guest_agent.0"), "251:1"),
            ("vport1p2", Some(CONTROL_PORT_NAME), "251:2"),
        ]);
        let port = find_port(&roots, CONTROL_PORT_NAME).unwrap().unwrap();
        assert_eq!(
            port,
            Port {
                kernel_name: "vport1p2".into(),
                dev_path: roots.dev.join("vport1p2"),
                major: 251,
                minor: 2,
            }
        );
    }

    #[test]
    fn no_class_or_no_match_is_none() {
        let (_dir, roots) = fixture(&[]);
        assert_eq!(find_port(&roots, CONTROL_PORT_NAME).unwrap(), None);
        let (_dir, roots) = fixture(&[("vport0p1", Some("other"), "251:1")]);
        assert_eq!(find_port(&roots, CONTROL_PORT_NAME).unwrap(), None);
    }

    #[test]
    fn bad_dev_file_names_the_path() {
        let (_dir, roots) = fixture(&[("vport0p1", Some(CONTROL_PORT_NAME), "garbage")]);
        let err = find_port(&roots, CONTROL_PORT_NAME).unwrap_err();
        assert!(matches!(err, Error::BadDevNumber { .. }), "{err}");
        assert!(err.to_string().contains("vport0p1/dev"), "{err}");
    }

    #[test]
    fn wait_times_out_with_the_name() {
        let (_dir, roots) = fixture(&[]);
        let err = wait_for_port(&roots, CONTROL_PORT_NAME, Duration::from_millis(120));
        assert!(matches!(err, Err(Error::PortMissing { .. })));
    }

    #[test]
    fn existing_node_is_kept_and_missing_node_is_created() {
        let (_dir, roots) = fixture(&[("vport0p1", Some(CONTROL_PORT_NAME), "1:3")]);
        let port = find_port(&roots, CONTROL_PORT_NAME).unwrap().unwrap();
        // 1:3 is /dev/null; this machine runs the tests as root, so mknod works.
        ensure_node(&port).unwrap();
        let meta = fs::metadata(&port.dev_path).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
        // Second call sees the node and leaves it alone.
        ensure_node(&port).unwrap();
    }
}
