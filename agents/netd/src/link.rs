//! The netlink boundary: what netd reads and writes about links, addresses, the
//! default route and the config's static routes, as one narrow trait ([`LinkOps`]).
//!
//! Everything above this trait (planning, diffing, rollback) is plain data and is
//! unit-tested against [`crate::fake::FakeLinks`]; the real implementation lives in
//! [`crate::netlink`]. Links are addressed by name: names are what the config and the
//! firewall speak, and the kernel renumbers indices across reboots.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Written as the interface alias (`ip link set X alias ...`) of every link netd
/// creates. Links without it are never modified in ways that create or destroy them.
pub const OWNER_ALIAS: &str = "hearth-netd";

/// The route protocol (`rtm_protocol`, `ip route ... proto 242`) of every static
/// route netd installs. It marks ownership the way [`OWNER_ALIAS`] does for links:
/// netd only ever deletes routes carrying it, and only reads those back, so routes
/// someone else added (`proto static`, `boot`, a routing daemon) are never touched.
/// 242 is outside the numbers linux/rtnetlink.h and iproute2's `rt_protos` assign.
pub const RTPROT_HEARTH: u8 = 0xF2;

/// A static IPv4 route of the main table, owned by netd (see [`RTPROT_HEARTH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The network it leads to.
    pub destination: Ipv4Net,
    /// The next hop.
    pub gateway: Ipv4Addr,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when it has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// Current MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Carrier (`IFF_LOWER_UP`): a cable is in and the link is up. Read-only.
    pub carrier: bool,
    /// `IFLA_INFO_KIND` (`bridge`, `vlan`, `veth`...); `None` for plain NICs.
    pub kind: Option<String>,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// The interface alias (`ifalias`).
    pub alias: Option<String>,
    /// For VLAN links: the parent link and the VLAN id.
    pub vlan: Option<(String, u16)>,
    /// Its IPv4 addresses.
    pub addresses: Vec<Ipv4Net>,
}

impl LinkState {
    /// Whether netd created this link (see [`OWNER_ALIAS`]).
    pub fn owned(&self) -> bool {
        self.alias.as_deref() == Some(OWNER_ALIAS)
    }

    /// Whether it is a NIC-like link a config may name as WAN or LAN port: not
    /// loopback and not a virtual device netd builds itself.
    pub fn is_port_candidate(&self) -> bool {
        self.name != "lo"
            && !self.owned()
            && matches!(self.kind.as_deref(), None | Some("veth"))
            && self.mac.is_some()
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One kernel write. Used for the recording fake, for rollback (each write knows its
/// inverse) and in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkWrite {
    /// Create a bridge owned by netd.
    CreateBridge { name: String },
    /// Create an 802.1Q VLAN link on `parent`, owned by netd.
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
    },
    /// Delete a link.
    Delete { name: String },
    /// Make `link` a port of `master`, or of nothing.
    SetMaster {
        link: String,
        master: Option<String>,
    },
    /// Set the MTU.
    SetMtu { link: String, mtu: u32 },
    /// Set administratively up or down.
    SetUp { link: String, up: bool },
    /// Add an address.
    AddAddress { link: String, address: Ipv4Net },
    /// Remove an address.
    DelAddress { link: String, address: Ipv4Net },
    /// Replace (or with `None` remove) the main table's IPv4 default route.
    SetDefaultRoute { gateway: Option<Ipv4Addr> },
    /// Add a static route with protocol [`RTPROT_HEARTH`] (fails if the destination
    /// already has a route).
    AddRoute { route: Route },
    /// Delete the static route with protocol [`RTPROT_HEARTH`].
    DelRoute { route: Route },
}

impl fmt::Display for LinkWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateBridge { name } => write!(f, "create bridge {name}"),
            Self::CreateVlan { name, parent, id } => {
                write!(f, "create vlan {name} (id {id} on {parent})")
            }
            Self::Delete { name } => write!(f, "delete link {name}"),
            Self::SetMaster {
                link,
                master: Some(m),
            } => write!(f, "set {link} master {m}"),
            Self::SetMaster { link, master: None } => write!(f, "set {link} nomaster"),
            Self::SetMtu { link, mtu } => write!(f, "set {link} mtu {mtu}"),
            Self::SetUp { link, up: true } => write!(f, "set {link} up"),
            Self::SetUp { link, up: false } => write!(f, "set {link} down"),
            Self::AddAddress { link, address } => write!(f, "add address {address} to {link}"),
            Self::DelAddress { link, address } => {
                write!(f, "delete address {address} from {link}")
            }
            Self::SetDefaultRoute { gateway: Some(g) } => write!(f, "default route via {g}"),
            Self::SetDefaultRoute { gateway: None } => write!(f, "delete default route"),
            Self::AddRoute { route } => write!(f, "add route {route}"),
            Self::DelRoute { route } => write!(f, "delete route {route}"),
        }
    }
}

/// A failed netlink request.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Opening the netlink socket failed.
    #[error("opening the rtnetlink socket")]
    Connect(#[source] std::io::Error),
    /// Dumping links, addresses or routes failed.
    #[error("reading {what} from the kernel: {message}")]
    Read { what: &'static str, message: String },
    /// The write names a link that does not exist.
    #[error("{write}: no link named {name}")]
    NoSuchLink { write: LinkWrite, name: String },
    /// A link with a name netd wants exists but was not created by netd.
    #[error("link {name} exists and is not netd's (no alias \"{OWNER_ALIAS}\"); not touching it")]
    NotOwned { name: String },
    /// The kernel refused a write.
    #[error("{write}: {message}")]
    Refused { write: LinkWrite, message: String },
}

/// The kernel's link, address and route tables, as netd needs them.
pub trait LinkOps {
    /// Every link with its addresses.
    fn links(&mut self) -> Result<Vec<LinkState>, LinkError>;
    /// The gateway of the main table's IPv4 default route, if there is one.
    fn default_route(&mut self) -> Result<Option<Ipv4Addr>, LinkError>;
    /// The main table's IPv4 routes with protocol [`RTPROT_HEARTH`].
    fn owned_routes(&mut self) -> Result<Vec<Route>, LinkError>;
    /// Perform one write.
    fn write(&mut self, write: &LinkWrite) -> Result<(), LinkError>;
}
