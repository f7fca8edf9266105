//! QEMU command lines: the one place that knows QEMU's flags.
//!
//! `hearth run` and the QEMU test harness both describe a VM as a [`VmSpec`] and turn it
//! into a [`Command`] with [`VmSpec::command`]; neither builds argv by hand. The layout
//! is fixed so that tests can rely on it:
//!
//! * `-machine q35` without default devices (`-nodefaults -no-user-config`), no display.
//! * Every disk and NIC sits behind its own `pcie-root-port`, so QMP `device_del` can
//!   hot-unplug it, and [`VmSpec::hotplug_ports`] spare ports (`hp0`, `hp1`, ...) take
//!   `device_add ... bus=hpN` later. Devices on `pcie.0` itself cannot be unplugged.
//! * Disks are `virtio-blk-pci` with a `serial=`, which the guest sees as
//!   `/dev/disk/by-id/virtio-<serial>` and `/sys/block/vdX/serial`.
//! * The control channel is a `virtserialport` named [`CONTROL_PORT_NAME`], backed by a
//!   unix socket QEMU listens on; `guestctld` opens it from inside.
//! * `virtio-rng-pci` is always present so the guest's entropy pool fills at once.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The QEMU binary run for every VM.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Name of the virtio-serial port the guest's `guestctld` serves on.
pub const CONTROL_PORT_NAME: &str = "org.hearth.ctl";

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// Software emulation (multi-threaded TCG).
    Tcg,
}

impl Accel {
    /// The value of `-accel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Forces the accelerator (`kvm` or `tcg`), skipping detection.
pub const ACCEL_ENV: &str = "HEARTH_QEMU_ACCEL";

/// The best accelerator this host offers, decided once per process:
/// [`ACCEL_ENV`] if set; otherwise KVM only if `/dev/kvm` opens read-write, answers
/// `KVM_GET_API_VERSION`, *and* QEMU can actually create a KVM vCPU with the CPU model
/// we use; otherwise TCG. The last probe exists because nested setups can pass the
/// ioctl and still abort QEMU at start ("failed to set MSR").
pub fn accel() -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        match std::env::var(ACCEL_ENV).as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        if kvm_device_works(Path::new("/dev/kvm")) && qemu_starts_with_kvm() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    })
}

fn kvm_device_works(path: &Path) -> bool {
    // KVM_GET_API_VERSION is _IO(KVMIO = 0xAE, 0x00).
    nix::ioctl_none!(kvm_get_api_version, 0xAE, 0x00);
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    // SAFETY: the fd is open for the duration of the call and KVM_GET_API_VERSION takes
    // no argument; on a non-KVM file the kernel returns an error we treat as "no KVM".
    matches!(unsafe { kvm_get_api_version(file.as_raw_fd()) }, Ok(version) if version > 0)
}

/// Start a paused KVM machine with no guest and quit it over QMP on stdin.
fn qemu_starts_with_kvm() -> bool {
    let child = Command::new(QEMU_BINARY)
        .args(["-machine", "q35", "-accel", "kvm", "-cpu", "max"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-S"])
        .args(["-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
    }
    child.wait().is_ok_and(|status| status.success())
}

/// Image format of a disk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// A virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image file on the host.
    pub path: PathBuf,
    /// Serial number the guest sees (at most 20 bytes are kept by virtio-blk).
    pub serial: String,
    pub format: DiskFormat,
    /// QEMU device id, for QMP `device_del`. The drive is `<id>-drive`, the root port
    /// `<id>-port`.
    pub id: String,
}

impl Disk {
    /// A raw disk whose id is also its serial.
    pub fn raw(path: impl Into<PathBuf>, serial: impl Into<String>) -> Self {
        let serial = serial.into();
        Disk {
            path: path.into(),
            id: serial.clone(),
            serial,
            format: DiskFormat::Raw,
        }
    }
}

/// How a socket netdev reaches its peer (`-netdev socket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketMode {
    /// `listen=host:port`: wait for one peer VM to connect.
    Listen(String),
    /// `connect=host:port`: connect to a listening VM.
    Connect(String),
    /// `mcast=group:port`: every VM on the group shares one segment.
    Mcast(String),
}

/// A virtio-net NIC and the QEMU network backend behind it. The NIC's device id is
/// `id`, its netdev `<id>-net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// User-mode networking (slirp): DHCP at 10.0.2.2, NAT to the host.
    User { id: String, mac: Option<String> },
    /// A port on QEMU hub `hubid`; NICs on the same hub see each other's frames.
    Hub {
        id: String,
        hubid: u32,
        mac: Option<String>,
    },
    /// An existing host tap interface.
    Tap {
        id: String,
        ifname: String,
        mac: Option<String>,
    },
    /// A socket link to another QEMU process.
    Socket {
        id: String,
        mode: SocketMode,
        mac: Option<String>,
    },
}

impl Nic {
    /// The NIC's QEMU device id.
    pub fn id(&self) -> &str {
        match self {
            Nic::User { id, .. }
            | Nic::Hub { id, .. }
            | Nic::Tap { id, .. }
            | Nic::Socket { id, .. } => id,
        }
    }

    fn mac(&self) -> Option<&str> {
        match self {
            Nic::User { mac, .. }
            | Nic::Hub { mac, .. }
            | Nic::Tap { mac, .. }
            | Nic::Socket { mac, .. } => mac.as_deref(),
        }
    }

    fn netdev_arg(&self) -> String {
        let netdev = format!("{}-net", self.id());
        match self {
            Nic::User { .. } => format!("user,id={netdev}"),
            Nic::Hub { hubid, .. } => format!("hubport,id={netdev},hubid={hubid}"),
            Nic::Tap { ifname, .. } => {
                format!("tap,id={netdev},ifname={ifname},script=no,downscript=no")
            }
            Nic::Socket { mode, .. } => match mode {
                SocketMode::Listen(addr) => format!("socket,id={netdev},listen={addr}"),
                SocketMode::Connect(addr) => format!("socket,id={netdev},connect={addr}"),
                SocketMode::Mcast(addr) => format!("socket,id={netdev},mcast={addr}"),
            },
        }
    }
}

/// Where the guest's first serial port (the kernel console `ttyS0`) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// QEMU's stdin/stdout: interactive use (`hearth run`).
    Stdio,
    /// Appended to a file as it arrives (tests tail it).
    File(PathBuf),
}

/// Everything about one VM. Build with [`VmSpec::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Kernel command line.
    pub append: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub serial: Serial,
    /// Unix socket QEMU listens on for the `org.hearth.ctl` virtio-serial port.
    pub control_socket: Option<PathBuf>,
    /// Unix socket QEMU listens on for QMP.
    pub qmp_socket: Option<PathBuf>,
    /// A guest reboot ends QEMU (`-no-reboot`) instead of restarting the VM.
    pub reboot_exits: bool,
    /// Spare PCIe root ports (`hp0`, `hp1`, ...) for QMP `device_add`.
    pub hotplug_ports: u32,
    /// `None` picks [`accel()`].
    pub accel: Option<Accel>,
    /// Appended verbatim after everything else.
    pub extra_args: Vec<String>,
}

impl VmSpec {
    /// A VM with 256 MiB, one CPU, no disks or NICs, the console on stdio and a guest
    /// reboot ending QEMU.
    pub fn new(kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> Self {
        VmSpec {
            kernel: kernel.into(),
            initrd: initrd.into(),
            append: "console=ttyS0".to_string(),
            memory_mib: 256,
            cpus: 1,
            disks: Vec::new(),
            nics: Vec::new(),
            serial: Serial::Stdio,
            control_socket: None,
            qmp_socket: None,
            reboot_exits: true,
            hotplug_ports: 0,
            accel: None,
            extra_args: Vec::new(),
        }
    }

    /// The full argv after the binary name.
    pub fn args(&self) -> Vec<OsString> {
        let mut args = Args::default();
        let accel = self.accel.unwrap_or_else(accel);
        args.push("-machine").push("q35");
        args.push("-accel").push(accel.as_str());
        args.push("-cpu").push("max");
        args.push("-m").push(self.memory_mib.to_string());
        args.push("-smp").push(self.cpus.to_string());
        args.push("-nodefaults")
            .push("-no-user-config")
            .push("-display")
            .push("none")
            .push("-vga")
            .push("none");
        if self.reboot_exits {
            args.push("-no-reboot");
        }
        args.push("-kernel").push(&self.kernel);
        args.push("-initrd").push(&self.initrd);
        args.push("-append").push(&self.append);

        match &self.serial {
            Serial::Stdio => {
                args.push("-serial").push("stdio");
            }
            Serial::File(path) => {
                args.push("-chardev")
                    .push(chardev_path("file,id=serial0", path))
                    .push("-serial")
                    .push("chardev:serial0");
            }
        }

        args.push("-device").push("virtio-rng-pci");

        let mut chassis = 0u32;
        let mut root_port = |args: &mut Args, id: &str| {
            chassis += 1;
            args.push("-device")
                .push(format!("pcie-root-port,id={id},chassis={chassis}"));
        };

        for disk in &self.disks {
            let port = format!("{}-port", disk.id);
            let drive = format!("{}-drive", disk.id);
            root_port(&mut args, &port);
            args.push("-drive").push(path_option(
                &format!(
                    "if=none,id={drive},format={},cache=unsafe",
                    disk.format.as_str()
                ),
                "file",
                &disk.path,
            ));
            args.push("-device").push(format!(
                "virtio-blk-pci,drive={drive},id={},serial={},bus={port}",
                disk.id, disk.serial
            ));
        }

        for nic in &self.nics {
            let port = format!("{}-port", nic.id());
            root_port(&mut args, &port);
            args.push("-netdev").push(nic.netdev_arg());
            let mut device = format!(
                "virtio-net-pci,netdev={}-net,id={},bus={port}",
                nic.id(),
                nic.id()
            );
            if let Some(mac) = nic.mac() {
                device.push_str(&format!(",mac={mac}"));
            }
            args.push("-device").push(device);
        }

        for n in 0..self.hotplug_ports {
            root_port(&mut args, &format!("hp{n}"));
        }

        if let Some(path) = &self.control_socket {
            args.push("-device")
                .push("virtio-serial-pci,id=vser0")
                .push("-chardev")
                .push(chardev_path("socket,id=ctl,server=on,wait=off", path))
                .push("-device")
                .push(format!(
                    "virtserialport,bus=vser0.0,chardev=ctl,name={CONTROL_PORT_NAME}"
                ));
        }

        if let Some(path) = &self.qmp_socket {
            args.push("-chardev")
                .push(chardev_path("socket,id=qmp,server=on,wait=off", path))
                .push("-mon")
                .push("chardev=qmp,mode=control");
        }

        for extra in &self.extra_args {
            args.push(extra);
        }
        args.0
    }

    /// `qemu-system-x86_64` with [`args`](Self::args); stdio is left to the caller.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU_BINARY);
        cmd.args(self.args());
        cmd
    }
}

/// `<prefix>,path=<path>` with QEMU's comma escaping: a comma inside an option value is
/// written twice.
fn chardev_path(prefix: &str, path: &Path) -> OsString {
    path_option(prefix, "path", path)
}

/// `<prefix>,<key>=<path>`, comma-escaped.
fn path_option(prefix: &str, key: &str, path: &Path) -> OsString {
    let mut out = OsString::from(format!("{prefix},{key}="));
    let escaped = path.to_string_lossy().replace(',', ",,");
    out.push(escaped);
    out
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.push(arg.as_ref().to_os_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        let mut spec = VmSpec::new("/img/vmlinuz", "/img/initramfs.cpio.zst");
        spec.accel = Some(Accel::Tcg);
        spec
    }

    fn argv(spec: &VmSpec) -> Vec<String> {
        spec.args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    /// The value following each occurrence of `flag`.
    fn values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn defaults_are_minimal() {
        let argv = argv(&spec());
        assert_eq!(values(&argv, "-machine"), ["q35"]);
        assert_eq!(values(&argv, "-accel"), ["tcg"]);
        assert_eq!(values(&argv, "-m"), ["256"]);
        assert_eq!(values(&argv, "-smp"), ["1"]);
        assert_eq!(values(&argv, "-kernel"), ["/img/vmlinuz"]);
        assert_eq!(values(&argv, "-initrd"), ["/img/initramfs.cpio.zst"]);
        assert_eq!(values(&argv, "-append"), ["console=ttyS0"]);
        assert_eq!(values(&argv, "-serial"), ["stdio"]);
        assert_eq!(values(&argv, "-device"), ["virtio-rng-pci"]);
        for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
            assert!(argv.iter().any(|a| a == flag), "{flag} missing: {argv:?}");
        }
        assert_eq!(values(&argv, "-display"), ["none"]);
        assert_eq!(values(&argv, "-vga"), ["none"]);
        assert!(values(&argv, "-drive").is_empty());
        assert!(values(&argv, "-netdev").is_empty());
        assert!(values(&argv, "-mon").is_empty());
    }

    #[test]
    fn reboot_can_restart_the_vm() {
        let mut spec = spec();
        spec.reboot_exits = false;
        assert!(!argv(&spec).iter().any(|a| a == "-no-reboot"));
    }

    #[test]
    fn serial_file_uses_a_file_chardev() {
        let mut spec = spec();
        spec.serial = Serial::File("/tmp/a,b/serial.log".into());
        let argv = argv(&spec);
        assert_eq!(
            values(&argv, "-chardev"),
            ["file,id=serial0,path=/tmp/a,,b/serial.log"]
        );
        assert_eq!(values(&argv, "-serial"), ["chardev:serial0"]);
    }

    #[test]
    fn disks_sit_behind_their_own_root_ports() {
        let mut spec = spec();
        spec.disks.push(Disk::raw("/d/a.img", "HEARTH-A"));
        spec.disks.push(Disk {
            path: "/d/b.qcow2".into(),
            serial: "HEARTH-B".into(),
            format: DiskFormat::Qcow2,
            id: "diskb".into(),
        });
        let argv = argv(&spec);
        assert_eq!(
            values(&argv, "-drive"),
            [
                "if=none,id=HEARTH-A-drive,format=raw,cache=unsafe,file=/d/a.img",
                "if=none,id=diskb-drive,format=qcow2,cache=unsafe,file=/d/b.qcow2",
            ]
        );
        assert_eq!(
            values(&argv, "-device"),
            [
                "virtio-rng-pci",
                "pcie-root-port,id=HEARTH-A-port,chassis=1",
                "virtio-blk-pci,drive=HEARTH-A-drive,id=HEARTH-A,serial=HEARTH-A,bus=HEARTH-A-port",
                "pcie-root-port,id=diskb-port,chassis=2",
                "virtio-blk-pci,drive=diskb-drive,id=diskb,serial=HEARTH-B,bus=diskb-port",
            ]
        );
    }

    #[test]
    fn nics_and_backends() {
        let mut spec = spec();
        spec.nics = vec![
            Nic::User {
                id: "wan".into(),
                mac: Some("52:54:00:00:00:01".into()),
            },
            Nic::Hub {
                id: "lan".into(),
                hubid: 3,
                mac: None,
            },
            Nic::Tap {
                id: "t".into(),
                ifname: "tap0".into(),
                mac: None,
            },
            Nic::Socket {
                id: "s".into(),
                mode: SocketMode::Mcast("230.0.0.1:1234".into()),
                mac: None,
            },
        ];
        let argv = argv(&spec);
        assert_eq!(
            values(&argv, "-netdev"),
            [
                "user,id=wan-net",
                "hubport,id=lan-net,hubid=3",
                "tap,id=t-net,ifname=tap0,script=no,downscript=no",
                "socket,id=s-net,mcast=230.0.0.1:1234",
            ]
        );
        let devices = values(&argv, "-device");
        assert!(devices
            .contains(&"virtio-net-pci,netdev=wan-net,id=wan,bus=wan-port,mac=52:54:00:00:00:01"));
        assert!(devices.contains(&"virtio-net-pci,netdev=lan-net,id=lan,bus=lan-port"));
        assert_eq!(
            devices
                .iter()
                .filter(|d| d.starts_with("pcie-root-port"))
                .count(),
            4
        );
    }

    #[test]
    fn hotplug_ports_control_channel_and_qmp() {
        let mut spec = spec();
        spec.hotplug_ports = 2;
        spec.control_socket = Some("/a/ctl.sock".into());
        spec.qmp_socket = Some("/a/qmp.sock".into());
        spec.extra_args = vec!["-S".into()];
        let argv = argv(&spec);
        let devices = values(&argv, "-device");
        assert!(devices.contains(&"pcie-root-port,id=hp0,chassis=1"));
        assert!(devices.contains(&"pcie-root-port,id=hp1,chassis=2"));
        assert!(devices.contains(&"virtio-serial-pci,id=vser0"));
        assert!(devices.contains(&"virtserialport,bus=vser0.0,chardev=ctl,name=org.hearth.ctl"));
        assert_eq!(
            values(&argv, "-chardev"),
            [
                "socket,id=ctl,server=on,wait=off,path=/a/ctl.sock",
                "socket,id=qmp,server=on,wait=off,path=/a/qmp.sock",
            ]
        );
        assert_eq!(values(&argv, "-mon"), ["chardev=qmp,mode=control"]);
        assert_eq!(argv.last().unwrap(), "-S");
    }

    #[test]
    fn command_runs_qemu() {
        let cmd = spec().command();
        assert_eq!(cmd.get_program(), QEMU_BINARY);
        assert_eq!(cmd.get_args().count(), spec().args().len());
    }

    #[test]
    fn kvm_probe_rejects_non_kvm_files() {
        assert!(!kvm_device_works(Path::new("/nonexistent/kvm")));
        // A regular file opens read-write but fails the ioctl.
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(!kvm_device_works(file.path()));
    }

    #[test]
    fn accel_is_usable_by_qemu() {
        // Whatever was picked must start a paused machine on this host.
        let accel = accel();
        let status =
            Command::new(QEMU_BINARY)
                .args(["-machine", "q35", "-accel", accel.as_str(), "-cpu", "max"])
                .args(["-nodefaults", "-display", "none", "-S", "-qmp", "stdio"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .and_then(|mut child| {
                    child.stdin.take().unwrap().write_all(
                        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n",
                    )?;
                    child.wait()
                })
                .unwrap();
        assert!(
            status.success(),
            "QEMU failed with -accel {}",
            accel.as_str()
        );
    }
}
