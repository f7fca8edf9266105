//! Orphaned processes are reparented to PID 1 and reaped: no zombies remain, and init
//! says so on the console.

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn orphan_reaped() -> TestResult {
    require_enabled();
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;

    // Each subshell forks a sleep and exits at once, so the sleeps lose their parent
    // and are reparented to PID 1 (guestctld is not a subreaper).
    let out = guest.sh_ok(
        "for i in 1 2 3 4 5; do (sleep 1 </dev/null >/dev/null 2>&1 &); done; echo spawned",
    )?;
    assert_eq!(out, "spawned\n");

    guest.wait_for("reaped orphan pid", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(3));
    let ps = guest.ps()?;
    let zombies: Vec<_> = ps.iter().filter(|p| p.state == "Z").collect();
    assert!(zombies.is_empty(), "zombies after 3 s: {zombies:?}");
    let sleeping: Vec<_> = ps.iter().filter(|p| p.comm == "sleep").collect();
    assert!(sleeping.is_empty(), "sleeps still around: {sleeping:?}");
    let reaped = guest.serial().count(&"reaped orphan pid".into());
    assert!(reaped >= 5, "only {reaped} orphans reported reaped");
    Ok(())
}
