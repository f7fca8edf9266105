//! The readiness half of the agent protocol (see the crate docs).

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

/// Environment variable naming the fd an agent reports readiness on.
pub const READY_FD_ENV: &str = "HEARTH_READY_FD";

/// The line an agent writes when it is ready.
pub const READY_LINE: &str = "READY=1\n";

/// Errors reporting readiness.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("{READY_FD_ENV}={value:?} is not a file descriptor number")]
    BadFd { value: String },
    #[error("writing the ready line to fd {fd}")]
    Write {
        fd: RawFd,
        #[source]
        source: std::io::Error,
    },
}

/// Tell the supervisor this agent is ready. Does nothing when not supervised.
///
/// Call it once; the variable is removed so a second call (or a child process) cannot
/// write to an fd that may by then be reused.
pub fn notify() -> Result<(), ReadyError> {
    let Some(value) = std::env::var_os(READY_FD_ENV) else {
        return Ok(());
    };
    let value = value.to_string_lossy().into_owned();
    // SAFETY: agents call this from `main` before they start threads that read the
    // environment; removing the variable prevents a double write.
    unsafe { std::env::remove_var(READY_FD_ENV) };
    let fd: RawFd = value
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or(ReadyError::BadFd { value })?;
    // SAFETY: init hands us this fd for exactly this purpose and nothing else in the
    // process owns it; the `File` closes it when dropped.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(READY_LINE.as_bytes())
        .map_err(|source| ReadyError::Write { fd, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    #[test]
    fn writes_one_ready_line_and_closes() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let fd = write.into_raw_fd();
        // SAFETY: single-threaded test section; no other test touches this variable.
        unsafe { std::env::set_var(READY_FD_ENV, fd.to_string()) };
        notify().unwrap();
        let mut got = String::new();
        File::from(read).read_to_string(&mut got).unwrap();
        assert_eq!(got, READY_LINE);
        assert!(std::env::var_os(READY_FD_ENV).is_none());
        // A second call is a no-op.
        notify().unwrap();
    }
}
