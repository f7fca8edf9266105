//! A config that does not validate puts init into rescue: it says why (with
//! `file:line:col`), starts only the rescue agents, and guestctld still answers.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use regex::Regex;

/// The embedded default config, broken twice: a future version and a VLAN id out of
/// range.
fn broken_config() -> String {
    let default = include_str!("../../configs/default.toml");
    assert!(default.contains("version = 1") && default.contains("vlan = 10"));
    default
        .replacen("version = 1", "version = 2", 1)
        .replacen("vlan = 10", "vlan = 5000", 1)
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn rescue_on_broken_config() -> TestResult {
    require_enabled();
    let spec = GuestSpec::new(test_image()?).file("/etc/hearth/config.toml", broken_config());
    let mut guest = Guest::boot(spec)?;

    let located = Regex::new(r"hearth-init: rescue: .*/etc/hearth/config\.toml:\d+:\d+").unwrap();
    let line = guest.wait_for(located, hearth_qemu_tests::BOOT_TIMEOUT)?;
    assert!(!line.contains("ready in"), "{line}");

    let state = guest.wait_for_agents("agents.json in rescue", Duration::from_secs(60), |s| {
        s.agent("guestctld").is_some_and(|a| a.state == "ready")
    })?;
    assert!(
        state.rescue.is_some(),
        "no rescue reason in agents.json: {state:?}"
    );
    for agent in &state.agents {
        if agent.name != "guestctld" {
            assert!(
                agent.pid.is_none() && agent.state != "ready",
                "{} runs in rescue: {agent:?}",
                agent.name
            );
        }
    }
    assert_eq!(guest.sh_ok("echo alive")?, "alive\n");
    assert_eq!(
        guest
            .serial()
            .count(&hearth_qemu_tests::agents::ready_marker().into()),
        0
    );
    Ok(())
}
