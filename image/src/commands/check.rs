//! `hearth check [CONFIG]`: parse and validate a config (default: the embedded
//! `configs/default.toml`) without building anything.
//!
//! Prints `ok: <file>` on success. Otherwise every problem goes to stderr, one
//! `file:line:col: field: reason` line each, and the exit code is 2 (invalid
//! config). A file that cannot be read is an error for `main` to print (also 2).

use std::path::Path;
use std::process::ExitCode;

use hearth_config::{LoadError, DEFAULT_NAME, DEFAULT_TOML};

/// Checks `path`, or the embedded default when `None`. Writes nothing.
pub fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (name, result) = match path {
        Some(p) => (p.display().to_string(), hearth_config::load(p)),
        None => (
            DEFAULT_NAME.to_owned(),
            hearth_config::parse(DEFAULT_TOML, DEFAULT_NAME).map_err(LoadError::Invalid),
        ),
    };
    match result {
        Ok(_) => {
            println!("ok: {name}");
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(errors)) => {
            for d in errors.diagnostics() {
                eprintln!("{d}");
            }
            Ok(ExitCode::from(super::EXIT_INVALID))
        }
        Err(e) => Err(e.into()),
    }
}
