//! One booted guest: QEMU process, console log, control channel, QMP.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use guestctld::protocol::{ExecRequest, ExecResult, Op, ProcessInfo, RequestBody, ResponseBody};
use hearth::qemu::{Disk, Nic, Serial, VmSpec};
use serde_json::Value;

use crate::artefacts::Artefacts;
use crate::control::ControlClient;
use crate::initrd::{self, OverlayFile};
use crate::qmp::Qmp;
use crate::serial::{Pattern, SerialLog};
use crate::Error;

/// The shell every `sh` helper runs (README: busybox is in every test image).
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// How many console lines error messages quote.
const TAIL_LINES: usize = 30;

/// How long [`Guest::exec`] waits for the control channel to come up.
const CONTROL_CONNECT_TIMEOUT: Duration = Duration::from_secs(90);

/// Default timeout of commands run in the guest.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// A blank disk to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Serial number the guest sees; also the QEMU device id.
    pub serial: String,
    pub size_bytes: u64,
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Names the artefact directory; defaults to the test's thread name.
    pub name: String,
    /// The builder's output directory (`vmlinuz`, `initramfs.cpio.zst`, `build.json`).
    pub image: PathBuf,
    /// Files added to (or replaced in) the initramfs of this guest only.
    pub overlay: Vec<OverlayFile>,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<Nic>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Appended to the image's kernel command line.
    pub extra_append: String,
    /// A guest reboot ends QEMU.
    pub reboot_exits: bool,
    /// Spare PCIe ports for hot-plug (`hp0`, ...).
    pub hotplug_ports: u32,
}

impl GuestSpec {
    /// Boot `image` with 256 MiB, one CPU, nothing attached.
    pub fn new(image: impl Into<PathBuf>) -> Self {
        let name = std::thread::current()
            .name()
            .unwrap_or("guest")
            .rsplit("::")
            .next()
            .unwrap_or("guest")
            .to_string();
        GuestSpec {
            name,
            image: image.into(),
            overlay: Vec::new(),
            disks: Vec::new(),
            nics: Vec::new(),
            memory_mib: 256,
            cpus: 1,
            extra_append: String::new(),
            reboot_exits: true,
            hotplug_ports: 0,
        }
    }

    /// Add a file (mode 0644) to this guest's initramfs.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.overlay.push(OverlayFile {
            path: path.to_string(),
            contents: contents.into(),
            mode: 0o644,
        });
        self
    }

    /// Attach a blank sparse disk.
    pub fn disk(mut self, serial: &str, size_bytes: u64) -> Self {
        self.disks.push(DiskSpec {
            serial: serial.to_string(),
            size_bytes,
        });
        self
    }

    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    pub fn memory_mib(mut self, memory_mib: u32) -> Self {
        self.memory_mib = memory_mib;
        self
    }

    pub fn append(mut self, args: &str) -> Self {
        if !self.extra_append.is_empty() {
            self.extra_append.push(' ');
        }
        self.extra_append.push_str(args);
        self
    }
}

/// How a command run in the guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` if a signal ended it.
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    fn describe_status(&self) -> String {
        match (self.status, self.signal, self.timed_out) {
            (_, _, true) => "a timeout".to_string(),
            (Some(code), _, _) => format!("status {code}"),
            (None, Some(signal), _) => format!("signal {signal}"),
            (None, None, _) => "an unknown status".to_string(),
        }
    }
}

impl From<ExecResult> for ExecOutput {
    fn from(r: ExecResult) -> Self {
        ExecOutput {
            status: r.status,
            signal: r.signal,
            timed_out: r.timed_out,
            stdout: r.stdout,
            stderr: r.stderr,
        }
    }
}

/// A running guest. Dropping it kills QEMU; the artefacts are kept if the test
/// failed: it panicked, or it is returning a [`Failure`](crate::Failure) (the `?` that
/// builds one runs before the guest is dropped), or [`keep_artefacts`] was called.
///
/// [`keep_artefacts`]: Guest::keep_artefacts
#[derive(Debug)]
pub struct Guest {
    qemu: Child,
    exit: Option<ExitStatus>,
    artefacts: Artefacts,
    serial: SerialLog,
    control_socket: PathBuf,
    qmp_socket: PathBuf,
    control: Option<ControlClient>,
    qmp: Option<Qmp>,
    failed: bool,
}

impl Guest {
    /// Start QEMU for `spec`. Returns as soon as QEMU runs; wait for the guest with
    /// [`wait_for`](Self::wait_for).
    pub fn boot(spec: GuestSpec) -> Result<Guest, Error> {
        crate::reset_failing();
        let image = Image::open(&spec.image)?;
        let artefacts = Artefacts::create(&spec.name)?;
        let initrd = if spec.overlay.is_empty() {
            image.initramfs.clone()
        } else {
            let out = artefacts.path("initrd.img");
            initrd::write_with_overlay(&image.initramfs, &spec.overlay, &out)?;
            out
        };
        let mut vm = VmSpec::new(&image.kernel, initrd);
        vm.append = image.cmdline.clone();
        if !spec.extra_append.is_empty() {
            vm.append = format!("{} {}", vm.append, spec.extra_append);
        }
        vm.memory_mib = spec.memory_mib;
        vm.cpus = spec.cpus;
        vm.reboot_exits = spec.reboot_exits;
        vm.hotplug_ports = spec.hotplug_ports;
        vm.nics = spec.nics.clone();
        for disk in &spec.disks {
            let path = artefacts.path(&format!("disk-{}.img", disk.serial));
            create_sparse(&path, disk.size_bytes)?;
            vm.disks.push(Disk::raw(path, &disk.serial));
        }
        let serial_path = artefacts.path("serial.log");
        vm.serial = Serial::File(serial_path.clone());
        let control_socket = artefacts.socket("ctl.sock");
        let qmp_socket = artefacts.socket("qmp.sock");
        vm.control_socket = Some(control_socket.clone());
        vm.qmp_socket = Some(qmp_socket.clone());

        let argv: Vec<String> = vm
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let _ = std::fs::write(
            artefacts.path("qemu.argv"),
            format!("{} {}\n", hearth::qemu::QEMU_BINARY, argv.join(" ")),
        );
        let stderr_path = artefacts.path("qemu.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(|source| Error::Io {
            what: "creating",
            path: stderr_path,
            source,
        })?;
        let spawned = vm
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn();
        let qemu = match spawned {
            Ok(qemu) => qemu,
            Err(source) => {
                artefacts.finish(true);
                return Err(Error::Spawn {
                    artefacts: artefacts.dir().to_path_buf(),
                    source,
                });
            }
        };
        Ok(Guest {
            qemu,
            exit: None,
            artefacts,
            serial: SerialLog::new(serial_path),
            control_socket,
            qmp_socket,
            control: None,
            qmp: None,
            failed: false,
        })
    }

    /// The artefact directory of this guest.
    pub fn artefacts(&self) -> &Path {
        self.artefacts.dir()
    }

    /// The console log so far.
    pub fn serial(&self) -> &SerialLog {
        &self.serial
    }

    /// Wait for the next console line (after the previous match) matching `pattern`.
    pub fn wait_for(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<String, Error> {
        let pattern = pattern.into();
        self.poll_until(&pattern.to_string(), timeout, |guest| {
            Ok(guest.serial.find_next(&pattern))
        })
    }

    /// Wait until `condition` returns `Some`, checking every 100 ms.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&mut Guest) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        self.poll_until(what, timeout, |guest| condition(guest))
    }

    fn poll_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut Guest) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        loop {
            // Look at the exit first, then check once more: output written just
            // before QEMU exited must still count.
            let exited = self.try_exit()?;
            if let Some(value) = check(self)? {
                return Ok(value);
            }
            if let Some(status) = exited {
                return Err(Error::QemuExited {
                    what: what.to_string(),
                    status: status.to_string(),
                    artefacts: self.artefacts.dir().to_path_buf(),
                    tail: self.serial.tail(TAIL_LINES),
                });
            }
            if started.elapsed() >= timeout {
                return Err(self.timeout_error(what, timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn timeout_error(&self, what: &str, waited: Duration) -> Error {
        Error::Timeout {
            what: what.to_string(),
            waited,
            artefacts: self.artefacts.dir().to_path_buf(),
            tail: self.serial.tail(TAIL_LINES),
        }
    }

    /// QEMU's exit status, if it has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, Error> {
        if self.exit.is_none() {
            self.exit = self.qemu.try_wait().map_err(|source| Error::Io {
                what: "waiting for QEMU of",
                path: self.artefacts.dir().to_path_buf(),
                source,
            })?;
        }
        Ok(self.exit)
    }

    /// Wait for QEMU to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(self.timeout_error("QEMU to exit", timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn control(&mut self) -> Result<&mut ControlClient, Error> {
        if self.control.is_none() {
            if let Some(status) = self.try_exit()? {
                return Err(Error::QemuExited {
                    what: "the control channel".into(),
                    status: status.to_string(),
                    artefacts: self.artefacts.dir().to_path_buf(),
                    tail: self.serial.tail(TAIL_LINES),
                });
            }
            let client = ControlClient::connect(&self.control_socket, CONTROL_CONNECT_TIMEOUT)
                .map_err(|e| match e {
                    Error::Control { message } => Error::Control {
                        message: format!(
                            "{message}\nartefacts: {}\nlast console lines:\n{}",
                            self.artefacts.dir().display(),
                            self.serial.tail(TAIL_LINES)
                        ),
                    },
                    other => other,
                })?;
            self.control = Some(client);
        }
        Ok(self.control.as_mut().expect("connected above"))
    }

    fn request(&mut self, body: RequestBody, timeout: Duration) -> Result<ResponseBody, Error> {
        let result = self.control().and_then(|c| c.request(body, timeout));
        if matches!(result, Err(Error::Control { .. })) {
            // The connection is in an unknown state; reconnect next time.
            self.control = None;
        }
        result
    }

    /// Run `argv` in the guest (clean environment, 60 s timeout).
    pub fn exec<S: AsRef<str>>(&mut self, argv: &[S]) -> Result<ExecOutput, Error> {
        self.exec_with(argv, "", EXEC_TIMEOUT)
    }

    /// Run `argv` in the guest with `stdin` and a timeout.
    pub fn exec_with<S: AsRef<str>>(
        &mut self,
        argv: &[S],
        stdin: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let request = RequestBody::Exec(ExecRequest {
            argv: argv.iter().map(|a| a.as_ref().to_string()).collect(),
            timeout_secs: Some(timeout.as_secs().max(1)),
            stdin: stdin.to_string(),
        });
        match self.request(request, timeout + Duration::from_secs(10))? {
            ResponseBody::Exec(result) => Ok(result.into()),
            other => Err(unexpected("exec", &other)),
        }
    }

    /// Run `script` with busybox `sh -c`; any exit status is returned.
    pub fn sh(&mut self, script: &str) -> Result<ExecOutput, Error> {
        self.exec(&[BUSYBOX, "sh", "-c", script])
    }

    /// Run `script` with busybox `sh -c`; a non-zero status is an error. Returns stdout.
    pub fn sh_ok(&mut self, script: &str) -> Result<String, Error> {
        let output = self.sh(script)?;
        if output.success() {
            return Ok(output.stdout);
        }
        Err(Error::CommandFailed {
            argv: vec![BUSYBOX.into(), "sh".into(), "-c".into(), script.into()],
            status: output.describe_status(),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// Read a file in the guest (as text).
    pub fn read_file(&mut self, path: &str) -> Result<String, Error> {
        let request = RequestBody::Op(Op::ReadFile { path: path.into() });
        match self.request(request, EXEC_TIMEOUT)? {
            ResponseBody::File { contents } => Ok(contents),
            other => Err(unexpected("read_file", &other)),
        }
    }

    /// Read a JSON file in the guest.
    pub fn read_json(&mut self, path: &str) -> Result<Value, Error> {
        let text = self.read_file(path)?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            what: path.to_string(),
            source,
        })
    }

    /// Create or replace a file in the guest.
    pub fn write_file(&mut self, path: &str, contents: &str) -> Result<(), Error> {
        let request = RequestBody::Op(Op::WriteFile {
            path: path.into(),
            contents: contents.into(),
        });
        match self.request(request, EXEC_TIMEOUT)? {
            ResponseBody::Written { .. } => Ok(()),
            other => Err(unexpected("write_file", &other)),
        }
    }

    /// The guest's process list.
    pub fn ps(&mut self) -> Result<Vec<ProcessInfo>, Error> {
        match self.request(RequestBody::Op(Op::Ps), EXEC_TIMEOUT)? {
            ResponseBody::Processes { processes } => Ok(processes),
            other => Err(unexpected("ps", &other)),
        }
    }

    fn qmp_client(&mut self) -> Result<&mut Qmp, Error> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.qmp_socket, Duration::from_secs(10))?);
        }
        Ok(self.qmp.as_mut().expect("connected above"))
    }

    /// Run a QMP command without arguments (e.g. `system_powerdown`).
    pub fn qmp(&mut self, command: &str) -> Result<Value, Error> {
        self.qmp_with(command, None)
    }

    /// Run a QMP command with arguments (e.g. `device_del` with `{"id": ..}`).
    pub fn qmp_with(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        self.qmp_client()?.execute(command, arguments)
    }

    /// Wait for a QMP event such as `DEVICE_DELETED`.
    pub fn qmp_event(&mut self, name: &str, timeout: Duration) -> Result<Value, Error> {
        self.qmp_client()?.wait_event(name, timeout)
    }

    /// Mark this guest's test as failed so its artefacts are kept.
    pub fn keep_artefacts(&mut self) {
        self.failed = true;
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.qemu.kill();
            let _ = self.qemu.wait();
        }
        let panicking = std::thread::panicking();
        let keep = self.failed || panicking || crate::failing();
        // A returned `Failure` already quotes the console where it matters; a panic
        // (an assertion) does not.
        if panicking {
            eprintln!(
                "last console lines of {}:\n{}",
                self.artefacts.dir().display(),
                self.serial.tail(TAIL_LINES)
            );
        }
        self.artefacts.finish(keep);
    }
}

fn unexpected(request: &str, body: &ResponseBody) -> Error {
    Error::Control {
        message: format!("unexpected response to {request}: {body:?}"),
    }
}

fn create_sparse(path: &Path, size: u64) -> Result<(), Error> {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(size))
        .map_err(|source| Error::Io {
            what: "creating disk",
            path: path.to_path_buf(),
            source,
        })
}

/// The builder's output for one image.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
}

impl Image {
    /// Check `dir` holds `vmlinuz`, `initramfs.cpio.zst` and a `build.json` with a
    /// `cmdline` string.
    pub fn open(dir: &Path) -> Result<Image, Error> {
        let bad = |reason: String| Error::BadImage {
            image: dir.to_path_buf(),
            reason,
        };
        let kernel = dir.join("vmlinuz");
        let initramfs = dir.join("initramfs.cpio.zst");
        for path in [&kernel, &initramfs] {
            if !path.is_file() {
                return Err(bad(format!("{} is missing", path.display())));
            }
        }
        let build_json = dir.join("build.json");
        let text = std::fs::read_to_string(&build_json).map_err(|source| Error::Io {
            what: "reading",
            path: build_json.clone(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            what: build_json.display().to_string(),
            source,
        })?;
        let cmdline = value
            .get("cmdline")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("build.json has no \"cmdline\" string".into()))?
            .to_string();
        Ok(Image {
            kernel,
            initramfs,
            cmdline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_contract_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let err = Image::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("vmlinuz is missing"), "{err}");
        std::fs::write(dir.path().join("vmlinuz"), b"k").unwrap();
        std::fs::write(dir.path().join("initramfs.cpio.zst"), b"i").unwrap();
        std::fs::write(dir.path().join("build.json"), b"{}").unwrap();
        let err = Image::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cmdline"), "{err}");
        std::fs::write(
            dir.path().join("build.json"),
            br#"{"cmdline":"console=ttyS0 quiet"}"#,
        )
        .unwrap();
        assert_eq!(
            Image::open(dir.path()).unwrap().cmdline,
            "console=ttyS0 quiet"
        );
    }

    #[test]
    fn spec_defaults_to_the_test_name() {
        let spec = GuestSpec::new("/img")
            .file("/etc/x", "y")
            .disk("D1", 1 << 20);
        assert_eq!(spec.name, "spec_defaults_to_the_test_name");
        assert_eq!(spec.overlay.len(), 1);
        assert_eq!(spec.disks[0].serial, "D1");
    }
}
