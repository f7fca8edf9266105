//! A disk holding a file system is never touched without a `wipe` entry (issue 5,
//! scenario 5). The guest boots with no arrays; a file system is made on one disk;
//! then the config asks for a RAID5 over it and stord is restarted: the array is
//! refused with an error naming the disk (serial, /dev path) and what was found, and
//! the SHA-256 of every disk image on the host is unchanged. Listing the serial under
//! `storage.wipe` then lets stord wipe it and create the array.

mod storage_support;

use std::time::Duration;

use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use storage_support::*;

const DISK: u64 = 64 << 20;
const SERIALS: [&str; 3] = ["R1", "R2", "R3"];

fn storage(wipe: &str) -> String {
    format!(
        "[storage]\nwipe = [{wipe}]\n\n[[storage.arrays]]\nname = \"tank\"\nlevel = \"raid5\"\n\
         members = [{{ serial = \"R1\" }}, {{ serial = \"R2\" }}, {{ serial = \"R3\" }}]\n"
    )
}

/// Replace the config and restart stord (SIGKILL; init restarts it).
fn restart_stord(g: &mut Guest, config: &str) -> TestResult {
    g.write_file("/etc/hearth/config.toml", config)?;
    let state = g.agents()?;
    let pid = state
        .agent("stord")
        .and_then(|a| a.pid)
        .expect("stord runs");
    g.sh_ok(&format!("rm -f {STATUS}; kill -9 {pid}"))?;
    Ok(())
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn storage_refuse() -> TestResult {
    require_enabled();
    let mut spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config("[storage]\n"))
        .memory_mib(384);
    for s in SERIALS {
        spec = spec.disk(s, DISK);
    }
    let mut g = Guest::boot(spec)?;
    g.wait_ready()?;

    let dev = g.sh_ok(
        "for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = R2 ] && echo ${d##*/}; done; true",
    )?;
    let dev = dev.trim().to_owned();
    assert!(dev.starts_with("vd"), "no disk with serial R2: {dev:?}");
    g.sh_ok(&format!("mkfs.ext4 -q /dev/{dev} && sync"))?;
    let images: Vec<_> = SERIALS
        .iter()
        .map(|s| g.artefacts().join(format!("disk-{s}.img")))
        .collect();
    let before: Vec<String> = images.iter().map(|p| host_sha256(p)).collect();

    restart_stord(&mut g, &config(&storage("")))?;
    let a = wait_array(&mut g, "tank", "refused", Duration::from_secs(60), |a| {
        a["outcome"]["state"] == "refused"
    })?;
    let reason = a["outcome"]["reason"].as_str().unwrap_or_default();
    for needle in [
        "R2",
        &format!("/dev/{dev}"),
        "ext4 filesystem",
        "storage.wipe",
        "no disk touched",
    ] {
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
    // Let a few reconcile passes go by, then compare every disk byte for byte.
    std::thread::sleep(Duration::from_secs(12));
    g.sh_ok("sync")?;
    let after: Vec<String> = images.iter().map(|p| host_sha256(p)).collect();
    assert_eq!(
        before, after,
        "a disk changed although the array was refused"
    );
    let mdstat = g.read_file("/proc/mdstat")?;
    assert!(!mdstat.contains("active"), "{mdstat}");
    let console = g.serial().contents();
    assert!(
        console.contains("array tank: refused"),
        "the refusal is not logged on the console"
    );

    // With R2 wipe-listed the array is created.
    restart_stord(&mut g, &config(&storage("\"R2\"")))?;
    let a = wait_array(&mut g, "tank", "created", Duration::from_secs(120), mounted)?;
    assert_eq!(a["outcome"]["action"], "created", "{a}");
    assert!(stord_log_has(&mut g, "listed in storage.wipe"));
    let examine = g.exec(&["/sbin/mdadm", "--examine", &format!("/dev/{dev}")])?;
    assert!(
        examine.success() && examine.stdout.contains("raid5"),
        "{examine:?}"
    );
    Ok(())
}
