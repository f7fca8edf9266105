//! `hearth bench`: benchmarks that print figures against targets (they assert
//! nothing). One module per benchmark:
//! - [`boot`]: boot time against the kernel-only floor, memory, size, warm rebuild;
//! - [`net`]: netd's full apply and no-change reconcile against the equivalent
//!   `ip` + `nft -f` script, run by `netd bench` inside a booted test image (the
//!   build host's kernel may lack 8021q; the image's Debian kernel has it).

pub mod boot;
pub mod net;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::commands::build::BuildArgs;

pub use boot::{meminfo_used, FLOOR_INIT, FLOOR_MARKER};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchWhat {
    /// Boot time against the kernel-only floor, memory, size, warm rebuild.
    Boot {
        /// Boots of each image.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Output directory for the images and logs.
        #[arg(long, default_value = "out/bench")]
        out: PathBuf,
        /// Build from the package cache only.
        #[arg(long)]
        offline: bool,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 256)]
        memory: u32,
        /// Seconds to wait for each boot.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// netd: full apply of 32 VLANs + ~500 rules vs an `ip` + `nft -f` script, and a
    /// no-change reconcile, measured inside a booted `--test-agent` image.
    Net {
        /// Samples of each variant (passed to `netd bench --runs`).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// A built `--test-agent` image directory to boot instead of building one.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Output directory for the image (when built) and logs.
        #[arg(long, default_value = "out/bench")]
        out: PathBuf,
        /// Build from the package cache only.
        #[arg(long)]
        offline: bool,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Seconds to wait for the boot and for the benchmark.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    match &args.what {
        BenchWhat::Boot {
            runs,
            out,
            offline,
            memory,
            timeout,
        } => boot::boot(*runs, out, *offline, *memory, Duration::from_secs(*timeout)),
        BenchWhat::Net {
            runs,
            image,
            out,
            offline,
            memory,
            timeout,
        } => net::net(&net::NetBench {
            runs: *runs,
            image: image.clone(),
            out: out.clone(),
            offline: *offline,
            memory_mib: *memory,
            timeout: Duration::from_secs(*timeout),
        }),
    }
}

fn build_args(out: PathBuf, offline: bool, test_agent: bool) -> BuildArgs {
    BuildArgs {
        config: None,
        out,
        offline,
        lock: None,
        test_agent,
        cache: None,
        workspace: None,
    }
}

/// The median (the upper one of an even count).
fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let d = |s| Duration::from_secs(s);
        assert_eq!(median(&[d(3), d(1), d(2)]), d(2));
        assert_eq!(median(&[d(4), d(1), d(2), d(3)]), d(3));
    }
}
