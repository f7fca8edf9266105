//! An agent killed with SIGKILL is restarted by init with a new pid and the system
//! stays ready.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn agent_restart() -> TestResult {
    require_enabled();
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;
    let before =
        guest.wait_for_agents("every agent ready", Duration::from_secs(30), |s| s.ready)?;
    let old = before
        .agent("heartbeatd")
        .expect("heartbeatd in agents.json")
        .clone();
    let old_pid = old.pid.expect("ready heartbeatd has a pid");

    guest.sh_ok(&format!("kill -9 {old_pid}"))?;

    let after = guest.wait_for_agents(
        "heartbeatd restarted and ready",
        Duration::from_secs(60),
        |s| {
            s.agent("heartbeatd").is_some_and(|a| {
                a.state == "ready"
                    && a.pid.is_some_and(|p| p != old_pid)
                    && a.restarts > old.restarts
            }) && s.ready
        },
    )?;
    let new = after.agent("heartbeatd").unwrap();
    assert!(new.restarts >= 1, "{new:?}");
    for name in ["dbus", "guestctld"] {
        assert_eq!(
            after.agent(name).map(|a| a.state.as_str()),
            Some("ready"),
            "{after:?}"
        );
    }
    // The new process really is there.
    let ps = guest.ps()?;
    let new_pid = new.pid.unwrap() as u32;
    assert!(
        ps.iter().any(|p| p.pid == new_pid && p.state != "Z"),
        "{ps:?}"
    );
    assert!(!ps
        .iter()
        .any(|p| p.pid == old_pid as u32 && p.comm == "heartbeatd"));
    Ok(())
}
