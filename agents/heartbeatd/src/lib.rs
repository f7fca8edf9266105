//! `heartbeatd`: a placeholder agent that exercises supervision end to end.
//!
//! It reads the appliance config and logs the host name, becomes ready, logs
//! `heartbeat N` every interval and exits 0 on SIGTERM. If the fail file exists
//! (`/run/hearth/fail/heartbeatd` by default) it logs an error and exits 1 *before*
//! becoming ready — that is how tests make it crash-loop under init.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "heartbeatd",
    about = "Hearth placeholder agent: logs a heartbeat"
)]
pub struct Args {
    /// The appliance config.
    #[arg(long, default_value = "/etc/hearth/config.toml")]
    pub config: PathBuf,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// If this file exists, fail before becoming ready (for crash-loop tests).
    #[arg(long, default_value = "/run/hearth/fail/heartbeatd")]
    pub fail_file: PathBuf,
}

/// Why heartbeatd stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("simulated failure requested by {}", path.display())]
    SimulatedFailure { path: PathBuf },
    #[error("setting up SIGTERM handling")]
    Signals(#[source] nix::errno::Errno),
    #[error("reporting readiness")]
    Ready(#[from] hearth_agent::ready::ReadyError),
    #[error("waiting for the next heartbeat")]
    Poll(#[source] nix::errno::Errno),
}

/// Fail if the simulated-failure file exists.
pub fn check_fail_file(path: &Path) -> Result<(), HeartbeatError> {
    if path.exists() {
        return Err(HeartbeatError::SimulatedFailure {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The host name from the config, or the full load error (every problem, one per
/// line).
pub fn hostname(config: &Path) -> Result<String, hearth_config::LoadError> {
    hearth_config::load(config).map(|c| c.system.hostname.to_string())
}

/// Run until SIGTERM/SIGINT (Ok) or a failure (Err). Logging must be set up.
pub fn run(args: &Args) -> Result<(), HeartbeatError> {
    check_fail_file(&args.fail_file)?;
    match hostname(&args.config) {
        Ok(name) => log::info!("config loaded, hostname {name}"),
        Err(e) => log::warn!("cannot use the config: {}", error_chain(&e)),
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().map_err(HeartbeatError::Signals)?;
    let sfd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(HeartbeatError::Signals)?;
    hearth_agent::ready::notify()?;
    log::info!("ready, heartbeat every {}s", args.interval);
    let interval = Duration::from_secs(args.interval);
    let mut beat: u64 = 0;
    loop {
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(interval).unwrap_or(PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => {
                beat += 1;
                log::info!("heartbeat {beat}");
            }
            Ok(_) => {
                let signal = sfd.read_signal().ok().flatten().map(|s| s.ssi_signo);
                log::info!("stopping (signal {})", signal.unwrap_or_default());
                return Ok(());
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(HeartbeatError::Poll(e)),
        }
    }
}

/// The error with its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_file_makes_it_fail_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let fail = dir.path().join("fail/heartbeatd");
        assert!(check_fail_file(&fail).is_ok());
        std::fs::create_dir_all(fail.parent().unwrap()).unwrap();
        std::fs::write(&fail, "").unwrap();
        let err = check_fail_file(&fail).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("simulated failure requested by {}", fail.display())
        );
        let args = Args::parse_from([
            "heartbeatd",
            "--fail-file",
            fail.to_str().unwrap(),
            "--interval",
            "1",
        ]);
        // run() refuses before touching signals or readiness.
        assert!(matches!(
            run(&args),
            Err(HeartbeatError::SimulatedFailure { .. })
        ));
    }

    #[test]
    fn reads_the_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, hearth_config::DEFAULT_TOML).unwrap();
        let expected = hearth_config::parse(hearth_config::DEFAULT_TOML, "default")
            .unwrap()
            .system
            .hostname
            .to_string();
        assert_eq!(hostname(&cfg).unwrap(), expected);
        assert!(hostname(&dir.path().join("none.toml")).is_err());
    }

    #[test]
    fn defaults_match_the_image_layout() {
        let args = Args::parse_from(["heartbeatd"]);
        assert_eq!(args.config, Path::new("/etc/hearth/config.toml"));
        assert_eq!(args.interval, 30);
        assert_eq!(args.fail_file, Path::new("/run/hearth/fail/heartbeatd"));
        assert!(Args::try_parse_from(["heartbeatd", "--interval", "0"]).is_err());
    }
}
