//! `hearth`: parse the command line, run one subcommand, map errors to exit codes.
//!
//! Everything else lives in the library (`hearth::commands::*`). Errors are printed
//! here, once, as a chain (`error: a: b: c`); the exit codes are documented in
//! [`hearth::commands`] and in `hearth --help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth::commands::{self, bench, build, run, update_lock};

/// Build and boot Hearth appliance images from one TOML config.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, after_help = commands::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config (default: the embedded configs/default.toml).
    Check {
        /// The config file.
        config: Option<std::path::PathBuf>,
    },
    /// Print the config's JSON schema.
    Schema,
    /// Build vmlinuz + initramfs.cpio.zst + build.json.
    Build(build::BuildArgs),
    /// Resolve packages again and rewrite the lock file.
    UpdateLock(update_lock::UpdateLockArgs),
    /// Boot an image under QEMU (building it first unless given a build directory).
    Run(run::RunArgs),
    /// Benchmarks.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => commands::check::run(config.as_deref()),
        Command::Schema => commands::schema::run(None),
        Command::Build(args) => build::run(&args),
        Command::UpdateLock(args) => update_lock::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hearth: error: {}", chain(&err));
            ExitCode::from(commands::exit_code(err.as_ref()))
        }
    }
}

/// `outer: cause: root cause`, each message once.
fn chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
    }
    // A multi-line cause (every problem in a config) starts on its own line.
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if part.contains('\n') {
            out.push_str(":\n");
        } else if i > 0 {
            out.push_str(": ");
        }
        out.push_str(part);
    }
    out
}
