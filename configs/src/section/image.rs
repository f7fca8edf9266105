//! `[image]`: what the builder puts into the image.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::validate::{path, Findings};
use crate::value::{list, module_list, package_list, package_name, Url};
use crate::Config;

/// `[image]`: kernel, extra packages and modules, output formats, package source.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Debian kernel package. Default `linux-image-amd64`.
    #[serde(default = "default_kernel", deserialize_with = "package_name")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9+.-]+$"))]
    pub kernel: String,
    /// Extra Debian packages to unpack into the image.
    #[serde(default, deserialize_with = "package_list")]
    #[schemars(inner(pattern(r"^[a-z0-9][a-z0-9+.-]+$")))]
    pub extra_packages: Vec<String>,
    /// Extra kernel modules to load at boot (dependencies are added automatically).
    #[serde(default, deserialize_with = "module_list")]
    #[schemars(inner(pattern(r"^[A-Za-z0-9_-]{1,55}$")))]
    pub modules: Vec<String>,
    /// Ship busybox and a shell. Default false.
    #[serde(default)]
    pub debug_shell: bool,
    /// What to build. Default `["initramfs"]`.
    #[serde(default = "default_formats", deserialize_with = "list")]
    pub formats: Vec<ImageFormat>,
    /// Debian mirror URL (`http(s)://` or `file:///`). Absent: use the build host's
    /// apt sources.
    #[serde(default, deserialize_with = "mirror")]
    #[schemars(pattern(r"^(https?://[^/?#\s]+|file:///)"))]
    pub mirror: Option<String>,
    /// Debian suites to use (e.g. `["bookworm", "bookworm-updates"]`). Absent: the
    /// build host's.
    #[serde(default)]
    pub suites: Option<Vec<String>>,
}

/// An output of `hearth build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// A kernel plus a cpio initramfs.
    Initramfs,
    /// A bootable disk image.
    Disk,
    /// A signed update bundle.
    UpdateBundle,
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TOML spelling.
        let name = serde_json::to_value(self).expect("unit variants serialize");
        f.write_str(name.as_str().unwrap_or_default())
    }
}

fn default_kernel() -> String {
    "linux-image-amd64".to_owned()
}

fn default_formats() -> Vec<ImageFormat> {
    vec![ImageFormat::Initramfs]
}

fn mirror<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.starts_with("file:///") {
        return Ok(Some(s));
    }
    Url::try_from(s)
        .map(|u| Some(u.to_string()))
        .map_err(serde::de::Error::custom)
}

impl Default for Image {
    fn default() -> Self {
        Self {
            kernel: default_kernel(),
            extra_packages: Vec::new(),
            modules: Vec::new(),
            debug_shell: false,
            formats: default_formats(),
            mirror: None,
            suites: None,
        }
    }
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let image = &cfg.image;
    if image.formats.is_empty() {
        out.push(
            path("image.formats"),
            "at least one output format is needed",
        );
    }
    out.duplicates(
        image
            .formats
            .iter()
            .enumerate()
            .map(|(i, f)| (path("image.formats").at(i), *f)),
        |f| format!("format \"{f}\" is listed twice"),
    );
    out.duplicates(
        (image.extra_packages.iter().enumerate())
            .map(|(i, p)| (path("image.extra_packages").at(i), p.as_str())),
        |p| format!("package {p:?} is listed twice"),
    );
    if image.extra_packages.contains(&image.kernel) {
        out.push(
            path("image.extra_packages"),
            format!("{:?} is already the kernel package", image.kernel),
        );
    }
    if let Some(suites) = &image.suites {
        if suites.is_empty() {
            out.push(path("image.suites"), "an empty suite list selects nothing");
        }
        for (i, s) in suites.iter().enumerate() {
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                out.push(
                    path("image.suites").at(i),
                    format!("{s:?} is not a Debian suite name ([a-z0-9-]+)"),
                );
            }
        }
    }
}
