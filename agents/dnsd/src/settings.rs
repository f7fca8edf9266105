//! What to serve, derived from the appliance config and the command line.
//!
//! The config names networks (`lan` and segments) but not the interfaces they live on,
//! so each pool needs an interface:
//! * `--interface IFNAME=NETWORK` (repeatable) serves exactly the named pools on the
//!   named interfaces; a missing interface is an error. Tests and standalone runs use
//!   this.
//! * Without it, `lan` is served on `network.lan.bridge` and segment `S` with VLAN `N`
//!   on `vl-S` (netd's name for the segment's VLAN link on the bridge, which holds
//!   the gateway address; see `agents/netd/README.md`); pools whose
//!   interface does not exist are skipped with a warning. [`plan`] keeps them (with
//!   no MTU), so the DHCP service can serve them once netd creates the interface
//!   ([`crate::dhcp::service`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use hearth_config::Config;
use ipnet::Ipv4Net;

use crate::dhcp::{Mac, Pool, Reservation};

/// Errors turning the config into pools.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--interface {value:?}: expected IFNAME=NETWORK, e.g. veth0=lan")]
    BadInterfaceFlag { value: String },
    #[error("--interface {iface}={network}: the config has no DHCP pool for {network:?}")]
    NoPool { iface: String, network: String },
    #[error("network {network:?}: its address {addr} is not IPv4")]
    NotIpv4 { network: String, addr: IpAddr },
}

/// One `--interface IFNAME=NETWORK` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceFlag {
    /// The interface.
    pub iface: String,
    /// `lan` or a segment name.
    pub network: String,
}

impl std::str::FromStr for InterfaceFlag {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, SettingsError> {
        match s.split_once('=') {
            Some((i, n)) if !i.is_empty() && !n.is_empty() => Ok(Self {
                iface: i.to_owned(),
                network: n.to_owned(),
            }),
            _ => Err(SettingsError::BadInterfaceFlag {
                value: s.to_owned(),
            }),
        }
    }
}

/// Whether network interface `iface` exists (in this network namespace).
pub fn interface_exists(iface: &str) -> bool {
    Path::new("/sys/class/net").join(iface).exists()
}

/// The index of `iface`, if it exists (a new one each time it is created).
pub fn interface_index(iface: &str) -> Option<u32> {
    let path = Path::new("/sys/class/net").join(iface).join("ifindex");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The MTU of `iface`, if it exists.
pub fn interface_mtu(iface: &str) -> Option<u16> {
    let path = Path::new("/sys/class/net").join(iface).join("mtu");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Log that `pool`'s interface does not exist.
pub fn warn_missing(pool: &Pool) {
    log::warn!(
        "network {}: interface {} does not exist; not serving DHCP there",
        pool.segment,
        pool.interface
    );
}

/// Every pool the config and the flags ask for, also those whose interface does not
/// exist yet (their `mtu` is `None`). With explicit flags, exactly the flagged pools.
pub fn plan(cfg: &Config, flags: &[InterfaceFlag]) -> Result<Vec<Pool>, SettingsError> {
    let net = &cfg.network;
    let bridge = net.lan.bridge.as_str();
    // (network name, interface, appliance address, subnet)
    let mut networks: Vec<(String, String, IpAddr, hearth_config::Cidr)> = vec![(
        "lan".into(),
        bridge.into(),
        net.lan.address.addr(),
        net.lan.address.trunc(),
    )];
    for s in &net.segments {
        networks.push((
            s.name.as_str().into(),
            format!("vl-{}", s.name.as_str()),
            IpAddr::V4(s.gateway),
            s.subnet,
        ));
    }
    let explicit = !flags.is_empty();
    let chosen: Vec<(String, String)> = if explicit {
        flags
            .iter()
            .map(|f| (f.network.clone(), f.iface.clone()))
            .collect()
    } else {
        networks
            .iter()
            .map(|(n, i, _, _)| (n.clone(), i.clone()))
            .collect()
    };
    let mut out = Vec::new();
    for (network, iface) in chosen {
        let pool_cfg = cfg
            .dhcp
            .pools
            .iter()
            .find(|p| p.segment.as_str() == network);
        let Some(pool_cfg) = pool_cfg else {
            if explicit {
                return Err(SettingsError::NoPool { iface, network });
            }
            continue;
        };
        let (_, _, addr, cidr) = networks
            .iter()
            .find(|(n, _, _, _)| *n == network)
            .expect("the config checks that pools name known networks");
        let (IpAddr::V4(server_ip), IpAddr::V4(net_addr)) = (*addr, cidr.network()) else {
            return Err(SettingsError::NotIpv4 {
                network,
                addr: *addr,
            });
        };
        let subnet = Ipv4Net::new(net_addr, cidr.prefix()).expect("a checked prefix");
        let reservations = cfg
            .dhcp
            .reservations
            .iter()
            .filter(|r| subnet.contains(&r.address))
            .map(|r| {
                (
                    Mac(r.mac.octets()),
                    Reservation {
                        ip: r.address,
                        hostname: r.hostname.as_str().to_ascii_lowercase(),
                    },
                )
            })
            .collect::<HashMap<_, _>>();
        out.push(Pool {
            segment: network,
            mtu: interface_mtu(&iface),
            interface: iface,
            server_ip,
            subnet,
            range: pool_cfg.range_start..=pool_cfg.range_end,
            lease_secs: u32::try_from(pool_cfg.lease_time.as_secs()).unwrap_or(u32::MAX),
            domain: cfg.dns.domain.as_str().to_owned(),
            reservations,
            ntp: cfg.dhcp.ntp_servers.clone(),
            routes: pool_cfg
                .routes
                .iter()
                .filter_map(|r| {
                    let IpAddr::V4(dst) = r.destination.network() else {
                        return None; // the config checks routes are IPv4
                    };
                    Some((Ipv4Net::new(dst, r.destination.prefix()).ok()?, r.gateway))
                })
                .collect(),
        });
    }
    Ok(out)
}
