//! Value types that reject bad values while parsing.
//!
//! Each type owns one rule ("a VLAN id is 1..=4094", "an interface name fits in
//! IFNAMSIZ") and is deserialized through `TryFrom<String>` or `TryFrom<u64>`, so a
//! bad value is reported by serde at the value's own position and nothing downstream
//! ever sees it. Rules that need more than one value live in `validate`.

mod access;
mod cron;
mod list;
mod location;
mod names;
mod net;
mod storage;
mod units;

pub use access::{Console, PasswordHash, PublicKey, SshKey};
pub use cron::CronSchedule;
pub(crate) use list::{list, split_index};
pub use location::{AbsPath, BackupTarget, Email, RelPath, Url};
pub(crate) use names::{module_list, package_list, package_name};
pub use names::{DomainName, Hostname, Name, SegmentName, Timezone, UserName};
pub use net::{Cidr, IfName, MacAddr, Mtu, Port, Upstream, VlanId};
pub use storage::{DiskSelector, RaidLevel};
pub use units::{Duration, Size};

/// Why a single value was rejected while parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A VLAN id outside 1..=4094.
    #[error("VLAN id {0} is out of range 1..=4094")]
    VlanId(u64),
    /// A TCP/UDP port outside 1..=65535.
    #[error("port {0} is out of range 1..=65535")]
    Port(u64),
    /// An MTU outside 68..=9000.
    #[error("MTU {0} is out of range 68..=9000")]
    Mtu(u64),
    /// A malformed value of some kind: the kind, the value and the rule it breaks.
    #[error("{value:?} is not a valid {kind}: {reason}")]
    Invalid {
        /// What the value should have been ("CIDR", "MAC address", ...).
        kind: &'static str,
        /// The rejected text.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

impl ValueError {
    pub(crate) fn invalid(kind: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            kind,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A validated string newtype `$ty(String)` with `as_str`, `Display` and `AsRef<str>`;
/// its `TryFrom<String>` (the validation) is written beside each type.
macro_rules! text_newtype {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Implements `Deserialize` (through `TryFrom<String>`), `Serialize` (through
/// `Display`), `FromStr` and a `JsonSchema` string schema for a string newtype.
macro_rules! string_value {
    ($ty:ident, $schema_name:literal, $schema:tt) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::value::ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s.to_owned())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

/// Implements `Deserialize` (through `TryFrom<u64>`), `Serialize` and a `JsonSchema`
/// integer schema for an integer newtype `$ty($inner)`.
macro_rules! int_value {
    ($ty:ident, $inner:ty, $schema_name:literal, $min:literal, $max:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = <u64 as serde::Deserialize>::deserialize(d)?;
                Self::try_from(n).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&self.0, s)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "integer", "minimum": $min, "maximum": $max})
            }
        }

        impl $ty {
            /// The number.
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

pub(crate) use {int_value, string_value, text_newtype};
