//! The md 1.2 superblock of a member disk, read from the disk itself (4 KiB from the
//! start): which array a disk belongs to before anything is assembled.
//!
//! stord decides "assemble, don't create" from this: a disk whose superblock names
//! the configured array (`<name>` or `<homehost>:<name>`) is an existing member and is
//! never wiped, whatever `storage.wipe` says. Only the fields that decision and the
//! logs need are read; the layout is `struct mdp_superblock_1` of the kernel's
//! `include/uapi/linux/raid/md_p.h` (little-endian).

use std::fmt;
use std::io;

use serde::Serialize;

use crate::signature::BlockRead;

/// Byte offset of a 1.2 superblock.
pub const OFFSET_1_2: u64 = 4096;
const MAGIC: u32 = 0xa92b_4efc;
const LEN: usize = 256;

/// An array's UUID (`set_uuid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArrayUuid(pub [u8; 16]);

impl ArrayUuid {
    /// The form `mdadm --assemble --uuid=` and `mdadm --examine` use:
    /// `01234567:89abcdef:01234567:89abcdef`.
    pub fn mdadm(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:{}:{}:{}",
            &hex[0..8],
            &hex[8..16],
            &hex[16..24],
            &hex[24..32]
        )
    }

    /// The form sysfs `md/uuid` uses: `01234567-89ab-cdef-0123-456789abcdef`.
    pub fn sysfs(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

impl fmt::Display for ArrayUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mdadm())
    }
}

impl Serialize for ArrayUuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a member's 1.2 superblock says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Superblock {
    /// The array's UUID.
    pub uuid: ArrayUuid,
    /// `set_name`: `name` or `homehost:name`.
    pub name: String,
    /// RAID level (0, 1, 4, 5, 6, 10; -1 linear).
    pub level: i32,
    /// Slots in the array.
    pub raid_disks: u32,
    /// This device's number (index into the role table).
    pub dev_number: u32,
    /// Event counter: the member with the highest is the freshest.
    pub events: u64,
}

impl Superblock {
    /// The array name without a `homehost:` prefix.
    pub fn array_name(&self) -> &str {
        self.name
            .rsplit_once(':')
            .map_or(self.name.as_str(), |(_, n)| n)
    }

    /// The fewest members this array runs with (degraded).
    pub fn min_members(&self) -> u32 {
        let n = self.raid_disks;
        match self.level {
            1 => 1,
            4 | 5 => n.saturating_sub(1),
            6 => n.saturating_sub(2),
            // near=2 layout: one disk of every mirror pair.
            10 => n.div_ceil(2),
            _ => n,
        }
    }

    /// Parse the 256-byte fixed part; `None` without the md magic or for a version
    /// other than 1.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < LEN {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if u32_at(0) != MAGIC || u32_at(4) != 1 {
            return None;
        }
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&b[16..32]);
        let raw_name = &b[32..64];
        let end = raw_name.iter().position(|c| *c == 0).unwrap_or(32);
        Some(Self {
            uuid: ArrayUuid(uuid),
            name: String::from_utf8_lossy(&raw_name[..end]).into_owned(),
            level: i32::from_le_bytes(b[72..76].try_into().ok()?),
            raid_disks: u32_at(92),
            dev_number: u32_at(160),
            events: u64_at(200),
        })
    }
}

/// The 1.2 superblock on `dev`, if it has one.
pub fn read(dev: &dyn BlockRead) -> io::Result<Option<Superblock>> {
    if dev.size()? < OFFSET_1_2 + LEN as u64 {
        return Ok(None);
    }
    let mut buf = vec![0; LEN];
    dev.read_at(&mut buf, OFFSET_1_2)?;
    Ok(Superblock::parse(&buf))
}

/// A superblock's fixed part as the kernel writes it (tests build disks with it).
#[cfg(test)]
pub(crate) fn encode(sb: &Superblock) -> Vec<u8> {
    let mut b = vec![0u8; LEN];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[16..32].copy_from_slice(&sb.uuid.0);
    b[32..32 + sb.name.len()].copy_from_slice(sb.name.as_bytes());
    b[72..76].copy_from_slice(&sb.level.to_le_bytes());
    b[92..96].copy_from_slice(&sb.raid_disks.to_le_bytes());
    b[160..164].copy_from_slice(&sb.dev_number.to_le_bytes());
    b[200..208].copy_from_slice(&sb.events.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(name: &str, level: i32, n: u32) -> Superblock {
        Superblock {
            uuid: ArrayUuid([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 7,
            ]),
            name: name.into(),
            level,
            raid_disks: n,
            dev_number: 2,
            events: 42,
        }
    }

    #[test]
    fn round_trips_and_formats_uuids_like_mdadm_and_sysfs() {
        let s = sb("hearth:tank", 5, 3);
        let parsed = Superblock::parse(&encode(&s)).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.array_name(), "tank");
        assert_eq!(parsed.uuid.mdadm(), "01234567:89abcdef:00010203:04050607");
        assert_eq!(parsed.uuid.sysfs(), "01234567-89ab-cdef-0001-020304050607");
    }

    #[test]
    fn min_members_per_level() {
        assert_eq!(sb("a", 0, 2).min_members(), 2);
        assert_eq!(sb("a", 1, 2).min_members(), 1);
        assert_eq!(sb("a", 5, 4).min_members(), 3);
        assert_eq!(sb("a", 6, 5).min_members(), 3);
        assert_eq!(sb("a", 10, 4).min_members(), 2);
    }

    #[test]
    fn rejects_other_magic_and_versions() {
        let mut b = encode(&sb("a", 1, 2));
        b[4] = 0;
        assert_eq!(Superblock::parse(&b), None);
        assert_eq!(Superblock::parse(&[0; 300]), None);
        assert_eq!(Superblock::parse(&[0; 10]), None);
    }
}
