//! The image scenarios boot.
//!
//! `HEARTH_TEST_IMAGE=<dir>` names a ready image (e.g. from CI or a hand-built one).
//! Otherwise the first scenario to ask builds one with the real builder —
//! `cargo run --release -p hearth -- build --test-agent --out <target>/qemu-image` from
//! the workspace root — and every later scenario in the same test process reuses it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Error;

/// Names a prebuilt image directory to use instead of building one.
pub const IMAGE_ENV: &str = "HEARTH_TEST_IMAGE";

/// The image directory to boot (building it once per process if needed).
pub fn test_image() -> Result<PathBuf, Error> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(dir) = std::env::var_os(IMAGE_ENV) {
        return Ok(PathBuf::from(dir));
    }
    IMAGE
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(|output| Error::ImageBuild {
            status: "see above".into(),
            output,
        })
}

fn build() -> Result<PathBuf, Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qemu-tests sits in the workspace")
        .to_path_buf();
    let out = crate::artefacts::target_dir().join("qemu-image");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "run",
            "--release",
            "-p",
            "hearth",
            "--",
            "build",
            "--test-agent",
            "--out",
        ])
        .arg(&out)
        .output()
        .map_err(|source| Error::Io {
            what: "running cargo in",
            path: workspace.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::ImageBuild {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(out)
}
