//! The harness itself against a booted guest: initramfs overlay, control channel
//! (exec, stdin, timeout, files, ps), QMP hot-unplug and hot-plug of a disk. Needs only
//! busybox and guestctld in the image, so it also runs against a hand-made image
//! (`HEARTH_TEST_IMAGE=<dir>`).

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use serde_json::json;

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn harness_selftest() -> TestResult {
    require_enabled();
    let mut spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/harness-overlay", "overlay works\n")
        .disk("HEARTH-D1", 64 << 20);
    spec.hotplug_ports = 1;
    let mut guest = Guest::boot(spec)?;
    guest.wait_ready()?;

    assert_eq!(
        guest.read_file("/etc/hearth/harness-overlay")?,
        "overlay works\n"
    );

    let out = guest.exec_with(
        &["/usr/bin/busybox", "tr", "a-z", "A-Z"],
        "shout\n",
        Duration::from_secs(10),
    )?;
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), "SHOUT\n"));
    let out = guest.sh("echo oops >&2; exit 7")?;
    assert_eq!((out.status, out.stderr.as_str()), (Some(7), "oops\n"));
    let out = guest.exec_with(
        &["/usr/bin/busybox", "sleep", "30"],
        "",
        Duration::from_secs(1),
    )?;
    assert!(out.timed_out && out.signal == Some(9), "{out:?}");
    assert!(guest.sh_ok("exit 3").is_err());

    guest.write_file("/run/harness-file", "written\n")?;
    assert_eq!(guest.sh_ok("cat /run/harness-file")?, "written\n");
    let err = guest.read_file("/nonexistent").unwrap_err();
    assert!(err.to_string().contains("/nonexistent"), "{err}");

    let ps = guest.ps()?;
    assert!(ps.iter().any(|p| p.pid == 1), "{ps:?}");
    assert!(ps.iter().any(|p| p.comm == "guestctld"), "{ps:?}");

    // The disk is there with its serial, can be unplugged and a new one plugged in.
    assert_eq!(guest.sh_ok("cat /sys/block/vda/serial")?, "HEARTH-D1");
    guest.qmp_with("device_del", Some(json!({"id": "HEARTH-D1"})))?;
    let deleted = guest.qmp_event("DEVICE_DELETED", Duration::from_secs(30))?;
    assert!(deleted.to_string().contains("HEARTH-D1") || deleted["data"]["path"].is_string());
    guest.wait_until("vda to disappear", Duration::from_secs(30), |g| {
        Ok((!g.sh("test -e /sys/block/vda")?.success()).then_some(()))
    })?;

    let image = guest.artefacts().join("disk-HEARTH-D1.img");
    guest.qmp_with(
        "blockdev-add",
        Some(json!({
            "driver": "raw",
            "node-name": "d2",
            "file": {"driver": "file", "filename": image},
        })),
    )?;
    guest.qmp_with(
        "device_add",
        Some(json!({
            "driver": "virtio-blk-pci",
            "drive": "d2",
            "id": "HEARTH-D2",
            "serial": "HEARTH-D2",
            "bus": "hp0",
        })),
    )?;
    let serial = guest.wait_until("a hot-plugged disk", Duration::from_secs(30), |g| {
        let out = g.sh("cat /sys/block/vd*/serial 2>/dev/null")?;
        Ok((out.stdout == "HEARTH-D2").then_some(out.stdout))
    })?;
    assert_eq!(serial, "HEARTH-D2");
    Ok(())
}
