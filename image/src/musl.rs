//! Building Hearth's own binaries (init and agents) as static musl executables.
//!
//! `hearth build` runs `cargo build --release --target x86_64-unknown-linux-musl` in
//! the workspace, with the user's `CARGO_TARGET_DIR` (so a warm build is a no-op) and
//! `SOURCE_DATE_EPOCH` from the last commit, so the binaries are reproducible: the
//! workspace path is stable and the release profile strips symbols.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// The target triple of everything that runs in the image.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Errors building the binaries.
#[derive(Debug, Error)]
pub enum CargoError {
    #[error("running `{command}` in {workspace} (is cargo on PATH?)")]
    Spawn {
        command: String,
        workspace: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); its output is above")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error("cargo built {package} but {path} is missing")]
    Missing { package: String, path: PathBuf },
}

/// The workspace this binary was built from.
pub fn default_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `SOURCE_DATE_EPOCH` if set, else the last commit's time in `workspace`, else 0.
pub fn source_date_epoch(workspace: &Path) -> u64 {
    if let Some(v) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return v;
    }
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Build `packages` (each package's binary has the package's name) and return the
/// path of each binary, in the same order.
pub fn build(workspace: &Path, packages: &[&str], epoch: u64) -> Result<Vec<PathBuf>, CargoError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", TARGET]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.current_dir(workspace)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        // Cargo's own progress goes to our stderr; keep stdout for the summary.
        .stdout(std::process::Stdio::null());
    let command = format!(
        "cargo build --release --target {TARGET} -p {}",
        packages.join(" -p ")
    );
    let status = cmd.status().map_err(|source| CargoError::Spawn {
        command: command.clone(),
        workspace: workspace.to_path_buf(),
        source,
    })?;
    if !status.success() {
        return Err(CargoError::Failed { command, status });
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_relative() {
                workspace.join(d)
            } else {
                d
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let dir = target_dir.join(TARGET).join("release");
    packages
        .iter()
        .map(|p| {
            let path = dir.join(p);
            if path.is_file() {
                Ok(path)
            } else {
                Err(CargoError::Missing {
                    package: p.to_string(),
                    path,
                })
            }
        })
        .collect()
}
