//! The desired state: the `network` config resolved against the links the kernel has.
//!
//! Resolution is the only step that needs the kernel (to match NICs by MAC and to pick
//! NICs when the config lists none), and it only reads. Everything netd then writes —
//! links, addresses, sysctls, the firewall — is derived from the [`Plan`], so
//! `netd --dry-run` prints exactly what an apply would converge to. Problems are
//! collected, each naming its config field, and nothing is applied when there is any.
//!
//! One exception, for the resident daemon ([`Missing::Defer`]): a NIC the config names
//! (or, with `interfaces = []`, the first NIC to be the WAN) that the kernel does not
//! have *yet* is not a reason to refuse the rest. The plan then leaves out what
//! depends on it — a missing WAN means no WAN zone, no masquerade, no port forwards,
//! no default route and no DHCP client; a missing LAN NIC is simply not a bridge port —
//! and lists the problem in [`Plan::waiting`]. The daemon applies that, reports ready,
//! and re-plans when a link appears. `--once` and `--dry-run` use
//! [`Missing::Reject`]: a missing NIC is invalid input there.

use std::fmt;
use std::net::Ipv4Addr;

use hearth_config::{Cidr, Network, Role, Wan};
use ipnet::Ipv4Net;

use crate::link::{fmt_mac, LinkState, Route};

/// One sysctl netd sets, as (key below `/proc/sys`, value).
pub type Sysctl = (&'static str, &'static str);

/// Router sysctls: forward IPv4; strict reverse-path filtering (drops spoofed sources
/// on every interface); no ICMP redirects, which a router with zones must not obey or
/// send.
pub const SYSCTLS: &[Sysctl] = &[
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/conf/all/rp_filter", "1"),
    ("net/ipv4/conf/default/rp_filter", "1"),
    ("net/ipv4/conf/all/accept_redirects", "0"),
    ("net/ipv4/conf/default/accept_redirects", "0"),
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
];

/// The WAN uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanPlan {
    /// The NIC.
    pub name: String,
    /// MTU from the config; `None` leaves the driver's.
    pub mtu: Option<u32>,
    /// Static address, or `None` for DHCP.
    pub address: Option<Ipv4Net>,
    /// Static default gateway.
    pub gateway: Option<Ipv4Addr>,
}

/// A NIC that becomes a port of the LAN bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The NIC.
    pub name: String,
    /// MTU from the config.
    pub mtu: Option<u32>,
}

/// An 802.1Q segment on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanPlan {
    /// Segment (and zone) name.
    pub zone: String,
    /// Link name (`vl-<segment>`; segment names are at most 12 bytes, so it fits).
    pub name: String,
    /// VLAN id.
    pub id: u16,
    /// The gateway address with the segment's prefix.
    pub address: Ipv4Net,
}

/// A firewall zone and the interface it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `wan`, `lan` or a segment name.
    pub name: String,
    /// Its interface.
    pub ifname: String,
    /// Its network (`None` for the WAN).
    pub network: Option<Ipv4Net>,
}

/// What [`resolve`] does with a NIC the config needs but the kernel lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// It is a problem: nothing is planned (`--once`, `--dry-run`).
    Reject,
    /// Plan everything that does not depend on it and list it in [`Plan::waiting`]
    /// (the resident daemon, which re-plans when links appear).
    Defer,
}

/// Everything netd converges the kernel to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The uplink; `None` while its NIC is missing (only with [`Missing::Defer`]).
    pub wan: Option<WanPlan>,
    /// The LAN bridge's name.
    pub bridge: String,
    /// The bridge's (untagged VLAN 1) address.
    pub bridge_address: Ipv4Net,
    /// NICs enslaved to the bridge.
    pub ports: Vec<PortPlan>,
    /// One per segment.
    pub vlans: Vec<VlanPlan>,
    /// `wan` (when there is one), `lan`, then the segments, in config order.
    pub zones: Vec<Zone>,
    /// The config's static routes (`network.routes`), in config order. While the WAN's
    /// NIC is missing, routes through the static WAN's network are left out.
    pub routes: Vec<Route>,
    /// NICs the config needs that do not exist yet (only with [`Missing::Defer`]).
    pub waiting: Vec<PlanProblem>,
}

/// One reason the config cannot be applied to this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProblem {
    /// Config field path, like `network.interfaces[0].mac`.
    pub field: String,
    /// Why.
    pub message: String,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found while resolving the config (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PlanError(pub Vec<PlanProblem>);

/// Name of the VLAN link for segment `name`.
pub fn vlan_link_name(segment: &str) -> String {
    format!("vl-{segment}")
}

fn v4net(c: &Cidr) -> Option<Ipv4Net> {
    Ipv4Net::new(c.ipv4()?, c.prefix()).ok()
}

/// Resolve the network config against the kernel's links.
pub fn resolve(net: &Network, links: &[LinkState], missing: Missing) -> Result<Plan, PlanError> {
    let mut problems = Vec::new();
    // NICs that are not there (yet): problems, or something to wait for (below).
    let mut absent_nics = Vec::new();
    let mut problem = |field: String, message: String| {
        problems.push(PlanProblem { field, message });
    };
    let mut absent = |field: String, message: String| {
        absent_nics.push(PlanProblem { field, message });
    };

    let mut wan: Option<(String, Option<u32>)> = None;
    let mut ports = Vec::new();
    if net.interfaces.is_empty() {
        // The config's documented default: first NIC is the WAN, the rest are LAN.
        let mut nics: Vec<&LinkState> = links.iter().filter(|l| l.is_port_candidate()).collect();
        nics.sort_by_key(|l| l.index);
        match nics.split_first() {
            None => absent(
                "network.interfaces".into(),
                "no interfaces are listed and the system has no NIC to use as the WAN".into(),
            ),
            Some((first, rest)) => {
                wan = Some((first.name.clone(), None));
                ports.extend(rest.iter().map(|l| PortPlan {
                    name: l.name.clone(),
                    mtu: None,
                }));
            }
        }
    }
    for (i, iface) in net.interfaces.iter().enumerate() {
        let at = format!("network.interfaces[{i}]");
        let by_name = iface
            .name
            .as_ref()
            .map(|n| (n, links.iter().find(|l| l.name == n.as_str())));
        let by_mac = iface.mac.map(|m| {
            let mac = m.octets();
            (mac, links.iter().find(|l| l.mac == Some(mac)))
        });
        let found = match (by_name, by_mac) {
            (Some((n, None)), _) => {
                absent(format!("{at}.name"), format!("no interface named {n}"));
                None
            }
            (None, Some((mac, None))) => {
                absent(
                    format!("{at}.mac"),
                    format!("no interface has MAC address {}", fmt_mac(mac)),
                );
                None
            }
            (Some((_, Some(l))), Some((mac, _))) if l.mac != Some(mac) => {
                problem(
                    format!("{at}.mac"),
                    format!(
                        "{} has MAC address {}, not {}",
                        l.name,
                        l.mac.map(fmt_mac).unwrap_or_else(|| "(none)".into()),
                        fmt_mac(mac)
                    ),
                );
                None
            }
            (Some((_, Some(l))), _) | (None, Some((_, Some(l)))) => Some(l),
            (None, None) => None, // the config crate already rejects this
        };
        let Some(link) = found else { continue };
        if link.owned() || !matches!(link.kind.as_deref(), None | Some("veth")) {
            problem(
                at.clone(),
                format!(
                    "{} is a {} link, not a NIC",
                    link.name,
                    link.kind.as_deref().unwrap_or("virtual")
                ),
            );
            continue;
        }
        let mtu = iface.mtu.map(|m| u32::from(m.get()));
        match iface.role {
            Role::Wan => wan = Some((link.name.clone(), mtu)),
            Role::Lan => ports.push(PortPlan {
                name: link.name.clone(),
                mtu,
            }),
        }
    }

    let mut seen: Vec<&str> = Vec::new();
    for name in wan
        .iter()
        .map(|w| w.0.as_str())
        .chain(ports.iter().map(|p| p.name.as_str()))
    {
        if seen.contains(&name) {
            problem(
                "network.interfaces".into(),
                format!("{name} is matched by more than one entry"),
            );
        }
        seen.push(name);
    }

    let bridge = net.lan.bridge.as_str().to_owned();
    let bridge_address = v4net(&net.lan.address);
    if bridge_address.is_none() {
        problem(
            "network.lan.address".into(),
            "the LAN address must be IPv4".into(),
        );
    }
    let (address, gateway) = match &net.wan {
        Wan::Dhcp => (None, None),
        Wan::Static {
            address, gateway, ..
        } => {
            let a = v4net(address);
            if a.is_none() {
                problem(
                    "network.wan.address".into(),
                    "the WAN address must be IPv4".into(),
                );
            }
            (a, Some(*gateway))
        }
    };
    let mut vlans = Vec::new();
    for (i, s) in net.segments.iter().enumerate() {
        match Ipv4Net::new(s.gateway, s.subnet.prefix()) {
            Ok(address) => vlans.push(VlanPlan {
                zone: s.name.as_str().to_owned(),
                name: vlan_link_name(s.name.as_str()),
                id: s.vlan.get(),
                address,
            }),
            Err(_) => problem(
                format!("network.segments[{i}].subnet"),
                "segment subnets must be IPv4".into(),
            ),
        }
    }
    let mut routes = Vec::new();
    for (i, r) in net.routes.iter().enumerate() {
        match v4net(&r.destination) {
            Some(destination) => routes.push(Route {
                destination: destination.trunc(),
                gateway: r.gateway,
            }),
            None => problem(
                format!("network.routes[{i}].destination"),
                "route destinations must be IPv4".into(),
            ),
        }
    }
    let waiting = match missing {
        Missing::Reject => {
            problems.extend(absent_nics);
            Vec::new()
        }
        Missing::Defer => absent_nics,
    };
    if wan.is_none() && problems.is_empty() && waiting.is_empty() {
        problems.push(PlanProblem {
            field: "network.interfaces".into(),
            message: "no interface has role = \"wan\"".into(),
        });
    }
    let Some(bridge_address) = bridge_address.filter(|_| problems.is_empty()) else {
        return Err(PlanError(problems));
    };

    if wan.is_none() {
        // Their gateway is unreachable until the WAN is up (the kernel would refuse).
        routes.retain(|r| !address.is_some_and(|a| a.contains(&r.gateway)));
    }
    let wan = wan.map(|(name, mtu)| WanPlan {
        name,
        mtu,
        address,
        gateway,
    });
    let mut zones: Vec<Zone> = wan
        .iter()
        .map(|w| Zone {
            name: "wan".into(),
            ifname: w.name.clone(),
            network: None,
        })
        .collect();
    zones.push(Zone {
        name: "lan".into(),
        ifname: bridge.clone(),
        network: Some(bridge_address.trunc()),
    });
    zones.extend(vlans.iter().map(|v| Zone {
        name: v.zone.clone(),
        ifname: v.name.clone(),
        network: Some(v.address.trunc()),
    }));
    Ok(Plan {
        wan,
        bridge,
        bridge_address,
        ports,
        vlans,
        zones,
        routes,
        waiting,
    })
}

impl Plan {
    /// The zone whose network holds `ip`.
    pub fn zone_of(&self, ip: Ipv4Addr) -> Option<&Zone> {
        self.zones
            .iter()
            .find(|z| z.network.is_some_and(|n| n.contains(&ip)))
    }
}

impl fmt::Display for Plan {
    /// The human-readable link plan `--dry-run` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mtu = |m: Option<u32>| m.map(|m| format!(" mtu {m}")).unwrap_or_default();
        match &self.wan {
            Some(w) => {
                write!(f, "wan {}{} up", w.name, mtu(w.mtu))?;
                match (w.address, w.gateway) {
                    (Some(a), Some(g)) => writeln!(f, " address {a} gateway {g}")?,
                    _ => writeln!(f, " dhcp")?,
                }
            }
            None => writeln!(f, "wan none (waiting for its NIC)")?,
        }
        writeln!(
            f,
            "bridge {} up address {}",
            self.bridge, self.bridge_address
        )?;
        for p in &self.ports {
            writeln!(f, "port {}{} master {} up", p.name, mtu(p.mtu), self.bridge)?;
        }
        for v in &self.vlans {
            writeln!(
                f,
                "vlan {} id {} on {} up address {} zone {}",
                v.name, v.id, self.bridge, v.address, v.zone
            )?;
        }
        for r in &self.routes {
            writeln!(f, "route {r}")?;
        }
        for (key, value) in SYSCTLS {
            writeln!(f, "sysctl {}={value}", key.replace('/', "."))?;
        }
        for w in &self.waiting {
            writeln!(f, "waiting {w}")?;
        }
        Ok(())
    }
}
