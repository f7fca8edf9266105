//! `build.json`: what `hearth build` produced, for people and for `hearth run DIR`.
//!
//! Written last, after both images are in place, so its presence means the output
//! directory is complete. `hearth run` boots from it without reading the config again:
//! it carries the kernel command line and the disks and NICs a test VM should have.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The file name in the output directory.
pub const FILE_NAME: &str = "build.json";
/// The kernel image in the output directory.
pub const KERNEL: &str = "vmlinuz";
/// The initramfs in the output directory.
pub const INITRAMFS: &str = "initramfs.cpio.zst";
/// The kernel command line Hearth images boot with.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// Errors reading `build.json`.
#[derive(Debug, Error)]
pub enum BuildInfoError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a hearth build.json")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// One package that went into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// The VM `hearth run` should give this image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmHints {
    /// Disk serials (one blank disk each).
    pub disks: Vec<String>,
    /// Interface names (one NIC each, in order).
    pub interfaces: Vec<String>,
    /// The image has `guestctld` on the control port.
    pub test_agent: bool,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub kernel_version: String,
    pub cmdline: String,
    pub source_date_epoch: u64,
    pub config: String,
    pub hostname: String,
    pub outputs: Vec<Output>,
    /// Size of the uncompressed cpio archive.
    pub initramfs_uncompressed: u64,
    pub modules: Vec<String>,
    pub packages: Vec<PackageInfo>,
    pub vm: VmHints,
}

impl BuildInfo {
    pub fn read(dir: &Path) -> Result<Self, BuildInfoError> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| BuildInfoError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BuildInfoError::Parse { path, source })
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("build info always serializes");
        s.push('\n');
        s
    }
}
