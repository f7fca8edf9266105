//! An agent that keeps failing is given up on: init reports it failed, with a reason,
//! and everything else keeps running.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn crash_loop() -> TestResult {
    require_enabled();
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;
    let before =
        guest.wait_for_agents("every agent ready", Duration::from_secs(30), |s| s.ready)?;
    let pid = before
        .agent("heartbeatd")
        .and_then(|a| a.pid)
        .expect("heartbeatd pid");

    // heartbeatd exits at start while this file exists.
    guest.sh_ok(&format!(
        "mkdir -p /run/hearth/fail && touch /run/hearth/fail/heartbeatd && kill -9 {pid}"
    ))?;

    let line = guest.wait_for(
        "hearth-init: agent heartbeatd failed:",
        Duration::from_secs(120),
    )?;
    let state =
        guest.wait_for_agents("heartbeatd marked failed", Duration::from_secs(30), |s| {
            s.agent("heartbeatd").is_some_and(|a| a.state == "failed")
        })?;
    let failed = state.agent("heartbeatd").unwrap();
    let reason = failed.reason.as_deref().unwrap_or_default();
    assert!(
        !reason.is_empty(),
        "failed without a reason: {failed:?} (console: {line})"
    );
    assert_eq!(
        state.agent("dbus").map(|a| a.state.as_str()),
        Some("ready"),
        "{state:?}"
    );

    // The control agent still answers.
    assert_eq!(guest.sh_ok("echo alive")?, "alive\n");
    Ok(())
}
