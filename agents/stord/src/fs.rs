//! File systems on arrays: made once (`mkfs.ext4`, or `mkfs.btrfs` when configured
//! and shipped) and mounted at the array's mount point — the mount boundary, behind
//! the narrow [`FsAdmin`] trait so the reconcile logic is tested with `RecordingFs` (tests).
//!
//! Whether an array already has a file system is not this module's call: the
//! reconcile reads the array device with [`crate::signature::scan`] and only a device
//! holding nothing is ever formatted.

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_config::Filesystem;

/// Directories searched for `mkfs.*` (the agent's PATH under init is minimal).
const TOOL_DIRS: [&str; 4] = ["/sbin", "/usr/sbin", "/bin", "/usr/bin"];

/// A failed file system operation, naming the device and the program or mount point.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The tool for the configured file system is not installed.
    #[error("{fs} is configured for {device} but {tool} is not in the image ({dirs})", dirs = TOOL_DIRS.join(", "))]
    NoTool {
        /// The file system.
        fs: &'static str,
        /// The program looked for.
        tool: &'static str,
        /// The array device.
        device: PathBuf,
    },
    /// mkfs could not run or failed.
    #[error("`{command}` failed: {reason}")]
    Mkfs {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
    /// Creating the mount point failed.
    #[error("creating mount point {path}")]
    MountPoint {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// mount(2) failed.
    #[error("mounting {device} ({fs}) at {path}")]
    Mount {
        /// The array device.
        device: PathBuf,
        /// The file system type.
        fs: &'static str,
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// The kernel's name for a file system type.
pub fn fs_type(fs: Filesystem) -> &'static str {
    match fs {
        Filesystem::Ext4 => "ext4",
        Filesystem::Btrfs => "btrfs",
    }
}

/// Making and mounting file systems.
pub trait FsAdmin {
    /// Make file system `fs` labelled `label` on `device`.
    fn mkfs(&mut self, device: &Path, fs: Filesystem, label: &str) -> Result<(), FsError>;
    /// Mount `device` at `path` (created if missing).
    fn mount(&mut self, device: &Path, fs: Filesystem, path: &Path) -> Result<(), FsError>;
}

/// The real thing: `mkfs.*` from the image and mount(2).
#[derive(Debug, Default, Clone)]
pub struct RealFs;

fn find_tool(name: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl FsAdmin for RealFs {
    fn mkfs(&mut self, device: &Path, fs: Filesystem, label: &str) -> Result<(), FsError> {
        let (tool, args): (&'static str, Vec<String>) = match fs {
            Filesystem::Ext4 => ("mkfs.ext4", vec!["-q".into(), "-L".into(), label.into()]),
            Filesystem::Btrfs => ("mkfs.btrfs", vec!["-q".into(), "-L".into(), label.into()]),
        };
        let program = find_tool(tool).ok_or_else(|| FsError::NoTool {
            fs: fs_type(fs),
            tool,
            device: device.to_owned(),
        })?;
        let command = format!(
            "{} {} {}",
            program.display(),
            args.join(" "),
            device.display()
        );
        log::info!("running {command}");
        let out = Command::new(&program)
            .args(&args)
            .arg(device)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| FsError::Mkfs {
                command: command.clone(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(FsError::Mkfs {
                command,
                reason: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    fn mount(&mut self, device: &Path, fs: Filesystem, path: &Path) -> Result<(), FsError> {
        std::fs::create_dir_all(path).map_err(|source| FsError::MountPoint {
            path: path.to_owned(),
            source,
        })?;
        nix::mount::mount(
            Some(device),
            path,
            Some(fs_type(fs)),
            nix::mount::MsFlags::MS_NOATIME,
            None::<&str>,
        )
        .map_err(|source| FsError::Mount {
            device: device.to_owned(),
            fs: fs_type(fs),
            path: path.to_owned(),
            source,
        })
    }
}

/// One recorded [`FsAdmin`] call.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsCall {
    Mkfs {
        device: PathBuf,
        fs: Filesystem,
        label: String,
    },
    Mount {
        device: PathBuf,
        fs: Filesystem,
        path: PathBuf,
    },
}

/// Records every call; fails every call when `fail` is set.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingFs {
    pub calls: Vec<FsCall>,
    pub fail: bool,
}

#[cfg(test)]
impl RecordingFs {
    fn record(&mut self, call: FsCall) -> Result<(), FsError> {
        let fail = self.fail;
        self.calls.push(call.clone());
        if fail {
            return Err(FsError::Mkfs {
                command: format!("{call:?}"),
                reason: "told to fail".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
impl FsAdmin for RecordingFs {
    fn mkfs(&mut self, device: &Path, fs: Filesystem, label: &str) -> Result<(), FsError> {
        self.record(FsCall::Mkfs {
            device: device.into(),
            fs,
            label: label.into(),
        })
    }
    fn mount(&mut self, device: &Path, fs: Filesystem, path: &Path) -> Result<(), FsError> {
        self.record(FsCall::Mount {
            device: device.into(),
            fs,
            path: path.into(),
        })
    }
}
