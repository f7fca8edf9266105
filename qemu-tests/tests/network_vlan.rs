//! netd on a real wire with the Debian kernel: 802.1Q tagging on the LAN, NAT to the
//! WAN and the zone policy between VLAN segments.
//!
//! Two QEMU hubs: hub 1 is the "internet" (the router's WAN NIC and a second guest NIC
//! moved into an `inet` namespace holding 203.0.113.1), hub 2 the LAN (the router's
//! LAN NIC and two more guest NICs moved into a `media` client namespace and a
//! `management` client namespace). Each client tags its frames itself (a VLAN
//! sub-interface on its NIC: 10 for media, 99 for management), so every packet
//! between a client and the router crosses a QEMU hub as a tagged frame and reaches
//! netd's `vl-<segment>` link on `br-lan`. Namespaces are made with busybox:
//! `unshare -n sleep` holds one, `ip link set DEV netns PID` moves a NIC into it,
//! `nsenter -n -t PID` runs in it. NICs are matched by MAC (config and test alike).
//!
//! Proves, in one boot: netd applied the config (VLAN ids in `/proc/net/vlan`, gateway
//! addresses); media reaches the internet host through NAT (the listener sees the
//! router's WAN address 203.0.113.2 as the source); media cannot reach the appliance's
//! admin service on the management gateway nor a host on VLAN 99; management reaches
//! both the admin service and the media host. Every refused connection has a positive
//! control showing its listener answers.

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use netns_support::{connect, enter, hub, netns, router_config, PRELUDE};

mod netns_support;

const WAN_MAC: &str = "52:54:00:00:01:01";
const INET_MAC: &str = "52:54:00:00:01:02";
const LAN_MAC: &str = "52:54:00:00:02:01";
const MEDIA_MAC: &str = "52:54:00:00:02:02";
const MGMT_MAC: &str = "52:54:00:00:02:03";

/// The appliance config of this boot (replaces the image's).
fn config() -> String {
    let mut config = router_config("vlan-test", WAN_MAC, LAN_MAC);
    config.push_str(
        r#"
[[network.segments]]
name = "management"
vlan = 99
subnet = "10.10.99.0/24"
gateway = "10.10.99.1"

[network.firewall]
forward = [
  { from = "lan", to = "wan", action = "accept" },
  { from = "media", to = "wan", action = "accept" },
  { from = "management", to = "wan", action = "accept" },
  { from = "management", to = "media", action = "accept" },
]
allow = [
  { zone = "media", services = ["dns", "dhcp", "ping"] },
  { zone = "management", services = ["dns", "dhcp", "http-admin", "ping"] },
]
"#,
    );
    config
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn network_vlan() -> TestResult {
    require_enabled();
    let spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config())
        .nic(hub("wan", 1, WAN_MAC))
        .nic(hub("inet", 1, INET_MAC))
        .nic(hub("lan", 2, LAN_MAC))
        .nic(hub("media", 2, MEDIA_MAC))
        .nic(hub("mgmt", 2, MGMT_MAC))
        .memory_mib(384);
    let mut guest = Guest::boot(spec)?;
    guest.wait_ready()?;

    // netd applied the config: VLAN links with their ids and gateway addresses, the WAN.
    let netd_log = guest.read_file("/var/log/hearth/netd.log")?;
    assert!(netd_log.contains("applied:"), "{netd_log}");
    let vlan = guest.sh_ok("cat /proc/net/vlan/vl-media /proc/net/vlan/vl-management")?;
    assert!(vlan.contains("VID: 10"), "{vlan}");
    assert!(vlan.contains("VID: 99"), "{vlan}");
    let addrs = guest.sh_ok(&format!("{PRELUDE}ip -4 addr show; ip route show default"))?;
    for want in [
        "10.10.10.1/24",
        "10.10.99.1/24",
        "192.168.1.1/24",
        "203.0.113.2/24",
        "default via 203.0.113.1",
    ] {
        assert!(addrs.contains(want), "{want} missing:\n{addrs}");
    }

    // The internet: 203.0.113.1 with a listener that reports who connected.
    let inet = netns(&mut guest)?;
    enter(
        &mut guest,
        &inet,
        INET_MAC,
        "ip addr add 203.0.113.1/24 dev $IF",
    )?;
    guest.sh_ok(&format!(
        "{PRELUDE}setsid nsenter -n -t {inet} nc -l -p 8080 -e busybox netstat -tn </dev/null >/dev/null 2>&1 &"
    ))?;
    // The admin service on the appliance (http-admin: TCP 80), on every address.
    guest.sh_ok(&format!(
        "{PRELUDE}setsid nc -ll -p 80 -e busybox echo admin </dev/null >/dev/null 2>&1 &"
    ))?;

    // Clients tag their own frames: VLAN 10 (media) and VLAN 99 (management).
    let media = netns(&mut guest)?;
    enter(
        &mut guest,
        &media,
        MEDIA_MAC,
        "ip link add link $IF name $IF.10 type vlan id 10; ip link set $IF.10 up; \
         ip addr add 10.10.10.50/24 dev $IF.10; ip route add default via 10.10.10.1",
    )?;
    let mgmt = netns(&mut guest)?;
    enter(
        &mut guest,
        &mgmt,
        MGMT_MAC,
        "ip link add link $IF name $IF.99 type vlan id 99; ip link set $IF.99 up; \
         ip addr add 10.10.99.50/24 dev $IF.99; ip route add default via 10.10.99.1",
    )?;

    // Media reaches its gateway (tagged frames on the hub) and the internet via NAT.
    let ping = guest.sh(&format!(
        "{PRELUDE}nsenter -n -t {media} ping -c 2 -W 3 10.10.10.1"
    ))?;
    assert!(ping.success(), "media cannot ping its gateway: {ping:?}");
    let seen =
        connect(&mut guest, &media, "203.0.113.1", 8080)?.expect("media reaches the internet host");
    let line = seen
        .lines()
        // ESTABLISHED, or CLOSE_WAIT once the client has sent its line and shut down.
        .find(|l| l.starts_with("tcp") && l.contains("203.0.113.1:8080"))
        .unwrap_or_else(|| panic!("no connection in the listener's netstat:\n{seen}"));
    let foreign = line.split_whitespace().nth(4).unwrap_or_default();
    assert!(
        foreign.starts_with("203.0.113.2:") || foreign.starts_with("::ffff:203.0.113.2:"),
        "the internet sees the router's WAN address, not 10.10.10.50: {line}"
    );

    // Management services and hosts are out of media's reach; management reaches media.
    guest.sh_ok(&format!(
        "{PRELUDE}setsid nsenter -n -t {mgmt} nc -ll -p 9099 -e busybox echo mgmt-host </dev/null >/dev/null 2>&1 &\n\
         setsid nsenter -n -t {media} nc -ll -p 9010 -e busybox echo media-host </dev/null >/dev/null 2>&1 &"
    ))?;
    assert_eq!(
        connect(&mut guest, &media, "10.10.99.1", 80)?,
        None,
        "media must not reach the admin service on the management gateway"
    );
    assert_eq!(
        connect(&mut guest, &media, "10.10.10.1", 80)?,
        None,
        "media must not reach the admin service on its own gateway either"
    );
    assert_eq!(
        connect(&mut guest, &media, "10.10.99.50", 9099)?,
        None,
        "media must not reach a management host"
    );
    // Control: the management host's listener answers (from the router itself).
    let control = guest.sh(&format!(
        "{PRELUDE}echo hi | timeout 8 nc -w 3 10.10.99.50 9099"
    ))?;
    assert_eq!(control.stdout, "mgmt-host\n", "{control:?}");
    assert_eq!(
        connect(&mut guest, &mgmt, "10.10.99.1", 80)?.as_deref(),
        Some("admin\n"),
        "management reaches the admin service"
    );
    assert_eq!(
        connect(&mut guest, &mgmt, "10.10.10.50", 9010)?.as_deref(),
        Some("media-host\n"),
        "management reaches media"
    );

    // Drops were counted by the firewall.
    let counters = guest.sh_ok(&format!(
        "{PRELUDE}nft list counter inet hearth forward_dropped"
    ))?;
    assert!(!counters.contains("packets 0 "), "{counters}");
    Ok(())
}
