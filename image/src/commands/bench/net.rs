//! `hearth bench net`: boots the `--test-agent` image and runs `netd bench` in it
//! through `guestctld`, printing netd's report.
//!
//! Why in a guest: the benchmark creates 32 802.1Q VLANs, and the build host's kernel
//! need not have 8021q (this project's CI host lacks it); the image's Debian kernel
//! has it, and the image ships netd, `nft` and busybox (`sh`, `ip`). What is measured
//! and why it is fair is documented on `netd bench` (agents/netd/src/bench.rs). The
//! guest has no NIC: `netd bench` makes its own namespaces and veths.
//!
//! An image ships only the kernel modules its config needs, and `veth` is not one
//! of them. So this boot's initramfs gets one more (zstd) newc archive appended —
//! the kernel unpacks concatenated archives in order — holding `veth.ko` from the
//! same, already verified kernel package, at [`VETH_IN_GUEST`]; the guest `insmod`s
//! it before running the benchmark. The image itself is not changed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::assemble;
use crate::buildinfo::BuildInfo;
use crate::commands::build;
use crate::newc;
use crate::profile::ImageProfile;
use crate::rootfs::Tree;
use crate::serial;
use crate::vm::{Vm, VmOptions};

use super::build_args;

/// Where the image puts netd (README: image layout).
pub const NETD_IN_IMAGE: &str = "/usr/libexec/hearth/netd";

/// Where this boot's extra archive puts `veth.ko`.
pub const VETH_IN_GUEST: &str = "/usr/lib/hearth-bench/veth.ko";

/// What `hearth bench net` runs.
#[derive(Debug, Clone)]
pub struct NetBench {
    pub runs: usize,
    /// A prebuilt test image, or `None` to build one into `out/hearth-test`.
    pub image: Option<PathBuf>,
    pub out: PathBuf,
    pub offline: bool,
    pub memory_mib: u32,
    pub timeout: Duration,
}

/// The guestctld request: `netd bench` under busybox `sh` with a `PATH` that finds
/// busybox's `ip` and `nft`.
pub fn request(runs: usize, timeout: Duration) -> serde_json::Value {
    let script = format!(
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         [ -d /sys/module/veth ] || insmod {VETH_IN_GUEST} || exit 1\n\
         exec {NETD_IN_IMAGE} bench --runs {runs} --dir /tmp/netd-bench"
    );
    serde_json::json!({
        "id": 1,
        "argv": ["/usr/bin/busybox", "sh", "-c", script],
        "timeout_secs": timeout.as_secs(),
    })
}

fn image_dir(b: &NetBench) -> anyhow::Result<(PathBuf, BuildInfo)> {
    if let Some(dir) = &b.image {
        return Ok((dir.clone(), BuildInfo::read(dir)?));
    }
    let dir = b.out.join("hearth-test");
    let report = build::build(&build_args(dir.clone(), b.offline, true))?;
    Ok((dir, report.info))
}

/// `hearth bench net`.
pub fn net(b: &NetBench) -> anyhow::Result<ExitCode> {
    let (dir, info) = image_dir(b)?;
    let run_dir = b.out.join("net-run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let opts = VmOptions {
        memory_mib: b.memory_mib,
        disks: Some(0),
        interactive: false,
        control: true,
    };
    let mut spec = crate::vm::spec(&dir, &info, &opts, &run_dir)?;
    spec.nics.clear();
    spec.initrd = with_veth(&spec.initrd, &info, b.offline, &run_dir)
        .context("adding veth.ko to this boot's initramfs")?;
    let mut vm = Vm::spawn(spec)?;
    vm.wait_for(serial::READY_MARKER, b.timeout)
        .context("test image boot")?;
    let reply = vm.control(
        &request(b.runs, b.timeout),
        b.timeout + Duration::from_secs(10),
    );
    vm.kill();
    let reply = reply?;
    print_reply(&reply, &run_dir)
}

/// `initrd` with an appended archive holding the kernel package's `veth.ko`.
fn with_veth(
    initrd: &Path,
    info: &BuildInfo,
    offline: bool,
    run_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let profile = ImageProfile::load(None)?;
    let progress = crate::progress::for_stderr();
    let fetched = assemble::fetch(
        &profile,
        vec![profile.kernel.clone()],
        assemble::lock_path(None, &profile),
        None,
        offline,
        false,
        &*progress,
    )?;
    let rel = format!(
        "lib/modules/{}/kernel/drivers/net/veth.ko",
        info.kernel_version
    );
    let veth = fetched
        .iter()
        .map(|p| p.root.join(&rel))
        .find(|p| p.is_file())
        .with_context(|| format!("no {rel} in the kernel packages"))?;
    let mut tree = Tree::new();
    tree.host_file(VETH_IN_GUEST.trim_start_matches('/'), &veth, 0o644)?;
    let out = run_dir.join("initramfs-with-veth.cpio.zst");
    let mut bytes =
        std::fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    let mut enc = zstd::stream::Encoder::new(Vec::new(), assemble::ZSTD_LEVEL)?;
    newc::write(&tree, 0, &mut enc)?;
    bytes.extend(enc.finish()?);
    std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn print_reply(reply: &serde_json::Value, run_dir: &Path) -> anyhow::Result<ExitCode> {
    if let Some(e) = reply.get("error") {
        bail!("guestctld could not run netd bench: {e}");
    }
    let stdout = reply["stdout"].as_str().unwrap_or_default();
    let stderr = reply["stderr"].as_str().unwrap_or_default();
    eprint!("{stderr}");
    if reply["status"].as_i64() != Some(0) {
        bail!(
            "netd bench failed in the guest (status {}, timed out {}); console log in {}",
            reply["status"],
            reply["timed_out"],
            run_dir.join("serial.log").display()
        );
    }
    println!(
        "hearth bench net (in the test image, accel {})",
        crate::qemu::accel().as_str()
    );
    print!("{stdout}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_runs_netd_bench_with_a_path() {
        let r = request(3, Duration::from_secs(300));
        assert_eq!(r["timeout_secs"], 300);
        let argv = r["argv"].as_array().unwrap();
        assert_eq!(argv[0], "/usr/bin/busybox");
        let script = argv[3].as_str().unwrap();
        assert!(script.starts_with("export PATH=/usr/sbin:"), "{script}");
        assert!(
            script.contains("insmod /usr/lib/hearth-bench/veth.ko"),
            "{script}"
        );
        assert!(
            script.contains("/usr/libexec/hearth/netd bench --runs 3"),
            "{script}"
        );
    }
}
