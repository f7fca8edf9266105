//! Signals reach the event loop through a self-pipe: a tiny async-signal-safe handler
//! writes the signal number as one byte into a non-blocking pipe that the loop polls.
//!
//! A self-pipe (rather than a signalfd) works no matter which thread the kernel picks
//! to deliver the signal, so the same code runs as PID 1 and inside the multi-threaded
//! test harness. Lost bytes on a full pipe are harmless: the loop reaps every child and
//! acts on any shutdown signal it sees at least once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc::{self, c_int};

use crate::shutdown::Action;

/// systemd's convention, relative to glibc's SIGRTMIN (34) which senders such as
/// `systemctl` use. musl's SIGRTMIN is 35, so the numbers are spelled out.
pub const SIGRT_HALT: c_int = 34 + 3;
pub const SIGRT_POWEROFF: c_int = 34 + 4;
pub const SIGRT_REBOOT: c_int = 34 + 5;

/// Every signal PID 1 listens to.
pub const PID1_SIGNALS: [c_int; 8] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    SIGRT_HALT,
    SIGRT_POWEROFF,
    SIGRT_REBOOT,
];

/// What a shutdown signal asks for (busybox `reboot`/`halt`/`poweroff` send
/// SIGTERM/SIGUSR1/SIGUSR2; Ctrl-Alt-Del arrives as SIGINT).
pub fn action_for(signo: c_int) -> Option<Action> {
    match signo {
        libc::SIGTERM | libc::SIGINT | SIGRT_REBOOT => Some(Action::Reboot),
        libc::SIGUSR1 | SIGRT_HALT => Some(Action::Halt),
        libc::SIGUSR2 | SIGRT_POWEROFF => Some(Action::Poweroff),
        _ => None,
    }
}

/// Errors setting up signal delivery.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("creating the signal self-pipe")]
    Pipe(#[source] Errno),
    #[error("installing the handler for signal {signo}")]
    Handler {
        signo: c_int,
        #[source]
        source: Errno,
    },
}

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static READ_END: OnceLock<OwnedFd> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

extern "C" fn on_signal(signo: c_int) {
    let saved = Errno::last_raw();
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// Route `signals` into the self-pipe (idempotent; adds to earlier calls) and return
/// its read end for polling.
pub fn install(signals: &[c_int]) -> Result<BorrowedFd<'static>, SignalError> {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if READ_END.get().is_none() {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SignalError::Pipe)?;
        // The write end lives for the whole process: the handler may run at any time.
        WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        std::mem::forget(write);
        let _ = READ_END.set(read);
    }
    for &signo in signals {
        // SAFETY: a zeroed sigaction is a valid starting point; we set the handler,
        // an empty mask and flags before passing it to the kernel.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
        // SAFETY: sa_mask is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `on_signal` only touches an atomic, errno and write(2), all
        // async-signal-safe.
        let rc = unsafe { libc::sigaction(signo, &action, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(SignalError::Handler {
                signo,
                source: Errno::last(),
            });
        }
    }
    // Unblock them in this thread in case our parent left them blocked.
    let mut set = nix::sys::signal::SigSet::empty();
    for &signo in signals {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(signo) {
            set.add(sig);
        }
    }
    let _ = set.thread_unblock();
    READ_END
        .get()
        .map(|fd| fd.as_fd())
        .ok_or(SignalError::Pipe(Errno::EBADF))
}

/// The pipe's read end, if [`install`] ran.
pub fn pipe() -> Option<BorrowedFd<'static>> {
    READ_END.get().map(|fd| fd.as_fd())
}

/// Signals delivered since the last call, in order (duplicates kept).
pub fn drain() -> Vec<c_int> {
    let mut out = Vec::new();
    let Some(fd) = pipe() else {
        return out;
    };
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend(buf[..n].iter().map(|b| c_int::from(*b))),
        }
    }
    out
}

/// Restore default dispositions and an empty mask in a freshly forked child before
/// exec (handlers would be reset by exec anyway; the mask would not).
pub fn reset_for_child() {
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_shutdown_signals() {
        assert_eq!(action_for(libc::SIGTERM), Some(Action::Reboot));
        assert_eq!(action_for(libc::SIGINT), Some(Action::Reboot));
        assert_eq!(action_for(libc::SIGUSR1), Some(Action::Halt));
        assert_eq!(action_for(libc::SIGUSR2), Some(Action::Poweroff));
        assert_eq!(action_for(SIGRT_POWEROFF), Some(Action::Poweroff));
        assert_eq!(action_for(libc::SIGCHLD), None);
    }

    #[test]
    fn delivered_signal_shows_up_in_the_pipe() {
        install(&[libc::SIGWINCH]).unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGWINCH).unwrap();
        assert!(drain().contains(&libc::SIGWINCH));
    }
}
