//! Booting a built image under QEMU and watching its console: shared by `hearth run`
//! and `hearth bench boot`.
//!
//! The VM comes from [`crate::qemu::VmSpec`] (never a hand-made argv): the kernel
//! command line from `build.json`, one blank sparse disk per configured array member
//! (serials kept, so stord finds them), one NIC per configured interface (the first
//! on user-mode networking, the rest on unconnected hubs). A clean shutdown is QMP
//! `system_powerdown` — an ACPI power-button press, which init handles (the image
//! loads the `button` and `evdev` modules for it) by stopping agents and powering off.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::buildinfo::{self, BuildInfo};
use crate::qemu::{Disk, DiskFormat, Nic, Serial, VmSpec};
use crate::serial::{self, Event};

/// Size of each blank disk (sparse).
pub const DISK_SIZE: u64 = 1 << 30;

/// Errors running a VM.
#[derive(Debug, Error)]
pub enum VmError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {}", crate::qemu::QEMU_BINARY)]
    Spawn(#[source] std::io::Error),
    #[error("QMP on {path}: {message}")]
    Qmp { path: PathBuf, message: String },
    #[error("the guest did not reach {marker:?} within {secs}s")]
    Timeout { marker: String, secs: u64 },
    #[error("the guest failed: {reason}")]
    GuestFailed { reason: String },
    #[error("QEMU exited ({status}) before the guest reached {marker:?}")]
    Exited { status: String, marker: String },
    #[error("the guest did not power off within {secs}s of system_powerdown")]
    NoPoweroff { secs: u64 },
}

impl VmError {
    /// Failures of the guest rather than of the host (exit code 4).
    pub fn is_guest_failure(&self) -> bool {
        matches!(
            self,
            VmError::Timeout { .. }
                | VmError::GuestFailed { .. }
                | VmError::Exited { .. }
                | VmError::NoPoweroff { .. }
        )
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VmError {
    let path = path.to_path_buf();
    move |source| VmError::Io {
        action,
        path,
        source,
    }
}

/// How to run an image.
#[derive(Debug, Clone)]
pub struct VmOptions {
    pub memory_mib: u32,
    /// Number of blank disks; `None` takes the config's array members.
    pub disks: Option<usize>,
    /// Console on our terminal (interactive) or into `<run dir>/serial.log`.
    pub interactive: bool,
    /// Add the control port (for `guestctld`).
    pub control: bool,
}

/// The disk serials for `info`, `count` overriding how many.
pub fn disk_serials(info: &BuildInfo, count: Option<usize>) -> Vec<String> {
    let mut serials = info.vm.disks.clone();
    if let Some(n) = count {
        serials.truncate(n);
        while serials.len() < n {
            serials.push(format!("HEARTH-DISK{}", serials.len()));
        }
    }
    serials
}

/// Describe the VM for the image in `dir`, creating blank disks in `run_dir`.
pub fn spec(
    dir: &Path,
    info: &BuildInfo,
    opts: &VmOptions,
    run_dir: &Path,
) -> Result<VmSpec, VmError> {
    let mut spec = VmSpec::new(dir.join(buildinfo::KERNEL), dir.join(buildinfo::INITRAMFS));
    spec.append = info.cmdline.clone();
    spec.memory_mib = opts.memory_mib;
    for (i, serial) in disk_serials(info, opts.disks).into_iter().enumerate() {
        let path = run_dir.join(format!("disk{i}.img"));
        if !path.exists() {
            let file = std::fs::File::create(&path).map_err(io_err("creating disk", &path))?;
            file.set_len(DISK_SIZE)
                .map_err(io_err("sizing disk", &path))?;
        }
        spec.disks.push(Disk {
            path,
            id: format!("disk{i}"),
            serial,
            format: DiskFormat::Raw,
        });
    }
    for (i, name) in info.vm.interfaces.iter().enumerate() {
        let id = format!("nic{i}");
        let mac = Some(format!("52:54:00:12:34:{:02x}", 0x56 + i));
        spec.nics.push(if i == 0 {
            Nic::User { id, mac }
        } else {
            let _ = name;
            Nic::Hub {
                id,
                hubid: i as u32,
                mac,
            }
        });
    }
    spec.serial = if opts.interactive {
        Serial::Stdio
    } else {
        Serial::File(run_dir.join("serial.log"))
    };
    spec.qmp_socket = Some(run_dir.join("qmp.sock"));
    if opts.control {
        spec.control_socket = Some(run_dir.join("ctl.sock"));
    }
    Ok(spec)
}

/// A running VM whose serial console goes to a file.
pub struct Vm {
    child: Child,
    spec: VmSpec,
    log: Option<std::fs::File>,
    pending: Vec<u8>,
    /// Every console line so far.
    pub lines: Vec<String>,
    /// When QEMU was spawned.
    pub started: Instant,
}

impl Vm {
    /// Spawn QEMU for `spec`. With a file console, QEMU's own stdio is discarded;
    /// with stdio it is inherited.
    pub fn spawn(spec: VmSpec) -> Result<Vm, VmError> {
        if let Serial::File(path) = &spec.serial {
            let _ = std::fs::remove_file(path);
        }
        for sock in [&spec.qmp_socket, &spec.control_socket]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(sock);
        }
        let mut cmd = spec.command();
        if let Serial::File(_) = spec.serial {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        let started = Instant::now();
        let child = cmd.spawn().map_err(VmError::Spawn)?;
        Ok(Vm {
            child,
            spec,
            log: None,
            pending: Vec::new(),
            lines: Vec::new(),
            started,
        })
    }

    /// Wait for QEMU to exit (interactive runs).
    pub fn wait(&mut self) -> Result<std::process::ExitStatus, VmError> {
        self.child.wait().map_err(VmError::Spawn)
    }

    /// Read new console lines from the log file.
    fn poll_lines(&mut self) -> Vec<String> {
        let Serial::File(path) = &self.spec.serial else {
            return Vec::new();
        };
        if self.log.is_none() {
            self.log = std::fs::File::open(path).ok();
        }
        let Some(log) = self.log.as_mut() else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        let _ = log.read_to_end(&mut buf);
        self.pending.extend_from_slice(&buf);
        let mut new = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            new.push(text);
        }
        self.lines.extend(new.iter().cloned());
        new
    }

    /// Wait until a console line contains `marker`; returns the time since spawn.
    /// Fails on a failure marker, on QEMU exiting or after `timeout`.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<Duration, VmError> {
        loop {
            for line in self.poll_lines() {
                if line.contains(marker) {
                    return Ok(self.started.elapsed());
                }
                if let Event::Failed(reason) = serial::classify(&line) {
                    return Err(VmError::GuestFailed { reason });
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // One last read: the marker may have been written just before exit.
                for line in self.poll_lines() {
                    if line.contains(marker) {
                        return Ok(self.started.elapsed());
                    }
                }
                return Err(VmError::Exited {
                    status: status.to_string(),
                    marker: marker.to_string(),
                });
            }
            if self.started.elapsed() > timeout {
                return Err(VmError::Timeout {
                    marker: marker.to_string(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Press the power button (QMP `system_powerdown`) and wait for QEMU to exit.
    pub fn powerdown(&mut self, timeout: Duration) -> Result<(), VmError> {
        self.qmp("system_powerdown")?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.poll_lines();
            if let Ok(Some(_)) = self.child.try_wait() {
                self.poll_lines();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(VmError::NoPoweroff {
            secs: timeout.as_secs(),
        })
    }

    /// Run one QMP command without arguments.
    pub fn qmp(&self, command: &str) -> Result<serde_json::Value, VmError> {
        let path = self.spec.qmp_socket.clone().ok_or_else(|| VmError::Qmp {
            path: PathBuf::new(),
            message: "the VM has no QMP socket".into(),
        })?;
        let err = |message: String| VmError::Qmp {
            path: path.clone(),
            message,
        };
        let stream = UnixStream::connect(&path).map_err(|e| err(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| err(e.to_string()))?;
        let mut writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut reader = BufReader::new(stream);
        let read_reply =
            |reader: &mut BufReader<UnixStream>| -> Result<serde_json::Value, VmError> {
                loop {
                    let mut line = String::new();
                    if reader
                        .read_line(&mut line)
                        .map_err(|e| err(format!("read: {e}")))?
                        == 0
                    {
                        return Err(err("connection closed".into()));
                    }
                    let value: serde_json::Value = serde_json::from_str(&line)
                        .map_err(|e| err(format!("bad reply {line:?}: {e}")))?;
                    if value.get("return").is_some() || value.get("QMP").is_some() {
                        return Ok(value);
                    }
                    if let Some(e) = value.get("error") {
                        return Err(err(e.to_string()));
                    }
                    // Asynchronous events: skip.
                }
            };
        read_reply(&mut reader)?; // greeting
        for cmd in ["qmp_capabilities", command] {
            writeln!(writer, "{{\"execute\":\"{cmd}\"}}")
                .map_err(|e| err(format!("write: {e}")))?;
            let reply = read_reply(&mut reader)?;
            if cmd == command {
                return Ok(reply);
            }
        }
        unreachable!("the loop returns on the last command")
    }

    /// Send one JSON line to the control port and read one reply line.
    pub fn control(
        &self,
        request: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, VmError> {
        let path = self
            .spec
            .control_socket
            .clone()
            .ok_or_else(|| VmError::Qmp {
                path: PathBuf::new(),
                message: "the VM has no control socket".into(),
            })?;
        let err = |message: String| VmError::Qmp {
            path: path.clone(),
            message,
        };
        let stream = UnixStream::connect(&path).map_err(|e| err(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| err(e.to_string()))?;
        let mut writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        writeln!(writer, "{request}").map_err(|e| err(format!("write: {e}")))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .map_err(|e| err(format!("read: {e}")))?;
        serde_json::from_str(&line).map_err(|e| err(format!("bad reply {line:?}: {e}")))
    }

    /// The last `n` console lines.
    pub fn tail(&mut self, n: usize) -> &[String] {
        self.poll_lines();
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    /// Stop QEMU now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}
