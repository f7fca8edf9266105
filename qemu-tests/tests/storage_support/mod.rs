//! Shared by the `storage_*` scenarios: a config with a given `[storage]` section,
//! stord's status file, hot-plugging disk images, and the benchmark figures file.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_qemu_tests::guest::BUSYBOX;
use hearth_qemu_tests::{Guest, TestResult};
use serde_json::{json, Value};

/// stord's status file in the guest.
pub const STATUS: &str = "/run/hearth/stord/status.json";
/// stord in the image.
pub const STORD: &str = "/usr/libexec/hearth/stord";

/// The embedded default config with its `[storage]` section (and the services that
/// refer to its arrays) replaced by `storage`.
pub fn config(storage: &str) -> String {
    let default = include_str!("../../../configs/default.toml");
    let start = default.find("\n[storage]").expect("default has [storage]");
    let end = default
        .find("\n[monitoring]")
        .expect("default has [monitoring]");
    format!("{}\n{storage}\n{}", &default[..start], &default[end..])
}

/// The status file, or `None` while it is not written yet.
pub fn status(g: &mut Guest) -> Option<Value> {
    g.read_json(STATUS).ok()
}

/// The status entry of array `name`.
pub fn array(status: &Value, name: &str) -> Value {
    status["arrays"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Wait until `cond` holds for array `name`'s status entry; returns the entry. On a
/// timeout, prints what stord, mdadm and md were doing (for the failure report).
pub fn wait_array(
    g: &mut Guest,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value, hearth_qemu_tests::Error> {
    let result = g.wait_until(&format!("array {name}: {what}"), timeout, |g| {
        Ok(status(g).map(|s| array(&s, name)).filter(|a| cond(a)))
    });
    if result.is_err() {
        let diag = g.sh(
            "for p in /proc/[0-9]*; do c=$(cat $p/comm); case $c in stord|mdadm|mkfs*|md*) \
             echo \"$p $c $(cat $p/wchan) $(tr '\\0' ' ' < $p/cmdline)\";; esac; done; \
             cat /proc/mdstat",
        );
        eprintln!("guest state: {diag:?}");
        eprintln!("status file: {:?}", status(g));
    }
    result
}

/// Mounted, per the status file.
pub fn mounted(a: &Value) -> bool {
    a["outcome"]["state"] == "mounted"
}

/// Mounted and the kernel says clean (no resync, nothing missing).
pub fn clean(a: &Value) -> bool {
    mounted(a) && a["status"]["health"]["health"] == "clean"
}

/// Number of empty slots the kernel reports.
pub fn degraded(a: &Value) -> u64 {
    a["status"]["degraded"].as_u64().unwrap_or(0)
}

/// Print a figure and append it to `$CARGO_TARGET_DIR/qemu-bench/storage.txt`.
pub fn bench(line: &str) {
    println!("bench: {line}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(hearth_qemu_tests::artefacts::target_dir)
        .join("qemu-bench");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("storage.txt"))
    {
        let _ = writeln!(f, "bench: {line}");
    }
}

/// Seconds since `t`, for figures.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Write `count` files of `size` random bytes under `dir` and their SHA-256 sums
/// (relative names) to `sums` (both in the guest). Returns the sums text.
pub fn write_files(
    g: &mut Guest,
    dir: &str,
    count: u32,
    size: u32,
    sums: &str,
) -> Result<String, hearth_qemu_tests::Error> {
    let script = format!(
        "set -e; mkdir -p {dir}; cd {dir}; i=0; \
         while [ $i -lt {count} ]; do i=$((i+1)); \
         {BUSYBOX} head -c {size} /dev/urandom > f$i; done; \
         {BUSYBOX} sha256sum f* > {sums}; sync; cat {sums}"
    );
    let out = g.exec_with(
        &[BUSYBOX, "sh", "-c", &script],
        "",
        Duration::from_secs(300),
    )?;
    assert!(out.success(), "writing files: {out:?}");
    Ok(out.stdout)
}

/// Check every sum in `sums` (text of a `sha256sum` listing) against `dir`.
pub fn check_files(g: &mut Guest, dir: &str, sums: &str) -> TestResult {
    g.write_file("/run/expected.sha256", sums)?;
    let out = g.exec_with(
        &[
            BUSYBOX,
            "sh",
            "-c",
            &format!(
                "sync; echo 3 > /proc/sys/vm/drop_caches; \
                 cd {dir} && {BUSYBOX} sha256sum -c -s /run/expected.sha256"
            ),
        ],
        "",
        Duration::from_secs(300),
    )?;
    assert!(
        out.success(),
        "checksums in {dir} do not match: {}\n{}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

/// Hot-plug the disk image `path` as a virtio disk with `serial` on port `port`.
pub fn hot_add(g: &mut Guest, path: &Path, serial: &str, port: &str) -> TestResult {
    let node = format!("n-{serial}");
    g.qmp_with(
        "blockdev-add",
        Some(json!({
            "driver": "raw",
            "node-name": node,
            "file": {"driver": "file", "filename": path},
        })),
    )?;
    g.qmp_with(
        "device_add",
        Some(json!({
            "driver": "virtio-blk-pci",
            "drive": node,
            "id": serial,
            "serial": serial,
            "bus": port,
        })),
    )?;
    Ok(())
}

/// Hot-remove the disk whose QEMU id (= serial) is `serial`; waits for QEMU's
/// `DEVICE_DELETED`.
pub fn hot_remove(g: &mut Guest, serial: &str) -> TestResult {
    g.qmp_with("device_del", Some(json!({"id": serial})))?;
    g.qmp_event("DEVICE_DELETED", Duration::from_secs(60))?;
    Ok(())
}

/// A sparse file of `size` bytes.
pub fn sparse(path: &Path, size: u64) {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(size))
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
}

/// The SHA-256 of a host file, as hex (via `sha256sum`).
pub fn host_sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs on the host");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A line of stord's log in the guest matching `needle`, if any.
pub fn stord_log_has(g: &mut Guest, needle: &str) -> bool {
    g.read_file("/var/log/hearth/stord.log")
        .map(|l| l.contains(needle))
        .unwrap_or(false)
}
