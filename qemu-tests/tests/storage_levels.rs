//! RAID6, RAID1 and RAID10 in one guest (issue 5, scenario 4): stord creates all three
//! on blank disks; two RAID6 members are hot-removed and the array keeps serving with
//! every checksum intact; after a reboot all three assemble by themselves (the RAID6
//! degraded, from the two members left) and every checksum matches. The RAID1 carries
//! btrfs (test images ship it next to ext4): made once, mounted again after the reboot;
//! it also has a hot spare that md rebuilds onto when a member is pulled.

mod storage_support;

use std::time::{Duration, Instant};

use hearth_qemu_tests::guest::BUSYBOX;
use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use storage_support::*;

const DISK: u64 = 48 << 20;
const BTRFS_DISK: u64 = 128 << 20;

const STORAGE: &str = r#"[storage]

[[storage.arrays]]
name = "six"
level = "raid6"
members = [{ serial = "S6A" }, { serial = "S6B" }, { serial = "S6C" }, { serial = "S6D" }]

[[storage.arrays]]
name = "one"
level = "raid1"
members = [{ serial = "S1A" }, { serial = "S1B" }]
spares = [{ serial = "S1S" }]
filesystem = "btrfs"

[[storage.arrays]]
name = "ten"
level = "raid10"
members = [{ by_id = "virtio-S10A" }, { by_id = "virtio-S10B" }, { serial = "S10C" }, { serial = "S10D" }]
"#;

const ARRAYS: [(&str, &str); 3] = [("six", "raid6"), ("one", "raid1"), ("ten", "raid10")];

fn all(g: &mut Guest, what: &str, cond: impl Fn(&serde_json::Value) -> bool) -> TestResult {
    for (name, _) in ARRAYS {
        wait_array(g, name, what, Duration::from_secs(600), &cond)?;
    }
    Ok(())
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn storage_levels() -> TestResult {
    require_enabled();
    let mut spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config(STORAGE))
        .memory_mib(512);
    for s in ["S6A", "S6B", "S6C", "S6D", "S10A", "S10B", "S10C", "S10D"] {
        spec = spec.disk(s, DISK);
    }
    // The RAID1 carries btrfs, whose smallest device is 109 MiB.
    for s in ["S1A", "S1B", "S1S"] {
        spec = spec.disk(s, BTRFS_DISK);
    }
    spec.reboot_exits = false;
    let t0 = Instant::now();
    let mut g = Guest::boot(spec)?;
    g.wait_ready()?;
    all(&mut g, "mounted", mounted)?;
    bench(&format!(
        "raid6+raid1+raid10 create: boot→all mounted {:.1} s",
        secs(t0)
    ));
    let s = status(&mut g).expect("status file");
    for (name, level) in ARRAYS {
        let a = array(&s, name);
        assert_eq!(a["status"]["level"], level, "{a}");
        assert_eq!(a["outcome"]["action"], "created", "{a}");
    }
    let fs = |g: &mut Guest, mount: &str| -> Result<String, hearth_qemu_tests::Error> {
        let mounts = g.read_file("/proc/mounts")?;
        Ok(mounts
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.get(1) == Some(&mount)).then(|| f[2].to_string())
            })
            .unwrap_or_default())
    };
    assert_eq!(
        fs(&mut g, "/srv/one")?,
        "btrfs",
        "the RAID1 asked for btrfs"
    );
    assert_eq!(fs(&mut g, "/srv/six")?, "ext4", "ext4 is the default");
    all(&mut g, "initial sync done", clean)?;
    let mut sums = Vec::new();
    for (name, _) in ARRAYS {
        let dir = format!("/srv/{name}/data");
        sums.push(write_files(
            &mut g,
            &dir,
            200,
            4096,
            &format!("/srv/{name}/sums"),
        )?);
    }

    // RAID6 survives two failed members.
    let removed = Instant::now();
    hot_remove(&mut g, "S6A")?;
    hot_remove(&mut g, "S6C")?;
    let a = wait_array(
        &mut g,
        "six",
        "two members gone",
        Duration::from_secs(60),
        |a| degraded(a) == 2,
    )?;
    bench(&format!(
        "raid6 two removals→degraded 2 {:.1} s",
        secs(removed)
    ));
    assert!(mounted(&a), "{a}");
    check_files(&mut g, "/srv/six/data", &sums[0])?;
    g.sh_ok(&format!(
        "{BUSYBOX} head -c 65536 /dev/urandom > /srv/six/after-failure && sync"
    ))?;

    // The RAID1 loses a member and rebuilds onto its hot spare by itself.
    let spare = g.sh_ok(
        "for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = S1S ] && echo ${d##*/}; done; true",
    )?;
    let spare = spare.trim().to_string();
    assert!(!spare.is_empty(), "no disk with serial S1S");
    let in_slot = |a: &serde_json::Value| {
        a["status"]["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["device"] == spare.as_str() && !m["slot"].is_null())
        })
    };
    assert!(
        !in_slot(&array(&status(&mut g).expect("status"), "one")),
        "spare in a slot already"
    );
    let removed = Instant::now();
    hot_remove(&mut g, "S1A")?;
    let a = wait_array(
        &mut g,
        "one",
        "rebuilt onto the spare",
        Duration::from_secs(300),
        |a| clean(a) && degraded(a) == 0 && in_slot(a),
    )?;
    bench(&format!(
        "raid1 member removal→rebuilt onto hot spare {:.1} s",
        secs(removed)
    ));
    assert!(mounted(&a), "{a}");
    check_files(&mut g, "/srv/one/data", &sums[1])?;

    // Reboot: all three assemble, the RAID6 from its two remaining members.
    let _ = g.exec_with(&[BUSYBOX, "reboot"], "", Duration::from_secs(5));
    let t1 = Instant::now();
    g.wait_ready()?;
    all(&mut g, "assembled", |a| {
        mounted(a) && a["outcome"]["action"] == "assembled"
    })?;
    bench(&format!(
        "raid6+raid1+raid10 reboot→all mounted {:.1} s",
        secs(t1)
    ));
    let s = status(&mut g).expect("status file");
    assert_eq!(degraded(&array(&s, "six")), 2, "{s}");
    for ((name, _), sums) in ARRAYS.iter().zip(&sums) {
        check_files(&mut g, &format!("/srv/{name}/data"), sums)?;
    }
    g.sh_ok("test -s /srv/six/after-failure")?;
    // Made once: the btrfs came back with its files, not a fresh one.
    assert_eq!(fs(&mut g, "/srv/one")?, "btrfs");
    Ok(())
}
