//! Unit tests of `network.routes` against the recording fake: added, left alone,
//! changed, removed when dropped from the config, foreign routes untouched, rollback.

use hearth_config::Network;

use crate::fake::FakeLinks;
use crate::link::{LinkWrite, Route, RTPROT_HEARTH};
use crate::reconcile::{reconcile, Change};
use crate::{dry_run_text, plan};

const MAC0: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x20];
const MAC1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x21];
/// RTPROT_STATIC: what `ip route add` marks a route with.
const RTPROT_STATIC: u8 = 4;

fn nics() -> FakeLinks {
    FakeLinks::with_nics(&[("eth0", MAC0), ("eth1", MAC1)])
}

/// A router with a static WAN, a segment, and the given `routes = [...]` line.
fn network(routes: &str) -> Network {
    let src = format!(
        r#"version = 1
[system]
hostname = "r"
[network]
interfaces = [{{ name = "eth0", role = "wan" }}, {{ name = "eth1", role = "lan" }}]
{routes}
[network.wan]
mode = "static"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
[network.lan]
address = "192.168.1.1/24"
[[network.segments]]
name = "media"
vlan = 10
subnet = "10.10.10.0/24"
gateway = "10.10.10.1"
"#
    );
    hearth_config::parse(&src, "test.toml")
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}"))
        .network
}

const TWO: &str = r#"routes = [
  { destination = "192.168.50.0/24", gateway = "192.168.1.2" },
  { destination = "172.16.0.0/12", gateway = "10.10.10.5" },
]"#;

fn route(destination: &str, gateway: &str) -> Route {
    Route {
        destination: destination.parse().unwrap(),
        gateway: gateway.parse().unwrap(),
    }
}

fn apply(fake: &mut FakeLinks, net: &Network) -> crate::reconcile::LinkReport {
    let (p, _) = plan(net, &fake.links).unwrap();
    reconcile(fake, &p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn dry_run_shows_the_routes() {
    let fake = nics();
    let (p, rs) = plan(&network(TWO), &fake.links).unwrap();
    let text = dry_run_text(&p, &rs);
    assert!(
        text.contains("route 192.168.50.0/24 via 192.168.1.2\n"),
        "{text}"
    );
    assert!(
        text.contains("route 172.16.0.0/12 via 10.10.10.5\n"),
        "{text}"
    );
}

#[test]
fn routes_are_added_then_left_alone() {
    let mut fake = nics();
    let net = network(TWO);
    let first = apply(&mut fake, &net);
    for d in ["192.168.50.0/24", "172.16.0.0/12"] {
        assert!(
            first
                .objects
                .contains(&(format!("route {d}"), Change::Created)),
            "{:?}",
            first.objects
        );
    }
    assert_eq!(
        fake.routes,
        vec![
            (route("192.168.50.0/24", "192.168.1.2"), RTPROT_HEARTH),
            (route("172.16.0.0/12", "10.10.10.5"), RTPROT_HEARTH),
        ]
    );
    // Each route comes after the link that reaches its gateway.
    let pos = |w: &LinkWrite| first.writes.iter().position(|x| x == w).unwrap();
    assert!(
        pos(&LinkWrite::AddRoute {
            route: route("172.16.0.0/12", "10.10.10.5")
        }) > pos(&LinkWrite::AddAddress {
            link: "vl-media".into(),
            address: "10.10.10.1/24".parse().unwrap()
        })
    );

    let writes = fake.writes.len();
    let second = apply(&mut fake, &net);
    assert!(second.unchanged(), "{:?}", second.writes);
    assert_eq!(fake.writes.len(), writes, "no writes at all");
    assert!(second
        .objects
        .contains(&("route 192.168.50.0/24".into(), Change::Unchanged)));
}

#[test]
fn dropped_or_changed_routes_follow_the_config_and_foreign_ones_stay() {
    let mut fake = nics();
    let foreign = route("10.99.0.0/16", "192.168.1.3");
    fake.routes.push((foreign, RTPROT_STATIC));
    apply(&mut fake, &network(TWO));

    let one = r#"routes = [{ destination = "192.168.50.0/24", gateway = "192.168.1.9" }]"#;
    let report = apply(&mut fake, &network(one));
    assert!(report
        .objects
        .contains(&("route 172.16.0.0/12".into(), Change::Removed)));
    assert!(report
        .objects
        .contains(&("route 192.168.50.0/24".into(), Change::Changed)));
    assert_eq!(
        fake.routes,
        vec![
            (foreign, RTPROT_STATIC),
            (route("192.168.50.0/24", "192.168.1.9"), RTPROT_HEARTH),
        ]
    );

    apply(&mut fake, &network("routes = []"));
    assert_eq!(fake.routes, vec![(foreign, RTPROT_STATIC)], "foreign kept");
}

#[test]
fn a_destination_someone_else_routes_is_an_error_not_overwritten() {
    let mut fake = nics();
    let foreign = route("192.168.50.0/24", "192.168.1.3");
    fake.routes.push((foreign, RTPROT_STATIC));
    let (p, _) = plan(&network(TWO), &fake.links).unwrap();
    let err = reconcile(&mut fake, &p).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("add route 192.168.50.0/24 via 192.168.1.2: File exists"),
        "{text}"
    );
    assert_eq!(fake.routes, vec![(foreign, RTPROT_STATIC)], "{text}");
}

#[test]
fn a_refused_route_rolls_back_everything() {
    let mut fake = nics();
    let before = fake.links.clone();
    fake.fail_when(
        |w| matches!(w, LinkWrite::AddRoute { route } if route.gateway.octets()[0] == 10),
    );
    let (p, _) = plan(&network(TWO), &fake.links).unwrap();
    let err = reconcile(&mut fake, &p).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.errors.len(), 1, "{text}");
    assert!(
        text.contains("add route 172.16.0.0/12 via 10.10.10.5: refused by the fake"),
        "{text}"
    );
    assert!(err.rollback.is_empty(), "{text}");
    assert!(fake.routes.is_empty(), "the other route was undone too");
    assert_eq!(fake.links, before, "links restored");
    assert_eq!(fake.gateway, None);
}

#[test]
fn a_route_through_a_failed_link_is_skipped_not_tried() {
    let mut fake = nics();
    fake.fail_when(|w| matches!(w, LinkWrite::CreateVlan { .. }));
    let (p, _) = plan(&network(TWO), &fake.links).unwrap();
    let err = reconcile(&mut fake, &p).unwrap_err();
    assert_eq!(err.errors.len(), 1, "only the VLAN failed: {err}");
    assert!(fake.routes.is_empty());
}

#[test]
fn routes_through_a_missing_wan_wait_for_it() {
    let fake = FakeLinks::with_nics(&[("eth1", MAC1)]);
    let net = network(
        r#"routes = [
  { destination = "192.168.50.0/24", gateway = "192.168.1.2" },
  { destination = "198.51.100.0/24", gateway = "203.0.113.1" },
]"#,
    );
    let (p, _) = crate::plan_with(&net, &fake.links, crate::plan::Missing::Defer).unwrap();
    assert!(p.wan.is_none());
    assert_eq!(p.routes, vec![route("192.168.50.0/24", "192.168.1.2")]);
}
