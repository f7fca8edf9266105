//! A DHCP packet off the wire: decoded with dhcproto, answered by the server state
//! machine (over a real lease database in a temp dir), the reply encoded — exactly
//! the path `dhcp::socket::serve` runs for every received datagram.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use dhcproto::v4::{Decodable, Decoder, Encodable, Encoder, Message};
use dnsd::dhcp::{LeaseDb, Pool, Server};
use dnsd::hosts::Hosts;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    server: Server,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool {
            segment: "lan".into(),
            interface: "fuzz0".into(),
            server_ip: Ipv4Addr::new(10, 9, 0, 1),
            subnet: "10.9.0.0/24".parse().unwrap(),
            range: Ipv4Addr::new(10, 9, 0, 100)..=Ipv4Addr::new(10, 9, 0, 110),
            lease_secs: 600,
            domain: "home.arpa".into(),
            mtu: Some(1500),
            reservations: Default::default(),
            ntp: vec![Ipv4Addr::new(10, 9, 0, 1)],
            routes: vec![(
                "192.168.50.0/24".parse().unwrap(),
                Ipv4Addr::new(10, 9, 0, 2),
            )],
        };
        let db = LeaseDb::open(dir.path()).unwrap().with_compact_slack(64);
        Fixture {
            server: Server::new(vec![pool], db, Hosts::default(), 1_000),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Message::decode(&mut Decoder::new(data)) else {
        return;
    };
    let now = 1_000 + u64::from(data.first().copied().unwrap_or(0));
    if let Ok(Some(reply)) = fixture().server.handle(0, &req, now) {
        let mut out = Vec::new();
        // Encoding our own reply must never fail.
        reply.msg.encode(&mut Encoder::new(&mut out)).unwrap();
    }
});
