use super::*;
use crate::fixture::{FakeDisk, Fixture};

fn storage(toml: &str) -> Storage {
    let src = format!("version = 1\n[system]\nhostname = \"nas\"\n{toml}");
    hearth_config::parse(&src, "test.toml").unwrap().storage
}

/// A NAS: boot disk vda, three members (one holding ext2, wipe-listed), a spare, a
/// stray disk with a GPT, and one degraded array.
fn nas() -> (Fixture, Storage) {
    let fx = Fixture::new();
    fx.disk(&FakeDisk::virtio("vda", "BOOT", 8 << 30).partition(1, 8 << 30));
    for (name, serial) in [
        ("vdb", "S1"),
        ("vdc", "S2"),
        ("vdd", "S3"),
        ("vde", "S4"),
        ("vdf", "S5"),
    ] {
        fx.disk(&FakeDisk::virtio(name, serial, 1 << 30));
    }
    fx.mountinfo(&[("254:1", "/", "/dev/vda1")]);
    let mut ext = vec![0u8; 2048];
    ext[1080] = 0x53;
    ext[1081] = 0xEF;
    let mut gpt = vec![0u8; 1024];
    gpt[512..520].copy_from_slice(b"EFI PART");
    fx.dev_node("vda", &gpt);
    fx.dev_node("vdb", &[0; 8192]);
    fx.dev_node("vdc", &ext);
    fx.dev_node("vdd", &[0; 8192]);
    fx.dev_node("vde", &[0; 8192]);
    fx.dev_node("vdf", &gpt);
    fx.md_attrs(
        "md127",
        &[
            ("array_state", "clean"),
            ("level", "raid1"),
            ("raid_disks", "2"),
            ("degraded", "1"),
            ("sync_action", "idle"),
            ("mismatch_cnt", "0"),
            ("dev-sdx/state", "in_sync"),
            ("dev-sdx/slot", "0"),
        ],
    );
    let s = storage(
        r#"
[storage]
wipe = ["S2"]

[[storage.arrays]]
name = "photos"
level = "raid5"
members = [{ serial = "S1" }, { serial = "S2" }, { by_id = "virtio-S3" }]
spares = [{ serial = "S4" }, { serial = "GONE" }]
"#,
    );
    (fx, s)
}

#[test]
fn report_marks_roles_wipe_boot_and_content() {
    let (fx, s) = nas();
    let r = gather(&fx.root(), Some(&s), &[]).unwrap();
    let by = |n: &str| r.disks.iter().find(|d| d.disk.name == n).unwrap();
    assert!(by("vda").disk.boot);
    assert_eq!(by("vda").selected, None);
    assert_eq!(by("vdb").content, Content::Blank);
    assert_eq!(by("vdb").selected.as_ref().unwrap().role, Role::Member);
    assert!(by("vdc").wipe_listed);
    assert_eq!(
        by("vdc").content.to_string(),
        "ext2 filesystem found at byte 1080"
    );
    assert_eq!(by("vde").selected.as_ref().unwrap().role, Role::Spare);
    assert_eq!(by("vdf").selected, None);
    assert_eq!(r.arrays.len(), 1);
    assert_eq!(
        r.problems,
        ["storage.arrays[0].spares[1] (array photos): no disk with serial \"GONE\""]
    );
}

#[test]
fn human_table() {
    let (fx, s) = nas();
    let text = render(&gather(&fx.root(), Some(&s), &[]).unwrap());
    let want = "\
DISK  SIZE     TRAN    ROT  SERIAL  BY-ID        USE                  CONTENT
vda   8.0 GiB  virtio  no   BOOT    virtio-BOOT  boot                 GPT partition table found at byte 512
vdb   1.0 GiB  virtio  no   S1      virtio-S1    photos member        blank
vdc   1.0 GiB  virtio  no   S2      virtio-S2    photos member, wipe  ext2 filesystem found at byte 1080
vdd   1.0 GiB  virtio  no   S3      virtio-S3    photos member        blank
vde   1.0 GiB  virtio  no   S4      virtio-S4    photos spare         blank
vdf   1.0 GiB  virtio  no   S5      virtio-S5    -                    GPT partition table found at byte 512

ARRAY  LEVEL  STATE  DISKS  MISMATCH  MEMBERS  HEALTH
md127  raid1  clean  1/2    0         sdx[0]   degraded (1 missing)

config problems:
  storage.arrays[0].spares[1] (array photos): no disk with serial \"GONE\"
";
    assert_eq!(text, want);
}

#[test]
fn json_has_every_field() {
    let (fx, s) = nas();
    let r = gather(&fx.root(), Some(&s), &[]).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    let vdc = &v["disks"][2];
    assert_eq!(vdc["name"], "vdc");
    assert_eq!(vdc["serial"], "S2");
    assert_eq!(vdc["by_id"][0], "virtio-S2");
    assert_eq!(vdc["wipe_listed"], true);
    assert_eq!(vdc["selected"]["array"], "photos");
    assert_eq!(vdc["selected"]["field"], "storage.arrays[0].members[1]");
    assert_eq!(vdc["content"]["state"], "used");
    assert_eq!(vdc["content"]["found"][0]["kind"], "ext");
    assert_eq!(vdc["content"]["found"][0]["offset"], 1080);
    assert_eq!(v["arrays"][0]["health"]["health"], "degraded");
    assert_eq!(v["arrays"][0]["health"]["missing"], 1);
}

#[test]
fn without_config_or_nodes() {
    let fx = Fixture::new();
    fx.disk(&FakeDisk::virtio("vdb", "S1", 1 << 30));
    let r = gather(&fx.root(), None, &[]).unwrap();
    assert_eq!(r.disks[0].selected, None);
    assert!(
        matches!(&r.disks[0].content, Content::Unreadable { error } if error.contains("dev/vdb"))
    );
    assert!(r.problems.is_empty());
    assert_eq!(human_size(512), "512 B");
    assert_eq!(human_size(3 << 40), "3.0 TiB");
}
