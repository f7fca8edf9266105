//! dnsd on a real wire: the appliance hands a DHCP lease to a client on a VLAN segment
//! and answers its DNS questions, with netd's VLAN link and firewall in between.
//!
//! Two QEMU hubs: hub 1 is an (empty) WAN, hub 2 the LAN: the router's LAN NIC and a
//! second guest NIC that is moved into a client namespace (busybox `unshare -n sleep`
//! holds it, `ip link set DEV netns PID` moves the NIC, `nsenter -n -t PID` runs in
//! it). The client tags its own frames (VLAN 10, `media`), so DISCOVER and the DNS
//! queries cross the hub as tagged frames and reach dnsd on netd's `vl-media` link.
//!
//! Proves, in one boot: dnsd started after netd and serves DHCP on `vl-media`; busybox
//! `udhcpc` gets a lease in 10.10.10.0/24 with router, DNS, domain, NTP and lease time
//! from the config; busybox `nslookup` via the appliance resolves a static record
//! (`nas.home.arpa`), the client's own DHCP host name, and its reverse (PTR); the lease
//! is in dnsd's lease log.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use netns_support::{enter, hub, netns, router_config, PRELUDE};

mod netns_support;

const WAN_MAC: &str = "52:54:00:00:03:01";
const LAN_MAC: &str = "52:54:00:00:04:01";
const CLIENT_MAC: &str = "52:54:00:00:04:02";

/// The appliance config of this boot (replaces the image's).
fn config() -> String {
    let mut config = router_config("dns-test", WAN_MAC, LAN_MAC);
    config.push_str(
        r#"
[network.firewall]
allow = [
  { zone = "lan", services = ["dns", "dhcp", "ping"] },
  { zone = "media", services = ["dns", "dhcp", "ping"] },
]

[dns]
domain = "home.arpa"
records = [ { name = "nas", type = "A", value = "192.168.1.10" } ]

[dhcp]
ntp_servers = ["10.10.10.1"]
pools = [
  { segment = "lan", range_start = "192.168.1.100", range_end = "192.168.1.200" },
  { segment = "media", range_start = "10.10.10.100", range_end = "10.10.10.200", lease_time = "10m" },
]
"#,
    );
    config
}

/// The udhcpc hook: records every event with the options udhcpc read, and
/// configures the address and default route on `bound`/`renew`.
const HOOK: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    ip route replace default via "$router" ;;
esac
echo "$1 ip=$ip router=$router dns=$dns domain=$domain ntp=$ntpsrv lease=$lease" >> /tmp/udhcpc.events
"#;

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn dns_dhcp() -> TestResult {
    require_enabled();
    let spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config())
        .file("/usr/local/bin/udhcpc-hook.sh", HOOK)
        .nic(hub("wan", 1, WAN_MAC))
        .nic(hub("lan", 2, LAN_MAC))
        .nic(hub("client", 2, CLIENT_MAC))
        .memory_mib(384);
    let mut guest = Guest::boot(spec)?;
    guest.wait_ready()?;

    // dnsd serves DHCP on netd's VLAN link for media (and the LAN bridge).
    let log = guest.read_file("/var/log/hearth/dnsd.log")?;
    assert!(
        log.contains("DHCP for media on vl-media: 10.10.10.100-10.10.10.200"),
        "{log}"
    );
    assert!(log.contains("DNS on 10.10.10.1:53"), "{log}");

    // The client: its NIC in a namespace, tagging VLAN 10 itself.
    let pid = netns(&mut guest)?;
    let pid = pid.as_str();
    guest.sh_ok("chmod +x /usr/local/bin/udhcpc-hook.sh")?;
    let nic = enter(
        &mut guest,
        pid,
        CLIENT_MAC,
        "ip link add link $IF name $IF.10 type vlan id 10; ip link set $IF.10 up",
    )?;
    let vif = format!("{nic}.10");
    let vif = vif.as_str();

    // A lease with every option from the config.
    let got = guest.sh(&format!(
        "{PRELUDE}nsenter -n -t {pid} udhcpc -i {vif} -n -q -t 10 -T 2 -x hostname:tv \
         -O ntpsrv -s /usr/local/bin/udhcpc-hook.sh"
    ))?;
    assert!(got.success(), "udhcpc got no lease: {got:?}");
    let events = guest.read_file("/tmp/udhcpc.events")?;
    let bound = events
        .lines()
        .find(|l| l.starts_with("bound "))
        .unwrap_or_else(|| panic!("no bound event: {events}"));
    let ip = bound
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .unwrap()
        .to_owned();
    assert!(ip.starts_with("10.10.10."), "{bound}");
    for want in [
        "router=10.10.10.1",
        "dns=10.10.10.1",
        "domain=home.arpa",
        "ntp=10.10.10.1",
        "lease=600",
    ] {
        assert!(bound.contains(want), "{want} missing: {bound}");
    }
    let addr = guest.sh_ok(&format!("{PRELUDE}nsenter -n -t {pid} ip -4 addr show"))?;
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");

    // Names via the appliance, over the VLAN: a static record, the client's own DHCP
    // host name, and its reverse.
    let lookup = |guest: &mut Guest, what: &str| {
        guest.sh(&format!(
            "{PRELUDE}nsenter -n -t {pid} nslookup {what} 10.10.10.1"
        ))
    };
    let nas = lookup(&mut guest, "nas.home.arpa")?;
    assert!(
        nas.success() && nas.stdout.contains("192.168.1.10"),
        "{nas:?}"
    );
    let me = guest.wait_until("tv.home.arpa resolves", Duration::from_secs(10), |g| {
        let out = lookup(g, "tv.home.arpa")?;
        Ok((out.success() && out.stdout.contains(&ip)).then_some(out))
    })?;
    assert!(me.stdout.contains(&ip), "{me:?}");
    let rev = lookup(&mut guest, &ip)?;
    assert!(
        rev.success() && rev.stdout.contains("tv.home.arpa"),
        "{rev:?}"
    );
    let missing = lookup(&mut guest, "nosuch.home.arpa")?;
    assert!(
        !missing.success() || missing.stdout.contains("NXDOMAIN"),
        "{missing:?}"
    );

    // The lease is on disk with the client's name.
    let leases = guest.read_file("/var/lib/hearth/dnsd/leases.jsonl")?;
    assert!(
        leases.contains(&format!("\"ip\":\"{ip}\"")) && leases.contains("\"hostname\":\"tv\""),
        "{leases}"
    );
    Ok(())
}
