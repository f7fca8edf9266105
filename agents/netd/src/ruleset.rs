//! The zone firewall, generated as one complete nftables ruleset (`nft -f` text).
//!
//! netd owns exactly one table, `inet hearth`, and never touches any other. The
//! ruleset starts with `table inet hearth` + `delete table inet hearth` and then
//! declares the whole table, so loading it in one `nft -f` run replaces the table in
//! a single kernel transaction: the old rules stay until the new ones are all
//! accepted (see [`crate::nft`]).
//!
//! The model (zones are `wan`, `lan` and one per segment, each exactly one
//! interface):
//! - `input` (policy drop): established/related, loopback and the ICMP/ICMPv6 that
//!   networks need, then a jump into `in_<zone>` for the services that zone may use
//!   on the appliance (`network.firewall.allow`); the WAN gets nothing but DHCP
//!   replies when it uses DHCP.
//! - `forward` (policy drop): established/related, WAN connections that a port
//!   forward rewrote, then one rule per `network.firewall.forward` pair.
//! - Drops go through `drop_input` / `drop_forward`: a rate-limited log line and a
//!   named counter.
//! - `dstnat`: port forwards from the WAN; `srcnat`: masquerade of the inside
//!   networks (named set `inside_v4`) out of the WAN.
//!
//! The table's comment carries a digest of the text, so a reconcile can tell that
//! the loaded ruleset is already the wanted one and skip the reload (which would
//! also reset the counters).

use std::fmt::Write as _;

use hearth_config::{Action, Firewall, Protocol, Service, Wan};
use sha2::{Digest, Sha256};

use crate::plan::Plan;

/// Address family of netd's table.
pub const FAMILY: &str = "inet";
/// netd's table.
pub const TABLE: &str = "hearth";
/// Base chain on the input hook.
pub const CHAIN_INPUT: &str = "input";
/// Base chain on the forward hook.
pub const CHAIN_FORWARD: &str = "forward";
/// Base chain on the prerouting hook (port forwards).
pub const CHAIN_DSTNAT: &str = "dstnat";
/// Base chain on the postrouting hook (masquerade).
pub const CHAIN_SRCNAT: &str = "srcnat";
/// Log-count-drop chain for the input hook.
pub const CHAIN_DROP_INPUT: &str = "drop_input";
/// Log-count-drop chain for the forward hook.
pub const CHAIN_DROP_FORWARD: &str = "drop_forward";
/// Filter chains' priority (nft's named priority, 0).
pub const PRIORITY_FILTER: &str = "filter";
/// Port forwards run at the standard destination-NAT priority (-100).
pub const PRIORITY_DSTNAT: &str = "dstnat";
/// Masquerade runs at the standard source-NAT priority (100).
pub const PRIORITY_SRCNAT: &str = "srcnat";
/// Named set of every inside network (LAN and segments).
pub const SET_INSIDE: &str = "inside_v4";
/// Counter of packets dropped on input.
pub const COUNTER_DROP_INPUT: &str = "input_dropped";
/// Counter of packets dropped while forwarding.
pub const COUNTER_DROP_FORWARD: &str = "forward_dropped";
/// Counter of masqueraded packets (new connections out of the WAN).
pub const COUNTER_MASQUERADE: &str = "wan_masqueraded";
/// Drop logging is rate limited: outside input must not flood the log.
pub const LOG_LIMIT: &str = "limit rate 5/second burst 10 packets";
/// Prefix of the table comment holding the digest.
pub const DIGEST_PREFIX: &str = "netd sha256:";
/// The media server's HTTP port.
pub const MEDIA_PORT: u16 = 8096;

/// ICMP types every network needs (errors for path MTU discovery and traceroute).
const ICMP_NEEDED: &str = "destination-unreachable, time-exceeded, parameter-problem";
/// ICMPv6 types every network needs: errors, and neighbour/router discovery.
const ICMPV6_NEEDED: &str = "destination-unreachable, packet-too-big, time-exceeded, \
parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
nd-neighbor-advert, mld-listener-query, mld-listener-report, mld2-listener-report";

/// A generated ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The complete `nft -f` input.
    pub text: String,
    /// Hex SHA-256 of the table body, also stored in the table comment.
    pub digest: String,
}

/// Counter name of a port forward.
pub fn port_forward_counter(name: &str) -> String {
    format!("pf_{}", ident(name))
}

/// nft identifiers: letters, digits, `_`; our names only add `-` and `.`.
fn ident(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn zone_chain(zone: &str) -> String {
    format!("in_{}", ident(zone))
}

/// (udp ports, tcp ports, icmp echo) a service opens.
fn ports(s: Service) -> (&'static [u16], &'static [u16], bool) {
    match s {
        Service::Dns => (&[53], &[53], false),
        Service::Dhcp => (&[67], &[], false),
        Service::Ssh => (&[], &[22], false),
        Service::HttpAdmin => (&[], &[80, 443], false),
        Service::Smb => (&[], &[445], false),
        Service::Nfs => (&[], &[2049], false),
        Service::Media => (&[], &[MEDIA_PORT], false),
        Service::Ping => (&[], &[], true),
    }
}

fn port_match(proto: &str, ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    if list.len() == 1 {
        format!("{proto} dport {}", list[0])
    } else {
        format!("{proto} dport {{ {} }}", list.join(", "))
    }
}

/// Generate the ruleset for `plan` and the firewall config.
pub fn generate(plan: &Plan, fw: &Firewall, wan: &Wan) -> Ruleset {
    let body = body(plan, fw, wan);
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Generated by netd. Loaded as one transaction: the old table stays until all of this is accepted."
    );
    let _ = writeln!(text, "table {FAMILY} {TABLE}");
    let _ = writeln!(text, "delete table {FAMILY} {TABLE}");
    let _ = writeln!(text, "table {FAMILY} {TABLE} {{");
    let _ = writeln!(text, "\tcomment \"{DIGEST_PREFIX}{digest}\"");
    text.push_str(&body);
    text.push_str("}\n");
    Ruleset { text, digest }
}

fn body(plan: &Plan, fw: &Firewall, wan_mode: &Wan) -> String {
    let mut o = String::new();
    // Without a WAN (its NIC has not appeared yet) the NAT chains stay empty.
    let wan = plan.wan.as_ref().map(|w| w.name.as_str());
    let mut w = |line: &str| {
        o.push_str(line);
        o.push('\n');
    };
    let inside: Vec<String> = plan
        .zones
        .iter()
        .filter_map(|z| z.network.map(|n| n.to_string()))
        .collect();
    w("");
    w(&format!("\tset {SET_INSIDE} {{"));
    w("\t\ttype ipv4_addr");
    w("\t\tflags interval");
    w(&format!("\t\telements = {{ {} }}", inside.join(", ")));
    w("\t}");

    let mut counters = vec![
        COUNTER_DROP_INPUT.to_owned(),
        COUNTER_DROP_FORWARD.to_owned(),
        COUNTER_MASQUERADE.to_owned(),
    ];
    counters.extend(
        fw.port_forwards
            .iter()
            .map(|p| port_forward_counter(p.name.as_str())),
    );
    for c in &counters {
        w("");
        w(&format!("\tcounter {c} {{"));
        w("\t}");
    }

    // input
    w("");
    w(&format!("\tchain {CHAIN_INPUT} {{"));
    w(&format!(
        "\t\ttype filter hook input priority {PRIORITY_FILTER}; policy drop;"
    ));
    w("\t\tct state established,related accept");
    w("\t\tct state invalid drop");
    w("\t\tiifname \"lo\" accept");
    w(&format!("\t\ticmp type {{ {ICMP_NEEDED} }} accept"));
    w(&format!("\t\ticmpv6 type {{ {ICMPV6_NEEDED} }} accept"));
    for z in &plan.zones {
        w(&format!(
            "\t\tiifname \"{}\" jump {}",
            z.ifname,
            zone_chain(&z.name)
        ));
    }
    w(&format!("\t\tgoto {CHAIN_DROP_INPUT}"));
    w("\t}");

    for z in &plan.zones {
        w("");
        w(&format!("\tchain {} {{", zone_chain(&z.name)));
        if z.name == "wan" && matches!(wan_mode, Wan::Dhcp) {
            w("\t\tudp sport 67 udp dport 68 accept");
        }
        let services: Vec<Service> = fw
            .allow
            .iter()
            .filter(|a| a.zone.as_str() == z.name)
            .flat_map(|a| a.services.iter().copied())
            .collect();
        let mut udp: Vec<u16> = Vec::new();
        let mut tcp: Vec<u16> = Vec::new();
        let mut ping = false;
        for s in services {
            let (u, t, p) = ports(s);
            udp.extend(u);
            tcp.extend(t);
            ping |= p;
        }
        for (proto, mut list) in [("udp", udp), ("tcp", tcp)] {
            list.sort_unstable();
            list.dedup();
            if !list.is_empty() {
                w(&format!("\t\t{} accept", port_match(proto, &list)));
            }
        }
        if ping {
            w("\t\ticmp type echo-request accept");
            w("\t\ticmpv6 type echo-request accept");
        }
        w("\t}");
    }

    for (chain, what, counter) in [
        (CHAIN_DROP_INPUT, "input", COUNTER_DROP_INPUT),
        (CHAIN_DROP_FORWARD, "forward", COUNTER_DROP_FORWARD),
    ] {
        w("");
        w(&format!("\tchain {chain} {{"));
        w(&format!(
            "\t\t{LOG_LIMIT} log prefix \"hearth drop {what}: \" level info"
        ));
        w(&format!("\t\tcounter name \"{counter}\" drop"));
        w("\t}");
    }

    // forward
    w("");
    w(&format!("\tchain {CHAIN_FORWARD} {{"));
    w(&format!(
        "\t\ttype filter hook forward priority {PRIORITY_FILTER}; policy drop;"
    ));
    w("\t\tct state established,related accept");
    w("\t\tct state invalid drop");
    if let Some(wan) = wan.filter(|_| !fw.port_forwards.is_empty()) {
        w(&format!("\t\tiifname \"{wan}\" ct status dnat accept"));
    }
    let ifname = |zone: &str| {
        plan.zones
            .iter()
            .find(|z| z.name == zone)
            .map(|z| z.ifname.clone())
    };
    for r in &fw.forward {
        let (Some(from), Some(to)) = (ifname(r.from.as_str()), ifname(r.to.as_str())) else {
            continue; // unknown zones are rejected by the config crate
        };
        let verdict = match r.action {
            Action::Accept => "accept".to_owned(),
            Action::Drop => format!("goto {CHAIN_DROP_FORWARD}"),
        };
        w(&format!(
            "\t\tiifname \"{from}\" oifname \"{to}\" {verdict} comment \"{} -> {}\"",
            r.from, r.to
        ));
    }
    w(&format!("\t\tgoto {CHAIN_DROP_FORWARD}"));
    w("\t}");

    // NAT
    w("");
    w(&format!("\tchain {CHAIN_DSTNAT} {{"));
    w(&format!(
        "\t\ttype nat hook prerouting priority {PRIORITY_DSTNAT}; policy accept;"
    ));
    for (p, wan) in fw.port_forwards.iter().filter_map(|p| Some((p, wan?))) {
        let proto = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        w(&format!(
            "\t\tiifname \"{wan}\" {proto} dport {} counter name \"{}\" dnat ip to {}:{} comment \"{}\"",
            p.external_port,
            port_forward_counter(p.name.as_str()),
            p.to,
            p.target_port(),
            p.name
        ));
    }
    w("\t}");
    w("");
    w(&format!("\tchain {CHAIN_SRCNAT} {{"));
    w(&format!(
        "\t\ttype nat hook postrouting priority {PRIORITY_SRCNAT}; policy accept;"
    ));
    if let Some(wan) = wan {
        w(&format!(
            "\t\toifname \"{wan}\" ip saddr @{SET_INSIDE} counter name \"{COUNTER_MASQUERADE}\" masquerade"
        ));
    }
    w("\t}");
    o
}
