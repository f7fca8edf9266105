//! `hearth bench boot`: how much slower than "the kernel alone" Hearth boots.
//!
//! The floor is the same kernel with a busybox initramfs whose `/init` prints a marker
//! and powers off at once: no image can boot faster on this machine. Runs alternate
//! floor and Hearth so drift in host load hits both alike; time is from spawning QEMU
//! to the marker on the console (`hearth-init: ready in` for Hearth). It also reports
//! memory in use at ready (`MemTotal - MemAvailable`, read through the test agent in
//! one extra boot of the `--test-agent` image), the initramfs size and the time of a
//! warm rebuild with nothing changed. Targets: ratio ≤ 1.25, memory ≤ 48 MiB,
//! initramfs ≤ 40 MiB, warm rebuild ≤ 10 s. It prints figures; it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::assemble;
use crate::buildinfo::{self, BuildInfo, DEFAULT_CMDLINE};
use crate::commands::build::{self, human};
use crate::layout::PackageTree;
use crate::newc;
use crate::profile::ImageProfile;
use crate::qemu::{Serial, VmSpec};
use crate::rootfs::{Node, Tree};
use crate::serial;
use crate::vm::{Vm, VmOptions};

use super::{build_args, median};

/// What the floor's `/init` prints.
pub const FLOOR_MARKER: &str = "HEARTH-FLOOR-READY";

/// The floor's `/init`.
pub const FLOOR_INIT: &str =
    "#!/bin/busybox sh\n/bin/busybox echo HEARTH-FLOOR-READY\n/bin/busybox poweroff -f\n";

/// `hearth bench boot`.
pub fn boot(
    runs: usize,
    out: &Path,
    offline: bool,
    memory: u32,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let hearth_dir = out.join("hearth");
    let first = build::build(&build_args(hearth_dir.clone(), offline, false))?;
    let started = Instant::now();
    let warm = build::build(&build_args(hearth_dir.clone(), true, false))?;
    let warm_time = started.elapsed();
    let info = warm.info;
    let _ = first;

    let floor = build_floor(out, offline).context("building the floor initramfs")?;
    let run_dir = out.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;

    let mut floor_times = Vec::new();
    let mut hearth_times = Vec::new();
    for i in 0..runs {
        let mut spec = VmSpec::new(hearth_dir.join(buildinfo::KERNEL), &floor);
        spec.append = DEFAULT_CMDLINE.to_string();
        spec.memory_mib = memory;
        spec.serial = Serial::File(run_dir.join("floor.log"));
        let mut vm = Vm::spawn(spec)?;
        let t = vm.wait_for(FLOOR_MARKER, timeout).context("floor boot")?;
        vm.kill();
        floor_times.push(t);

        let opts = VmOptions {
            memory_mib: memory,
            disks: None,
            interactive: false,
            control: false,
        };
        let spec = crate::vm::spec(&hearth_dir, &info, &opts, &run_dir)?;
        let mut vm = Vm::spawn(spec)?;
        let t = vm
            .wait_for(serial::READY_MARKER, timeout)
            .context("hearth boot")?;
        vm.kill();
        hearth_times.push(t);
        eprintln!(
            "run {}/{runs}: floor {:.2}s, hearth {:.2}s",
            i + 1,
            floor_times[i].as_secs_f64(),
            hearth_times[i].as_secs_f64()
        );
    }
    let memory_used = measure_memory(out, offline, memory, timeout)?;

    let floor_median = median(&floor_times);
    let hearth_median = median(&hearth_times);
    let size = info
        .outputs
        .iter()
        .find(|o| o.file == buildinfo::INITRAMFS)
        .map(|o| o.size)
        .unwrap_or(0);
    println!(
        "hearth bench boot ({runs} runs each, {memory} MiB, accel {})",
        crate::qemu::accel().as_str()
    );
    println!(
        "  floor  (kernel + busybox /init) median {:>7.2}s",
        floor_median.as_secs_f64()
    );
    println!(
        "  hearth (to `ready in`)          median {:>7.2}s",
        hearth_median.as_secs_f64()
    );
    println!(
        "  ratio                                 {:>7.2}x  (target <= 1.25x)",
        hearth_median.as_secs_f64() / floor_median.as_secs_f64().max(1e-9)
    );
    println!(
        "  memory used at ready (test image)     {:>9}  (target <= 48 MiB)",
        human(memory_used)
    );
    println!(
        "  initramfs                             {:>9}  (target <= 40 MiB)",
        human(size)
    );
    println!(
        "  warm rebuild, nothing changed         {:>7.2}s  (target <= 10 s)",
        warm_time.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The floor initramfs: busybox from `busybox-static` and a script as `/init`.
fn build_floor(out: &Path, offline: bool) -> anyhow::Result<PathBuf> {
    let profile = ImageProfile::load(None)?;
    let progress = crate::progress::for_stderr();
    let fetched = assemble::fetch(
        &profile,
        vec![assemble::SHELL_PACKAGE.to_string()],
        assemble::lock_path(None, &profile),
        None,
        offline,
        false,
        &*progress,
    )?;
    let pkg: Vec<PackageTree> = fetched
        .iter()
        .filter(|p| p.name == assemble::SHELL_PACKAGE)
        .map(|p| PackageTree {
            name: p.name.clone(),
            root: p.root.clone(),
        })
        .collect();
    let root = &pkg.first().context("busybox-static was not fetched")?.root;
    let busybox = [root.join("bin/busybox"), root.join("usr/bin/busybox")]
        .into_iter()
        .find(|p| p.is_file())
        .context("busybox-static has no bin/busybox")?;
    let mut tree = Tree::new();
    tree.dir("proc", 0o555)?;
    tree.dir("sys", 0o555)?;
    tree.insert(
        "dev/console",
        Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    )?;
    tree.host_file("bin/busybox", &busybox, 0o755)?;
    tree.bytes("init", FLOOR_INIT, 0o755)?;
    let path = out.join("floor.cpio.zst");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = zstd::stream::Encoder::new(file, assemble::ZSTD_LEVEL)?;
    newc::write(&tree, 0, &mut enc)?;
    enc.finish()?;
    Ok(path)
}

/// Boot the `--test-agent` image and read `/proc/meminfo` through guestctld at ready.
fn measure_memory(
    out: &Path,
    offline: bool,
    memory: u32,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let dir = out.join("hearth-test");
    let report = build::build(&build_args(dir.clone(), offline, true))?;
    let info: BuildInfo = report.info;
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let opts = VmOptions {
        memory_mib: memory,
        disks: None,
        interactive: false,
        control: true,
    };
    let spec = crate::vm::spec(&dir, &info, &opts, &run_dir)?;
    let mut vm = Vm::spawn(spec)?;
    vm.wait_for(serial::READY_MARKER, timeout)
        .context("test image boot")?;
    let request = serde_json::json!({"id": 1, "op": "read_file", "path": "/proc/meminfo"});
    let reply = vm.control(&request, Duration::from_secs(20))?;
    vm.kill();
    let text = reply
        .get("contents")
        .and_then(|c| c.as_str())
        .with_context(|| format!("guestctld reply without contents: {reply}"))?;
    meminfo_used(text).context("parsing /proc/meminfo")
}

/// `MemTotal - MemAvailable` in bytes.
pub fn meminfo_used(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((field("MemTotal:")? - field("MemAvailable:")?) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_math() {
        let text = "MemTotal:         230000 kB\nMemFree:  1 kB\nMemAvailable:     200000 kB\n";
        assert_eq!(meminfo_used(text), Some(30000 * 1024));
        assert_eq!(meminfo_used("nothing"), None);
    }
}
