//! `hearth build`: build an image and print what came out.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::assemble::{self, BuildOptions, BuildReport};
use crate::musl;

/// Arguments shared by `build` and `run` (which builds first).
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The config file (default: the embedded configs/default.toml).
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Use only the package cache and the lock file; never touch the network.
    #[arg(long)]
    pub offline: bool,
    /// Lock file (default: hearth.lock beside the config, or ./hearth.lock).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Add the guestctld test agent and busybox (for tests and `run --check`).
    #[arg(long)]
    pub test_agent: bool,
    /// Package cache directory (default: ~/.cache/hearth/debian or $XDG_CACHE_HOME).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// The Hearth source workspace (default: the one this binary was built from).
    #[arg(long)]
    pub workspace: Option<PathBuf>,
}

impl BuildArgs {
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            config: self.config.clone(),
            out: self.out.clone(),
            offline: self.offline,
            lock: self.lock.clone(),
            test_agent: self.test_agent,
            cache: self.cache.clone(),
            workspace: self
                .workspace
                .clone()
                .unwrap_or_else(musl::default_workspace),
        }
    }
}

pub fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let report = build(args)?;
    print_summary(&report);
    Ok(ExitCode::SUCCESS)
}

/// Build with progress on stderr.
pub fn build(args: &BuildArgs) -> anyhow::Result<BuildReport> {
    let progress = crate::progress::for_stderr();
    Ok(assemble::build(&args.options(), &*progress)?)
}

/// The outputs table and step timings.
pub fn print_summary(report: &BuildReport) {
    let info = &report.info;
    println!(
        "Built {} (kernel {}, {} packages, {} modules) in {}:",
        info.config,
        info.kernel_version,
        info.packages.len(),
        info.modules.len(),
        report.out.display()
    );
    println!("  {:<22} {:>12}  sha256", "file", "size");
    for o in &info.outputs {
        println!("  {:<22} {:>12}  {}", o.file, human(o.size), o.sha256);
    }
    println!(
        "  {:<22} {:>12}",
        "(initramfs unpacked)",
        human(info.initramfs_uncompressed)
    );
    println!("  kernel cmdline: {}", info.cmdline);
    let total: f64 = report.steps.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
        .collect();
    println!("  time: {total:.2}s ({})", steps.join(", "));
}

/// `12.3 MiB`, `4.0 KiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(20 * 1024 * 1024 + 512 * 1024), "20.5 MiB");
    }
}
