//! `dnsd --config FILE --state-dir DIR`: see the library docs.

use std::path::PathBuf;

use clap::Parser;
use dnsd::daemon::{self, Options};
use dnsd::settings::InterfaceFlag;

/// DHCPv4 server for every LAN segment (DNS: not yet).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The appliance config.
    #[arg(long, default_value = "/etc/hearth/config.toml")]
    config: PathBuf,
    /// Directory of the lease database.
    #[arg(long, default_value = "/var/lib/hearth/dnsd")]
    state_dir: PathBuf,
    /// Serve network NETWORK (`lan` or a segment) on interface IFNAME; repeatable.
    /// Default: lan on the LAN bridge, each segment on <bridge>.<vlan>.
    #[arg(long = "interface", value_name = "IFNAME=NETWORK")]
    interfaces: Vec<InterfaceFlag>,
}

fn main() -> std::process::ExitCode {
    hearth_agent::logging::init("dnsd");
    let cli = Cli::parse();
    let opts = Options {
        config: cli.config,
        state_dir: cli.state_dir,
        interfaces: cli.interfaces,
    };
    match daemon::run(&opts) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            log::error!("{msg}");
            std::process::ExitCode::from(1)
        }
    }
}
