//! Packets round-trip through dhcproto; a lease goes on and off the fake kernel
//! with only the writes that differ.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::*;
use crate::fake::FakeLinks;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn parse(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).expect("decodes")
}

#[test]
fn discover_is_broadcast_with_client_id_and_parameter_list() {
    let m = parse(&encode(&Request::Discover { xid: 42 }, MAC));
    assert_eq!(m.opcode(), Opcode::BootRequest);
    assert_eq!(m.xid(), 42);
    assert!(m.flags().broadcast());
    assert_eq!(&m.chaddr()[..6], &MAC);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
    let Some(DhcpOption::ParameterRequestList(p)) = m.opts().get(OptionCode::ParameterRequestList)
    else {
        panic!("no parameter request list")
    };
    assert!(p.contains(&OptionCode::DomainNameServer) && p.contains(&OptionCode::Router));
    assert_eq!(
        m.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 9]))
    );
}

#[test]
fn select_renew_and_release_carry_the_right_fields() {
    let addr = Ipv4Addr::new(198, 51, 100, 50);
    let m = parse(&encode(
        &Request::Select {
            xid: 1,
            server: SERVER,
            address: addr,
        },
        MAC,
    ));
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        m.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(addr))
    );
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    let m = parse(&encode(
        &Request::Renew {
            xid: 2,
            server: SERVER,
            address: addr,
        },
        MAC,
    ));
    // RFC 2131 table 4: RENEWING has ciaddr and neither option 50 nor 54.
    assert_eq!(m.ciaddr(), addr);
    assert!(!m.flags().broadcast());
    assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
    assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
    let m = parse(&encode(
        &Request::Release {
            xid: 3,
            server: SERVER,
            address: addr,
        },
        MAC,
    ));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Release));
    assert_eq!(m.ciaddr(), addr);
}

fn server_reply(kind: MessageType, chaddr: [u8; 6]) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(7, z, Ipv4Addr::new(198, 51, 100, 50), z, z, &chaddr);
    m.set_opcode(Opcode::BootReply);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(SERVER));
    o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    o.insert(DhcpOption::Router(vec![SERVER]));
    o.insert(DhcpOption::DomainNameServer(vec![
        Ipv4Addr::new(192, 0, 2, 53),
        Ipv4Addr::new(192, 0, 2, 54),
    ]));
    o.insert(DhcpOption::AddressLeaseTime(120));
    o.insert(DhcpOption::Renewal(5));
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

#[test]
fn replies_decode_and_others_are_ignored() {
    let r = decode(&server_reply(MessageType::Ack, MAC), MAC).expect("our ack");
    assert_eq!(r.kind, ReplyKind::Ack);
    assert_eq!(r.xid, 7);
    assert_eq!(r.server, Some(SERVER));
    assert_eq!(r.router, Some(SERVER));
    assert_eq!(r.dns.len(), 2);
    assert_eq!(
        (r.lease_secs, r.t1_secs, r.t2_secs),
        (Some(120), Some(5), None)
    );
    // Another client's reply, a client message, and garbage.
    assert_eq!(
        decode(&server_reply(MessageType::Ack, [2, 0, 0, 0, 0, 8]), MAC),
        None
    );
    assert_eq!(
        decode(&encode(&Request::Discover { xid: 7 }, MAC), MAC),
        None
    );
    assert_eq!(decode(&[1, 2, 3], MAC), None);
}

#[test]
fn udp_payload_is_cut_out_of_an_ipv4_packet_to_port_68() {
    let payload = b"hello";
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    p.extend_from_slice(&67u16.to_be_bytes());
    p.extend_from_slice(&68u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p.extend_from_slice(&[0; 4]); // Ethernet padding
    assert_eq!(udp_to_client(&p), Some(&payload[..]));
    let mut other_port = p.clone();
    other_port[23] = 69;
    assert_eq!(udp_to_client(&other_port), None);
    let mut tcp = p.clone();
    tcp[9] = 6;
    assert_eq!(udp_to_client(&tcp), None);
    assert_eq!(udp_to_client(&p[..22]), None);
}

fn lease(addr: &str, gateway: Option<Ipv4Addr>) -> Lease {
    Lease {
        address: addr.parse().unwrap(),
        gateway,
        dns: vec![],
        server: SERVER,
        duration: Some(Duration::from_secs(120)),
        t1: Duration::from_secs(60),
        t2: Duration::from_secs(105),
        acquired: Duration::ZERO,
    }
}

#[test]
fn configure_is_idempotent_and_deconfigure_removes_it() {
    let mut f = FakeLinks::with_nics(&[("wan0", MAC)]);
    let l = lease("198.51.100.50/24", Some(SERVER));
    configure(&mut f, "wan0", &l, None).unwrap();
    assert_eq!(
        f.writes,
        vec![
            LinkWrite::AddAddress {
                link: "wan0".into(),
                address: l.address
            },
            LinkWrite::SetDefaultRoute {
                gateway: Some(SERVER)
            },
        ]
    );
    f.writes.clear();
    configure(&mut f, "wan0", &l, Some(&l)).unwrap();
    assert!(
        f.writes.is_empty(),
        "a renewal writes nothing: {:?}",
        f.writes
    );
    // A new address replaces the old one.
    let l2 = lease("198.51.100.51/24", Some(SERVER));
    configure(&mut f, "wan0", &l2, Some(&l)).unwrap();
    assert_eq!(f.writes.len(), 2, "{:?}", f.writes);
    assert_eq!(f.link("wan0").unwrap().addresses, vec![l2.address]);
    f.writes.clear();
    deconfigure(&mut f, "wan0", &l2).unwrap();
    assert!(f.link("wan0").unwrap().addresses.is_empty());
    assert_eq!(f.gateway, None);
    // A default route that is not the lease's stays.
    f.gateway = Some(Ipv4Addr::new(192, 0, 2, 1));
    deconfigure(&mut f, "wan0", &l2).unwrap();
    assert_eq!(f.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
}
