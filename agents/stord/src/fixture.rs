//! Fake system roots for tests: a temp directory laid out like the parts of `/sys`,
//! `/proc` and `/dev` stord reads, with attribute values copied from real kernels.
//!
//! `sys/block/<name>` is a symlink into `sys/devices/...` as on a real system, so the
//! transport guess reads the same paths it reads on hardware; `dev/<name>` are regular
//! files standing in for the device nodes. Public so the binary's tests can use it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::disk::Transport;
use crate::Root;

/// A temp-dir root; removed on drop.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
}

/// A disk to create in a [`Fixture`].
#[derive(Debug, Clone)]
pub struct FakeDisk {
    name: String,
    transport: Transport,
    model: Option<String>,
    serial: Option<String>,
    wwid: Option<String>,
    size_bytes: u64,
    rotational: bool,
    partitions: Vec<(u32, u64)>,
}

impl FakeDisk {
    fn new(name: &str, transport: Transport, size_bytes: u64) -> Self {
        Self {
            name: name.to_owned(),
            transport,
            model: None,
            serial: None,
            wwid: None,
            size_bytes,
            rotational: false,
            partitions: Vec::new(),
        }
    }

    /// A virtio-blk disk (serial in `<disk>/serial`).
    pub fn virtio(name: &str, serial: &str, size_bytes: u64) -> Self {
        let mut d = Self::new(name, Transport::Virtio, size_bytes);
        d.serial = Some(serial.to_owned());
        d
    }

    /// A SATA disk (model padded as libata writes it, serial in VPD page 0x80).
    pub fn sata(name: &str, model: &str, serial: &str, size_bytes: u64) -> Self {
        let mut d = Self::new(name, Transport::Sata, size_bytes);
        d.model = Some(model.to_owned());
        d.serial = Some(serial.to_owned());
        d
    }

    /// An NVMe namespace (model and serial on the controller, `device/`).
    pub fn nvme(name: &str, model: &str, serial: &str, size_bytes: u64) -> Self {
        let mut d = Self::new(name, Transport::Nvme, size_bytes);
        d.model = Some(model.to_owned());
        d.serial = Some(serial.to_owned());
        d
    }

    /// Spinning.
    pub fn rotational(mut self) -> Self {
        self.rotational = true;
        self
    }

    /// With a `wwid` attribute (`naa.…`, `eui.…`).
    pub fn wwid(mut self, wwid: &str) -> Self {
        self.wwid = Some(wwid.to_owned());
        self
    }

    /// With partition `number` of `size_bytes`.
    pub fn partition(mut self, number: u32, size_bytes: u64) -> Self {
        self.partitions.push((number, size_bytes));
        self
    }
}

/// The kernel's name for partition `n` of `disk` (`sda1`, `nvme0n1p1`).
pub fn partition_name(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// A plausible `major:minor` for a device name (`vda` 254:0, `sdb1` 8:17, `md0` 9:0).
fn dev_of(name: &str, part: u32) -> String {
    let letter = |prefix: &str| {
        let c = name
            .strip_prefix(prefix)
            .and_then(|r| r.bytes().next())
            .unwrap_or(b'a');
        u32::from(c.saturating_sub(b'a')) * 16 + part
    };
    let trailing = || {
        let digits: String = name.chars().filter(char::is_ascii_digit).collect();
        digits.parse::<u32>().unwrap_or(0)
    };
    match name {
        n if n.starts_with("vd") => format!("254:{}", letter("vd")),
        n if n.starts_with("sd") => format!("8:{}", letter("sd")),
        n if n.starts_with("nvme") => format!("259:{}", trailing() * 8 + part),
        n if n.starts_with("md") => format!("9:{}", trailing()),
        n if n.starts_with("loop") => format!("7:{}", trailing()),
        _ => format!("252:{}", trailing()),
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// An empty root with `sys/block`, `proc/self` and `dev`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for d in ["sys/block", "sys/devices", "proc/self", "dev"] {
            fs::create_dir_all(dir.path().join(d)).expect("fixture dir");
        }
        Self { dir }
    }

    /// The root to hand to discovery.
    pub fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    /// Write `value` to `rel` (parents created).
    pub fn write(&self, rel: impl AsRef<Path>, value: impl AsRef<[u8]>) {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("fixture dir");
        fs::write(&path, value).expect("fixture file");
    }

    fn link_block(&self, name: &str, devpath: &str) -> PathBuf {
        let dir = self.dir.path().join("sys/devices").join(devpath);
        fs::create_dir_all(&dir).expect("device dir");
        let link = self.dir.path().join("sys/block").join(name);
        std::os::unix::fs::symlink(format!("../devices/{devpath}"), &link).expect("symlink");
        dir
    }

    /// Create a disk.
    pub fn disk(&self, d: &FakeDisk) {
        let n = self
            .dir
            .path()
            .join("sys/block")
            .read_dir()
            .map_or(0, Iterator::count);
        let devpath = match d.transport {
            Transport::Virtio => format!(
                "pci0000:00/0000:00:{:02x}.0/virtio{n}/block/{}",
                n + 4,
                d.name
            ),
            Transport::Sata => format!(
                "pci0000:00/0000:00:1f.2/ata{n}/host{n}/target{n}:0:0/{n}:0:0:0/block/{}",
                d.name
            ),
            Transport::Nvme => format!(
                "pci0000:00/0000:00:1d.0/0000:3d:00.{n}/nvme/nvme{n}/{}",
                d.name
            ),
            Transport::Usb => format!(
                "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host{n}/target{n}:0:0/{n}:0:0:0/block/{}",
                d.name
            ),
            _ => format!("platform/host{n}/block/{}", d.name),
        };
        let dir = self.link_block(&d.name, &devpath);
        let w = |rel: &str, v: &[u8]| {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("attr dir");
            fs::write(p, v).expect("attr");
        };
        w("size", format!("{}\n", d.size_bytes / 512).as_bytes());
        w("dev", format!("{}\n", dev_of(&d.name, 0)).as_bytes());
        w("removable", b"0\n");
        w("ro", b"0\n");
        w(
            "queue/rotational",
            if d.rotational { b"1\n" } else { b"0\n" },
        );
        fs::create_dir_all(dir.join("holders")).expect("holders");
        if let Some(m) = &d.model {
            // libata and nvme pad the model with spaces.
            w("device/model", format!("{m:<40}\n").as_bytes());
        }
        if let Some(s) = &d.serial {
            match d.transport {
                Transport::Virtio => w("serial", s.as_bytes()),
                Transport::Sata | Transport::Scsi | Transport::Usb => {
                    let mut page = vec![0, 0x80, 0, 20];
                    page.extend_from_slice(format!("{s:>20}").as_bytes());
                    page[3] = u8::try_from(page.len() - 4).unwrap_or(u8::MAX);
                    w("device/vpd_pg80", &page);
                }
                _ => w("device/serial", format!("{s:<20}\n").as_bytes()),
            }
        }
        if let Some(wwid) = &d.wwid {
            w("wwid", format!("{wwid}\n").as_bytes());
        }
        for (num, size) in &d.partitions {
            let pname = partition_name(&d.name, *num);
            w(&format!("{pname}/partition"), format!("{num}\n").as_bytes());
            w(
                &format!("{pname}/dev"),
                format!("{}\n", dev_of(&d.name, *num)).as_bytes(),
            );
            w(
                &format!("{pname}/size"),
                format!("{}\n", size / 512).as_bytes(),
            );
            fs::create_dir_all(dir.join(&pname).join("holders")).expect("holders");
        }
    }

    /// Create a virtual block device (loop, zram, md, dm) of `size_bytes`.
    pub fn virtual_device(&self, name: &str, size_bytes: u64) {
        let dir = self.link_block(name, &format!("virtual/block/{name}"));
        fs::write(dir.join("size"), format!("{}\n", size_bytes / 512)).expect("size");
        fs::write(dir.join("dev"), format!("{}\n", dev_of(name, 0))).expect("dev");
    }

    /// `sys/block/<name>/slaves/<s>` for each of `slaves`.
    pub fn slaves(&self, name: &str, slaves: &[&str]) {
        for s in slaves {
            self.write(format!("sys/block/{name}/slaves/{s}"), "");
        }
    }

    /// `proc/self/mountinfo` with one line per `(dev, mount point, source)`.
    pub fn mountinfo(&self, mounts: &[(&str, &str, &str)]) {
        let text: String = mounts
            .iter()
            .enumerate()
            .map(|(i, (dev, mp, src))| {
                format!("{} 1 {dev} / {mp} rw,relatime - ext4 {src} rw\n", 20 + i)
            })
            .collect();
        self.write("proc/self/mountinfo", text);
    }

    /// `dev/<name>`: a regular file standing in for the device node.
    pub fn dev_node(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join("dev").join(name);
        fs::write(&path, contents).expect("dev node");
        path
    }

    /// md attributes: `sys/block/<md>/md/<rel>` = value, for each pair.
    pub fn md_attrs(&self, md: &str, attrs: &[(&str, &str)]) {
        if !self.dir.path().join("sys/block").join(md).exists() {
            self.virtual_device(md, 1 << 30);
        }
        for (rel, value) in attrs {
            self.write(format!("sys/block/{md}/md/{rel}"), format!("{value}\n"));
        }
    }
}
