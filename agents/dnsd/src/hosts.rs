//! Host names learned from DHCP (leases and reservations), shared with the DNS zone.
//!
//! The DHCP server writes, the DNS zone ([`crate::dns::zone`]) reads; names are single lowercase labels
//! and live inside `dns.domain`. Cloning a [`Hosts`] shares the table.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

/// The shared name table: label -> address.
#[derive(Debug, Clone, Default)]
pub struct Hosts(Arc<RwLock<HashMap<String, Ipv4Addr>>>);

impl Hosts {
    /// Point `name` at `ip`.
    pub fn insert(&self, name: &str, ip: Ipv4Addr) {
        let mut t = self.0.write().expect("hosts lock");
        t.insert(name.to_ascii_lowercase(), ip);
    }

    /// Forget `name` if it still points at `ip`.
    pub fn remove(&self, name: &str, ip: Ipv4Addr) {
        let mut t = self.0.write().expect("hosts lock");
        let key = name.to_ascii_lowercase();
        if t.get(&key) == Some(&ip) {
            t.remove(&key);
        }
    }

    /// The address of `name`.
    pub fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        let t = self.0.read().expect("hosts lock");
        t.get(&name.to_ascii_lowercase()).copied()
    }

    /// The name of `ip` (for PTR).
    pub fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
        let t = self.0.read().expect("hosts lock");
        let mut names: Vec<&String> = t
            .iter()
            .filter(|(_, a)| **a == ip)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names.first().map(|n| (*n).clone())
    }
}
