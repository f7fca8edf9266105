//! One module per `hearth` subcommand, and the exit codes the binary maps errors to.
//!
//! Exit codes (also in `hearth --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure (I/O, cargo, QEMU could not start, ...) |
//! | 2 | invalid input: bad command line or config (nothing was written) |
//! | 3 | fetching or verifying Debian packages failed (network, signature, hash, lock) |
//! | 4 | the guest failed: timeout, kernel panic, rescue, agent failure (`run --check`) |
//!
//! Commands return typed errors; [`exit_code`] looks through the error chain for the
//! first error type it knows, so the codes stay right however errors are wrapped.

pub mod bench;
pub mod build;
pub mod check;
pub mod run;
pub mod schema;
pub mod update_lock;

use std::error::Error;

use crate::debian::DebianError;
use crate::profile::ProfileError;
use crate::vm::VmError;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_FETCH: u8 = 3;
pub const EXIT_GUEST: u8 = 4;

/// The help text describing the exit codes.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  failure (I/O, cargo, QEMU, ...)
  2  invalid command line or config (nothing written)
  3  fetching or verifying Debian packages failed
  4  guest failure or timeout (run --check)";

/// The exit code for `err`, from the first known error in its chain.
pub fn exit_code(err: &(dyn Error + 'static)) -> u8 {
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<ProfileError>()
            || e.is::<hearth_config::LoadError>()
            || e.is::<hearth_config::ConfigErrors>()
            || e.is::<run::RunTargetError>()
        {
            return EXIT_INVALID;
        }
        if e.is::<DebianError>() {
            return EXIT_FETCH;
        }
        if let Some(vm) = e.downcast_ref::<VmError>() {
            if vm.is_guest_failure() {
                return EXIT_GUEST;
            }
        }
        current = e.source();
    }
    EXIT_FAILURE
}
