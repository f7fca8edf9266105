//! `stord status` as a process: a fixture root built by hand (the crate's fixture
//! module is test-only), a config file, both output formats and the exit codes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// One virtio disk `vdb` (serial S1) holding an ext4 superblock magic.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir
        .path()
        .join("sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vdb");
    write(&dev.join("size"), "2097152\n");
    write(&dev.join("dev"), "254:16\n");
    write(&dev.join("serial"), "S1");
    write(&dev.join("queue/rotational"), "0\n");
    fs::create_dir_all(dir.path().join("sys/block")).unwrap();
    std::os::unix::fs::symlink(
        "../devices/pci0000:00/0000:00:05.0/virtio2/block/vdb",
        dir.path().join("sys/block/vdb"),
    )
    .unwrap();
    let mut image = vec![0u8; 4096];
    image[1080] = 0x53;
    image[1081] = 0xEF;
    image[1024 + 0x60] = 0x40; // incompat: extents → ext4
    write(&dir.path().join("dev/vdb"), image);
    dir
}

fn stord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stord"))
        .args(args)
        .env_remove("HEARTH_SUPERVISED")
        .output()
        .unwrap()
}

fn config(dir: &Path, storage: &str) -> String {
    let path = dir.join("config.toml");
    write(
        &path,
        format!("version = 1\n[system]\nhostname = \"nas\"\n{storage}"),
    );
    path.display().to_string()
}

#[test]
fn table_and_json() {
    let root = root();
    let r = root.path().display().to_string();
    let cfg = config(
        root.path(),
        "[[storage.arrays]]\nname = \"photos\"\nlevel = \"raid1\"\n\
         members = [{ serial = \"S1\" }, { serial = \"S9\" }]\n",
    );
    let out = stord(&["status", "--sysfs-root", &r, "--config", &cfg]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("vdb"), "{text}");
    assert!(text.contains("photos member"), "{text}");
    assert!(
        text.contains("ext4 filesystem found at byte 1080"),
        "{text}"
    );
    assert!(text.contains("no md arrays"), "{text}");
    assert!(
        text.contains("storage.arrays[0].members[1] (array photos): no disk with serial \"S9\""),
        "{text}"
    );

    let out = stord(&["status", "--json", "--sysfs-root", &r, "--config", &cfg]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"][0]["by_id"][0], "virtio-S1");
    assert_eq!(v["disks"][0]["content"]["state"], "used");
    assert_eq!(v["disks"][0]["content"]["found"][0]["version"], 4);
    assert_eq!(v["disks"][0]["boot"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 1);
}

#[test]
fn boot_disk_flag_and_invalid_config() {
    let root = root();
    let r = root.path().display().to_string();
    let out = stord(&[
        "status",
        "--json",
        "--sysfs-root",
        &r,
        "--boot-disk",
        "virtio-S1",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"][0]["boot"], true);

    let cfg = config(root.path(), "[storage]\nwipe = [\"has space\"]\n");
    let out = stord(&["status", "--sysfs-root", &r, "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage.wipe"), "{err}");
}
