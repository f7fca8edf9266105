//! The "blank disk" check: stord creates arrays only on disks that hold nothing it
//! recognises, because the NAS's first duty is never to destroy data.
//!
//! Reads go through [`BlockRead`] (a file at `/dev/<name>` on a machine, a temp file in
//! tests) and only at the fixed offsets where the formats below keep their magic:
//!
//! | what | where |
//! |---|---|
//! | MBR partition table | `55 AA` at 510 and a non-empty entry at 446..510 |
//! | GPT | `EFI PART` at LBA 1 (byte 512, or 4096 on 4K-sector disks), or the backup header in the last sector |
//! | ext2/3/4 | `53 EF` at 1080 (features tell the three apart) |
//! | btrfs | `_BHRfS_M` at 65600 |
//! | XFS | `XFSB` at 0 |
//! | swap | `SWAPSPACE2` / `SWAP-SPACE` at 4086 (4K pages) |
//! | md 1.1 / 1.2 | `FC 4E 2B A9` at 0 / 4096 |
//! | md 1.0 | the same magic 8K before the end, aligned down to 4K |
//! | md 0.90 | the same magic 64K before the end, aligned down to 64K |
//! | LUKS | `LUKS BA BE` at 0 |
//! | LVM2 PV | `LABELONE` at the start of one of the first four sectors |
//!
//! A disk with any of them is refused unless its serial is listed in `storage.wipe`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::disk::Disk;

/// Narrow read access to a block device.
pub trait BlockRead {
    /// Size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fill `buf` from byte `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A device node (or, in tests, a regular file) opened read-only.
#[derive(Debug)]
pub struct DeviceFile {
    file: File,
}

impl DeviceFile {
    /// Open `path` read-only.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
        })
    }
}

impl BlockRead for DeviceFile {
    fn size(&self) -> io::Result<u64> {
        // Block devices report length 0 in metadata; seeking to the end works for both.
        use std::io::Seek;
        (&self.file).seek(io::SeekFrom::End(0))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// What was found on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signature {
    /// An MBR partition table.
    Mbr,
    /// A GPT partition table.
    Gpt,
    /// An ext2, ext3 or ext4 file system.
    Ext {
        /// 2, 3 or 4.
        version: u8,
    },
    /// A btrfs file system.
    Btrfs,
    /// An XFS file system.
    Xfs,
    /// Swap space.
    Swap,
    /// An md RAID superblock.
    Md {
        /// `0.90`, `1.0`, `1.1` or `1.2`.
        version: &'static str,
        /// The array name stored in a 1.x superblock (`host:name`).
        name: Option<String>,
    },
    /// A LUKS encrypted volume.
    Luks,
    /// An LVM2 physical volume.
    Lvm,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mbr => f.write_str("MBR partition table"),
            Self::Gpt => f.write_str("GPT partition table"),
            Self::Ext { version } => write!(f, "ext{version} filesystem"),
            Self::Btrfs => f.write_str("btrfs filesystem"),
            Self::Xfs => f.write_str("xfs filesystem"),
            Self::Swap => f.write_str("swap space"),
            Self::Md { version, name } => {
                write!(f, "md superblock {version}")?;
                match name {
                    Some(n) => write!(f, " (array {n:?})"),
                    None => Ok(()),
                }
            }
            Self::Luks => f.write_str("LUKS header"),
            Self::Lvm => f.write_str("LVM2 physical volume label"),
        }
    }
}

/// A signature and the byte offset of its magic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// What.
    #[serde(flatten)]
    pub signature: Signature,
    /// Byte offset of the magic.
    pub offset: u64,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} found at byte {}", self.signature, self.offset)
    }
}

/// Why a disk may not be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The device could not be read.
    #[error("disk {disk}: reading {path}")]
    Read {
        /// The disk label (`vdb (serial S1)`).
        disk: String,
        /// The node read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The disk holds data and is not in `storage.wipe`.
    #[error("disk {disk}: {}; {}", list(found), if *serial_known {
        "not used: list its serial in storage.wipe to allow destroying it"
    } else {
        "not used: it reports no serial, so storage.wipe cannot name it"
    })]
    NotBlank {
        /// The disk label.
        disk: String,
        /// Everything found.
        found: Vec<Found>,
        /// Whether the disk has a serial `storage.wipe` could name.
        serial_known: bool,
    },
}

fn list(found: &[Found]) -> String {
    found
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

const MD_MAGIC: u32 = 0xa92b_4efc;

/// Every known signature on `dev`, in offset order.
pub fn scan(dev: &dyn BlockRead) -> io::Result<Vec<Found>> {
    let size = dev.size()?;
    let mut found = Vec::new();
    let read = |offset: u64, len: usize| -> io::Result<Option<Vec<u8>>> {
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Ok(None);
        }
        let mut buf = vec![0; len];
        dev.read_at(&mut buf, offset)?;
        Ok(Some(buf))
    };
    let at = |offset: u64, magic: &[u8]| -> io::Result<bool> {
        Ok(read(offset, magic.len())?.is_some_and(|b| b == magic))
    };
    let mut push = |signature, offset| found.push(Found { signature, offset });

    if let Some(sector) = read(0, 512)? {
        let entries = &sector[446..510];
        let has_entry = entries.chunks(16).any(|e| e[4] != 0);
        if sector[510..512] == [0x55, 0xAA] && has_entry {
            push(Signature::Mbr, 510);
        }
        if sector.starts_with(b"XFSB") {
            push(Signature::Xfs, 0);
        }
        if sector.starts_with(b"LUKS\xba\xbe") {
            push(Signature::Luks, 0);
        }
    }
    // The primary header at LBA 1 (512- or 4096-byte sectors), else the backup in
    // the last sector, which survives a wiped start of the disk.
    let last_lba = size.saturating_sub(512);
    for lba in [512, 4096, last_lba, size.saturating_sub(4096)] {
        if lba > 0 && at(lba, b"EFI PART")? {
            push(Signature::Gpt, lba);
            break;
        }
    }
    for sector in 0..4 {
        if at(sector * 512, b"LABELONE")? {
            push(Signature::Lvm, sector * 512);
            break;
        }
    }
    if let Some(sb) = read(1024, 1024)? {
        if sb[0x38..0x3A] == [0x53, 0xEF] {
            push(
                Signature::Ext {
                    version: ext_version(&sb),
                },
                1080,
            );
        }
    }
    if at(4086, b"SWAPSPACE2")? || at(4086, b"SWAP-SPACE")? {
        push(Signature::Swap, 4086);
    }
    let sectors = size / 512;
    let md1_0 = (sectors.saturating_sub(16) & !7) * 512;
    let md0_90 = ((sectors & !127).saturating_sub(128)) * 512;
    for (offset, version) in [(0, "1.1"), (4096, "1.2"), (md1_0, "1.0")] {
        if let Some(sb) = read(offset, 256)? {
            if le32(&sb, 0) == MD_MAGIC && le32(&sb, 4) == 1 {
                push(
                    Signature::Md {
                        version,
                        name: md_name(&sb),
                    },
                    offset,
                );
            }
        }
    }
    if sectors >= 128 {
        if let Some(sb) = read(md0_90, 8)? {
            // 0.90 is written in host byte order; this is a little-endian machine.
            if le32(&sb, 0) == MD_MAGIC && le32(&sb, 4) == 0 {
                push(
                    Signature::Md {
                        version: "0.90",
                        name: None,
                    },
                    md0_90,
                );
            }
        }
    }
    if at(65600, b"_BHRfS_M")? {
        push(Signature::Btrfs, 65600);
    }
    found.sort_by_key(|f| f.offset);
    found.dedup();
    Ok(found)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// ext4 when it uses a feature ext3 lacks, ext3 with a journal, else ext2 (the rule
/// blkid uses). `sb` is the 1024-byte superblock.
fn ext_version(sb: &[u8]) -> u8 {
    let compat = le32(sb, 0x5C);
    let incompat = le32(sb, 0x60);
    let ro_compat = le32(sb, 0x64);
    // ext3 knows FILETYPE, RECOVER, META_BG / SPARSE_SUPER, LARGE_FILE, BTREE_DIR.
    let ext3_incompat = 0x2 | 0x4 | 0x10;
    let ext3_ro_compat = 0x1 | 0x2 | 0x4;
    if incompat & !ext3_incompat != 0 || ro_compat & !ext3_ro_compat != 0 {
        4
    } else if compat & 0x4 != 0 {
        3
    } else {
        2
    }
}

/// `set_name` of an md 1.x superblock (bytes 32..64, NUL-padded).
fn md_name(sb: &[u8]) -> Option<String> {
    let raw = &sb[32..64];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// What [`check_blank`] allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "found", rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found.
    Blank,
    /// Data found, but the serial is in `storage.wipe`.
    Wipe(Vec<Found>),
}

/// Whether array creation may use `disk`: blank, or holding data its serial's
/// `storage.wipe` entry allows destroying.
pub fn check_blank(
    disk: &Disk,
    dev: &dyn BlockRead,
    path: &Path,
    wipe: &[String],
) -> Result<Verdict, SignatureError> {
    let found = scan(dev).map_err(|source| SignatureError::Read {
        disk: disk.label(),
        path: path.to_owned(),
        source,
    })?;
    if found.is_empty() {
        return Ok(Verdict::Blank);
    }
    if disk.serial.as_ref().is_some_and(|s| wipe.contains(s)) {
        return Ok(Verdict::Wipe(found));
    }
    Err(SignatureError::NotBlank {
        disk: disk.label(),
        found,
        serial_known: disk.serial.is_some(),
    })
}

#[cfg(test)]
mod tests;
