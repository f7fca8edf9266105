//! Storage value types: RAID levels and disk selectors.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValueError;

/// An md RAID level. Written `"raid5"` or `5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaidLevel {
    /// Striping, no redundancy.
    Raid0,
    /// Mirroring.
    Raid1,
    /// Striping with one parity disk.
    Raid5,
    /// Striping with two parity disks.
    Raid6,
    /// Striped mirrors.
    Raid10,
}

impl RaidLevel {
    /// The smallest number of member disks (excluding spares) this level accepts:
    /// raid0 ≥ 2, raid1 ≥ 2, raid5 ≥ 3, raid6 ≥ 4, raid10 ≥ 4.
    pub fn min_members(self) -> usize {
        match self {
            Self::Raid0 | Self::Raid1 => 2,
            Self::Raid5 => 3,
            Self::Raid6 | Self::Raid10 => 4,
        }
    }

    /// Whether the array survives losing a disk (and so can use spares).
    pub fn is_redundant(self) -> bool {
        !matches!(self, Self::Raid0)
    }

    /// The number `mdadm --level` takes.
    pub fn number(self) -> u8 {
        match self {
            Self::Raid0 => 0,
            Self::Raid1 => 1,
            Self::Raid5 => 5,
            Self::Raid6 => 6,
            Self::Raid10 => 10,
        }
    }

    fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Raid0,
            1 => Self::Raid1,
            5 => Self::Raid5,
            6 => Self::Raid6,
            10 => Self::Raid10,
            _ => return None,
        })
    }
}

const RAID_EXPECTED: &str = "expected raid0, raid1, raid5, raid6 or raid10 (or 0, 1, 5, 6, 10)";

impl TryFrom<u64> for RaidLevel {
    type Error = ValueError;
    fn try_from(n: u64) -> Result<Self, ValueError> {
        Self::from_number(n)
            .ok_or_else(|| ValueError::invalid("RAID level", &n.to_string(), RAID_EXPECTED))
    }
}

impl TryFrom<String> for RaidLevel {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        s.strip_prefix("raid")
            .and_then(|n| n.parse().ok())
            .and_then(Self::from_number)
            .ok_or_else(|| ValueError::invalid("RAID level", &s, RAID_EXPECTED))
    }
}

impl fmt::Display for RaidLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raid{}", self.number())
    }
}

impl<'de> Deserialize<'de> for RaidLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Name(String),
        }
        // Untagged over scalars keeps the value's span: toml hands the scalar over
        // whole, and the error below is raised by this value's own deserializer.
        let parsed = match Raw::deserialize(d)? {
            Raw::Number(n) => Self::try_from(n),
            Raw::Name(s) => Self::try_from(s),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

impl Serialize for RaidLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for RaidLevel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RaidLevel".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                {"type": "string", "enum": ["raid0", "raid1", "raid5", "raid6", "raid10"]},
                {"type": "integer", "enum": [0, 1, 5, 6, 10]}
            ]
        })
    }
}

/// How a disk is found: `{ serial = "WD-WX12..." }` (the drive's serial number) or
/// `{ by_id = "ata-WDC_WD40EFRX-..." }` (a name under /dev/disk/by-id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskSelector {
    /// The drive's serial number.
    Serial(String),
    /// A name under /dev/disk/by-id.
    ById(String),
}

impl DiskSelector {
    /// The serial number, when the disk is selected by serial.
    pub fn serial(&self) -> Option<&str> {
        match self {
            Self::Serial(s) => Some(s),
            Self::ById(_) => None,
        }
    }

    /// The /dev/disk/by-id name, when the disk is selected by one.
    pub fn by_id(&self) -> Option<&str> {
        match self {
            Self::Serial(_) => None,
            Self::ById(s) => Some(s),
        }
    }
}

impl fmt::Display for DiskSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serial(s) => write!(f, "serial {s}"),
            Self::ById(s) => write!(f, "by_id {s}"),
        }
    }
}

/// The TOML shape of a [`DiskSelector`]: a table with exactly one of the keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskSelectorToml {
    serial: Option<String>,
    by_id: Option<String>,
}

impl JsonSchema for DiskSelector {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DiskSelector".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"serial": {"type": "string", "pattern": "^[^/\\s]+$"}},
                    "required": ["serial"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {"by_id": {"type": "string", "pattern": "^[^/\\s]+$"}},
                    "required": ["by_id"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for DiskSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = DiskSelectorToml::deserialize(d)?;
        let check = |kind: &'static str, s: String| {
            if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
                Err(serde::de::Error::custom(ValueError::invalid(
                    kind,
                    &s,
                    "must be non-empty, without '/' or whitespace",
                )))
            } else {
                Ok(s)
            }
        };
        match (raw.serial, raw.by_id) {
            (Some(s), None) => Ok(Self::Serial(check("disk serial", s)?)),
            (None, Some(s)) => Ok(Self::ById(check("disk by-id name", s)?)),
            _ => Err(serde::de::Error::custom(
                "a disk selector needs exactly one of `serial` or `by_id`",
            )),
        }
    }
}
