//! The local authoritative zone: `dns.domain`, the static `dns.records`, the DHCP host
//! names ([`Hosts`]) and PTR for the local subnets. Names here are answered from
//! memory and never forwarded upstream, so a typo or a departed laptop is an
//! NXDOMAIN, not a query leaking to the ISP.
//!
//! Owner and target names in `dns.records` are relative to `dns.domain` when they are
//! a single label (`nas`) and absolute otherwise (`nas.home.arpa`, `example.com`).
//! Static records win over DHCP names; static A records inside a local subnet get a
//! PTR automatically (unless a static PTR exists for that address), and so do static
//! AAAA records with a unique local address (`fc00::/7`, RFC 4193): the home's
//! IPv6 names. The reverse zones of the local subnets and of all of `fc00::/7`
//! (`c.f.ip6.arpa`, `d.f.ip6.arpa`; locally served per RFC 6303) are answered here,
//! so a reverse lookup of a private address never leaks upstream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use hearth_config::RecordType as CfgType;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::{IpNet, Ipv4Net};

use crate::hosts::Hosts;

/// The reverse zones of `fc00::/7` (RFC 6303 4.3).
fn ula_reverse() -> [Name; 2] {
    ["c.f.ip6.arpa.", "d.f.ip6.arpa."].map(|z| Name::from_ascii(z).expect("a valid name"))
}

/// How many CNAMEs are followed inside the zone.
const MAX_CHAIN: usize = 8;

/// A bad `dns.records` entry or domain.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("dns name {name:?}: {source}")]
    Name {
        name: String,
        source: hickory_proto::ProtoError,
    },
    #[error("dns record {name} {kind}: bad value {value:?}")]
    Value {
        name: String,
        kind: CfgType,
        value: String,
    },
}

/// A local answer: the response code and the sections.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAnswer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

/// The local zone.
#[derive(Debug, Clone)]
pub struct Zone {
    domain: Name,
    ttl: u32,
    records: HashMap<Name, Vec<Record>>,
    subnets: Vec<Ipv4Net>,
    hosts: Hosts,
    soa: Record,
}

fn name(text: &str) -> Result<Name, ZoneError> {
    let mut n = Name::from_ascii(text).map_err(|source| ZoneError::Name {
        name: text.to_owned(),
        source,
    })?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

/// A configured name: one label is relative to `domain`, more are absolute.
fn config_name(text: &str, domain: &Name) -> Result<Name, ZoneError> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.contains('.') {
        name(text)
    } else {
        let n = name(text)?;
        n.clone()
            .append_domain(domain)
            .map_err(|source| ZoneError::Name {
                name: text.to_owned(),
                source,
            })
    }
}

impl Zone {
    /// Build the zone for `domain` from the configured records. `subnets` are the
    /// local networks whose reverse names are answered here; `ttl` is the TTL of every
    /// local answer.
    pub fn build(
        domain: &str,
        records: &[hearth_config::Record],
        ttl: u32,
        subnets: Vec<Ipv4Net>,
        hosts: Hosts,
    ) -> Result<Self, ZoneError> {
        let domain = name(domain)?;
        let mut map: HashMap<Name, Vec<Record>> = HashMap::new();
        for r in records {
            let owner = config_name(r.name.as_str(), &domain)?;
            let bad = || ZoneError::Value {
                name: owner.to_ascii(),
                kind: r.kind,
                value: r.value.clone(),
            };
            let v = r.value.trim();
            let data = match r.kind {
                CfgType::A => RData::A(A(v.parse().map_err(|_| bad())?)),
                CfgType::Aaaa => RData::AAAA(AAAA(v.parse().map_err(|_| bad())?)),
                CfgType::Cname => RData::CNAME(CNAME(config_name(v, &domain)?)),
                CfgType::Ptr => RData::PTR(PTR(config_name(v, &domain)?)),
                CfgType::Mx => {
                    let (pref, host) = v.split_once(' ').ok_or_else(bad)?;
                    let pref = pref.parse().map_err(|_| bad())?;
                    RData::MX(MX::new(pref, config_name(host.trim(), &domain)?))
                }
                CfgType::Txt => RData::TXT(TXT::from_bytes(v.as_bytes().chunks(255).collect())),
            };
            map.entry(owner.clone())
                .or_default()
                .push(Record::from_rdata(owner, ttl, data));
        }
        // Automatic PTR for static A records in local subnets and ULA AAAA records.
        let mut ptrs = Vec::new();
        for (owner, rrs) in &map {
            for r in rrs {
                match r.data {
                    RData::A(A(ip)) if subnets.iter().any(|s| s.contains(&ip)) => {
                        ptrs.push((Name::from(ip), owner.clone()));
                    }
                    RData::AAAA(AAAA(ip)) if ip.is_unique_local() => {
                        ptrs.push((Name::from(ip), owner.clone()));
                    }
                    _ => {}
                }
            }
        }
        ptrs.sort();
        for (rev, owner) in ptrs {
            let entry = map.entry(rev.clone()).or_default();
            if !entry.iter().any(|r| r.record_type() == RecordType::PTR) {
                entry.push(Record::from_rdata(rev, ttl, RData::PTR(PTR(owner))));
            }
        }
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&domain))
            .map_err(|source| ZoneError::Name {
                name: domain.to_ascii(),
                source,
            })?;
        let negative = ttl.min(60);
        let soa = Record::from_rdata(
            domain.clone(),
            negative,
            RData::SOA(SOA::new(
                domain.clone(),
                hostmaster,
                1,
                3600,
                600,
                86_400,
                negative,
            )),
        );
        Ok(Self {
            domain,
            ttl,
            records: map,
            subnets,
            hosts,
            soa,
        })
    }

    /// The zone's domain.
    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// The IPv4 address a full `d.c.b.a.in-addr.arpa.` name stands for.
    fn reverse_ip(name: &Name) -> Option<Ipv4Addr> {
        if name.num_labels() != 6 {
            return None;
        }
        match name.parse_arpa_name().ok()? {
            IpNet::V4(n) if n.prefix_len() == 32 => Some(n.addr()),
            _ => None,
        }
    }

    /// Whether `qname` is ours to answer (and so never forwarded).
    pub fn owns(&self, qname: &Name) -> bool {
        if self.domain.zone_of(qname) || self.records.contains_key(qname) {
            return true;
        }
        if let Some(ip) = Self::reverse_ip(qname) {
            return self.subnets.iter().any(|s| s.contains(&ip));
        }
        if ula_reverse().iter().any(|z| z.zone_of(qname)) {
            return true;
        }
        // Octet-aligned reverse zones of the subnets (e.g. 0.77.10.in-addr.arpa.).
        self.subnets.iter().any(|s| {
            s.prefix_len() % 8 == 0
                && Name::from(s.network())
                    .trim_to(2 + usize::from(s.prefix_len() / 8))
                    .zone_of(qname)
        })
    }

    /// The records at `owner`: static ones, else DHCP names.
    fn rrset(&self, owner: &Name) -> Vec<Record> {
        if let Some(rrs) = self.records.get(owner) {
            let mut rrs = rrs.clone();
            if *owner == self.domain {
                rrs.push(self.soa.clone());
            }
            return rrs;
        }
        if owner.num_labels() == self.domain.num_labels() + 1 && self.domain.zone_of(owner) {
            let label = String::from_utf8_lossy(owner.iter().next().unwrap_or_default());
            if let Some(ip) = self.hosts.lookup(&label) {
                return vec![Record::from_rdata(owner.clone(), self.ttl, RData::A(A(ip)))];
            }
        }
        if let Some(ip) = Self::reverse_ip(owner) {
            if let Some(host) = self.hosts.reverse(ip) {
                if let Ok(target) =
                    Name::from_ascii(&host).and_then(|h| h.append_domain(&self.domain))
                {
                    return vec![Record::from_rdata(
                        owner.clone(),
                        self.ttl,
                        RData::PTR(PTR(target)),
                    )];
                }
            }
        }
        if *owner == self.domain {
            return vec![self.soa.clone()];
        }
        Vec::new()
    }

    /// Whether some name below `owner` exists (then `owner` is an empty non-terminal).
    fn has_descendants(&self, owner: &Name) -> bool {
        self.records.keys().any(|k| k != owner && owner.zone_of(k))
    }

    /// Answer `qname`/`qtype`, or `None` when the name is not ours.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<LocalAnswer> {
        if !self.owns(qname) {
            return None;
        }
        let mut answers = Vec::new();
        let mut current = qname.clone();
        for _ in 0..MAX_CHAIN {
            let rrs = self.rrset(&current);
            if rrs.is_empty() {
                let rcode = if self.has_descendants(&current) {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                return Some(self.negative(rcode, answers));
            }
            let matching: Vec<Record> = rrs
                .iter()
                .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                .cloned()
                .collect();
            if !matching.is_empty() {
                answers.extend(matching);
                return Some(LocalAnswer {
                    rcode: ResponseCode::NoError,
                    answers,
                    authorities: Vec::new(),
                });
            }
            let cname = rrs.iter().find_map(|r| match &r.data {
                RData::CNAME(CNAME(t)) => Some((r.clone(), t.clone())),
                _ => None,
            });
            let Some((record, target)) = cname else {
                return Some(self.negative(ResponseCode::NoError, answers));
            };
            answers.push(record);
            if !self.owns(&target) {
                // Outside the zone: the client's resolver follows it.
                return Some(LocalAnswer {
                    rcode: ResponseCode::NoError,
                    answers,
                    authorities: Vec::new(),
                });
            }
            current = target;
        }
        Some(LocalAnswer {
            rcode: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
        })
    }

    fn negative(&self, rcode: ResponseCode, answers: Vec<Record>) -> LocalAnswer {
        LocalAnswer {
            rcode,
            answers,
            authorities: vec![self.soa.clone()],
        }
    }
}

/// The local subnets of `cfg` (LAN and segments), IPv4 only.
pub fn subnets(cfg: &hearth_config::Config) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let mut push = |c: hearth_config::Cidr| {
        if let IpAddr::V4(a) = c.network() {
            if let Ok(n) = Ipv4Net::new(a, c.prefix()) {
                out.push(n);
            }
        }
    };
    push(cfg.network.lan.address.trunc());
    for s in &cfg.network.segments {
        push(s.subnet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, kind: CfgType, value: &str) -> hearth_config::Record {
        hearth_config::Record {
            name: name.to_owned().try_into().unwrap(),
            kind,
            value: value.to_owned(),
        }
    }

    fn zone(hosts: Hosts) -> Zone {
        Zone::build(
            "home.arpa",
            &[
                rec("nas", CfgType::A, "10.77.0.10"),
                rec("nas", CfgType::Aaaa, "fd00::10"),
                rec("files", CfgType::Cname, "nas"),
                rec("www", CfgType::Cname, "files"),
                rec("home.arpa", CfgType::Mx, "10 nas"),
                rec("nas", CfgType::Txt, "v=hearth"),
                rec("out", CfgType::Cname, "example.com"),
                rec("a.deep.home.arpa", CfgType::A, "10.77.0.11"),
            ],
            300,
            vec!["10.77.0.0/24".parse().unwrap()],
            hosts,
        )
        .unwrap()
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn data(a: &LocalAnswer) -> Vec<String> {
        a.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn static_records_and_cname_chains() {
        let z = zone(Hosts::default());
        let a = z.answer(&n("NAS.home.arpa."), RecordType::A).unwrap();
        assert_eq!(data(&a), ["10.77.0.10"]);
        assert_eq!(a.answers[0].ttl, 300);
        let a = z.answer(&n("www.home.arpa."), RecordType::AAAA).unwrap();
        assert_eq!(data(&a), ["files.home.arpa.", "nas.home.arpa.", "fd00::10"]);
        let a = z.answer(&n("home.arpa."), RecordType::MX).unwrap();
        assert_eq!(data(&a), ["10 nas.home.arpa."]);
        let a = z.answer(&n("nas.home.arpa."), RecordType::TXT).unwrap();
        assert_eq!(data(&a), ["v=hearth"]);
        let a = z.answer(&n("out.home.arpa."), RecordType::A).unwrap();
        assert_eq!(data(&a), ["example.com."]);
        let a = z.answer(&n("home.arpa."), RecordType::SOA).unwrap();
        assert_eq!(a.answers[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn unknown_names_are_nxdomain_and_types_nodata() {
        let z = zone(Hosts::default());
        let a = z.answer(&n("nope.home.arpa."), RecordType::A).unwrap();
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        let a = z.answer(&n("nas.home.arpa."), RecordType::MX).unwrap();
        assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
        let a = z.answer(&n("deep.home.arpa."), RecordType::A).unwrap();
        assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
        assert!(z.answer(&n("example.com."), RecordType::A).is_none());
        assert!(z
            .answer(&n("4.3.2.1.in-addr.arpa."), RecordType::PTR)
            .is_none());
    }

    #[test]
    fn dhcp_names_and_ptr() {
        let hosts = Hosts::default();
        let z = zone(hosts.clone());
        assert_eq!(
            z.answer(&n("laptop.home.arpa."), RecordType::A)
                .unwrap()
                .rcode,
            ResponseCode::NXDomain
        );
        hosts.insert("Laptop", "10.77.0.100".parse().unwrap());
        let a = z.answer(&n("laptop.home.arpa."), RecordType::A).unwrap();
        assert_eq!(data(&a), ["10.77.0.100"]);
        let a = z
            .answer(&n("100.0.77.10.in-addr.arpa."), RecordType::PTR)
            .unwrap();
        assert_eq!(data(&a), ["laptop.home.arpa."]);
        let a = z
            .answer(&n("10.0.77.10.in-addr.arpa."), RecordType::PTR)
            .unwrap();
        assert_eq!(data(&a), ["nas.home.arpa."]);
        let a = z
            .answer(&n("99.0.77.10.in-addr.arpa."), RecordType::PTR)
            .unwrap();
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert!(z.owns(&n("0.77.10.in-addr.arpa.")));
    }

    #[test]
    fn ula_addresses_get_ptr_and_their_reverse_zone_stays_local() {
        let z = zone(Hosts::default());
        let nas = n("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.");
        let a = z.answer(&nas, RecordType::PTR).unwrap();
        assert_eq!(data(&a), ["nas.home.arpa."]);
        // Another ULA: ours, and it does not exist.
        let other = n("9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.");
        assert_eq!(
            z.answer(&other, RecordType::PTR).unwrap().rcode,
            ResponseCode::NXDomain
        );
        assert!(z.owns(&n("c.f.ip6.arpa.")));
        // A global address's reverse name is not ours: it is forwarded.
        let global = n("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.");
        assert!(z.answer(&global, RecordType::PTR).is_none());
    }
}
