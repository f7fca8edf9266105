//! The write side of the md boundary: every change stord makes to md arrays goes
//! through [`MdAdmin`], and the real implementation ([`Mdadm`]) runs Debian's
//! `/sbin/mdadm` from the image.
//!
//! Why mdadm and not sysfs/ioctls from Rust: the on-disk format must stay compatible
//! with stock mdadm in both directions (an array Hearth creates must assemble on any
//! Linux box), and mdadm is the reference writer of that format — superblock layout,
//! data offsets, bad-block logs, bitmaps. Writing superblocks ourselves would be a
//! second implementation of the format to keep bug-compatible. The kernel state is
//! still *read* directly from sysfs ([`crate::md::arrays`]); only changes go here.
//! The trait is narrow (one method per operation stord needs) so the reconcile logic
//! is tested against `RecordingMd` (tests), which records every call and can be told to fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_config::RaidLevel;

use super::superblock::ArrayUuid;

/// Where the image ships mdadm.
pub const MDADM: &str = "/sbin/mdadm";

/// mdadm is killed after this long: the agent must never wedge on one command.
pub const MDADM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A failed md operation: the command and what it printed.
#[derive(Debug, thiserror::Error)]
pub enum MdadmError {
    /// The program could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The whole command line.
        command: String,
        /// Exit status.
        status: String,
        /// Its error output, trimmed.
        stderr: String,
    },
}

/// A new array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    /// The config name; stored in the superblock, device `/dev/md/<name>`.
    pub name: String,
    /// RAID level.
    pub level: RaidLevel,
    /// Active members, in slot order (`/dev/vdb`).
    pub members: Vec<PathBuf>,
    /// Hot spares.
    pub spares: Vec<PathBuf>,
}

/// Changes to md arrays, one method per operation. All but [`MdAdmin::remove_member`]
/// run mdadm; that one writes md sysfs, which works before md has noticed a pulled
/// disk.
pub trait MdAdmin {
    /// Create an array (metadata 1.2) and start it.
    fn create(&mut self, spec: &CreateSpec) -> Result<(), MdadmError>;
    /// Assemble array `uuid` from `devices` as `/dev/md/<name>`, starting it even if
    /// degraded.
    fn assemble(
        &mut self,
        name: &str,
        uuid: ArrayUuid,
        devices: &[PathBuf],
    ) -> Result<(), MdadmError>;
    /// Add `device` to running array `array` (`/dev/md127`): a spare, a rebuild
    /// target, or a returning member.
    fn add(&mut self, array: &Path, device: &Path) -> Result<(), MdadmError>;
    /// Take member `member` (a failed one, or one whose disk is gone) out of the
    /// array whose sysfs directory is `md_dir` (`/sys/block/md127/md`).
    fn remove_member(&mut self, md_dir: &Path, member: &str) -> Result<(), MdadmError>;
}

/// The real thing: `mdadm` run with stdin closed (it must never wait for an answer).
#[derive(Debug, Clone)]
pub struct Mdadm {
    program: PathBuf,
}

impl Default for Mdadm {
    fn default() -> Self {
        Self::new(MDADM)
    }
}

impl Mdadm {
    /// mdadm at `program`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    fn run(&self, args: &[String]) -> Result<(), MdadmError> {
        let command = format!("{} {}", self.program.display(), args.join(" "));
        log::debug!("running {command}");
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| MdadmError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        // Read stderr on a thread so a chatty mdadm cannot block on a full pipe.
        let mut pipe = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(p) = pipe.as_mut() {
                let _ = std::io::Read::read_to_string(p, &mut text);
            }
            text
        });
        let started = std::time::Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= MDADM_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("killed after {}s", MDADM_TIMEOUT.as_secs()));
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => break Err(e.to_string()),
            }
        };
        let stderr = reader.join().unwrap_or_default();
        match status {
            Ok(status) if status.success() => {
                for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if line.starts_with("mdadm:") {
                        log::info!("{line}");
                    } else {
                        log::info!("mdadm: {line}");
                    }
                }
                Ok(())
            }
            Ok(status) => Err(MdadmError::Failed {
                command,
                status: status.to_string(),
                stderr: stderr.trim().to_owned(),
            }),
            Err(status) => Err(MdadmError::Failed {
                command,
                status,
                stderr: stderr.trim().to_owned(),
            }),
        }
    }
}

/// The argument list of a create (a function so tests can check it).
pub fn create_args(spec: &CreateSpec) -> Vec<String> {
    let mut args = vec![
        "--create".to_owned(),
        format!("/dev/md/{}", spec.name),
        "--run".to_owned(),
        "--metadata=1.2".to_owned(),
        format!("--level={}", spec.level.number()),
        format!("--raid-devices={}", spec.members.len()),
        format!("--name={}", spec.name),
    ];
    if !spec.spares.is_empty() {
        args.push(format!("--spare-devices={}", spec.spares.len()));
    }
    args.extend(
        spec.members
            .iter()
            .chain(&spec.spares)
            .map(|p| p.display().to_string()),
    );
    args
}

impl MdAdmin for Mdadm {
    fn create(&mut self, spec: &CreateSpec) -> Result<(), MdadmError> {
        self.run(&create_args(spec))
    }

    fn assemble(
        &mut self,
        name: &str,
        uuid: ArrayUuid,
        devices: &[PathBuf],
    ) -> Result<(), MdadmError> {
        let mut args = vec![
            "--assemble".to_owned(),
            format!("/dev/md/{name}"),
            "--run".to_owned(),
            format!("--uuid={}", uuid.mdadm()),
        ];
        args.extend(devices.iter().map(|p| p.display().to_string()));
        self.run(&args)
    }

    fn add(&mut self, array: &Path, device: &Path) -> Result<(), MdadmError> {
        self.run(&[
            "--manage".to_owned(),
            array.display().to_string(),
            "--add".to_owned(),
            device.display().to_string(),
        ])
    }

    /// Through the kernel's own interface (`md.rst`): `faulty`, then `remove`, on
    /// `dev-<member>/state`. (`mdadm --fail detached --remove detached` left two
    /// pulled disks of an idle RAID6 in place in our QEMU runs; sysfs takes them out.)
    fn remove_member(&mut self, md_dir: &Path, member: &str) -> Result<(), MdadmError> {
        let state = md_dir.join(format!("dev-{member}")).join("state");
        let write = |value: &str| {
            std::fs::write(&state, value).map_err(|e| MdadmError::Failed {
                command: format!("echo {value} > {}", state.display()),
                status: "write failed".into(),
                stderr: e.to_string(),
            })
        };
        let flags = std::fs::read_to_string(&state).unwrap_or_default();
        if !flags.contains("faulty") {
            write("faulty")?;
        }
        write("remove")
    }
}

/// One recorded [`MdAdmin`] call.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdCall {
    Create(CreateSpec),
    Assemble {
        name: String,
        uuid: ArrayUuid,
        devices: Vec<PathBuf>,
    },
    Add {
        array: PathBuf,
        device: PathBuf,
    },
    RemoveMember {
        md_dir: PathBuf,
        member: String,
    },
}

/// Records every call; fails the calls `fail` selects; runs `effect` after each
/// successful call (tests use it to make the kernel's sysfs appear).
#[cfg(test)]
#[derive(Default)]
pub struct RecordingMd {
    pub calls: Vec<MdCall>,
    pub fail: Option<fn(&MdCall) -> bool>,
    pub effect: Option<Effect>,
}

/// What a `RecordingMd` (tests) does to the world after a successful call.
#[cfg(test)]
pub type Effect = Box<dyn FnMut(&MdCall)>;

#[cfg(test)]
impl std::fmt::Debug for RecordingMd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingMd")
            .field("calls", &self.calls)
            .finish()
    }
}

#[cfg(test)]
impl RecordingMd {
    fn record(&mut self, call: MdCall) -> Result<(), MdadmError> {
        let failed = self.fail.is_some_and(|f| f(&call));
        let command = format!("{call:?}");
        if !failed {
            if let Some(effect) = self.effect.as_mut() {
                effect(&call);
            }
        }
        self.calls.push(call);
        if failed {
            return Err(MdadmError::Failed {
                command,
                status: "exit status: 1".into(),
                stderr: "told to fail".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
impl MdAdmin for RecordingMd {
    fn create(&mut self, spec: &CreateSpec) -> Result<(), MdadmError> {
        self.record(MdCall::Create(spec.clone()))
    }
    fn assemble(
        &mut self,
        name: &str,
        uuid: ArrayUuid,
        devices: &[PathBuf],
    ) -> Result<(), MdadmError> {
        self.record(MdCall::Assemble {
            name: name.into(),
            uuid,
            devices: devices.to_vec(),
        })
    }
    fn add(&mut self, array: &Path, device: &Path) -> Result<(), MdadmError> {
        self.record(MdCall::Add {
            array: array.into(),
            device: device.into(),
        })
    }
    fn remove_member(&mut self, md_dir: &Path, member: &str) -> Result<(), MdadmError> {
        self.record(MdCall::RemoveMember {
            md_dir: md_dir.into(),
            member: member.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real sysfs writes, on a fixture `md/` directory.
    #[test]
    fn remove_member_writes_faulty_then_remove() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("dev-vdc/state");
        std::fs::create_dir_all(state.parent().unwrap()).unwrap();
        std::fs::write(&state, "in_sync\n").unwrap();
        Mdadm::default().remove_member(dir.path(), "vdc").unwrap();
        // A regular file keeps the last write; the kernel applies each in turn.
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "remove");
        let e = Mdadm::default()
            .remove_member(dir.path(), "vdx")
            .unwrap_err();
        assert!(e.to_string().contains("dev-vdx/state"), "{e}");
    }

    #[test]
    fn create_uses_metadata_1_2_the_config_name_and_spares_last() {
        let spec = CreateSpec {
            name: "tank".into(),
            level: RaidLevel::Raid5,
            members: vec!["/dev/vdb".into(), "/dev/vdc".into(), "/dev/vdd".into()],
            spares: vec!["/dev/vde".into()],
        };
        assert_eq!(
            create_args(&spec).join(" "),
            "--create /dev/md/tank --run --metadata=1.2 --level=5 --raid-devices=3 \
             --name=tank --spare-devices=1 /dev/vdb /dev/vdc /dev/vdd /dev/vde"
        );
    }

    /// The real runner reports a failing program with its command line and stderr.
    #[test]
    fn real_runner_reports_failures_with_stderr() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("mdadm");
        std::fs::write(&script, "#!/bin/sh\necho \"nope: $*\" >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut md = Mdadm::new(&script);
        let e = md
            .add(Path::new("/dev/md127"), Path::new("/dev/vdf"))
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("nope: --manage /dev/md127 --add /dev/vdf") && text.contains("3"),
            "{text}"
        );
        let mut missing = Mdadm::new("/nonexistent/mdadm");
        let e = missing
            .add(Path::new("/dev/md0"), Path::new("/dev/vdb"))
            .unwrap_err();
        assert!(matches!(e, MdadmError::Spawn { .. }), "{e}");
    }
}
