//! The DHCPv4 server (RFC 2131/2132): packets are `dhcproto`'s, sockets and the lease
//! database are ours.
//!
//! * [`lease`] — the crash-safe lease database (write-ahead log, fsync before ACK).
//! * [`pool`] — one pool per segment and address choice.
//! * [`server`] — the state machine: DISCOVER/OFFER/REQUEST/ACK/NAK, RELEASE, DECLINE,
//!   INFORM.
//! * [`socket`] — one UDP socket per interface (`SO_BINDTODEVICE`) and its receive
//!   loop.
//! * [`service`] — the server, its sockets and threads, following the config: SIGHUP
//!   reload and interfaces that appear late.

pub mod lease;
pub mod pool;
pub mod server;
pub mod service;
pub mod socket;

pub use lease::{Lease, LeaseDb, LeaseError, Mac};
pub use pool::{Pool, Reservation};
pub use server::{Dest, Reply, Server};
pub use service::{DhcpService, ServiceError};
