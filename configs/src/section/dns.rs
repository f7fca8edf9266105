//! `[dns]`: the resolver the appliance runs for every inside network: upstreams,
//! cache, the local domain with its records, and blocklists.

use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{path, Findings};
use crate::value::{list, AbsPath, DomainName, Duration, Size, Upstream, Url};
use crate::Config;

/// `[dns]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Servers to forward to. Empty: the ones the WAN learned (DHCP or `wan.dns`).
    #[serde(default, deserialize_with = "list")]
    pub upstreams: Vec<Upstream>,
    /// The answer cache.
    #[serde(default)]
    pub cache: Cache,
    /// The local domain DHCP clients get names in. Default `home.arpa` (RFC 8375).
    #[serde(default = "default_domain")]
    pub domain: DomainName,
    /// Local records.
    #[serde(default)]
    pub records: Vec<Record>,
    /// Blocked names.
    #[serde(default)]
    pub blocklists: Vec<Blocklist>,
    /// Log every query (client, name, type, answer), at most this many lines per
    /// second; beyond that one summary line counts the suppressed ones. Default 0:
    /// off.
    #[serde(default)]
    pub log_queries: u32,
}

fn default_domain() -> DomainName {
    DomainName::try_from("home.arpa".to_owned()).expect("valid default domain")
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            cache: Cache::default(),
            domain: default_domain(),
            records: Vec::new(),
            blocklists: Vec::new(),
            log_queries: 0,
        }
    }
}

/// `[dns.cache]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Most answers kept. Default 10000.
    #[serde(default = "default_max_entries")]
    pub max_entries: u32,
    /// Most memory used. Default `64MiB`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: Size,
    /// TTL of answers from local records and DHCP host names. Default `1h`.
    #[serde(default = "default_ttl")]
    pub ttl: Duration,
    /// Cached upstream answers live at least this long. Default `0s`.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: Duration,
    /// Cached upstream answers live at most this long. Default `1d`.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Duration,
    /// What goes when full. Default `lru`.
    #[serde(default)]
    pub eviction: Eviction,
}

fn default_max_entries() -> u32 {
    10_000
}
fn default_max_bytes() -> Size {
    Size::from_bytes(64 << 20)
}
fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_min_ttl() -> Duration {
    Duration::from_secs(0)
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(86_400)
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            max_entries: default_max_entries(),
            max_bytes: default_max_bytes(),
            ttl: default_ttl(),
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
            eviction: Eviction::default(),
        }
    }
}

/// Cache eviction policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// Least recently used goes first.
    #[default]
    Lru,
}

/// `[[dns.records]]`: a local record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Owner name; relative names are inside `dns.domain`.
    pub name: DomainName,
    /// Record type.
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// Record data: an address (A/AAAA), a name (CNAME/PTR), `"<pref> <name>"` (MX),
    /// or text (TXT).
    pub value: String,
}

/// DNS record types that can be configured locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Reverse pointer.
    Ptr,
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TOML spelling.
        let name = serde_json::to_value(self).expect("unit variants serialize");
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// `[[dns.blocklists]]`: a hosts-style or one-name-per-line list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Blocklist {
    /// A file on the appliance.
    #[serde(default)]
    pub path: Option<AbsPath>,
    /// A list to download.
    #[serde(default)]
    pub url: Option<Url>,
    /// How blocked names are answered. Default `nxdomain`.
    #[serde(default)]
    pub action: BlockAction,
}

/// The answer for a blocked name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// "No such domain".
    #[default]
    Nxdomain,
    /// 0.0.0.0 / `::`.
    Null,
}

fn record_value_error(kind: RecordType, value: &str) -> Option<String> {
    let name_ok = |v: &str| DomainName::try_from(v.to_owned()).is_ok();
    match kind {
        RecordType::A if value.parse::<Ipv4Addr>().is_err() => {
            Some(format!("{value:?} is not an IPv4 address (type A)"))
        }
        RecordType::Aaaa if value.parse::<Ipv6Addr>().is_err() => {
            Some(format!("{value:?} is not an IPv6 address (type AAAA)"))
        }
        RecordType::Cname | RecordType::Ptr if !name_ok(value) => {
            Some(format!("{value:?} is not a domain name"))
        }
        RecordType::Mx => {
            let ok = value
                .split_once(' ')
                .is_some_and(|(p, n)| p.parse::<u16>().is_ok() && name_ok(n.trim()));
            (!ok).then(|| format!("{value:?} is not \"<preference> <name>\" (type MX)"))
        }
        RecordType::Txt if value.len() > 255 * 16 => Some("TXT value is too long".to_owned()),
        _ => None,
    }
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let dns = &cfg.dns;
    let cache = &dns.cache;
    if cache.max_entries == 0 {
        out.push(path("dns.cache.max_entries"), "must be at least 1");
    }
    if cache.max_bytes.bytes() == 0 {
        out.push(path("dns.cache.max_bytes"), "must be more than 0 bytes");
    }
    if cache.min_ttl > cache.max_ttl {
        out.push(
            path("dns.cache.min_ttl"),
            format!(
                "min_ttl {} is greater than max_ttl {}",
                cache.min_ttl, cache.max_ttl
            ),
        );
    }
    let rec = |i: usize| path("dns.records").at(i);
    for (i, r) in dns.records.iter().enumerate() {
        if let Some(m) = record_value_error(r.kind, &r.value) {
            out.push(rec(i).key("value"), m);
        }
    }
    // A CNAME owns its name alone (RFC 1034 3.6.2).
    for (i, r) in dns.records.iter().enumerate() {
        let clash = dns.records.iter().enumerate().find(|(j, o)| {
            *j != i
                && o.name == r.name
                && (r.kind == RecordType::Cname || o.kind == RecordType::Cname)
        });
        if let Some((j, _)) = clash.filter(|(j, _)| *j < i) {
            out.push(
                rec(i).key("name"),
                format!(
                    "{} has a CNAME and other records (dns.records[{j}]); a CNAME must be alone",
                    r.name
                ),
            );
        }
    }
    out.duplicates(
        (dns.records.iter().enumerate())
            .map(|(i, r)| (rec(i), (r.name.clone(), r.kind, r.value.clone()))),
        |(n, k, _)| format!("the same {k} record for {n} is listed twice"),
    );
    for (i, b) in dns.blocklists.iter().enumerate() {
        if b.path.is_some() == b.url.is_some() {
            out.push(
                path("dns.blocklists").at(i),
                "a blocklist needs exactly one of `path` or `url`",
            );
        }
    }
}
