//! Batched UDP I/O for the DNS workers: `recvmmsg(2)` with `MSG_WAITFORONE` and
//! `sendmmsg(2)`.
//!
//! Under load most of a cache hit's cost is the two system calls around it, not the
//! lookup. With batching a busy worker takes every query already queued on its
//! socket in one call and sends every reply in one more, so the per-query cost falls
//! as the load rises; an idle worker still wakes on the first datagram
//! (`MSG_WAITFORONE` returns as soon as one is there), so latency at low rates is
//! that of a plain `recvfrom`. `std` and `nix` have no allocation-free form of these
//! calls, hence the `libc` structures, all owned here and reused for every batch.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram (the largest EDNS payload we announce).
const DATAGRAM: usize = 4096;

/// The receive side: buffers, peer addresses and headers for [`BATCH`] datagrams.
pub struct Receiver {
    bufs: Box<[[u8; DATAGRAM]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

/// One received datagram's peer, kept raw so the reply goes back without a
/// conversion.
#[derive(Clone, Copy)]
pub struct Peer {
    addr: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Peer {
    /// The peer as a socket address (`None` for a family other than IPv4/IPv6).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match i32::from(self.addr.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a `sockaddr_in` (family AF_INET) into this
                // storage, which is larger and at least as aligned.
                let sin = unsafe { &*(&raw const self.addr).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, a `sockaddr_in6` for family AF_INET6.
                let sin6 = unsafe { &*(&raw const self.addr).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Self {
        Self {
            bufs: vec![[0u8; DATAGRAM]; BATCH].into_boxed_slice(),
            // SAFETY: all-zero is a valid `sockaddr_storage`, `iovec` and `mmsghdr`
            // (null pointers and zero lengths); `recv` fills the pointers in.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            iovs: vec![unsafe { std::mem::zeroed() }; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH].into_boxed_slice(),
        }
    }

    /// Block until at least one datagram is queued on `sock`, then take up to
    /// [`BATCH`]; how many were taken.
    pub fn recv(&mut self, sock: BorrowedFd<'_>) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = socklen_of::<libc::sockaddr_storage>();
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers whose name and iovec
        // pointers point into `addrs`, `iovs` and `bufs`, all owned by `self`, alive
        // and not otherwise borrowed for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE as _, // c_int on glibc, c_uint on musl
                std::ptr::null_mut(),
            )
        };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    }

    /// Datagram `i` of the last [`Self::recv`] and its peer.
    pub fn get(&self, i: usize) -> (&[u8], Peer) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(DATAGRAM);
        (
            &self.bufs[i][..len],
            Peer {
                addr: self.addrs[i],
                len: h.msg_hdr.msg_namelen,
            },
        )
    }
}

/// The send side: replies queued for one `sendmmsg`.
pub struct Sender {
    peers: Vec<Peer>,
    bufs: Vec<Vec<u8>>,
    used: usize,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    pub fn new() -> Self {
        Self {
            peers: Vec::with_capacity(BATCH),
            bufs: (0..BATCH).map(|_| Vec::with_capacity(DATAGRAM)).collect(),
            used: 0,
            // SAFETY: all-zero is a valid `iovec` and `mmsghdr`; `flush` fills them.
            iovs: vec![unsafe { std::mem::zeroed() }; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH].into_boxed_slice(),
        }
    }

    /// An empty buffer for the next reply (to `peer`); it is sent by the next
    /// [`Self::flush`] unless it is left empty.
    pub fn next(&mut self, peer: Peer) -> &mut Vec<u8> {
        assert!(self.used < BATCH, "more replies than a batch");
        let buf = &mut self.bufs[self.used];
        buf.clear();
        self.peers.push(peer);
        self.used += 1;
        buf
    }

    /// Send every queued non-empty reply; a reply the kernel refuses is dropped (as
    /// a lost datagram; the client retries).
    pub fn flush(&mut self, sock: BorrowedFd<'_>) {
        let mut count = 0;
        for i in 0..self.used {
            if self.bufs[i].is_empty() {
                continue;
            }
            self.iovs[count] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.bufs[i].len(),
            };
            let h = &mut self.hdrs[count];
            h.msg_hdr.msg_name = (&raw mut self.peers[i].addr).cast();
            h.msg_hdr.msg_namelen = self.peers[i].len;
            h.msg_hdr.msg_iov = &raw mut self.iovs[count];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
            count += 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: `hdrs[sent..count]` are initialised headers whose pointers
            // point into `peers`, `iovs` and `bufs`, owned by `self`, alive and
            // unchanged during the call.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            match usize::try_from(n) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    log::debug!("DNS UDP send: {e}");
                    // The first remaining message failed: drop it, send the rest.
                    sent += 1;
                }
            }
        }
        self.peers.clear();
        self.used = 0;
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).expect("a socket address fits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn a_batch_is_received_and_answered_in_order() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let (mut rx, mut tx) = (Receiver::new(), Sender::new());
        let mut seen = 0;
        while seen < 5 {
            let n = rx.recv(server.as_fd()).unwrap();
            assert!(n >= 1);
            for i in 0..n {
                let (data, peer) = rx.get(i);
                assert_eq!(peer.socket_addr(), Some(client.local_addr().unwrap()));
                let reply = tx.next(peer);
                // An empty reply is skipped; every other one echoes doubled.
                if data[0] != 2 {
                    reply.extend_from_slice(data);
                    reply.extend_from_slice(data);
                }
                seen += 1;
            }
            tx.flush(server.as_fd());
        }
        let mut buf = [0u8; 16];
        for i in [0u8, 1, 3, 4] {
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 6]);
        }
    }
}
