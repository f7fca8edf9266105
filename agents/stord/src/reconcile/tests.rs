use std::path::{Path, PathBuf};

use super::*;
use crate::disk::discover;
use crate::fixture::{FakeDisk, Fixture};
use crate::fs::{FsCall, RecordingFs};
use crate::md::mdadm::{MdCall, RecordingMd};
use crate::md::superblock::{encode, ArrayUuid, Superblock};
use crate::select::resolve;

const DISK: usize = 4 << 20;
const UUID: ArrayUuid = ArrayUuid([7; 16]);

fn storage(extra: &str) -> Storage {
    let src = format!(
        "version = 1\n[system]\nhostname = \"nas\"\n[storage]\n{extra}\n\
         [[storage.arrays]]\nname = \"tank\"\nlevel = \"raid5\"\n\
         members = [{{ serial = \"S1\" }}, {{ serial = \"S2\" }}, {{ serial = \"S3\" }}]\n\
         spares = [{{ serial = \"S4\" }}]\n"
    );
    hearth_config::parse(&src, "test.toml").unwrap().storage
}

/// Boot disk vda plus vdb..vde (serials S1..S4) whose device nodes hold `content`.
fn machine(content: &[(&str, Vec<u8>)]) -> Fixture {
    let fx = Fixture::new();
    fx.disk(&FakeDisk::virtio("vda", "BOOT", 8 << 30).partition(1, 8 << 30));
    for (i, s) in ["S1", "S2", "S3", "S4"].iter().enumerate() {
        let name = format!("vd{}", char::from(b'b' + i as u8));
        fx.disk(&FakeDisk::virtio(&name, s, DISK as u64));
        let bytes = content
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| vec![0; DISK], |(_, b)| b.clone());
        fx.dev_node(&name, &bytes);
    }
    fx.mountinfo(&[("254:1", "/", "/dev/vda1")]);
    fx
}

fn with_superblock(name: &str, dev_number: u32) -> Vec<u8> {
    let mut b = vec![0; DISK];
    let sb = Superblock {
        uuid: UUID,
        name: format!("nas:{name}"),
        level: 5,
        raid_disks: 3,
        dev_number,
        events: 10,
    };
    b[4096..4096 + 256].copy_from_slice(&encode(&sb));
    b
}

fn with_ext4() -> Vec<u8> {
    let mut b = vec![0; DISK];
    b[1080..1082].copy_from_slice(&[0x53, 0xef]);
    b
}

/// What the kernel shows once mdadm started `md127` from `members`.
fn start_md(root: &Path, members: &[&str], fs: bool) {
    let md = root.join("sys/block/md127/md");
    let w = |rel: &str, v: &str| {
        let p = md.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    };
    w("array_state", "clean");
    w("level", "raid5");
    w("raid_disks", "3");
    w("degraded", "0");
    w("uuid", &UUID.sysfs());
    for (i, m) in members.iter().enumerate() {
        w(&format!("dev-{m}/state"), "in_sync");
        w(&format!("dev-{m}/slot"), &i.to_string());
    }
    let node = if fs { with_ext4() } else { vec![0; DISK] };
    std::fs::write(root.join("dev/md127"), node).unwrap();
}

struct Run {
    outcome: Outcome,
    md: Vec<MdCall>,
    fs: Vec<FsCall>,
}

fn run(fx: &Fixture, storage: &Storage, md: RecordingMd) -> Run {
    let root = fx.root();
    let disks = discover(&root, &[]).unwrap();
    let selection = resolve(storage, &disks);
    let world = World {
        root: &root,
        storage,
        disks: &disks,
        selection: &selection,
    };
    let mut md = md;
    let mut fs = RecordingFs::default();
    let mut out = reconcile(
        &world,
        &mut Tools {
            md: &mut md,
            fs: &mut fs,
        },
    );
    assert_eq!(out.len(), 1);
    Run {
        outcome: out.remove(0).1,
        md: md.calls,
        fs: fs.calls,
    }
}

fn starts(root: PathBuf, fs: bool) -> RecordingMd {
    RecordingMd {
        effect: Some(Box::new(move |call| {
            let devices: Vec<PathBuf> = match call {
                MdCall::Create(spec) => spec.members.iter().chain(&spec.spares).cloned().collect(),
                MdCall::Assemble { devices, .. } => devices.clone(),
                _ => return,
            };
            let names: Vec<String> = devices
                .iter()
                .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            start_md(&root, &names, fs);
        })),
        ..RecordingMd::default()
    }
}

fn dev(fx: &Fixture, name: &str) -> PathBuf {
    fx.root().dev_node(name)
}

#[test]
fn blank_disks_are_created_formatted_once_and_mounted() {
    let fx = machine(&[]);
    let r = run(&fx, &storage(""), starts(fx.root().path().into(), false));
    assert_eq!(
        r.md,
        [MdCall::Create(CreateSpec {
            name: "tank".into(),
            level: hearth_config::RaidLevel::Raid5,
            members: vec![dev(&fx, "vdb"), dev(&fx, "vdc"), dev(&fx, "vdd")],
            spares: vec![dev(&fx, "vde")],
        })]
    );
    let md127 = dev(&fx, "md127");
    assert_eq!(
        r.fs,
        [
            FsCall::Mkfs {
                device: md127.clone(),
                fs: hearth_config::Filesystem::Ext4,
                label: "tank".into()
            },
            FsCall::Mount {
                device: md127,
                fs: hearth_config::Filesystem::Ext4,
                path: "/srv/tank".into()
            }
        ]
    );
    assert_eq!(
        r.outcome,
        Outcome::Mounted {
            device: "md127".into(),
            mount: "/srv/tank".into(),
            action: Action::Created
        }
    );
}

#[test]
fn a_disk_with_a_filesystem_refuses_the_array_and_nothing_is_written() {
    let fx = machine(&[("vdc", with_ext4())]);
    let before: Vec<Vec<u8>> = ["vdb", "vdc", "vdd", "vde"]
        .iter()
        .map(|n| std::fs::read(dev(&fx, n)).unwrap())
        .collect();
    let r = run(&fx, &storage(""), RecordingMd::default());
    assert!(r.md.is_empty() && r.fs.is_empty(), "{:?} {:?}", r.md, r.fs);
    let Outcome::Refused { reason } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(
        reason.contains("vdc (serial S2)")
            && reason.contains("ext2 filesystem found at byte 1080")
            && reason.contains("storage.wipe")
            && reason.contains(&dev(&fx, "vdc").display().to_string()),
        "{reason}"
    );
    for (n, b) in ["vdb", "vdc", "vdd", "vde"].iter().zip(before) {
        assert_eq!(std::fs::read(dev(&fx, n)).unwrap(), b, "{n} changed");
    }
}

#[test]
fn a_wipe_listed_disk_is_wiped_then_used() {
    let fx = machine(&[("vdc", with_ext4())]);
    let r = run(
        &fx,
        &storage("wipe = [\"S2\"]"),
        starts(fx.root().path().into(), false),
    );
    assert!(matches!(r.md[0], MdCall::Create(_)), "{:?}", r.md);
    assert!(std::fs::read(dev(&fx, "vdc"))
        .unwrap()
        .iter()
        .all(|b| *b == 0));
    assert!(
        matches!(r.outcome, Outcome::Mounted { .. }),
        "{:?}",
        r.outcome
    );
}

#[test]
fn existing_members_are_assembled_by_uuid_never_wiped_and_never_reformatted() {
    let fx = machine(&[
        ("vdb", with_superblock("tank", 0)),
        ("vdc", with_superblock("tank", 1)),
        ("vdd", with_superblock("tank", 2)),
    ]);
    let before = std::fs::read(dev(&fx, "vdc")).unwrap();
    // vdc is wipe-listed: a disk carrying this array's superblock is never wiped.
    let r = run(
        &fx,
        &storage("wipe = [\"S2\"]"),
        starts(fx.root().path().into(), true),
    );
    assert_eq!(
        r.md[0],
        MdCall::Assemble {
            name: "tank".into(),
            uuid: UUID,
            devices: vec![dev(&fx, "vdb"), dev(&fx, "vdc"), dev(&fx, "vdd")],
        }
    );
    // The blank spare joins the running array.
    assert_eq!(
        r.md[1],
        MdCall::Add {
            array: dev(&fx, "md127"),
            device: dev(&fx, "vde")
        }
    );
    assert_eq!(r.md.len(), 2);
    assert!(
        r.fs.iter().all(|c| matches!(c, FsCall::Mount { .. })),
        "{:?}",
        r.fs
    );
    assert_eq!(std::fs::read(dev(&fx, "vdc")).unwrap(), before);
    assert!(matches!(
        r.outcome,
        Outcome::Mounted {
            action: Action::Assembled,
            ..
        }
    ));
}

#[test]
fn degraded_assembly_needs_the_levels_minimum() {
    // raid5 of 3: two members run it degraded.
    let fx = machine(&[
        ("vdb", with_superblock("tank", 0)),
        ("vdd", with_superblock("tank", 2)),
    ]);
    let r = run(&fx, &storage(""), starts(fx.root().path().into(), true));
    let MdCall::Assemble { devices, .. } = &r.md[0] else {
        panic!("{:?}", r.md)
    };
    assert_eq!(devices, &[dev(&fx, "vdb"), dev(&fx, "vdd")]);

    // One member is not enough: wait, touch nothing.
    let fx = machine(&[("vdb", with_superblock("tank", 0))]);
    let r = run(&fx, &storage(""), RecordingMd::default());
    assert!(r.md.is_empty());
    let Outcome::Waiting { reason } = r.outcome else {
        panic!()
    };
    assert!(
        reason.contains("1 of 3 members present, it needs 2"),
        "{reason}"
    );
}

#[test]
fn missing_members_wait_without_touching_anything() {
    let fx = machine(&[]);
    let s = storage("").arrays[0].clone();
    let mut st = storage("");
    let mut a = s;
    a.members[2] = hearth_config::DiskSelector::Serial("GONE".into());
    st.arrays[0] = a;
    let r = run(&fx, &st, RecordingMd::default());
    assert!(r.md.is_empty() && r.fs.is_empty());
    let Outcome::Waiting { reason } = r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(
        reason.contains("storage.arrays[0].members[2] (serial GONE)"),
        "{reason}"
    );
}

#[test]
fn a_foreign_md_superblock_is_refused() {
    let fx = machine(&[("vdd", with_superblock("media", 0))]);
    let r = run(&fx, &storage(""), RecordingMd::default());
    assert!(r.md.is_empty());
    let Outcome::Refused { reason } = r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(
        reason.contains("vdd (serial S3)") && reason.contains("md superblock 1.2"),
        "{reason}"
    );
}

#[test]
fn a_running_mounted_array_is_left_alone() {
    let fx = machine(&[]);
    start_md(fx.root().path(), &["vdb", "vdc", "vdd", "vde"], true);
    fx.mountinfo(&[
        ("254:1", "/", "/dev/vda1"),
        ("9:127", "/srv/tank", "/dev/md127"),
    ]);
    let r = run(&fx, &storage(""), RecordingMd::default());
    assert!(r.md.is_empty() && r.fs.is_empty(), "{:?} {:?}", r.md, r.fs);
    assert_eq!(
        r.outcome,
        Outcome::Mounted {
            device: "md127".into(),
            mount: "/srv/tank".into(),
            action: Action::Unchanged
        }
    );
}

#[test]
fn the_boot_disk_is_refused_and_tool_failures_are_reported() {
    let fx = machine(&[]);
    let mut st = storage("");
    st.arrays[0].spares[0] = hearth_config::DiskSelector::Serial("BOOT".into());
    let r = run(&fx, &st, RecordingMd::default());
    assert!(r.md.is_empty());
    let Outcome::Refused { reason } = r.outcome else {
        panic!()
    };
    assert!(reason.contains("holds the running system"), "{reason}");

    let fx = machine(&[]);
    let md = RecordingMd {
        fail: Some(|c| matches!(c, MdCall::Create(_))),
        ..RecordingMd::default()
    };
    let r = run(&fx, &storage(""), md);
    let Outcome::Failed { reason } = r.outcome else {
        panic!()
    };
    assert!(reason.contains("told to fail"), "{reason}");
    assert!(r.fs.is_empty());
}
