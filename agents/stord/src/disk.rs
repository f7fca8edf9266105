//! Block devices as the kernel lists them under `<root>/sys/block`: what a disk is
//! (size, rotational, removable, model, serial, WWN, transport, partitions) and the
//! stable names `/dev/disk/by-id` would give it.
//!
//! The image has no udevd, so nothing creates `/dev/disk/by-id`; the config still
//! selects disks by those names, so this module derives them from sysfs with udev's
//! own rules (`60-persistent-storage.rules`): `virtio-<serial>`, `ata-<model>_<serial>`,
//! `nvme-<model>_<serial>`, `nvme-<wwid>` and `wwn-0x<naa>`, with udev's character
//! escaping. USB and SCSI names (built from SCSI inquiry data udev reads with ioctls)
//! are not derived: such disks are selected by serial.
//!
//! Virtual block devices (loop, ram, zram, dm, md, optical, nbd) are never disks here:
//! they cannot be array members. Everything reads below a root path so tests run on
//! temp-dir fixtures.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::boot;
use crate::Root;

/// Why discovery failed. Only attributes every block device has are fatal; identity
/// attributes a device lacks or cannot report (serial, model, WWN) are left empty.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A directory or attribute could not be read.
    #[error("reading {path}")]
    Read {
        /// The sysfs path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An attribute held something other than what the kernel writes there.
    #[error("{path}: {value:?} is not {what}")]
    Parse {
        /// The sysfs path.
        path: PathBuf,
        /// What it held.
        value: String,
        /// What it should have held.
        what: &'static str,
    },
}

/// How a disk is attached, guessed from its device path in sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// virtio-blk.
    Virtio,
    /// SATA/PATA through libata.
    Sata,
    /// NVMe.
    Nvme,
    /// USB mass storage.
    Usb,
    /// Other SCSI (SAS, virtio-scsi, iSCSI).
    Scsi,
    /// SD/eMMC.
    Mmc,
    /// Anything else.
    Unknown,
}

impl Transport {
    /// Guess from the resolved `/sys/devices/...` path of the block device.
    pub fn from_device_path(path: &str) -> Self {
        let has = |part: &str| path.split('/').any(|c| c.starts_with(part));
        if has("usb") {
            Self::Usb
        } else if has("nvme") {
            Self::Nvme
        } else if has("ata") {
            Self::Sata
        } else if has("mmc") {
            Self::Mmc
        } else if has("host") || has("target") {
            Self::Scsi
        } else if has("virtio") {
            Self::Virtio
        } else {
            Self::Unknown
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Virtio => "virtio",
            Self::Sata => "sata",
            Self::Nvme => "nvme",
            Self::Usb => "usb",
            Self::Scsi => "scsi",
            Self::Mmc => "mmc",
            Self::Unknown => "unknown",
        };
        f.write_str(s)
    }
}

/// A device number, `major:minor` as in sysfs `dev` and `/proc/self/mountinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// Parse `"254:16"`.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.trim().split_once(':')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A partition of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel name (`vdb1`, `nvme0n1p2`).
    pub name: String,
    /// Partition number.
    pub number: u32,
    /// Device number.
    pub dev: DevNum,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// A whole disk that could be an array member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name (`vdb`, `sda`, `nvme0n1`).
    pub name: String,
    /// Device number.
    pub dev: DevNum,
    /// Size in bytes (sysfs `size` is always in 512-byte sectors).
    pub size_bytes: u64,
    /// Spinning media.
    pub rotational: bool,
    /// Removable media (card readers, some USB sticks).
    pub removable: bool,
    /// Read-only.
    pub read_only: bool,
    /// Model, trimmed.
    pub model: Option<String>,
    /// Serial number, trimmed.
    pub serial: Option<String>,
    /// World wide name: `0x<naa>` or `eui.<hex>`.
    pub wwn: Option<String>,
    /// How it is attached.
    pub transport: Transport,
    /// Partitions the kernel sees.
    pub partitions: Vec<Partition>,
    /// Devices stacked on this disk or its partitions (`md127`, `dm-0`).
    pub holders: Vec<String>,
    /// Names under `/dev/disk/by-id` udev would create for it.
    pub by_id: Vec<String>,
    /// Holds the running system (see [`crate::boot`]); never selected.
    pub boot: bool,
}

impl Disk {
    /// `vdb (serial S1)` — how messages name a disk.
    pub fn label(&self) -> String {
        match &self.serial {
            Some(s) => format!("{} (serial {s})", self.name),
            None => self.name.clone(),
        }
    }
}

/// Kernel name prefixes of virtual block devices.
const VIRTUAL_PREFIXES: [&str; 8] = ["loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd"];

/// Whether `name` is a virtual block device (never an array member).
pub fn is_virtual(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Every disk under `<root>/sys/block`, sorted by name, with boot disks marked.
/// `boot_hints` names further boot disks (kernel name, serial or by-id name).
pub fn discover(root: &Root, boot_hints: &[String]) -> Result<Vec<Disk>, DiskError> {
    let block = root.sys_block();
    let mut disks = Vec::new();
    for name in list_dir(&block)? {
        let dir = block.join(&name);
        let link = fs::read_link(&dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_virtual(&name) || link.contains("/devices/virtual/") {
            continue;
        }
        let size_bytes = parse_u64(&dir.join("size"))?.saturating_mul(512);
        if size_bytes == 0 {
            // An empty card reader or a drive without media.
            continue;
        }
        disks.push(read_disk(&dir, name, &link, size_bytes)?);
    }
    let boot = boot::boot_disks(root, &disks)?;
    for d in &mut disks {
        d.boot = boot.contains(&d.name)
            || boot_hints.iter().any(|h| {
                *h == d.name || d.serial.as_deref() == Some(h) || d.by_id.iter().any(|b| b == h)
            });
    }
    Ok(disks)
}

fn read_disk(dir: &Path, name: String, link: &str, size_bytes: u64) -> Result<Disk, DiskError> {
    let transport = Transport::from_device_path(link);
    let model = attr(&dir.join("device/model"));
    let serial = attr(&dir.join("serial"))
        .or_else(|| attr(&dir.join("device/serial")))
        .or_else(|| vpd_serial(&dir.join("device/vpd_pg80")));
    let wwid = attr(&dir.join("wwid")).or_else(|| attr(&dir.join("device/wwid")));
    let wwn = wwid.as_deref().and_then(wwn_of);
    let by_id = by_id_names(
        transport,
        model.as_deref(),
        serial.as_deref(),
        wwid.as_deref(),
    );
    let mut partitions = Vec::new();
    let mut holders = list_dir_lenient(&dir.join("holders"));
    for entry in list_dir(dir)? {
        let pdir = dir.join(&entry);
        let Some(number) = attr(&pdir.join("partition")) else {
            continue;
        };
        let number = number.parse().map_err(|_| DiskError::Parse {
            path: pdir.join("partition"),
            value: number.clone(),
            what: "a partition number",
        })?;
        partitions.push(Partition {
            dev: parse_dev(&pdir.join("dev"))?,
            size_bytes: parse_u64(&pdir.join("size"))?.saturating_mul(512),
            name: entry,
            number,
        });
        holders.extend(list_dir_lenient(&pdir.join("holders")));
    }
    partitions.sort_by_key(|p| p.number);
    holders.sort();
    holders.dedup();
    Ok(Disk {
        dev: parse_dev(&dir.join("dev"))?,
        size_bytes,
        rotational: attr(&dir.join("queue/rotational")).as_deref() == Some("1"),
        removable: attr(&dir.join("removable")).as_deref() == Some("1"),
        read_only: attr(&dir.join("ro")).as_deref() == Some("1"),
        name,
        model,
        serial,
        wwn,
        transport,
        partitions,
        holders,
        by_id,
        boot: false,
    })
}

/// The `/dev/disk/by-id` names udev's persistent-storage rules give a disk.
pub fn by_id_names(
    transport: Transport,
    model: Option<&str>,
    serial: Option<&str>,
    wwid: Option<&str>,
) -> Vec<String> {
    let mut names = Vec::new();
    let model_serial = match (model, serial) {
        (Some(m), Some(s)) => Some(format!("{}_{}", udev_escape(m), udev_escape(s))),
        _ => None,
    };
    match transport {
        Transport::Virtio => {
            if let Some(s) = serial {
                names.push(format!("virtio-{}", udev_escape(s)));
            }
        }
        Transport::Sata => {
            if let Some(ms) = model_serial {
                names.push(format!("ata-{ms}"));
            }
        }
        Transport::Nvme => {
            if let Some(ms) = model_serial {
                names.push(format!("nvme-{ms}"));
            }
            if let Some(w) = wwid {
                names.push(format!("nvme-{}", udev_escape(w)));
            }
        }
        Transport::Usb | Transport::Scsi | Transport::Mmc | Transport::Unknown => {}
    }
    if transport != Transport::Nvme {
        if let Some(w) = wwid.and_then(wwn_of).filter(|w| w.starts_with("0x")) {
            names.push(format!("wwn-{w}"));
        }
    }
    names
}

/// `naa.5000c500a1b2c3d4` → `0x5000c500a1b2c3d4`; `eui.0025…` → `eui.0025…`.
fn wwn_of(wwid: &str) -> Option<String> {
    let wwid = wwid.trim().to_ascii_lowercase();
    if let Some(naa) = wwid.strip_prefix("naa.") {
        Some(format!("0x{naa}"))
    } else if wwid.starts_with("eui.") {
        Some(wwid)
    } else {
        None
    }
}

/// udev's escaping of id strings: trim, each run of whitespace becomes one `_`, and
/// anything but ASCII alphanumerics and `#+-.:=@_` becomes `_`.
pub fn udev_escape(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join("_");
    joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The serial in a SCSI VPD page 0x80 (`device/vpd_pg80`): a 4-byte header whose
/// bytes 2..4 are the big-endian length, then the serial in ASCII.
pub fn parse_vpd_pg80(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let body = page.get(4..4 + len).unwrap_or(&page[4..]);
    let text = String::from_utf8_lossy(body);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

fn vpd_serial(path: &Path) -> Option<String> {
    fs::read(path).ok().as_deref().and_then(parse_vpd_pg80)
}

/// An optional attribute: trimmed, `None` when missing, empty or unreadable.
pub(crate) fn attr(path: &Path) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        }
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("{}: {e}", path.display());
            }
            None
        }
    }
}

/// A required attribute.
pub(crate) fn required(path: &Path) -> Result<String, DiskError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| DiskError::Read {
            path: path.to_owned(),
            source,
        })
}

fn parse_u64(path: &Path) -> Result<u64, DiskError> {
    let value = required(path)?;
    value.parse().map_err(|_| DiskError::Parse {
        path: path.to_owned(),
        value,
        what: "a number",
    })
}

pub(crate) fn parse_dev(path: &Path) -> Result<DevNum, DiskError> {
    let value = required(path)?;
    DevNum::parse(&value).ok_or_else(|| DiskError::Parse {
        path: path.to_owned(),
        value,
        what: "a major:minor device number",
    })
}

/// Entry names of a directory, sorted.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, DiskError> {
    let read = |source| DiskError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read)? {
        names.push(
            entry
                .map_err(read)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    Ok(names)
}

/// Entry names of a directory that may be missing.
pub(crate) fn list_dir_lenient(dir: &Path) -> Vec<String> {
    list_dir(dir).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{FakeDisk, Fixture};

    #[test]
    fn transport_from_real_device_paths() {
        let cases = [
            ("../devices/pci0000:00/0000:00:02.0/virtio1/block/vda", Transport::Virtio),
            ("../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", Transport::Sata),
            ("../devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1", Transport::Nvme),
            ("../devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb", Transport::Usb),
            ("../devices/pci0000:00/0000:00:03.0/virtio2/host0/target0:0:0/0:0:0:0/block/sdc", Transport::Scsi),
            ("../devices/platform/soc/mmc_host/mmc0/mmc0:0001/block/mmcblk0", Transport::Mmc),
            ("", Transport::Unknown),
        ];
        for (path, want) in cases {
            assert_eq!(Transport::from_device_path(path), want, "{path}");
        }
    }

    #[test]
    fn by_id_names_follow_udev() {
        assert_eq!(
            by_id_names(Transport::Virtio, None, Some("S1"), None),
            ["virtio-S1"]
        );
        assert_eq!(
            by_id_names(
                Transport::Sata,
                Some("WDC WD40EFRX-68N32N0"),
                Some("WD-WCC7K1234567"),
                Some("naa.50014EE2B1234567"),
            ),
            [
                "ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567",
                "wwn-0x50014ee2b1234567"
            ]
        );
        assert_eq!(
            by_id_names(
                Transport::Nvme,
                Some("Samsung SSD 970 EVO Plus 1TB"),
                Some("S4EWNX0R123456A"),
                Some("eui.0025385b71b1234a"),
            ),
            [
                "nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A",
                "nvme-eui.0025385b71b1234a"
            ]
        );
        assert!(by_id_names(Transport::Usb, Some("m"), Some("s"), None).is_empty());
        assert_eq!(udev_escape("  a  b/c\t"), "a_b_c");
    }

    #[test]
    fn vpd_page_80_serial() {
        let mut page = vec![0, 0x80, 0, 20];
        page.extend_from_slice(b"     WD-WCC7K1234567");
        assert_eq!(parse_vpd_pg80(&page).as_deref(), Some("WD-WCC7K1234567"));
        assert_eq!(parse_vpd_pg80(&[0, 0x83, 0, 0]), None);
        assert_eq!(parse_vpd_pg80(&[0, 0x80, 0, 0]), None);
    }

    #[test]
    fn discovers_disks_and_skips_virtual_devices() {
        let fx = Fixture::new();
        fx.disk(&FakeDisk::virtio("vda", "boot0", 16 << 30).partition(1, 16 << 30));
        fx.disk(&FakeDisk::virtio("vdb", "S1", 1 << 30));
        fx.disk(
            &FakeDisk::sata("sda", "WDC WD40EFRX-68N32N0", "WD-WCC7K1", 4 << 40)
                .rotational()
                .wwid("naa.50014ee2b1234567"),
        );
        fx.disk(&FakeDisk::nvme(
            "nvme0n1",
            "Samsung SSD 970",
            "S4EW",
            1 << 40,
        ));
        fx.virtual_device("loop0", 4096);
        fx.virtual_device("zram0", 4096);
        fx.virtual_device("md127", 4096);
        fx.mountinfo(&[("254:1", "/", "/dev/vda1")]);
        let disks = discover(&fx.root(), &[]).unwrap();
        let names: Vec<_> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "vda", "vdb"]);
        let sda = &disks[1];
        assert_eq!(sda.transport, Transport::Sata);
        assert_eq!(sda.model.as_deref(), Some("WDC WD40EFRX-68N32N0"));
        assert_eq!(sda.serial.as_deref(), Some("WD-WCC7K1"));
        assert_eq!(sda.size_bytes, 4 << 40);
        assert!(sda.rotational);
        assert_eq!(
            sda.by_id,
            [
                "ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1",
                "wwn-0x50014ee2b1234567"
            ]
        );
        assert_eq!(sda.wwn.as_deref(), Some("0x50014ee2b1234567"));
        let nvme = &disks[0];
        assert_eq!(nvme.transport, Transport::Nvme);
        assert_eq!(nvme.by_id[0], "nvme-Samsung_SSD_970_S4EW");
        let vda = &disks[2];
        assert!(vda.boot, "vda1 is mounted at /");
        assert_eq!(vda.partitions.len(), 1);
        assert_eq!(vda.partitions[0].name, "vda1");
        let vdb = &disks[3];
        assert!(!vdb.boot);
        assert_eq!(vdb.by_id, ["virtio-S1"]);
        assert_eq!(vdb.label(), "vdb (serial S1)");
    }

    #[test]
    fn boot_hint_marks_a_disk() {
        let fx = Fixture::new();
        fx.disk(&FakeDisk::virtio("vdb", "S1", 1 << 30));
        fx.disk(&FakeDisk::virtio("vdc", "S2", 1 << 30));
        let disks = discover(&fx.root(), &["virtio-S2".to_owned()]).unwrap();
        assert!(!disks[0].boot);
        assert!(disks[1].boot);
    }

    /// The real `/sys` of whatever machine runs the tests: discovery must cope with
    /// it (it is read-only and needs no privileges).
    #[test]
    fn discovers_this_machine() {
        let disks = discover(&Root::default(), &[]).unwrap();
        for d in &disks {
            assert!(d.size_bytes > 0 && !is_virtual(&d.name), "{d:?}");
        }
        crate::md::arrays(&Root::default()).unwrap();
    }

    #[test]
    fn missing_sys_block_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = discover(&Root::new(dir.path()), &[]).unwrap_err();
        assert!(e.to_string().contains("sys/block"), "{e}");
    }
}
