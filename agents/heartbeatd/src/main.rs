//! `heartbeatd` binary: flags, logging, exit code (see the library docs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = heartbeatd::Args::parse();
    hearth_agent::logging::init("heartbeatd");
    match heartbeatd::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", heartbeatd::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
