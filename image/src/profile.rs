//! The builder's view of a config: the few things `hearth build` and `hearth run`
//! need from it, taken from a validated `hearth_config::Config`.
//!
//! Keeping this view small means the build pipeline does not depend on the shape of
//! every config section: it needs the package and module choices, the config text to
//! embed verbatim, and enough of storage and network to give a test VM matching disks
//! and NICs.

use std::path::{Path, PathBuf};

use hearth_config::DiskSelector;
use thiserror::Error;

/// Errors loading the config for a build.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error(transparent)]
    Load(#[from] hearth_config::LoadError),
    #[error(transparent)]
    Invalid(#[from] hearth_config::ConfigErrors),
    /// A valid config asking for an output this builder cannot write yet; refused
    /// before anything is fetched or written rather than silently skipped.
    #[error("{config}: image.formats: {format:?} is not built yet; this builder writes only \"initramfs\"")]
    UnsupportedFormat {
        config: ConfigSource,
        format: String,
    },
}

/// Where the config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The default embedded in the binary (`configs/default.toml`).
    Embedded,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Embedded => write!(f, "{} (embedded)", hearth_config::DEFAULT_NAME),
        }
    }
}

/// What the builder needs from a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProfile {
    pub source: ConfigSource,
    /// The config file's text, copied verbatim into the image.
    pub text: String,
    pub hostname: String,
    /// The kernel package (a Debian package name).
    pub kernel: String,
    pub extra_packages: Vec<String>,
    pub modules: Vec<String>,
    pub debug_shell: bool,
    pub mirror: Option<String>,
    pub suites: Option<Vec<String>>,
    pub has_arrays: bool,
    /// Some array wants btrfs (the image then ships `mkfs.btrfs`).
    pub has_btrfs: bool,
    pub has_segments: bool,
    /// Serial numbers of the disks the storage arrays use, in config order.
    pub disk_serials: Vec<String>,
    /// Network interface names, in config order.
    pub interfaces: Vec<String>,
}

impl ImageProfile {
    /// Load and validate `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ProfileError> {
        match path {
            Some(path) => {
                let config = hearth_config::load(path)?;
                let text = std::fs::read_to_string(path).map_err(|source| {
                    hearth_config::LoadError::Io {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                Self::from_config(&config, text, ConfigSource::File(path.to_path_buf()))
            }
            None => {
                let text = hearth_config::DEFAULT_TOML.to_string();
                let config = hearth_config::parse(&text, hearth_config::DEFAULT_NAME)?;
                Self::from_config(&config, text, ConfigSource::Embedded)
            }
        }
    }

    fn from_config(
        config: &hearth_config::Config,
        text: String,
        source: ConfigSource,
    ) -> Result<Self, ProfileError> {
        let image = &config.image;
        if let Some(format) = image
            .formats
            .iter()
            .find(|f| **f != hearth_config::ImageFormat::Initramfs)
        {
            let format = serde_json::to_value(format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{format:?}"));
            return Err(ProfileError::UnsupportedFormat {
                config: source,
                format,
            });
        }
        // Members and spares; a `by_id` of a virtio disk is `virtio-<serial>`.
        let disk_serials = config
            .storage
            .arrays
            .iter()
            .flat_map(|a| a.members.iter().chain(&a.spares))
            .map(|d| match d {
                DiskSelector::Serial(s) => s.clone(),
                DiskSelector::ById(id) => id.strip_prefix("virtio-").unwrap_or(id).to_string(),
            })
            .collect();
        // No interfaces listed: the first NIC is the WAN, the others form the LAN.
        let interfaces = if config.network.interfaces.is_empty() {
            vec!["wan".to_string(), "lan".to_string()]
        } else {
            config
                .network
                .interfaces
                .iter()
                .enumerate()
                .map(|(i, iface)| match &iface.name {
                    Some(name) => name.to_string(),
                    None => format!("nic{i}"),
                })
                .collect()
        };
        Ok(ImageProfile {
            source,
            text,
            hostname: config.system.hostname.to_string(),
            kernel: image.kernel.clone(),
            extra_packages: image.extra_packages.clone(),
            modules: image.modules.clone(),
            debug_shell: image.debug_shell,
            mirror: image.mirror.clone(),
            suites: image.suites.clone(),
            has_arrays: !config.storage.arrays.is_empty(),
            has_btrfs: config
                .storage
                .arrays
                .iter()
                .any(|a| a.filesystem == hearth_config::Filesystem::Btrfs),
            has_segments: !config.network.segments.is_empty(),
            disk_serials,
            interfaces,
        })
    }

    /// The lock file for this config: beside the config file, or `./hearth.lock` for
    /// the embedded default.
    pub fn default_lock_path(&self) -> PathBuf {
        match &self.source {
            ConfigSource::File(path) => path
                .parent()
                .map(|d| d.join("hearth.lock"))
                .unwrap_or_else(|| PathBuf::from("hearth.lock")),
            ConfigSource::Embedded => PathBuf::from("hearth.lock"),
        }
    }

    /// A minimal profile for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        ImageProfile {
            source: ConfigSource::Embedded,
            text: String::new(),
            hostname: "hearth".into(),
            kernel: "linux-image-amd64".into(),
            extra_packages: vec![],
            modules: vec![],
            debug_shell: false,
            mirror: None,
            suites: None,
            has_arrays: false,
            has_btrfs: false,
            has_segments: false,
            disk_serials: vec![],
            interfaces: vec![],
        }
    }
}
