//! RAID5 end to end in one guest (issue 5, scenarios 1–3): stord creates a RAID5 with
//! ext4 on three blank disks; 1,000 files with known checksums are written; after a
//! reboot the array assembles by itself and every checksum matches. Then one member is
//! hot-removed (QMP `device_del`) while a writer runs: stord reports the array degraded
//! within 5 s, no file is lost or corrupted and writes continue. Finally a blank disk
//! is hot-plugged: with `storage.replace = "blank-disks"` the rebuild starts by itself,
//! completes, the array is clean and every checksum still matches (read back with the
//! page cache dropped). Prints boot→mounted, removal→degraded and rebuild figures.

mod storage_support;

use std::time::{Duration, Instant};

use hearth_qemu_tests::guest::BUSYBOX;
use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use storage_support::*;

const DISK: u64 = 96 << 20;

const STORAGE: &str = r#"[storage]
replace = "blank-disks"

[[storage.arrays]]
name = "tank"
level = "raid5"
members = [{ serial = "T1" }, { serial = "T2" }, { serial = "T3" }]
"#;

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn storage_raid5() -> TestResult {
    require_enabled();
    let mut spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config(STORAGE))
        .disk("T1", DISK)
        .disk("T2", DISK)
        .disk("T3", DISK)
        .memory_mib(512);
    spec.hotplug_ports = 1;
    spec.reboot_exits = false;
    let t0 = Instant::now();
    let mut g = Guest::boot(spec)?;
    g.wait_ready()?;

    // 1. Created on blank disks, ext4, mounted at /srv/tank.
    let a = wait_array(&mut g, "tank", "mounted", Duration::from_secs(180), mounted)?;
    bench(&format!("raid5 create: boot→mounted {:.1} s", secs(t0)));
    assert_eq!(a["outcome"]["action"], "created", "{a}");
    assert_eq!(a["status"]["level"], "raid5", "{a}");
    assert_eq!(a["status"]["metadata"], "1.2", "{a}");
    g.sh_ok("grep -q ' /srv/tank ext4 ' /proc/mounts")?;
    let t = Instant::now();
    wait_array(
        &mut g,
        "tank",
        "initial sync done",
        Duration::from_secs(600),
        clean,
    )?;
    bench(&format!("raid5 initial sync of 3×96 MiB: {:.1} s", secs(t)));
    let sums = write_files(
        &mut g,
        "/srv/tank/photos",
        1000,
        8192,
        "/srv/tank/photos.sha256",
    )?;
    assert_eq!(sums.lines().count(), 1000);

    // `stord status` works next to the agent.
    let out = g.exec(&[STORD, "status", "--json"])?;
    assert!(out.success(), "{out:?}");
    let st: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    assert!(st.to_string().contains("raid5"), "{st}");

    // Reboot: the array assembles by itself, every checksum matches.
    let _ = g.exec_with(&[BUSYBOX, "reboot"], "", Duration::from_secs(5));
    let t1 = Instant::now();
    g.wait_ready()?;
    let a = wait_array(
        &mut g,
        "tank",
        "assembled after reboot",
        Duration::from_secs(180),
        |a| mounted(a) && a["outcome"]["action"] == "assembled",
    )?;
    bench(&format!("raid5 reboot: reboot→mounted {:.1} s", secs(t1)));
    assert_eq!(a["outcome"]["mount"], "/srv/tank");
    check_files(&mut g, "/srv/tank/photos", &sums)?;

    // 2. Hot-remove a member during writes.
    g.sh_ok(&format!(
        "mkdir -p /srv/tank/live; touch /run/writing; \
         {BUSYBOX} setsid {BUSYBOX} sh -c 'i=0; while [ -e /run/writing ]; do i=$((i+1)); \
         {BUSYBOX} head -c 8192 /dev/urandom > /srv/tank/live/w$i || echo $i >> /run/writer.err; \
         done' </dev/null >/dev/null 2>&1 &"
    ))?;
    std::thread::sleep(Duration::from_secs(2));
    let removed = Instant::now();
    g.qmp_with("device_del", Some(serde_json::json!({"id": "T2"})))?;
    let a = wait_array(&mut g, "tank", "degraded", Duration::from_secs(30), |a| {
        degraded(a) >= 1
    })?;
    let to_degraded = removed.elapsed();
    bench(&format!(
        "raid5 removal→degraded {:.1} s",
        to_degraded.as_secs_f64()
    ));
    assert!(
        to_degraded <= Duration::from_secs(5),
        "degraded seen after {to_degraded:?}: {a}"
    );
    assert!(mounted(&a), "{a}");
    g.qmp_event("DEVICE_DELETED", Duration::from_secs(60))?;
    let count = |g: &mut Guest| -> Result<u64, hearth_qemu_tests::Error> {
        let n = g.sh_ok("ls /srv/tank/live | wc -l")?;
        Ok(n.trim().parse().unwrap_or(0))
    };
    let before = count(&mut g)?;
    std::thread::sleep(Duration::from_secs(3));
    let after = count(&mut g)?;
    assert!(
        after > before,
        "writes stopped: {before} then {after} files"
    );
    g.sh_ok("rm /run/writing; sleep 2")?;
    let err = g.sh("cat /run/writer.err 2>/dev/null")?;
    assert!(
        err.stdout.trim().is_empty(),
        "writes failed: {}",
        err.stdout
    );
    let live = g.sh_ok(&format!(
        "cd /srv/tank/live && {BUSYBOX} sha256sum w* && sync"
    ))?;
    check_files(&mut g, "/srv/tank/photos", &sums)?;
    check_files(&mut g, "/srv/tank/live", &live)?;
    assert!(stord_log_has(&mut g, "failed or removed"));

    // 3. Hot-add a blank disk: the rebuild starts by itself and completes.
    let spare = g.artefacts().join("disk-T4.img");
    sparse(&spare, DISK);
    let speed_max = g.read_file("/proc/sys/dev/raid/speed_limit_max")?;
    let added = Instant::now();
    hot_add(&mut g, &spare, "T4", "hp0")?;
    let a = wait_array(
        &mut g,
        "tank",
        "rebuild started",
        Duration::from_secs(60),
        |a| a["status"]["sync_action"] == "recover" || (clean(a) && degraded(a) == 0),
    )?;
    let to_start = added.elapsed();
    let device = a["outcome"]["device"]
        .as_str()
        .unwrap_or("md127")
        .to_owned();
    let component_kib: f64 = g
        .read_file(&format!("/sys/block/{device}/md/component_size"))?
        .trim()
        .parse()
        .unwrap_or(0.0);
    let mut peak_kib = 0u64;
    let a = g.wait_until("rebuild to finish", Duration::from_secs(900), |g| {
        let Some(s) = status(g) else { return Ok(None) };
        let a = array(&s, "tank");
        peak_kib = peak_kib.max(a["status"]["sync_speed_kib"].as_u64().unwrap_or(0));
        Ok((clean(&a) && degraded(&a) == 0).then_some(a))
    })?;
    let rebuild = added.elapsed();
    bench(&format!(
        "raid5 hot-add→rebuild started {:.1} s, rebuild {:.1} s for {:.0} MiB: {:.1} MiB/s \
         (peak sync_speed {} KiB/s) vs speed_limit_max {} KiB/s",
        to_start.as_secs_f64(),
        rebuild.as_secs_f64(),
        component_kib / 1024.0,
        component_kib / 1024.0 / rebuild.as_secs_f64(),
        peak_kib,
        speed_max.trim()
    ));
    let members: Vec<String> = a["status"]["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["device"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(members.len(), 3, "{a}");
    assert!(stord_log_has(&mut g, "rebuilding onto new blank disk"));
    check_files(&mut g, "/srv/tank/photos", &sums)?;
    check_files(&mut g, "/srv/tank/live", &live)?;
    Ok(())
}
