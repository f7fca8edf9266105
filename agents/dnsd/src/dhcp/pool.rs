//! One address pool: a segment's subnet, its dynamic range, its reservations and the
//! options its clients get. Address choice lives here; it reads the lease database
//! and the outstanding offers but never writes (the server commits).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

use super::lease::{LeaseDb, Mac};

/// A fixed address for one MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The address it always gets.
    pub ip: Ipv4Addr,
    /// Its name in the local zone.
    pub hostname: String,
}

/// Everything the server needs to serve one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Segment name (`lan` or a segment), for logs.
    pub segment: String,
    /// The interface the pool is served on.
    pub interface: String,
    /// The appliance's address in the segment: server identifier, router and DNS.
    pub server_ip: Ipv4Addr,
    /// The segment's network.
    pub subnet: Ipv4Net,
    /// The dynamic range.
    pub range: RangeInclusive<Ipv4Addr>,
    /// Lease length in seconds.
    pub lease_secs: u32,
    /// The local DNS domain (option 15).
    pub domain: String,
    /// Interface MTU to announce (option 26), if known.
    pub mtu: Option<u16>,
    /// Reservations inside this subnet, by MAC.
    pub reservations: HashMap<Mac, Reservation>,
    /// NTP servers (option 42); empty: the option is not sent.
    pub ntp: Vec<Ipv4Addr>,
    /// Extra classless static routes (option 121), after the default route.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
}

/// Offers not yet requested: the address is held for its client this long.
pub const OFFER_HOLD_SECS: u64 = 60;

/// Addresses offered but not yet requested: `ip -> (client, until)`.
pub type Offers = HashMap<Ipv4Addr, (Mac, u64)>;

impl Pool {
    /// The reservation of `mac` in this pool, if any.
    pub fn reservation(&self, mac: Mac) -> Option<&Reservation> {
        self.reservations.get(&mac)
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, mac: Mac) -> bool {
        self.reservations
            .iter()
            .any(|(m, r)| r.ip == ip && *m != mac)
    }

    /// Whether `ip` is a host address of the subnet that is not the server's.
    fn usable(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(&ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.server_ip
    }

    /// Whether `mac` may be given `ip` now: it is usable, in the range or reserved for
    /// `mac`, not reserved for another, not leased to or declined by another, and not
    /// offered to another.
    pub fn available(
        &self,
        db: &LeaseDb,
        offers: &Offers,
        mac: Mac,
        ip: Ipv4Addr,
        now: u64,
    ) -> bool {
        let reserved_here = self.reservation(mac).is_some_and(|r| r.ip == ip);
        if !self.usable(ip) || !(reserved_here || self.range.contains(&ip)) {
            return false;
        }
        if self.reserved_for_other(ip, mac) {
            return false;
        }
        if let Some(l) = db.get(ip) {
            if l.mac != Some(mac) && l.active(now) {
                return false;
            }
        }
        !matches!(offers.get(&ip), Some((m, until)) if *m != mac && *until > now)
    }

    /// The address to offer `mac`: its reservation, else its previous address, else
    /// the one it asks for, else a never-used one, else the longest-expired one.
    /// `None` when the pool is exhausted (or its reservation is taken).
    pub fn choose(
        &self,
        db: &LeaseDb,
        offers: &Offers,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let ok = |ip: Ipv4Addr| self.available(db, offers, mac, ip, now);
        if let Some(r) = self.reservation(mac) {
            return ok(r.ip).then_some(r.ip);
        }
        let previous = db
            .of_mac(mac)
            .filter(|l| self.range.contains(&l.ip))
            .max_by_key(|l| l.expires)
            .map(|l| l.ip);
        if let Some(ip) = previous.filter(|ip| ok(*ip)) {
            return Some(ip);
        }
        if let Some(ip) = requested.filter(|ip| ok(*ip)) {
            return Some(ip);
        }
        // Below `first_unrecorded` every address has a record: skipping them gives
        // the same lowest never-used address without rescanning them each time.
        let start = db.first_unrecorded(*self.range.start(), *self.range.end());
        let end = u32::from(*self.range.end());
        let Ok(start) = u32::try_from(start) else {
            return self.oldest_expired(db, &ok);
        };
        let fresh = (start..=end).map(Ipv4Addr::from).find(|ip| {
            db.get(*ip).is_none()
                && offers.get(ip).is_none_or(|(_, until)| *until <= now)
                && ok(*ip)
        });
        fresh.or_else(|| self.oldest_expired(db, &ok))
    }

    /// The available address in range whose lease ended first.
    fn oldest_expired(&self, db: &LeaseDb, ok: &dyn Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        db.iter()
            .filter(|l| self.range.contains(&l.ip) && ok(l.ip))
            .min_by_key(|l| l.expires)
            .map(|l| l.ip)
    }
}
