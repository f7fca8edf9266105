//! `[network]`: interfaces, the WAN uplink, the LAN bridge (untagged VLAN 1), tagged
//! segments, and the firewall between them.
//!
//! Zones are `wan`, `lan` and one per segment (its name); the firewall's rules name
//! zones. Everything not allowed is dropped.

use std::net::{IpAddr, Ipv4Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::locate::FieldPath;
use crate::validate::{path, Findings};
use crate::value::{list, Cidr, IfName, MacAddr, Mtu, Name, Port, SegmentName, VlanId};
use crate::Config;

/// `[network]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Physical interfaces and their roles. Empty: the first NIC is the WAN, all
    /// others join the LAN bridge.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// How the WAN gets its address. Default DHCP.
    #[serde(default)]
    pub wan: Wan,
    /// The LAN bridge and its (untagged, VLAN 1) network.
    #[serde(default)]
    pub lan: Lan,
    /// Tagged VLAN segments on the LAN bridge.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Zone policy.
    #[serde(default)]
    pub firewall: Firewall,
    /// Static routes to networks behind another router on a directly connected
    /// network. The default route belongs to `network.wan`.
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
}

/// `[[network.routes]]`: traffic for `destination` goes via `gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// The IPv4 network reached through the gateway, e.g. `192.168.50.0/24`.
    pub destination: Cidr,
    /// The next hop, inside the LAN network, a segment subnet or the static WAN's
    /// network.
    pub gateway: Ipv4Addr,
}

/// `[[network.interfaces]]`: a NIC, matched by name and/or MAC.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Kernel interface name (`enp1s0`).
    #[serde(default)]
    pub name: Option<IfName>,
    /// Hardware address; matched when the name is absent or unstable.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// What the NIC is for.
    pub role: Role,
    /// MTU, 68..=9000. Absent: the driver's default.
    #[serde(default)]
    pub mtu: Option<Mtu>,
}

/// The job of a NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The uplink.
    Wan,
    /// A port of the LAN bridge.
    Lan,
}

/// `[network.wan]`: DHCP (`mode = "dhcp"`) or a static address (`mode = "static"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "lowercase", try_from = "WanToml")]
pub enum Wan {
    /// Ask the upstream's DHCP server.
    #[default]
    Dhcp,
    /// A fixed address.
    Static {
        /// Address and prefix, e.g. `203.0.113.10/24`.
        address: Cidr,
        /// Default gateway, inside `address`'s network.
        gateway: Ipv4Addr,
        /// DNS servers offered by the uplink (used when `dns.upstreams` is empty).
        dns: Vec<IpAddr>,
    },
}

/// The TOML shape of [`Wan`]: flat, so that unknown keys and bad values are
/// reported at their own position (serde's internally tagged enums lose spans).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WanToml {
    mode: WanMode,
    address: Option<Cidr>,
    gateway: Option<Ipv4Addr>,
    dns: Option<Vec<IpAddr>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum WanMode {
    Dhcp,
    Static,
}

impl TryFrom<WanToml> for Wan {
    type Error = String;
    fn try_from(t: WanToml) -> Result<Self, String> {
        match t.mode {
            WanMode::Dhcp => {
                if t.address.is_some() || t.gateway.is_some() || t.dns.is_some() {
                    return Err(
                        "mode = \"dhcp\" takes no address, gateway or dns (they come from DHCP)"
                            .to_owned(),
                    );
                }
                Ok(Self::Dhcp)
            }
            WanMode::Static => match (t.address, t.gateway) {
                (Some(address), Some(gateway)) => Ok(Self::Static {
                    address,
                    gateway,
                    dns: t.dns.unwrap_or_default(),
                }),
                _ => Err("mode = \"static\" needs `address` and `gateway`".to_owned()),
            },
        }
    }
}

/// `[network.lan]`: the LAN bridge, carrying the untagged default VLAN 1.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// Bridge interface name. Default `br-lan`.
    #[serde(default = "default_bridge")]
    pub bridge: IfName,
    /// The appliance's address on the LAN, with the LAN's prefix. Default
    /// `192.168.1.1/24`.
    #[serde(default = "default_lan_address")]
    pub address: Cidr,
}

fn default_bridge() -> IfName {
    IfName::try_from("br-lan".to_owned()).expect("valid default bridge name")
}

fn default_lan_address() -> Cidr {
    Cidr::try_from("192.168.1.1/24".to_owned()).expect("valid default LAN address")
}

impl Default for Lan {
    fn default() -> Self {
        Self {
            bridge: default_bridge(),
            address: default_lan_address(),
        }
    }
}

/// `[[network.segments]]`: a tagged VLAN with its own subnet; the appliance is its
/// gateway.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Segment (and firewall zone) name.
    pub name: SegmentName,
    /// 802.1Q VLAN id, 2..=4094 (1 is the untagged LAN).
    pub vlan: VlanId,
    /// The segment's network, e.g. `10.20.0.0/24`.
    pub subnet: Cidr,
    /// The appliance's address in the segment.
    pub gateway: Ipv4Addr,
}

/// `[network.firewall]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// Forwarding between zones; pairs not listed are dropped.
    #[serde(default)]
    pub forward: Vec<ForwardRule>,
    /// Services on the appliance itself, per zone; others are dropped.
    #[serde(default)]
    pub allow: Vec<ZoneAllow>,
    /// DNAT from the WAN to a host inside.
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
}

/// `[[network.firewall.forward]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// Source zone.
    pub from: Name,
    /// Destination zone.
    pub to: Name,
    /// What happens to new connections from `from` to `to`.
    pub action: Action,
}

/// A firewall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Accept,
    /// Silently discard.
    Drop,
}

/// `[[network.firewall.allow]]`: services a zone may reach on the appliance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneAllow {
    /// The zone.
    pub zone: Name,
    /// The services.
    #[serde(deserialize_with = "list")]
    pub services: Vec<Service>,
}

/// A service the appliance offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// DNS resolver, 53/udp+tcp.
    Dns,
    /// DHCP server, 67/udp.
    Dhcp,
    /// SSH, 22/tcp.
    Ssh,
    /// The admin web UI.
    HttpAdmin,
    /// SMB file sharing, 445/tcp.
    Smb,
    /// NFS, 2049/tcp.
    Nfs,
    /// The media server.
    Media,
    /// ICMP echo.
    Ping,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TOML spelling.
        let name = serde_json::to_value(self).expect("unit variants serialize");
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// `[[network.firewall.port_forwards]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// A label for logs.
    pub name: Name,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Port on the WAN address.
    pub external_port: Port,
    /// Inside host (in the LAN or a segment).
    pub to: Ipv4Addr,
    /// Port on the inside host. Default: `external_port`.
    #[serde(default)]
    pub to_port: Option<Port>,
}

impl PortForward {
    /// The port on the inside host.
    pub fn target_port(&self) -> Port {
        self.to_port.unwrap_or(self.external_port)
    }
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TOML spelling.
        let name = serde_json::to_value(self).expect("unit variants serialize");
        f.write_str(name.as_str().unwrap_or_default())
    }
}

impl Network {
    /// The zone names rules may use: `wan`, `lan` and every segment's name.
    pub fn zones(&self) -> Vec<&str> {
        let mut z = vec!["wan", "lan"];
        z.extend(self.segments.iter().map(|s| s.name.as_str()));
        z
    }

    /// The inside networks: the LAN's (`"lan"`) and each segment's, by zone name.
    pub fn inside_networks(&self) -> Vec<(&str, Cidr)> {
        let mut n = vec![("lan", self.lan.address.trunc())];
        n.extend(self.segments.iter().map(|s| (s.name.as_str(), s.subnet)));
        n
    }
}

/// Checks that `gw` is a usable host address of `net` (inside, and not the network
/// or broadcast address of a network that has them).
fn check_gateway(out: &mut Findings, at: FieldPath, gw: Ipv4Addr, net: &Cidr, what: &str) {
    let ip = IpAddr::V4(gw);
    if !net.contains(ip) {
        out.push(at, format!("{what} {gw} is outside {}", net.trunc()));
    } else if net.prefix() < 31 && ip == net.network() {
        out.push(
            at,
            format!("{what} {gw} is the network address of {}", net.trunc()),
        );
    } else if net.prefix() < 31 && ip == net.broadcast() {
        out.push(
            at,
            format!("{what} {gw} is the broadcast address of {}", net.trunc()),
        );
    }
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let net = &cfg.network;
    check_interfaces(net, out);
    check_addresses(net, out);
    check_firewall(net, out);
    check_routes(net, out);
}

/// Destinations are unique IPv4 network addresses other than the default route;
/// gateways sit in a directly connected network (the kernel refuses others).
fn check_routes(net: &Network, out: &mut Findings) {
    let at = |i: usize| path("network.routes").at(i);
    let mut connected = net.inside_networks();
    if let Wan::Static { address, .. } = &net.wan {
        connected.push(("wan", address.trunc()));
    }
    out.duplicates(
        (net.routes.iter().enumerate())
            .map(|(i, r)| (at(i).key("destination"), r.destination.trunc())),
        |d| format!("a route to {d} is already listed"),
    );
    for (i, r) in net.routes.iter().enumerate() {
        let d = &r.destination;
        if d.ipv4().is_none() {
            out.push(at(i).key("destination"), "route destinations must be IPv4");
        } else if d.prefix() == 0 {
            out.push(
                at(i).key("destination"),
                "0.0.0.0/0 is the default route, which belongs to network.wan",
            );
        } else if !d.is_network() {
            out.push(
                at(i).key("destination"),
                format!(
                    "{d} has host bits set; the network address is {}",
                    d.trunc()
                ),
            );
        }
        let gw = IpAddr::V4(r.gateway);
        if !connected.iter().any(|(_, n)| n.contains(gw)) {
            let nets: Vec<String> = connected.iter().map(|(_, n)| n.to_string()).collect();
            out.push(
                at(i).key("gateway"),
                format!(
                    "{} is not in a directly connected network ({})",
                    r.gateway,
                    nets.join(", ")
                ),
            );
        }
    }
}

fn check_interfaces(net: &Network, out: &mut Findings) {
    let at = |i: usize| path("network.interfaces").at(i);
    let mut wan_seen = false;
    for (i, iface) in net.interfaces.iter().enumerate() {
        if iface.name.is_none() && iface.mac.is_none() {
            out.push(
                at(i),
                "an interface needs a `name` or a `mac` to be matched by",
            );
        }
        if iface.role == Role::Wan {
            if wan_seen {
                out.push(
                    at(i).key("role"),
                    "more than one interface has role = \"wan\"; exactly one uplink is supported",
                );
            }
            wan_seen = true;
        }
    }
    if !net.interfaces.is_empty() && !wan_seen {
        out.push(
            path("network.interfaces"),
            "no interface has role = \"wan\"",
        );
    }
    out.duplicates(
        (net.interfaces.iter().enumerate())
            .filter_map(|(i, f)| f.name.as_ref().map(|n| (at(i).key("name"), n))),
        |n| format!("interface {n} is listed twice"),
    );
    out.duplicates(
        (net.interfaces.iter().enumerate())
            .filter_map(|(i, f)| f.mac.map(|m| (at(i).key("mac"), m))),
        |m| format!("MAC address {m} is listed twice"),
    );
    if net
        .interfaces
        .iter()
        .any(|f| f.name.as_ref() == Some(&net.lan.bridge))
    {
        out.push(
            path("network.lan.bridge"),
            format!("{} is also a physical interface name", net.lan.bridge),
        );
    }
}

fn check_addresses(net: &Network, out: &mut Findings) {
    let lan = &net.lan.address;
    let lan_net = lan.trunc();
    if lan.ipv4().is_none() {
        out.push(path("network.lan.address"), "the LAN address must be IPv4");
    } else if lan.prefix() < 31 && (lan.addr() == lan.network() || lan.addr() == lan.broadcast()) {
        out.push(
            path("network.lan.address"),
            format!(
                "{} is the network or broadcast address of {lan_net}; the appliance needs a host address like {}",
                lan.addr(),
                first_host(&lan_net)
            ),
        );
    }

    let seg = |i: usize| path("network.segments").at(i);
    out.duplicates(
        (net.segments.iter().enumerate()).map(|(i, s)| (seg(i).key("name"), s.name.as_str())),
        |n| format!("segment name {n:?} is used twice"),
    );
    out.duplicates(
        (net.segments.iter().enumerate()).map(|(i, s)| (seg(i).key("vlan"), s.vlan)),
        |v| format!("VLAN id {v} is used twice"),
    );
    for (i, s) in net.segments.iter().enumerate() {
        if s.vlan.get() == 1 {
            out.push(
                seg(i).key("vlan"),
                "VLAN 1 is the untagged LAN (network.lan); segments use 2..=4094",
            );
        }
        if s.subnet.ipv4().is_none() {
            out.push(seg(i).key("subnet"), "segment subnets must be IPv4");
            continue;
        }
        if !s.subnet.is_network() {
            out.push(
                seg(i).key("subnet"),
                format!(
                    "{} has host bits set; the network address is {}",
                    s.subnet,
                    s.subnet.trunc()
                ),
            );
        }
        check_gateway(out, seg(i).key("gateway"), s.gateway, &s.subnet, "gateway");
        if s.subnet.overlaps(&lan_net) {
            out.push(
                seg(i).key("subnet"),
                format!("{} overlaps the LAN network {lan_net}", s.subnet),
            );
        }
        for (j, other) in net.segments.iter().enumerate().take(i) {
            if s.subnet.overlaps(&other.subnet) {
                out.push(
                    seg(i).key("subnet"),
                    format!(
                        "{} overlaps segment {:?} ({}, network.segments[{j}])",
                        s.subnet,
                        other.name.as_str(),
                        other.subnet
                    ),
                );
            }
        }
    }

    if let Wan::Static {
        address, gateway, ..
    } = &net.wan
    {
        if address.ipv4().is_none() {
            out.push(path("network.wan.address"), "the WAN address must be IPv4");
        } else {
            check_gateway(
                out,
                path("network.wan.gateway"),
                *gateway,
                address,
                "gateway",
            );
            if IpAddr::V4(*gateway) == address.addr() {
                out.push(
                    path("network.wan.gateway"),
                    "the gateway is the WAN address itself",
                );
            }
            for (zone, inside) in net.inside_networks() {
                if address.trunc().overlaps(&inside) {
                    out.push(
                        path("network.wan.address"),
                        format!("{} overlaps the {zone} network {inside}", address.trunc()),
                    );
                }
            }
        }
    }
}

fn first_host(net: &Cidr) -> String {
    match net.network() {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a).wrapping_add(1)).to_string(),
        IpAddr::V6(a) => a.to_string(),
    }
}

fn check_firewall(net: &Network, out: &mut Findings) {
    let fw = &net.firewall;
    let zones = net.zones();
    let mut zone = |at: FieldPath, z: &Name| {
        if !zones.contains(&z.as_str()) {
            out.push(
                at,
                format!(
                    "unknown zone {:?}; zones are {}",
                    z.as_str(),
                    zones.join(", ")
                ),
            );
        }
    };
    for (i, r) in fw.forward.iter().enumerate() {
        let at = path("network.firewall.forward").at(i);
        zone(at.key("from"), &r.from);
        zone(at.key("to"), &r.to);
    }
    for (i, a) in fw.allow.iter().enumerate() {
        zone(path("network.firewall.allow").at(i).key("zone"), &a.zone);
    }
    out.duplicates(
        (fw.forward.iter().enumerate()).map(|(i, r)| {
            (
                path("network.firewall.forward").at(i),
                (r.from.clone(), r.to.clone()),
            )
        }),
        |(f, t)| format!("forwarding from {f} to {t} is already decided"),
    );
    out.duplicates(
        (fw.allow.iter().enumerate())
            .map(|(i, a)| (path("network.firewall.allow").at(i).key("zone"), &a.zone)),
        |z| format!("zone {z} already has an allow entry"),
    );

    let pf = |i: usize| path("network.firewall.port_forwards").at(i);
    out.duplicates(
        (fw.port_forwards.iter().enumerate()).map(|(i, p)| (pf(i).key("name"), p.name.as_str())),
        |n| format!("port forward name {n:?} is used twice"),
    );
    out.duplicates(
        (fw.port_forwards.iter().enumerate())
            .map(|(i, p)| (pf(i).key("external_port"), (p.protocol, p.external_port))),
        |(proto, port)| format!("{proto} port {port} is already forwarded"),
    );
    let inside = net.inside_networks();
    for (i, p) in fw.port_forwards.iter().enumerate() {
        let ip = IpAddr::V4(p.to);
        match inside.iter().find(|(_, n)| n.contains(ip)) {
            None => out.push(
                pf(i).key("to"),
                format!("{} is not in the LAN or any segment subnet", p.to),
            ),
            Some((_, n)) if ip == n.network() || ip == n.broadcast() => out.push(
                pf(i).key("to"),
                format!("{} is the network or broadcast address of {n}", p.to),
            ),
            Some(_) => {}
        }
    }
}
