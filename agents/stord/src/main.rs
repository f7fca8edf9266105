//! `stord` binary: flags, logging, exit codes (see the library docs).
//!
//! Bare `stord` (or `stord run`) is the agent; `stord status` prints disks and arrays.
//! Exit codes: 0 ok, 1 failure, 2 invalid input (the config is unreadable or invalid).

use std::process::ExitCode;

use clap::Parser;
use stord::{Args, Command};

fn main() -> ExitCode {
    let args = Args::parse();
    hearth_agent::logging::init("stord");
    match args.command {
        Some(Command::Status(a)) => match stord::status::run(&a) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stord: {}", hearth_agent::error_chain(&e));
                ExitCode::from(if e.is_invalid_input() { 2 } else { 1 })
            }
        },
        Some(Command::Run(a)) => agent(&a),
        None => agent(&args.agent),
    }
}

fn agent(args: &stord::agent::AgentArgs) -> ExitCode {
    match stord::agent::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", hearth_agent::error_chain(&e));
            ExitCode::from(if e.is_invalid_input() { 2 } else { 1 })
        }
    }
}
