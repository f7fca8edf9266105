//! On-disk compatibility with stock mdadm (issue 5, scenario 6): a RAID5 that stord
//! created is read by the *host's* `mdadm --examine` from the powered-off guest's disk
//! images (metadata 1.2, level, name, one array UUID on every member, clean), then
//! assembled by plain `mdadm --assemble --scan` in a second guest whose config has no
//! arrays (so stord does nothing), with the disks hot-plugged; the files match.
//!
//! And the other way round, in that second guest: stock `mdadm --create` makes a
//! RAID1 with an ext4 and a file on two blank disks; once the config names the array
//! and stord restarts, stord *assembles* it (never re-creates or re-formats) and
//! mounts it at `/srv/stock` with the file intact.

mod storage_support;

use std::process::Command;
use std::time::{Duration, Instant};

use hearth_qemu_tests::guest::BUSYBOX;
use hearth_qemu_tests::{require_enabled, test_image, Guest, GuestSpec, TestResult};
use storage_support::*;

const DISK: u64 = 48 << 20;
const SERIALS: [&str; 3] = ["C1", "C2", "C3"];
/// Blank disks of the second boot for the array stock mdadm creates.
const STOCK: [&str; 2] = ["S1", "S2"];

const STORAGE_STOCK: &str = r#"[storage]

[[storage.arrays]]
name = "stock"
level = "raid1"
members = [{ serial = "S1" }, { serial = "S2" }]
"#;

const STORAGE: &str = r#"[storage]

[[storage.arrays]]
name = "compat"
level = "raid5"
members = [{ serial = "C1" }, { serial = "C2" }, { serial = "C3" }]
"#;

fn field<'a>(examine: &'a str, key: &str) -> &'a str {
    examine
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(" : ")?;
            (k.trim() == key).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {key:?} in mdadm --examine output:\n{examine}"))
}

#[test]
#[ignore = "boots QEMU: HEARTH_QEMU_TESTS=1 cargo test -p hearth-qemu-tests -- --ignored"]
fn storage_compat() -> TestResult {
    require_enabled();
    let copies = tempfile::tempdir().expect("temp dir");
    let sums;
    {
        let mut spec = GuestSpec::new(test_image()?)
            .file("/etc/hearth/config.toml", config(STORAGE))
            .memory_mib(384);
        for s in SERIALS {
            spec = spec.disk(s, DISK);
        }
        let t0 = Instant::now();
        let mut g = Guest::boot(spec)?;
        g.wait_ready()?;
        wait_array(
            &mut g,
            "compat",
            "mounted",
            Duration::from_secs(180),
            mounted,
        )?;
        bench(&format!("raid5 (compat) boot→mounted {:.1} s", secs(t0)));
        wait_array(&mut g, "compat", "clean", Duration::from_secs(600), clean)?;
        sums = write_files(&mut g, "/srv/compat/data", 100, 4096, "/srv/compat/sums")?;
        let _ = g.exec_with(&[BUSYBOX, "poweroff"], "", Duration::from_secs(5));
        let status = g.wait_exit(Duration::from_secs(120))?;
        assert!(status.success(), "QEMU exited with {status}");
        for s in SERIALS {
            let from = g.artefacts().join(format!("disk-{s}.img"));
            std::fs::copy(&from, copies.path().join(format!("{s}.img")))
                .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
    }

    // The host's mdadm reads every member's superblock.
    let mut uuids = Vec::new();
    for s in SERIALS {
        let img = copies.path().join(format!("{s}.img"));
        let out = Command::new("mdadm")
            .arg("--examine")
            .arg(&img)
            .output()
            .expect("mdadm is installed on the host");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "mdadm --examine {}: {text}",
            img.display()
        );
        assert_eq!(field(&text, "Version"), "1.2");
        assert_eq!(field(&text, "Raid Level"), "raid5");
        assert_eq!(field(&text, "Raid Devices"), "3");
        assert!(field(&text, "Name").contains("compat"), "{text}");
        assert_eq!(field(&text, "State"), "clean", "{text}");
        uuids.push(field(&text, "Array UUID").to_owned());
    }
    assert!(uuids.iter().all(|u| *u == uuids[0]), "{uuids:?}");
    bench("raid5 (compat): host mdadm --examine reads all 3 members, one Array UUID");

    // A second guest without arrays: stock mdadm assembles the array.
    let mut spec = GuestSpec::new(test_image()?)
        .file("/etc/hearth/config.toml", config("[storage]\n"))
        .memory_mib(384);
    for s in STOCK {
        spec = spec.disk(s, DISK);
    }
    spec.hotplug_ports = 3;
    let mut g = Guest::boot(spec)?;
    g.wait_ready()?;
    for (i, s) in SERIALS.iter().enumerate() {
        hot_add(
            &mut g,
            &copies.path().join(format!("{s}.img")),
            s,
            &format!("hp{i}"),
        )?;
    }
    g.wait_until("five disks", Duration::from_secs(60), |g| {
        let n = g.sh_ok("ls -d /sys/block/vd* | wc -l")?;
        Ok((n.trim() == "5").then_some(()))
    })?;
    std::thread::sleep(Duration::from_secs(3));
    let mdstat = g.read_file("/proc/mdstat")?;
    assert!(
        !mdstat.contains("active"),
        "stord assembled although no array is configured:\n{mdstat}"
    );
    let out = g.exec(&["/sbin/mdadm", "--assemble", "--scan"])?;
    assert!(out.success(), "mdadm --assemble --scan: {out:?}");
    let mdstat = g.read_file("/proc/mdstat")?;
    assert!(
        mdstat.contains("active raid5") && mdstat.contains("[3/3]"),
        "{mdstat}"
    );
    let md = g.sh_ok("ls -d /sys/block/md* | head -1")?;
    let md = md.trim().rsplit('/').next().unwrap_or("md127").to_owned();
    g.sh_ok(&format!(
        "mkdir -p /mnt/compat && mount -o ro /dev/{md} /mnt/compat"
    ))?;
    check_files(&mut g, "/mnt/compat/data", &sums)?;

    // The other direction: stock mdadm creates, stord assembles.
    let dev = |g: &mut Guest, serial: &str| -> Result<String, hearth_qemu_tests::Error> {
        let name = g.sh_ok(&format!(
            "for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = {serial} ] && echo ${{d##*/}}; done; true"
        ))?;
        assert!(!name.trim().is_empty(), "no disk with serial {serial}");
        Ok(format!("/dev/{}", name.trim()))
    };
    let (s1, s2) = (dev(&mut g, STOCK[0])?, dev(&mut g, STOCK[1])?);
    g.sh_ok(&format!(
        "/sbin/mdadm --create /dev/md100 --run --metadata=1.2 --name=stock --level=1 \
         --raid-devices=2 {s1} {s2} </dev/null && /sbin/mkfs.ext4 -q /dev/md100 && \
         mkdir -p /mnt/stock && mount /dev/md100 /mnt/stock && \
         echo made-by-stock-mdadm > /mnt/stock/marker && umount /mnt/stock && \
         /sbin/mdadm --stop /dev/md100"
    ))?;
    let wrote = g.exec_with(
        &[BUSYBOX, "sh", "-c", "cat > /etc/hearth/config.toml"],
        &config(STORAGE_STOCK),
        Duration::from_secs(10),
    )?;
    assert!(wrote.success(), "writing the new config: {wrote:?}");
    // Any exit makes init start stord again, which then reads the new config.
    g.sh_ok("kill $(pidof stord)")?;
    let a = wait_array(
        &mut g,
        "stock",
        "mounted",
        Duration::from_secs(180),
        mounted,
    )?;
    assert_eq!(a["outcome"]["action"], "assembled", "{a}");
    assert_eq!(
        g.read_file("/srv/stock/marker")?.trim(),
        "made-by-stock-mdadm",
        "stord re-formatted an array stock mdadm made"
    );
    bench("raid1 made by stock mdadm: stord assembled it and mounted /srv/stock");
    Ok(())
}
