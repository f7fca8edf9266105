//! Bringing up the loopback interface: one `SIOCSIFFLAGS` ioctl, because the image has
//! no `ip` binary and everything else (D-Bus over TCP in tests, local services) wants
//! `lo` up before the first agent starts.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Errors bringing an interface up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("opening a control socket")]
    Socket(#[source] Errno),
    #[error("{op} on interface {name}")]
    Ioctl {
        op: &'static str,
        name: String,
        #[source]
        source: Errno,
    },
    #[error("interface name {0:?} is too long")]
    Name(String),
}

/// Set `IFF_UP` on interface `name` (idempotent).
pub fn link_up(name: &str) -> Result<(), LinkError> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(LinkError::Socket)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(LinkError::Name(name.to_string()));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    let ioctl_err = |op| LinkError::Ioctl {
        op,
        name: name.to_string(),
        source: Errno::last(),
    };
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the kernel fills in
    // the flags member of the union.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(ioctl_err("SIOCGIFFLAGS"));
    }
    // SAFETY: SIOCGIFFLAGS initialised the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS reads the name and flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(ioctl_err("SIOCSIFFLAGS"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root (unshares a network namespace): cargo test -p hearth-init -- --ignored"]
    fn brings_lo_up_in_a_fresh_namespace() {
        // A thread of its own: unshare(CLONE_NEWNET) only moves the calling thread.
        std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", Errno::last());
            assert!(!is_up("lo"), "lo starts down in a new namespace");
            link_up("lo").unwrap();
            assert!(is_up("lo"));
            // Idempotent.
            link_up("lo").unwrap();
        })
        .join()
        .unwrap();
    }

    fn is_up(name: &str) -> bool {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        // SAFETY: zeroed ifreq is valid; the name fits.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: valid ifreq; the kernel fills the flags.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) };
        assert_eq!(rc, 0);
        // SAFETY: SIOCGIFFLAGS initialised the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        flags & libc::IFF_UP as libc::c_short != 0
    }

    #[test]
    fn rejects_overlong_names() {
        assert!(matches!(
            link_up("an-interface-name-too-long"),
            Err(LinkError::Name(_))
        ));
    }

    #[test]
    fn unknown_interface_is_an_ioctl_error() {
        let err = link_up("hearthnope0").unwrap_err();
        assert!(
            err.to_string()
                .contains("SIOCGIFFLAGS on interface hearthnope0"),
            "{err}"
        );
    }
}
