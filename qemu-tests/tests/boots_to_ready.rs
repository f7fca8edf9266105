//! A test image boots to `ready` once, with every agent up (the default config's
//! netd, dnsd and stord too), the configured hostname, its kernel modules loaded, the
//! firewall and LAN bridge in place, agent logs written, heartbeatd registered on the
//! system bus and no zombies.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, Nic, TestResult};
use regex::Regex;

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn boots_to_ready() -> TestResult {
    require_enabled();
    let spec = GuestSpec::new(test_image()?).nic(Nic::User {
        id: "wan".into(),
        mac: None,
    });
    let mut guest = Guest::boot(spec)?;
    guest.wait_ready()?;

    let state = guest.wait_for_agents("every agent ready", Duration::from_secs(30), |s| s.ready)?;
    for name in ["dbus", "heartbeatd", "netd", "dnsd", "stord", "guestctld"] {
        let agent = state
            .agent(name)
            .unwrap_or_else(|| panic!("{name} missing from agents.json: {state:?}"));
        assert_eq!(agent.state, "ready", "{agent:?}");
        assert!(agent.pid.is_some(), "{agent:?}");
    }
    assert_eq!(state.rescue, None);

    let config: toml::Table = guest
        .read_file("/etc/hearth/config.toml")?
        .parse()
        .expect("the image's config is TOML");
    let hostname = config["system"]["hostname"]
        .as_str()
        .expect("system.hostname");
    assert_eq!(
        guest.read_file("/proc/sys/kernel/hostname")?.trim(),
        hostname
    );

    let modules = guest.read_file("/proc/modules")?;
    assert!(
        modules.lines().any(|l| l.starts_with("virtio_net ")),
        "virtio_net not loaded:\n{modules}"
    );

    // netd's work: the firewall table and the LAN bridge with its address.
    let tables = guest.sh("nft list tables")?;
    assert!(tables.success(), "{tables:?}");
    assert!(
        tables.stdout.contains("table inet hearth"),
        "no hearth table: {tables:?}"
    );
    let bridge = guest.sh("ip -4 addr show dev br-lan")?;
    assert!(
        bridge.success() && bridge.stdout.contains("192.168.1.1/24"),
        "br-lan: {bridge:?}"
    );

    let timestamped = Regex::new(r"^\d+\.\d+ [A-Z]+ heartbeatd: ").unwrap();
    let log = guest.wait_until(
        "heartbeatd.log to have a line",
        Duration::from_secs(30),
        |g| {
            let log = g.read_file("/var/log/hearth/heartbeatd.log")?;
            Ok((!log.trim().is_empty()).then_some(log))
        },
    )?;
    assert!(
        log.lines().all(|l| timestamped.is_match(l)),
        "untimestamped lines in heartbeatd.log:\n{log}"
    );
    // heartbeatd is ready only once it owns its name, so the line is already there.
    assert!(
        log.lines()
            .any(|l| l.ends_with("heartbeatd: registered org.hearth.Heartbeat1 on the system bus")),
        "heartbeatd did not register on the system bus:\n{log}"
    );

    let zombies: Vec<_> = guest.ps()?.into_iter().filter(|p| p.state == "Z").collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");

    // Finally the marker: exactly once over the whole boot.
    let ready = guest.serial().count(
        &Regex::new(hearth_qemu_tests::agents::READY_MARKER)
            .unwrap()
            .into(),
    );
    assert_eq!(ready, 1, "ready marker printed {ready} times");
    Ok(())
}
