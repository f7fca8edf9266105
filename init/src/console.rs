//! The console: where init's own messages and the boot markers go, and where agent
//! lines at priority info or more urgent are echoed.
//!
//! Under TCG the serial console is slow, so only lines that matter reach it; the full
//! record is in `/var/log/hearth/<agent>.log`. A [`Console`] is a cheap clone of one
//! shared writer; tests use [`Console::memory`] to read back what was printed.

pub use hearth_agent::error_chain;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clock;

type Writer = Box<dyn Write + Send>;

/// A shared line-oriented writer for console messages.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<Writer>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Console")
    }
}

/// What a memory console has captured (tests).
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

struct CaptureWriter(Captured);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    pub fn new(out: Writer) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// The system console device, falling back to stderr when it cannot be opened.
    pub fn open(device: &Path) -> Self {
        match OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
            .open(device)
        {
            Ok(file) => Self::new(Box::new(file)),
            Err(_) => Self::new(Box::new(std::io::stderr())),
        }
    }

    /// A console that records into memory.
    pub fn memory() -> (Self, Captured) {
        let captured = Captured::default();
        (
            Self::new(Box::new(CaptureWriter(captured.clone()))),
            captured,
        )
    }

    /// Write one raw line (a newline is added).
    pub fn line(&self, text: &str) {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // The console is best effort: there is nowhere else to report its failure.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// `hearth-init: <msg>`.
    pub fn say(&self, msg: impl std::fmt::Display) {
        self.line(&format!("hearth-init: {msg}"));
    }

    /// A boot timeline entry: `hearth-init: [ 1.23s] <phase>`.
    pub fn timeline(&self, phase: impl std::fmt::Display) {
        let t = clock::boottime().as_secs_f64();
        self.line(&format!("hearth-init: [{t:5.2}s] {phase}"));
    }
}

/// Make fds 0, 1 and 2 the console if the kernel could not open it for us (an
/// initramfs without `/dev/console` starts init with no fds at all).
pub fn ensure_stdio(device: &Path) {
    // SAFETY: F_GETFD only queries the fd table.
    let missing = (0..3).any(|fd| unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } < 0);
    if !missing {
        return;
    }
    let Ok(file) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(device)
    else {
        return;
    };
    for fd in 0..3 {
        if file.as_raw_fd() != fd {
            // SAFETY: dup2 onto the standard fds, which nothing else in init owns yet.
            unsafe { nix::libc::dup2(file.as_raw_fd(), fd) };
        }
    }
    if file.as_raw_fd() <= 2 {
        // The file landed on a standard fd: keep it open for the process lifetime.
        std::mem::forget(file);
    }
}
