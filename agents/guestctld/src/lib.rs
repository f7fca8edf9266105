//! `guestctld`: the test-only control agent inside a Hearth guest.
//!
//! The QEMU harness (`hearth-qemu-tests`) needs to look at a running guest from the
//! inside: run a command, read `/run/hearth/agents.json`, list processes. `guestctld`
//! serves that over the virtio-serial port named `org.hearth.ctl`
//! ([`port`] finds it through sysfs, since the image has no udev), speaking JSON lines
//! ([`protocol`]): one request per line, one response per line, strictly in turn.
//!
//! It is installed only in test images (`hearth build --test-agent`) and started by
//! init with `rescue = true`, so it answers in the rescue state too. It deliberately
//! does *not* make itself a child subreaper: processes it orphans must be reparented
//! to PID 1, because reaping them is one of the things the tests check.
//!
//! The host side of the protocol reuses the types in [`protocol`], so the two ends
//! cannot drift apart.

pub mod exec;
pub mod port;
pub mod procfs;
pub mod protocol;
pub mod server;

use std::path::PathBuf;

/// Errors of the control agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: expected MAJOR:MINOR, found {value:?}")]
    BadDevNumber { path: PathBuf, value: String },
    #[error("creating device node {path} ({major}:{minor})")]
    Mknod {
        path: PathBuf,
        major: u64,
        minor: u64,
        #[source]
        source: nix::Error,
    },
    #[error("no virtio-serial port named {name:?} appeared under {sys}")]
    PortMissing { name: String, sys: PathBuf },
    #[error("opening control port {path}")]
    OpenPort {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {argv0:?}")]
    Spawn {
        argv0: String,
        #[source]
        source: std::io::Error,
    },
    #[error("empty argv")]
    EmptyArgv,
    #[error("waiting for {argv0:?}")]
    Wait {
        argv0: String,
        #[source]
        source: std::io::Error,
    },
}
