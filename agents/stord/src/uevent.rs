//! Kernel uevents from a `NETLINK_KOBJECT_UEVENT` socket, read directly (no libudev,
//! no udevd in the image): the agent's prompt signal that a disk appeared or
//! vanished or an md array changed. sysfs stays the source of truth — an event only
//! says "look again now" — so a lost event costs at most one poll interval.
//!
//! Kernel messages are `ACTION@DEVPATH\0KEY=VALUE\0...`; messages from udevd
//! (`libudev` magic) are ignored, since only the kernel's own group is joined.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// The kernel's multicast group for uevents.
const KERNEL_GROUP: u32 = 1;

/// A uevent socket that could not be set up or read.
#[derive(Debug, thiserror::Error)]
#[error("uevent socket: {op}")]
pub struct UeventError {
    /// What failed (`socket`, `bind`, `recv`, `poll`).
    pub op: &'static str,
    /// The errno.
    #[source]
    pub source: nix::Error,
}

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, ...
    pub action: String,
    /// `/devices/...`.
    pub devpath: String,
    /// `SUBSYSTEM`, `DEVNAME`, `DEVTYPE`, ...
    pub env: BTreeMap<String, String>,
}

impl Uevent {
    /// Parse one datagram; `None` for udevd's messages and garbage.
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let mut parts = msg.split(|b| *b == 0).filter(|p| !p.is_empty());
        let head = std::str::from_utf8(parts.next()?).ok()?;
        let (action, devpath) = head.split_once('@')?;
        let env = parts
            .filter_map(|p| std::str::from_utf8(p).ok())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Self {
            action: action.to_owned(),
            devpath: devpath.to_owned(),
            env,
        })
    }

    /// `SUBSYSTEM`.
    pub fn subsystem(&self) -> Option<&str> {
        self.env.get("SUBSYSTEM").map(String::as_str)
    }

    /// `DEVNAME` (`vdb`, `md127`).
    pub fn devname(&self) -> Option<&str> {
        self.env.get("DEVNAME").map(String::as_str)
    }

    /// Whether stord cares: block devices appearing, vanishing or changing.
    pub fn is_block(&self) -> bool {
        self.subsystem() == Some("block")
    }
}

/// A bound uevent socket.
#[derive(Debug)]
pub struct Monitor {
    fd: OwnedFd,
}

impl Monitor {
    /// Open and join the kernel's uevent group.
    pub fn open() -> Result<Self, UeventError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|source| UeventError {
            op: "socket",
            source,
        })?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, KERNEL_GROUP),
        )
        .map_err(|source| UeventError { op: "bind", source })?;
        Ok(Self { fd })
    }

    /// Wait up to `timeout` for events; returns every event queued by then.
    pub fn wait(&self, timeout: Duration) -> Result<Vec<Uevent>, UeventError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(source) => return Err(UeventError { op: "poll", source }),
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut buf,
                MsgFlags::empty(),
            ) {
                Ok(n) => out.extend(Uevent::parse(&buf[..n])),
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => return Ok(out),
                // The kernel dropped events: sysfs is re-read anyway.
                Err(nix::Error::ENOBUFS) => continue,
                Err(source) => return Err(UeventError { op: "recv", source }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_messages() {
        let msg = b"remove@/devices/pci0000:00/0000:00:05.0/virtio3/block/vdc\0\
ACTION=remove\0DEVPATH=/devices/pci0000:00/0000:00:05.0/virtio3/block/vdc\0\
SUBSYSTEM=block\0MAJOR=254\0MINOR=32\0DEVNAME=vdc\0DEVTYPE=disk\0SEQNUM=1234\0";
        let e = Uevent::parse(msg).unwrap();
        assert_eq!(e.action, "remove");
        assert!(e.devpath.ends_with("/block/vdc"));
        assert!(e.is_block());
        assert_eq!(e.devname(), Some("vdc"));
        assert_eq!(e.env["SEQNUM"], "1234");
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed"), None);
        assert_eq!(Uevent::parse(b""), None);
    }

    /// A real socket on this machine: binding the kernel group works and an empty
    /// wait returns (whatever unrelated events arrive meanwhile).
    #[test]
    fn real_socket_binds_and_times_out() {
        let m = Monitor::open().unwrap();
        let start = std::time::Instant::now();
        let events = m.wait(Duration::from_millis(50)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "{events:?}");
    }
}
