use std::process::Command;

use super::*;
use crate::disk::{DevNum, Transport};

const MIB: u64 = 1 << 20;

/// A sparse temp image of `size` bytes with `patches` written at their offsets.
fn image(size: u64, patches: &[(u64, &[u8])]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(size).unwrap();
    for (offset, bytes) in patches {
        f.as_file().write_all_at(bytes, *offset).unwrap();
    }
    f
}

fn scan_file(f: &tempfile::NamedTempFile) -> Vec<Found> {
    scan(&DeviceFile::open(f.path()).unwrap()).unwrap()
}

fn one(f: &tempfile::NamedTempFile) -> String {
    let found = scan_file(f);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].to_string()
}

fn disk(serial: Option<&str>) -> Disk {
    Disk {
        name: "vdb".into(),
        dev: DevNum {
            major: 254,
            minor: 16,
        },
        size_bytes: MIB,
        rotational: false,
        removable: false,
        read_only: false,
        model: None,
        serial: serial.map(str::to_owned),
        wwn: None,
        transport: Transport::Virtio,
        partitions: vec![],
        holders: vec![],
        by_id: vec![],
        boot: false,
    }
}

fn md_superblock(name: &str) -> Vec<u8> {
    let mut sb = vec![0u8; 256];
    sb[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[32..32 + name.len()].copy_from_slice(name.as_bytes());
    sb
}

#[test]
fn zeroed_disk_is_blank() {
    let f = image(MIB, &[]);
    assert!(scan_file(&f).is_empty());
    let dev = DeviceFile::open(f.path()).unwrap();
    assert_eq!(
        check_blank(&disk(Some("S1")), &dev, f.path(), &[]).unwrap(),
        Verdict::Blank
    );
}

#[test]
fn each_magic_at_its_offset() {
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0x83;
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    let ext2 = [0x53, 0xEF];
    let cases: Vec<(u64, Vec<u8>, &str)> = vec![
        (0, mbr, "MBR partition table found at byte 510"),
        (
            512,
            b"EFI PART".to_vec(),
            "GPT partition table found at byte 512",
        ),
        (
            4096,
            b"EFI PART".to_vec(),
            "GPT partition table found at byte 4096",
        ),
        (1080, ext2.to_vec(), "ext2 filesystem found at byte 1080"),
        (
            65600,
            b"_BHRfS_M".to_vec(),
            "btrfs filesystem found at byte 65600",
        ),
        (0, b"XFSB".to_vec(), "xfs filesystem found at byte 0"),
        (
            4086,
            b"SWAPSPACE2".to_vec(),
            "swap space found at byte 4086",
        ),
        (
            0,
            b"LUKS\xba\xbe\x00\x02".to_vec(),
            "LUKS header found at byte 0",
        ),
        (
            512,
            b"LABELONE".to_vec(),
            "LVM2 physical volume label found at byte 512",
        ),
        (
            4096,
            md_superblock("nas:photos"),
            "md superblock 1.2 (array \"nas:photos\") found at byte 4096",
        ),
        (0, md_superblock(""), "md superblock 1.1 found at byte 0"),
        // 1 MiB = 2048 sectors: (2048 - 16) & !7 = 2032.
        (
            2032 * 512,
            md_superblock("x:y"),
            "md superblock 1.0 (array \"x:y\") found at byte 1040384",
        ),
    ];
    for (offset, bytes, want) in cases {
        let f = image(MIB, &[(offset, &bytes)]);
        assert_eq!(one(&f), want);
    }
}

#[test]
fn md_0_90_at_the_end_in_host_order() {
    // (2048 & !127) - 128 = 1920 sectors.
    let mut sb = MD_MAGIC.to_le_bytes().to_vec();
    sb.extend_from_slice(&0u32.to_le_bytes());
    let f = image(MIB, &[(1920 * 512, &sb)]);
    assert_eq!(one(&f), "md superblock 0.90 found at byte 983040");
}

#[test]
fn boot_sector_without_partitions_is_not_an_mbr() {
    let f = image(MIB, &[(510, &[0x55, 0xAA])]);
    assert!(scan_file(&f).is_empty());
}

#[test]
fn magic_in_the_wrong_place_is_ignored() {
    let f = image(
        MIB,
        &[
            (4095, b"SWAPSPACE2"),
            (1081, &[0x53, 0xEF]),
            (8192, &md_superblock("a")),
        ],
    );
    assert!(scan_file(&f).is_empty());
}

#[test]
fn small_devices_are_read_only_within_bounds() {
    let f = image(600, &[(512, b"EFI PART")]);
    assert_eq!(one(&f), "GPT partition table found at byte 512");
    let empty = image(0, &[]);
    assert!(scan_file(&empty).is_empty());
}

#[test]
fn several_signatures_are_all_named_in_order() {
    let f = image(MIB, &[(4096, &md_superblock("h:a")), (1080, &[0x53, 0xEF])]);
    let found = scan_file(&f);
    let offsets: Vec<u64> = found.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [1080, 4096]);
}

#[test]
fn refused_unless_wipe_listed() {
    let f = image(MIB, &[(1080, &[0x53, 0xEF])]);
    let dev = DeviceFile::open(f.path()).unwrap();
    let e = check_blank(&disk(Some("S1")), &dev, f.path(), &["S2".into()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "disk vdb (serial S1): ext2 filesystem found at byte 1080; not used: list its serial \
         in storage.wipe to allow destroying it"
    );
    let e = check_blank(&disk(None), &dev, f.path(), &[]).unwrap_err();
    assert!(e.to_string().contains("reports no serial"), "{e}");
    let v = check_blank(&disk(Some("S1")), &dev, f.path(), &["S1".into()]).unwrap();
    assert!(matches!(v, Verdict::Wipe(found) if found.len() == 1));
}

/// Run a host formatting tool on a regular file; fails loudly when it is missing.
fn format_with(tool: &str, args: &[&str]) -> tempfile::NamedTempFile {
    let f = image(16 * MIB, &[]);
    let out = Command::new(tool)
        .args(args)
        .arg(f.path())
        .output()
        .unwrap_or_else(|e| panic!("{tool} (e2fsprogs/util-linux) must be installed: {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    f
}

#[test]
fn real_mke2fs_images_are_told_apart() {
    for (t, want) in [("ext2", 2), ("ext3", 3), ("ext4", 4)] {
        let f = format_with("mke2fs", &["-q", "-F", "-t", t]);
        let found = scan_file(&f);
        assert_eq!(
            found,
            [Found {
                signature: Signature::Ext { version: want },
                offset: 1080
            }],
            "{t}"
        );
    }
}

#[test]
fn real_mkfs_ext4_and_mkswap() {
    let f = format_with("mkfs.ext4", &["-q", "-F"]);
    assert_eq!(one(&f), "ext4 filesystem found at byte 1080");
    let f = format_with("mkswap", &[]);
    assert_eq!(one(&f), "swap space found at byte 4086");
}
