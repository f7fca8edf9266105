//! The Hearth appliance config: one versioned TOML file (`version = 1`) describes the
//! whole appliance — system, image, network, DNS, DHCP, storage, services,
//! monitoring and updates — and this crate is the only place that reads it.
//!
//! Checking happens in two layers, and [`parse`] runs both:
//!
//! 1. **Parsing.** Every value has a type that rejects bad values while it is
//!    deserialized ([`value`]: `VlanId` 1..=4094, `Cidr`, `IfName` ≤ 15 bytes,
//!    `RaidLevel`, `Duration`, `Size`, ...), and every table denies unknown keys.
//!    Each top-level section is deserialized on its own, so one bad section does not
//!    hide errors in the others.
//! 2. **Validation.** Rules that need more than one value — overlapping subnets,
//!    duplicate VLAN ids, RAID level versus disk count, references to unknown
//!    arrays, zones or targets — run over the parsed config and report *all*
//!    violations ([`validate`]).
//!
//! Every problem becomes a [`Diagnostic`] with `file:line:col`, the field path
//! (`network.segments[1].vlan`) and the reason; [`ConfigErrors`] prints one per line.
//! Positions come from `toml`'s span-annotated parse tree ([`locate`]).
//!
//! ```
//! let src = "version = 1\n[system]\nhostname = \"-nas\"\n";
//! let errors = hearth_config::parse(src, "my.toml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "my.toml:3:12: system.hostname: \"-nas\" is not a valid hostname: \
//!      a label must not start or end with '-'"
//! );
//!
//! let config = hearth_config::parse(hearth_config::DEFAULT_TOML, hearth_config::DEFAULT_NAME)
//!     .expect("the default is valid");
//! assert_eq!(config.system.hostname.as_str(), "hearth");
//! ```
//!
//! The embedded default ([`DEFAULT_TOML`], `configs/default.toml`) is a home
//! router and NAS; `configs/examples/` has more. [`json_schema`] describes the
//! format for editors.

mod error;
pub mod locate;
mod read;
pub mod section;
pub mod validate;
pub mod value;

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use error::{ConfigErrors, Diagnostic, LoadError};
pub use locate::FieldPath;
pub use section::dhcp::{Dhcp, Pool, Reservation};
pub use section::dns::{BlockAction, Blocklist, Cache, Dns, Eviction, Record, RecordType};
pub use section::image::{Image, ImageFormat};
pub use section::monitoring::{Monitoring, Rule, Target};
pub use section::network::{
    Action, Firewall, ForwardRule, Interface, Lan, Network, PortForward, Protocol, Role, Segment,
    Service, StaticRoute, Wan, ZoneAllow,
};
pub use section::services::{
    Backup, BackupJob, Export, LibraryDir, Media, Nfs, Retention, Services, Share, Smb,
};
pub use section::storage::{Array, Filesystem, ReplacePolicy, Storage};
pub use section::system::{Admin, System};
pub use section::update::Update;
pub use validate::Violation;
pub use value::*;

/// The embedded default config.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// The name diagnostics use for [`DEFAULT_TOML`].
pub const DEFAULT_NAME: &str = "configs/default.toml";

/// The only config format version this crate reads.
pub const VERSION: u32 = 1;

/// The whole appliance config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version; must be 1.
    #[serde(deserialize_with = "version")]
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Identity and administrative access.
    pub system: System,
    /// What goes into the image.
    #[serde(default)]
    pub image: Image,
    /// Interfaces, WAN, LAN, segments, firewall.
    #[serde(default)]
    pub network: Network,
    /// The resolver.
    #[serde(default)]
    pub dns: Dns,
    /// Address pools and reservations.
    #[serde(default)]
    pub dhcp: Dhcp,
    /// RAID arrays.
    #[serde(default)]
    pub storage: Storage,
    /// SMB, NFS, media, backup.
    #[serde(default)]
    pub services: Services,
    /// Alert rules and targets.
    #[serde(default)]
    pub monitoring: Monitoring,
    /// Signed updates. Absent: updates are off.
    #[serde(default)]
    pub update: Option<Update>,
}

pub(crate) fn version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u64::deserialize(d)?;
    if v != u64::from(VERSION) {
        return Err(serde::de::Error::custom(format!(
            "unsupported config version {v}; this Hearth reads version {VERSION}"
        )));
    }
    Ok(VERSION)
}

impl Config {
    /// Runs the cross-field rules; every violation, in rule order.
    pub fn validate(&self) -> Vec<Violation> {
        validate::validate(self)
    }
}

/// Parses and validates `src`; `file` is the name diagnostics carry. Returns every
/// problem found, parse-time and cross-field, in file order.
pub fn parse(src: &str, file: &str) -> Result<Config, ConfigErrors> {
    read::parse(src, file)
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&src, &path.display().to_string()).map_err(LoadError::Invalid)
}

/// The JSON schema of the config format.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is valid JSON")
}
