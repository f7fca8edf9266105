//! `stord` binary: flags, logging, exit codes (see the library docs).
//!
//! Exit codes: 0 ok, 1 failure, 2 invalid input (the config is unreadable or invalid).

use std::process::ExitCode;

use clap::Parser;
use stord::{Args, Command};

fn main() -> ExitCode {
    let args = Args::parse();
    hearth_agent::logging::init("stord");
    match args.command {
        Command::Status(a) => match stord::status::run(&a) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stord: {}", hearth_agent::error_chain(&e));
                ExitCode::from(if e.is_invalid_input() { 2 } else { 1 })
            }
        },
    }
}
