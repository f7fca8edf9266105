//! Network value types: VLAN ids, ports, MTUs, CIDRs, interface names, MAC
//! addresses and DNS upstream addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{int_value, string_value, ValueError};

/// An 802.1Q VLAN id, 1..=4094 (0 and 4095 are reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanId(u16);

impl TryFrom<u64> for VlanId {
    type Error = ValueError;
    fn try_from(n: u64) -> Result<Self, ValueError> {
        match n {
            1..=4094 => Ok(Self(n as u16)),
            _ => Err(ValueError::VlanId(n)),
        }
    }
}
int_value!(VlanId, u16, "VlanId", 1, 4094);

/// A TCP or UDP port, 1..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl TryFrom<u64> for Port {
    type Error = ValueError;
    fn try_from(n: u64) -> Result<Self, ValueError> {
        match n {
            1..=65535 => Ok(Self(n as u16)),
            _ => Err(ValueError::Port(n)),
        }
    }
}
int_value!(Port, u16, "Port", 1, 65535);

/// An interface MTU, 68..=9000 (68 is the IPv4 minimum; 9000 the usual jumbo frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mtu(u16);

impl TryFrom<u64> for Mtu {
    type Error = ValueError;
    fn try_from(n: u64) -> Result<Self, ValueError> {
        match n {
            68..=9000 => Ok(Self(n as u16)),
            _ => Err(ValueError::Mtu(n)),
        }
    }
}
int_value!(Mtu, u16, "Mtu", 68, 9000);

/// An address with a prefix length, IPv4 (`192.168.10.0/24`) or IPv6 (`fd00::/64`).
/// Host bits may be set (an interface address); rules that want a network address
/// check [`Cidr::is_network`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address as IPv4, if it is one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    fn mask(&self) -> u128 {
        let bits = self.width();
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (bits - u32::from(self.prefix))) & width_mask(bits)
        }
    }

    fn width(&self) -> u32 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn with_bits(&self, bits: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.with_bits(Self::bits(self.addr) & self.mask())
    }

    /// The last address of the network (the IPv4 broadcast address).
    pub fn broadcast(&self) -> IpAddr {
        self.with_bits(Self::bits(self.addr) | (!self.mask() & width_mask(self.width())))
    }

    /// This prefix with host bits cleared.
    pub fn trunc(&self) -> Cidr {
        Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether the address is the network address (no host bits set).
    pub fn is_network(&self) -> bool {
        self.addr == self.network()
    }

    /// Whether `ip` lies inside this network (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && Self::bits(ip) & self.mask() == Self::bits(self.addr) & self.mask()
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

fn width_mask(bits: u32) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

impl TryFrom<String> for Cidr {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bad = |reason: &str| ValueError::invalid("CIDR", &s, reason);
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected address/prefix, e.g. 192.168.10.0/24"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("bad IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad(&format!("prefix length must be 0..={max}")))?;
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
string_value!(Cidr, "Cidr", {
    "type": "string",
    "description": "IPv4 or IPv6 address with prefix length, e.g. 192.168.10.0/24",
    "pattern": "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
});

/// A Linux network interface name: 1..=15 bytes (IFNAMSIZ - 1), no `/`, `:` or
/// whitespace, not `.` or `..` (the kernel's `dev_valid_name`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let reason = if s.is_empty() {
            Some("must not be empty")
        } else if s.len() > 15 {
            Some("longer than 15 bytes")
        } else if s == "." || s == ".." {
            Some("must not be . or ..")
        } else if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
            Some("must not contain '/', ':' or whitespace")
        } else {
            None
        };
        match reason {
            Some(r) => Err(ValueError::invalid("interface name", &s, r)),
            None => Ok(Self(s)),
        }
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_value!(IfName, "IfName", {
    "type": "string", "minLength": 1, "maxLength": 15, "pattern": "^[^/:\\s]+$"
});

/// A unicast Ethernet MAC address, written `aa:bb:cc:dd:ee:ff` (or with `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl TryFrom<String> for MacAddr {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let bad = |reason: &str| ValueError::invalid("MAC address", &s, reason);
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad(
                "expected six two-digit hex octets like 52:54:00:12:34:56",
            ));
        }
        let mut octets = [0u8; 6];
        for (o, p) in octets.iter_mut().zip(&parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        if octets[0] & 1 == 1 {
            return Err(bad("multicast/broadcast address, not a device address"));
        }
        Ok(Self(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
string_value!(MacAddr, "MacAddr", {
    "type": "string", "pattern": "^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"
});

/// A DNS upstream server: an IP address, optionally with a port
/// (`9.9.9.9`, `9.9.9.9:53`, `[2620:fe::fe]:53`, `2620:fe::fe`); the port defaults
/// to 53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Upstream(SocketAddr);

impl Upstream {
    /// The server's address and port.
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl TryFrom<String> for Upstream {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            if sa.port() == 0 {
                return Err(ValueError::invalid("DNS upstream", &s, "port 0"));
            }
            return Ok(Self(sa));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(SocketAddr::new(ip, 53)))
            .map_err(|_| {
                ValueError::invalid("DNS upstream", &s, "expected IP or IP:port ([v6]:port)")
            })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_value!(Upstream, "Upstream", {
    "type": "string", "description": "IP address or IP:port ([v6]:port); port defaults to 53"
});

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn cidr_math() {
        let c = cidr("192.168.10.1/24");
        assert_eq!(c.network().to_string(), "192.168.10.0");
        assert_eq!(c.broadcast().to_string(), "192.168.10.255");
        assert!(!c.is_network());
        assert!(c.trunc().is_network());
        assert!(c.contains("192.168.10.77".parse().unwrap()));
        assert!(!c.contains("192.168.11.1".parse().unwrap()));
        assert!(c.overlaps(&cidr("192.168.0.0/16")));
        assert!(!c.overlaps(&cidr("192.168.11.0/24")));
        assert!(cidr("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(cidr("fd00::/64").contains("fd00::1".parse().unwrap()));
        assert_eq!(cidr("fd00::1/128").broadcast().to_string(), "fd00::1");
        assert!(Cidr::try_from("10.0.0.0/33".to_owned()).is_err());
        assert!(Cidr::try_from("fd00::/129".to_owned()).is_err());
        assert!(Cidr::try_from("10.0.0.0".to_owned()).is_err());
    }

    #[test]
    fn ranges() {
        assert!(VlanId::try_from(0).is_err());
        assert!(VlanId::try_from(4095).is_err());
        assert_eq!(VlanId::try_from(4094).unwrap().get(), 4094);
        assert!(Port::try_from(65536).is_err());
        assert!(Mtu::try_from(67).is_err());
    }

    #[test]
    fn names_and_macs() {
        assert!(IfName::try_from("enp0s31f6xxxxxx".to_owned()).is_ok());
        assert!(IfName::try_from("enp0s31f6xxxxxxx".to_owned()).is_err());
        assert!(IfName::try_from("a/b".to_owned()).is_err());
        let m = MacAddr::try_from("52-54-00-AB-cd-01".to_owned()).unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert!(MacAddr::try_from("01:00:5e:00:00:01".to_owned()).is_err());
        assert_eq!(
            Upstream::try_from("[2620:fe::fe]:5353".to_owned())
                .unwrap()
                .addr()
                .port(),
            5353
        );
        assert_eq!(
            Upstream::try_from("9.9.9.9".to_owned())
                .unwrap()
                .addr()
                .port(),
            53
        );
    }
}
