//! `dnsd bench`: dnsd against dnsmasq on this machine, same run, same load
//! generators (issue 4's performance targets).
//!
//! * [`dns`] — `dnsd bench dns`: both as caching forwarders on loopback in front of
//!   one upstream, driven by `dnsperf` on cached names: QPS, p99 latency at a fixed
//!   rate, and dnsd's memory with 100k cached records.
//! * [`dhcp`] — `dnsd bench dhcp`: both serving one pool across a veth pair between
//!   two network namespaces, driven by `perfdhcp` (full DORA): the highest lossless
//!   rate of each.
//!
//! Runs as root on the host (namespaces, port 53 in them); needs `dnsmasq`
//! (dnsmasq-base), `dnsperf` and `perfdhcp` (kea-admin). Every process it starts is
//! killed when it ends, also on error; the namespaces it made are deleted.

pub mod dhcp;
pub mod dns;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `dnsd bench ...`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: What,
}

/// Which benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Caching DNS: QPS, p99 latency and memory, dnsd vs dnsmasq.
    Dns(dns::DnsArgs),
    /// DHCP: lossless DORA handshakes per second, dnsd vs dnsmasq.
    Dhcp(dhcp::DhcpArgs),
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("starting {program}: {source} (is it installed?)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: no {field:?} in its output:\n{output}")]
    Parse {
        what: String,
        field: &'static str,
        output: String,
    },
    #[error("{what} did not come up within {secs} s")]
    NotReady { what: String, secs: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Run `dnsd bench`.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    match &args.what {
        What::Dns(a) => dns::run(a),
        What::Dhcp(a) => dhcp::run(a),
    }
}

/// A child process killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    /// Start `cmd` with stdout/stderr into `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self, BenchError> {
        let file = std::fs::File::create(log).map_err(|source| BenchError::Io {
            path: log.to_owned(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| BenchError::Io {
            path: log.to_owned(),
            source,
        })?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                program: name.to_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail if it already exited.
    pub fn check_alive(&mut self, log: &Path) -> Result<(), BenchError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(BenchError::Failed {
                program: self.name.clone(),
                status: status.to_string(),
                stderr: std::fs::read_to_string(log).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cmd` to completion; its output, or an error with its stderr.
pub(crate) fn output(program: &str, cmd: &mut Command) -> Result<Output, BenchError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BenchError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(BenchError::Failed {
            program: program.to_owned(),
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        });
    }
    Ok(out)
}

/// Poll `cond` every 50 ms for up to `secs`.
pub(crate) fn wait(
    what: &str,
    secs: u64,
    mut cond: impl FnMut() -> bool,
) -> Result<(), BenchError> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BenchError::NotReady {
        what: what.to_owned(),
        secs,
    })
}

/// The number after `label` on the first line that contains it, e.g.
/// `Queries per second:   81234.5`.
pub(crate) fn number_after(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(label))?;
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches([',', '%'])
        .parse()
        .ok()
}

/// A scratch directory on the real disk (fsync must cost what it costs in
/// production, so not a tmpfs): `/var/tmp/dnsd-bench-<pid>`, removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Self, BenchError> {
        let path = PathBuf::from(format!("/var/tmp/dnsd-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|source| BenchError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self(path))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, BenchError> {
        let path = self.join(name);
        std::fs::write(&path, text).map_err(|source| BenchError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This program (to start dnsd under test).
pub(crate) fn dnsd_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("dnsd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_after_their_label() {
        let text = "  Queries per second:   81234.500000\n  drops ratio: 0.25 %\n";
        assert_eq!(number_after(text, "Queries per second:"), Some(81234.5));
        assert_eq!(number_after(text, "drops ratio:"), Some(0.25));
        assert_eq!(number_after(text, "missing:"), None);
    }
}
