//! The QEMU test harness: boot a Hearth image, watch its console, look inside it.
//!
//! A scenario (one file per scenario under `tests/`) describes a guest with
//! [`GuestSpec`], boots it with [`Guest::boot`], then
//!
//! * waits for console lines ([`Guest::wait_for`], [`Guest::wait_until`]) — the serial
//!   log is captured to a file and scanned incrementally ([`serial`]);
//! * runs commands and reads files inside the guest through `guestctld` on the
//!   `org.hearth.ctl` virtio-serial port ([`control`], protocol types shared with the
//!   agent so the two ends cannot drift);
//! * drives QEMU itself through QMP ([`qmp`]): power button, hot-unplug, hot-plug;
//! * waits for QEMU to exit ([`Guest::wait_exit`]).
//!
//! The QEMU command line comes from `hearth::qemu`, the same code `hearth run` uses.
//! Every guest gets an artefact directory ([`artefacts`]) with the serial log, QEMU's
//! stderr, the disks and the initrd; it is kept when the test fails (panic or error)
//! and removed when it passes. The image under test comes from [`test_image`]: the
//! builder's output contract (`vmlinuz`, `initramfs.cpio.zst`, `build.json`), built
//! once per test process or named by `HEARTH_TEST_IMAGE`. Files can be injected into
//! a guest's initramfs ([`initrd`]) to test e.g. a broken config.
//!
//! Scenarios boot real QEMU, so they are `#[ignore]`d by default and run with
//! `HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored --test-threads=2`.

pub mod agents;
pub mod artefacts;
pub mod control;
pub mod guest;
pub mod image;
pub mod initrd;
pub mod qmp;
pub mod serial;

use std::path::PathBuf;
use std::time::Duration;

pub use agents::{AgentRecord, AgentsState, BOOT_TIMEOUT};
pub use guest::{DiskSpec, ExecOutput, Guest, GuestSpec};
pub use hearth::qemu::{Nic, SocketMode};
pub use image::test_image;
pub use serial::Pattern;

/// Environment variable that must be `1` for scenarios to run (see [`require_enabled`]).
pub const ENABLE_ENV: &str = "HEARTH_QEMU_TESTS";

/// Errors of the harness. Variants that concern a running guest carry its artefact
/// directory and, where it helps, the last console lines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting QEMU (artefacts in {})", artefacts.display())]
    Spawn {
        artefacts: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a Hearth image: {reason}", image.display())]
    BadImage { image: PathBuf, reason: String },
    #[error("building the test image failed ({status}):\n{output}")]
    ImageBuild { status: String, output: String },
    #[error(
        "timed out after {waited:?} waiting for {what}\nartefacts: {}\nlast console lines:\n{tail}",
        artefacts.display()
    )]
    Timeout {
        what: String,
        waited: Duration,
        artefacts: PathBuf,
        tail: String,
    },
    #[error(
        "QEMU exited ({status}) while waiting for {what}\nartefacts: {}\nlast console lines:\n{tail}",
        artefacts.display()
    )]
    QemuExited {
        what: String,
        status: String,
        artefacts: PathBuf,
        tail: String,
    },
    #[error("control channel: {message}")]
    Control { message: String },
    #[error("guest reported an error for {request}: {message}")]
    Guest { request: String, message: String },
    #[error("{argv:?} exited with {status} (stdout: {stdout:?}, stderr: {stderr:?})")]
    CommandFailed {
        argv: Vec<String>,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("QMP {command}: {class}: {desc}")]
    Qmp {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP protocol: {message}")]
    QmpProtocol { message: String },
    #[error("parsing {what} from the guest")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What scenarios return: an [`Error`] whose `Debug` (what the test runner prints
/// for a failed `-> Result` test) is the readable message with its causes.
pub struct Failure(pub Error);

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        // A test builds a `Failure` only on its way out with an error: remember that so
        // guests dropped on the way keep their artefacts.
        FAILING.set(true);
        Failure(e.into())
    }
}

thread_local! {
    static FAILING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this test thread is returning a [`Failure`].
fn failing() -> bool {
    FAILING.get()
}

fn reset_failing() {
    FAILING.set(false);
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The return type of scenario tests.
pub type TestResult = Result<(), Failure>;

/// Scenarios call this first. They are `#[ignore]`d so a plain `cargo test` skips
/// them visibly; run with `--ignored` they must really run, so without
/// `HEARTH_QEMU_TESTS=1` this panics (a failure, never a silent pass).
pub fn require_enabled() {
    if std::env::var(ENABLE_ENV).as_deref() != Ok("1") {
        panic!("QEMU scenarios boot real VMs: set {ENABLE_ENV}=1 to run them");
    }
}
