//! `heartbeatd`: a placeholder agent that exercises supervision and the system bus end
//! to end.
//!
//! It reads the appliance config and logs the host name, joins the system bus as
//! `org.hearth.Heartbeat1` ([`bus`]), becomes ready, logs `heartbeat N` every interval
//! (and publishes it as the bus property `Count`) and exits 0 on SIGTERM/SIGINT. Ready
//! is reported only after the bus name is acquired, so an agent ordered after it can
//! call it at once. Without a reachable bus (run by hand on a machine with none) it
//! warns and carries on; `--no-bus` skips the bus. If the fail file exists
//! (`/run/hearth/fail/heartbeatd` by default) it logs an error and exits 1 *before*
//! becoming ready — that is how tests make it crash-loop under init.
//!
//! One current-thread tokio runtime drives the timer, the signals and zbus: no worker
//! threads, which keeps the agent small in memory.

pub mod bus;

pub use hearth_agent::error_chain;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// The line logged once the name is owned (tests look for it).
pub const REGISTERED: &str = "registered org.hearth.Heartbeat1 on the system bus";

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "heartbeatd",
    about = "Hearth placeholder agent: logs a heartbeat, serves org.hearth.Heartbeat1"
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
    /// D-Bus address of the system bus.
    #[arg(long, default_value = bus::SYSTEM_BUS_ADDRESS)]
    pub bus_address: String,
    /// Do not join the system bus.
    #[arg(long)]
    pub no_bus: bool,
}

/// Why heartbeatd stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("simulated failure requested by {}", path.display())]
    SimulatedFailure { path: PathBuf },
    #[error("setting up the event loop")]
    Runtime(#[source] std::io::Error),
    #[error("setting up {signal} handling")]
    Signals {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reporting readiness")]
    Ready(#[from] hearth_agent::ready::ReadyError),
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HeartbeatError::Runtime)?;
    runtime.block_on(serve(args))
}

async fn serve(args: &Args) -> Result<(), HeartbeatError> {
    let handler = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| HeartbeatError::Signals {
            signal: name,
            source,
        })
    };
    let mut sigterm = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = handler(SignalKind::interrupt(), "SIGINT")?;
    let conn = if args.no_bus {
        log::info!("not joining the system bus (--no-bus)");
        None
    } else {
        match bus::register(&args.bus_address).await {
            Ok(conn) => {
                log::info!("{REGISTERED}");
                Some(conn)
            }
            Err(e) => {
                log::warn!("continuing without the bus: {}", error_chain(&e));
                None
            }
        }
    };
    hearth_agent::ready::notify()?;
    log::info!("ready, heartbeat every {}s", args.interval);
    let interval = Duration::from_secs(args.interval);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut beat: u64 = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                beat += 1;
                log::info!("heartbeat {beat}");
                if let Some(conn) = &conn {
                    if let Err(e) = bus::publish(conn, beat).await {
                        log::warn!("{}", error_chain(&e));
                    }
                }
            }
            _ = sigterm.recv() => return stopping("SIGTERM"),
            _ = sigint.recv() => return stopping("SIGINT"),
        }
    }
}

fn stopping(signal: &str) -> Result<(), HeartbeatError> {
    log::info!("stopping ({signal})");
    Ok(())
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
        assert_eq!(args.bus_address, "unix:path=/run/dbus/system_bus_socket");
        assert!(!args.no_bus);
        assert!(Args::parse_from(["heartbeatd", "--no-bus"]).no_bus);
        assert!(Args::try_parse_from(["heartbeatd", "--interval", "0"]).is_err());
    }
}
