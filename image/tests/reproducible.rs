//! Two builds from the same lock file and sources give bit-identical outputs, and the
//! second (offline, warm) build needs neither the network nor a re-extraction.
//!
//! Needs the Debian mirror (first build, unless the cache is warm) and a musl cargo
//! build, so it is ignored by default; `qemu-tests/run-all.sh` runs it with
//! `HEARTH_IMAGE_TESTS=1 cargo test -p hearth -- --ignored`.

use std::path::Path;
use std::time::Instant;

use assert_cmd::Command;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn build(out: &Path, offline: bool) -> std::time::Duration {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.current_dir(workspace())
        .arg("build")
        .arg("--test-agent")
        .arg("--lock")
        .arg(workspace().join("hearth.lock"))
        .arg("--out")
        .arg(out);
    if offline {
        cmd.arg("--offline");
    }
    let started = Instant::now();
    let assert = cmd.assert();
    let output = assert.get_output();
    assert!(
        output.status.success(),
        "hearth build failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

#[test]
#[ignore = "needs network + cargo musl build; run by .ci/run via HEARTH_IMAGE_TESTS=1"]
fn two_builds_are_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let cold = build(&a, false);
    let warm = build(&b, true);
    eprintln!(
        "first build {:.1}s, offline rebuild {:.1}s",
        cold.as_secs_f64(),
        warm.as_secs_f64()
    );
    for file in ["vmlinuz", "initramfs.cpio.zst", "build.json"] {
        let x = std::fs::read(a.join(file)).unwrap();
        let y = std::fs::read(b.join(file)).unwrap();
        assert!(x == y, "{file} differs between two builds");
    }
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("build.json")).unwrap()).unwrap();
    assert_eq!(info["cmdline"], "console=ttyS0 panic=-1 quiet");
    assert!(info["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "dbus-daemon"));
    let size = info["outputs"][1]["size"].as_u64().unwrap();
    assert!(size <= 40 << 20, "initramfs is {size} bytes, over 40 MiB");
    // No temp files or scratch left behind.
    let mut names: Vec<String> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["build.json", "initramfs.cpio.zst", "vmlinuz"]);
}
