//! `dnsd`: the appliance's DHCPv4 server and DNS resolver for every inside network.
//!
//! Boot order inside the process ([`daemon::run`]):
//! 1. Load the config ([`hearth_config::load`]) and derive one [`dhcp::Pool`] per
//!    served network ([`settings`]).
//! 2. Open the lease database in the state directory ([`dhcp::lease`]); replaying it
//!    restores every lease that was ever ACKed, also after `kill -9`.
//! 3. Bind one DHCP socket per interface ([`dhcp::socket`]) and the DNS sockets
//!    ([`dns::server`]); then report readiness ([`hearth_agent::ready::notify`]).
//! 4. Serve. Host names from leases and reservations are collected in [`hosts`] and
//!    answered by the local DNS zone ([`dns::zone`]); everything else is forwarded
//!    and cached ([`dns::forward`], [`dns::cache`]). SIGHUP reloads the whole config,
//!    all parts or none ([`reload`]).
//!
//! Standalone: `dnsd --config FILE --state-dir DIR [--interface IFNAME=NETWORK]...
//! [--dns-listen ADDR:PORT]... [--upstream ADDR:PORT]... [--wan-lease FILE]`. With no
//! upstream configured, the DNS servers netd learned on the WAN are used
//! ([`dns::wan_lease`]).

pub mod bench;
pub mod daemon;
pub mod dhcp;
pub mod dns;
pub mod hosts;
pub mod reload;
pub mod settings;
