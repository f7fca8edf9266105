use std::path::Path;

use super::*;
use crate::disk::discover;
use crate::fixture::{FakeDisk, Fixture};
use crate::md::mdadm::{MdCall, RecordingMd};
use crate::select::resolve;

const DISK: u64 = 4 << 20;

fn storage(extra: &str) -> Storage {
    let src = format!(
        "version = 1\n[system]\nhostname = \"nas\"\n[storage]\n{extra}\n\
         [[storage.arrays]]\nname = \"tank\"\nlevel = \"raid1\"\n\
         members = [{{ serial = \"S1\" }}, {{ serial = \"S2\" }}]\n"
    );
    hearth_config::parse(&src, "test.toml").unwrap().storage
}

fn disk(fx: &Fixture, name: &str, serial: &str, content: &[u8]) {
    fx.disk(&FakeDisk::virtio(name, serial, DISK));
    let mut bytes = vec![0u8; DISK as usize];
    bytes[..content.len()].copy_from_slice(content);
    fx.dev_node(name, &bytes);
}

fn md(fx: &Fixture, attrs: &[(&str, &str)]) {
    let mut all = vec![
        ("array_state", "clean"),
        ("level", "raid1"),
        ("raid_disks", "2"),
        ("degraded", "0"),
        ("sync_action", "idle"),
        ("mismatch_cnt", "0"),
        ("component_size", "2048"),
        ("dev-vdb/state", "in_sync"),
        ("dev-vdb/slot", "0"),
        ("dev-vdc/state", "in_sync"),
        ("dev-vdc/slot", "1"),
    ];
    for (k, v) in attrs {
        match all.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => all.push((k, v)),
        }
    }
    fx.md_attrs("md127", &all);
}

struct Tick {
    reports: Vec<ArrayReport>,
    calls: Vec<MdCall>,
}

fn tick(fx: &Fixture, w: &mut Watcher, storage: &Storage, now: Instant) -> Tick {
    let root = fx.root();
    let disks = discover(&root, &[]).unwrap();
    let selection = resolve(storage, &disks);
    let outcomes = vec![(
        "tank".to_owned(),
        Outcome::Mounted {
            device: "md127".into(),
            mount: "/srv/tank".into(),
            action: crate::reconcile::Action::Unchanged,
        },
    )];
    let mut md = RecordingMd::default();
    let reports = w.tick(&root, storage, &disks, &selection, &outcomes, &mut md, now);
    Tick {
        reports,
        calls: md.calls,
    }
}

fn two_disks() -> Fixture {
    let fx = Fixture::new();
    disk(&fx, "vdb", "S1", &[]);
    disk(&fx, "vdc", "S2", &[]);
    fx
}

#[test]
fn a_failed_member_is_reported_once_and_taken_out() {
    let fx = two_disks();
    md(&fx, &[]);
    let root = fx.root();
    let mut w = Watcher::new(&discover(&root, &[]).unwrap());
    let s = storage("");
    let t0 = Instant::now();
    let t = tick(&fx, &mut w, &s, t0);
    assert_eq!(t.reports[0].status.as_ref().unwrap().health, Health::Clean);
    assert!(t.calls.is_empty());
    // clean ⇄ active alternate with every write burst: not an event.
    md(&fx, &[("array_state", "active")]);
    tick(&fx, &mut w, &s, t0);
    assert_eq!(w.events().count(), 1);

    md(&fx, &[("degraded", "1"), ("dev-vdc/state", "faulty")]);
    let t = tick(&fx, &mut w, &s, t0);
    assert_eq!(
        t.calls,
        [MdCall::RemoveMember {
            md_dir: root.path().join("sys/block/md127/md"),
            member: "vdc".into()
        }]
    );
    let messages: Vec<&str> = w.events().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "array tank (md127): clean",
            "array tank (md127): degraded (1 missing)",
            "array tank (md127): member vdc failed or removed; taking it out",
        ]
    );
    // The next tick retries quietly.
    tick(&fx, &mut w, &s, t0);
    assert_eq!(w.events().count(), 3);
}

#[test]
fn a_vanished_member_disk_is_taken_out() {
    let fx = two_disks();
    md(&fx, &[("dev-vdx/state", "in_sync"), ("dev-vdx/slot", "2")]);
    let mut w = Watcher::new(&[]);
    let t = tick(&fx, &mut w, &storage(""), Instant::now());
    assert_eq!(t.calls.len(), 1, "{:?}", t.calls);
    assert!(w
        .events()
        .any(|e| e.message.contains("member vdx failed or removed")));
}

fn degraded_with_new_disk(content: &[u8]) -> (Fixture, Watcher) {
    let fx = two_disks();
    md(&fx, &[("degraded", "1")]);
    std::fs::remove_dir_all(fx.root().path().join("sys/block/md127/md/dev-vdc")).unwrap();
    let w = Watcher::new(&discover(&fx.root(), &[]).unwrap());
    // Inserted after stord started.
    disk(&fx, "vdf", "NEW", content);
    (fx, w)
}

#[test]
fn blank_disks_policy_rebuilds_onto_a_new_blank_disk() {
    let (fx, mut w) = degraded_with_new_disk(&[]);
    let t = tick(
        &fx,
        &mut w,
        &storage("replace = \"blank-disks\""),
        Instant::now(),
    );
    assert_eq!(
        t.calls,
        [MdCall::Add {
            array: fx.root().dev_node("md127"),
            device: fx.root().dev_node("vdf")
        }]
    );
    assert!(w.events().any(|e| e
        .message
        .contains("rebuilding onto new blank disk vdf (serial NEW)")));
}

#[test]
fn spares_only_policy_and_non_blank_or_old_disks_are_never_used() {
    let (fx, mut w) = degraded_with_new_disk(&[]);
    let t = tick(&fx, &mut w, &storage(""), Instant::now());
    assert!(t.calls.is_empty(), "{:?}", t.calls);

    let mut ext = vec![0u8; 2048];
    ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
    let (fx, mut w) = degraded_with_new_disk(&ext);
    let t = tick(
        &fx,
        &mut w,
        &storage("replace = \"blank-disks\""),
        Instant::now(),
    );
    assert!(t.calls.is_empty(), "{:?}", t.calls);

    // A new disk that took a pulled disk's kernel name is still new.
    let fx = two_disks();
    md(&fx, &[("degraded", "1")]);
    std::fs::remove_dir_all(fx.root().path().join("sys/block/md127/md/dev-vdc")).unwrap();
    let mut w = Watcher::new(&discover(&fx.root(), &[]).unwrap());
    std::fs::remove_file(fx.root().path().join("sys/block/vdc")).unwrap();
    disk(&fx, "vdc", "NEW", &[]);
    let t = tick(
        &fx,
        &mut w,
        &storage("replace = \"blank-disks\""),
        Instant::now(),
    );
    assert_eq!(t.calls.len(), 1, "{:?}", t.calls);

    // A blank disk present at start is not "newly inserted".
    let (fx, _) = degraded_with_new_disk(&[]);
    let mut w = Watcher::new(&discover(&fx.root(), &[]).unwrap());
    let t = tick(
        &fx,
        &mut w,
        &storage("replace = \"blank-disks\""),
        Instant::now(),
    );
    assert!(t.calls.is_empty(), "{:?}", t.calls);
}

#[test]
fn scrub_starts_on_schedule_and_reports_mismatches() {
    let fx = two_disks();
    md(&fx, &[]);
    let mut w = Watcher::new(&[]);
    let s = storage("scrub = \"1h\"");
    let t0 = Instant::now();
    let action = fx.root().path().join("sys/block/md127/md/sync_action");
    tick(&fx, &mut w, &s, t0);
    assert_eq!(read(&action), "idle");
    tick(&fx, &mut w, &s, t0 + Duration::from_secs(3599));
    assert_eq!(read(&action), "idle");
    tick(&fx, &mut w, &s, t0 + Duration::from_secs(3600));
    assert_eq!(read(&action), "check");
    md(
        &fx,
        &[("sync_action", "check"), ("sync_completed", "10 / 100")],
    );
    tick(&fx, &mut w, &s, t0 + Duration::from_secs(3601));
    md(&fx, &[("sync_action", "idle"), ("mismatch_cnt", "8")]);
    let t = tick(&fx, &mut w, &s, t0 + Duration::from_secs(3700));
    assert_eq!(t.reports[0].status.as_ref().unwrap().mismatch_cnt, Some(8));
    assert!(
        w.events()
            .any(|e| e.message == "array tank: scrub finished, mismatch_cnt 8"),
        "{:?}",
        w.events().collect::<Vec<_>>()
    );
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_owned()
}
