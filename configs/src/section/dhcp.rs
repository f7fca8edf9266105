//! `[dhcp]`: address pools per inside network and fixed reservations.

use std::net::{IpAddr, Ipv4Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{path, Findings};
use crate::value::{Cidr, Duration, Hostname, MacAddr, Name};
use crate::Config;

/// `[dhcp]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    /// Dynamic ranges, at most one per network.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Fixed addresses by MAC.
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    /// NTP servers announced to clients (option 42), in order. Default: none.
    #[serde(default)]
    pub ntp_servers: Vec<Ipv4Addr>,
}

/// `[[dhcp.pools]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// A segment's name, or `lan` for the untagged LAN.
    pub segment: Name,
    /// First address handed out.
    pub range_start: Ipv4Addr,
    /// Last address handed out.
    pub range_end: Ipv4Addr,
    /// Lease length. Default `12h`.
    #[serde(default = "default_lease")]
    pub lease_time: Duration,
    /// Extra routes announced to clients (classless static routes, option 121) next
    /// to the default route through the appliance. Default: none.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// `[[dhcp.pools.routes]]`: a route a DHCP client installs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The destination network (an IPv4 network address with its prefix).
    pub destination: Cidr,
    /// The next hop, inside the pool's network.
    pub gateway: Ipv4Addr,
}

fn default_lease() -> Duration {
    Duration::from_secs(12 * 3600)
}

/// `[[dhcp.reservations]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// The client's MAC.
    pub mac: MacAddr,
    /// The address it always gets.
    pub address: Ipv4Addr,
    /// The name it is given in `dns.domain`.
    pub hostname: Hostname,
}

/// The smallest lease the server hands out.
const MIN_LEASE_SECS: u64 = 60;

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let dhcp = &cfg.dhcp;
    let networks = cfg.network.inside_networks();
    let gateway_of = |zone: &str| -> Option<Ipv4Addr> {
        if zone == "lan" {
            cfg.network.lan.address.ipv4()
        } else {
            (cfg.network.segments.iter())
                .find(|s| s.name.as_str() == zone)
                .map(|s| s.gateway)
        }
    };
    let pool = |i: usize| path("dhcp.pools").at(i);
    out.duplicates(
        (dhcp.pools.iter().enumerate()).map(|(i, p)| (pool(i).key("segment"), &p.segment)),
        |s| format!("{s} already has a pool"),
    );
    let mut pooled: Vec<Cidr> = Vec::new();
    for (i, p) in dhcp.pools.iter().enumerate() {
        if p.lease_time.as_secs() < MIN_LEASE_SECS {
            out.push(pool(i).key("lease_time"), "lease_time must be at least 1m");
        }
        if p.range_start > p.range_end {
            out.push(
                pool(i).key("range_start"),
                format!(
                    "range_start {} is after range_end {}",
                    p.range_start, p.range_end
                ),
            );
        }
        let Some((_, net)) = networks.iter().find(|(z, _)| *z == p.segment.as_str()) else {
            let known: Vec<&str> = networks.iter().map(|(z, _)| *z).collect();
            out.push(
                pool(i).key("segment"),
                format!(
                    "unknown segment {:?}; use lan or one of network.segments ({})",
                    p.segment.as_str(),
                    known.join(", ")
                ),
            );
            continue;
        };
        pooled.push(*net);
        for (j, r) in p.routes.iter().enumerate() {
            let route = pool(i).key("routes").at(j);
            if r.destination.ipv4().is_none() || !r.destination.is_network() {
                out.push(
                    route.clone().key("destination"),
                    format!(
                        "{} is not an IPv4 network address with its prefix",
                        r.destination
                    ),
                );
            }
            if !net.contains(IpAddr::V4(r.gateway)) {
                out.push(
                    route.key("gateway"),
                    format!("{} is outside {net} ({})", r.gateway, p.segment),
                );
            }
        }
        for (key, ip) in [("range_start", p.range_start), ("range_end", p.range_end)] {
            let v = IpAddr::V4(ip);
            if !net.contains(v) {
                out.push(
                    pool(i).key(key),
                    format!("{ip} is outside {net} ({})", p.segment),
                );
            } else if v == net.network() || v == net.broadcast() {
                out.push(
                    pool(i).key(key),
                    format!("{ip} is the network or broadcast address of {net}"),
                );
            }
        }
        if let Some(gw) = gateway_of(p.segment.as_str()) {
            if (p.range_start..=p.range_end).contains(&gw) {
                out.push(
                    pool(i),
                    format!(
                        "the range {}-{} includes the gateway {gw}",
                        p.range_start, p.range_end
                    ),
                );
            }
        }
    }

    let res = |i: usize| path("dhcp.reservations").at(i);
    for (i, r) in dhcp.reservations.iter().enumerate() {
        let ip = IpAddr::V4(r.address);
        if !pooled.iter().any(|n| n.contains(ip)) {
            out.push(
                res(i).key("address"),
                format!(
                    "{} is not inside any network that has a DHCP pool",
                    r.address
                ),
            );
        }
        if networks
            .iter()
            .any(|(z, _)| gateway_of(z) == Some(r.address))
        {
            out.push(
                res(i).key("address"),
                format!("{} is the appliance's own address", r.address),
            );
        }
    }
    out.duplicates(
        (dhcp.reservations.iter().enumerate()).map(|(i, r)| (res(i).key("mac"), r.mac)),
        |m| format!("MAC {m} already has a reservation"),
    );
    out.duplicates(
        (dhcp.reservations.iter().enumerate()).map(|(i, r)| (res(i).key("address"), r.address)),
        |a| format!("address {a} is already reserved"),
    );
    out.duplicates(
        (dhcp.reservations.iter().enumerate()).map(|(i, r)| {
            (
                res(i).key("hostname"),
                r.hostname.as_str().to_ascii_lowercase(),
            )
        }),
        |h| format!("hostname {h} is already reserved"),
    );
}
