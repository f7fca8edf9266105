//! `netd` binary: flags, logging, exit codes (see the library docs).
//!
//! Exit codes: 0 ok, 1 failure, 2 invalid input (config or a config that does not fit
//! this machine; nothing was written).

use std::process::ExitCode;

use clap::Parser;
use netd::daemon::{self, DaemonError};

fn main() -> ExitCode {
    let args = netd::Args::parse();
    hearth_agent::logging::init("netd");
    let code = |e: &netd::NetdError| if e.is_invalid_input() { 2 } else { 1 };
    if let Some(netd::Command::Bench(b)) = &args.command {
        return match netd::bench::run(b) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netd bench: {}", netd::error_chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    if args.dry_run {
        return match daemon::dry_run(&args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netd: {}", netd::error_chain(&e));
                ExitCode::from(code(&e))
            }
        };
    }
    match daemon::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", netd::error_chain(&e));
            match &e {
                DaemonError::Apply(e) => ExitCode::from(code(e)),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
