//! `poweroff`, `reboot` and the ACPI power button each shut the guest down in order
//! and end QEMU cleanly.

use std::time::Duration;

use hearth_qemu_tests::guest::BUSYBOX;
use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};

const EXIT_TIMEOUT: Duration = Duration::from_secs(90);

/// After a shutdown was triggered: the ordered console lines, then a clean QEMU exit.
fn shuts_down(guest: &mut Guest, action: &str) -> TestResult {
    guest.wait_for(
        format!("hearth-init: shutting down ({action})"),
        EXIT_TIMEOUT,
    )?;
    guest.wait_for(format!("hearth-init: {action} now"), EXIT_TIMEOUT)?;
    let status = guest.wait_exit(EXIT_TIMEOUT)?;
    assert!(status.success(), "QEMU exited with {status}");
    Ok(())
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn poweroff_command() -> TestResult {
    require_enabled();
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;
    // busybox poweroff signals PID 1 (SIGUSR2) and returns; the connection may drop
    // before the answer arrives, so the exec result itself is not checked.
    let _ = guest.exec_with(&[BUSYBOX, "poweroff"], "", Duration::from_secs(5));
    shuts_down(&mut guest, "poweroff")
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn reboot_command() -> TestResult {
    require_enabled();
    // reboot_exits is the default: QEMU runs with -no-reboot and exits on reboot.
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;
    let _ = guest.exec_with(&[BUSYBOX, "reboot"], "", Duration::from_secs(5));
    shuts_down(&mut guest, "reboot")
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn power_button() -> TestResult {
    require_enabled();
    let mut guest = Guest::boot(GuestSpec::new(test_image()?))?;
    guest.wait_ready()?;
    guest.qmp("system_powerdown")?;
    guest.wait_for("hearth-init: power button pressed", Duration::from_secs(30))?;
    shuts_down(&mut guest, "poweroff")
}
