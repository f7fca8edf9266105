//! `hearth run`: boot an image under QEMU, interactively or as a boot check.
//!
//! `--check` is what CI runs: the console goes to `<dir>/run/serial.log`, the command
//! waits for `hearth-init: ready in`, presses the virtual power button (QMP
//! `system_powerdown`; init powers off cleanly), waits for QEMU to exit and prints the
//! boot timeline. Timeout, kernel panic, rescue or an agent failure exit with code 4
//! after the last 40 console lines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::buildinfo::{self, BuildInfo};
use crate::commands::build::{self, BuildArgs};
use crate::serial;
use crate::vm::{self, Vm, VmOptions};

/// How long a clean poweroff may take after the power button.
pub const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A config file to build, or a build output directory (with build.json).
    pub target: Option<PathBuf>,
    /// Boot to ready, power off, print the timeline (console to a log file).
    #[arg(long)]
    pub check: bool,
    /// Seconds to wait for ready with --check.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Number of blank disks (default: one per storage array member in the config).
    #[arg(long)]
    pub disks: Option<usize>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory: u32,
    /// Output directory when building.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Build with the guestctld test agent (control port on <dir>/run/ctl.sock).
    #[arg(long)]
    pub test_agent: bool,
    /// Build from the package cache only.
    #[arg(long)]
    pub offline: bool,
    /// Lock file when building.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Package cache directory when building.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// The Hearth source workspace when building.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
}

/// Errors in what `hearth run` was asked to boot (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunTargetError {
    #[error("{dir} is a directory without {file}: not a (complete) build output; run `hearth build --out {dir}` first", file = buildinfo::FILE_NAME, dir = .dir.display())]
    NotABuild { dir: PathBuf },
}

/// The image to boot: an existing build directory, or a fresh build.
fn image(args: &RunArgs) -> anyhow::Result<(PathBuf, BuildInfo)> {
    if let Some(dir) = args.target.as_deref().filter(|t| t.is_dir()) {
        if !dir.join(buildinfo::FILE_NAME).is_file() {
            return Err(RunTargetError::NotABuild {
                dir: dir.to_path_buf(),
            }
            .into());
        }
        return Ok((dir.to_path_buf(), BuildInfo::read(dir)?));
    }
    let report = build::build(&BuildArgs {
        config: args.target.clone(),
        out: args.out.clone(),
        offline: args.offline,
        lock: args.lock.clone(),
        test_agent: args.test_agent,
        cache: args.cache.clone(),
        workspace: args.workspace.clone(),
    })?;
    build::print_summary(&report);
    Ok((report.out, report.info))
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (dir, info) = image(args)?;
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let opts = VmOptions {
        memory_mib: args.memory,
        disks: args.disks,
        interactive: !args.check,
        control: info.vm.test_agent,
    };
    let spec = vm::spec(&dir, &info, &opts, &run_dir)?;
    if !args.check {
        eprintln!(
            "hearth: booting {} (power off the guest or press Ctrl-C to quit)",
            dir.display()
        );
        let mut vm = Vm::spawn(spec)?;
        let status = vm.wait()?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    check(spec, Duration::from_secs(args.timeout), &run_dir)
}

fn check(spec: crate::qemu::VmSpec, timeout: Duration, run_dir: &Path) -> anyhow::Result<ExitCode> {
    let log = run_dir.join("serial.log");
    eprintln!("hearth: booting, console in {}", log.display());
    let mut vm = Vm::spawn(spec)?;
    let result = vm
        .wait_for(serial::READY_MARKER, timeout)
        .and_then(|ready| vm.powerdown(POWEROFF_TIMEOUT).map(|()| ready));
    print_timeline(&vm.lines);
    match result {
        Ok(ready) => {
            println!(
                "ready {:.2}s after QEMU started; powered off cleanly",
                ready.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            print_tail(&mut vm);
            Err(anyhow::Error::new(err)
                .context(format!("boot check (console log {})", log.display())))
        }
    }
}

fn print_timeline(lines: &[String]) {
    println!("boot timeline:");
    for line in lines {
        if let Some((secs, msg)) = serial::timeline(line) {
            println!("  [{secs:6.2}s] {msg}");
        } else if line.contains(serial::READY_MARKER) {
            println!("  {}", line.trim());
        }
    }
}

fn print_tail(vm: &mut Vm) {
    let tail = vm.tail(40);
    eprintln!("--- last {} console lines ---", tail.len());
    for line in tail {
        eprintln!("{line}");
    }
    eprintln!("---");
}
