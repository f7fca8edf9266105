//! The rescue state: the config or the manifest is unusable, so init runs only the
//! agents marked `rescue = true` (the test control agent) and, when the image has
//! busybox, a shell on the console that is respawned when it exits. Init never exits.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use nix::unistd::Pid;

use crate::agent::AGENT_PATH;
use crate::console::Console;
use crate::layout::Layout;
use crate::supervisor::Supervisor;

/// Wait between shell respawns, so a shell that dies at once cannot flood the console.
pub const RESPAWN_DELAY: Duration = Duration::from_secs(1);

/// Print the rescue reason, one `hearth-init: rescue: <line>` per line of it.
pub fn announce(console: &Console, reason: &str) {
    for line in reason.lines().filter(|l| !l.trim().is_empty()) {
        console.say(format!("rescue: {line}"));
    }
}

/// A busybox shell on the console.
#[derive(Debug)]
pub struct RescueShell {
    busybox: PathBuf,
    console: PathBuf,
    pid: Option<Pid>,
    next_start: Instant,
}

impl RescueShell {
    /// `None` when the image has no busybox (init then just waits).
    pub fn new(layout: &Layout) -> Option<Self> {
        let busybox = layout.busybox();
        busybox.exists().then(|| Self {
            busybox,
            console: layout.dev().join("console"),
            pid: None,
            next_start: Instant::now(),
        })
    }

    /// Start the shell if it is not running and the respawn delay has passed.
    pub fn tick(&mut self, sup: &mut Supervisor) {
        if self.pid.is_some() || Instant::now() < self.next_start {
            return;
        }
        self.next_start = Instant::now() + RESPAWN_DELAY;
        match self.spawn() {
            Ok(pid) => {
                sup.expect_child(pid);
                self.pid = Some(pid);
                sup.console()
                    .say("rescue: shell on the console (it is restarted when it exits)");
            }
            Err(e) => sup.log(
                3,
                &format!("rescue: cannot start {}: {e}", self.busybox.display()),
            ),
        }
    }

    /// Tell the shell a child exited; returns whether it was the shell.
    pub fn exited(&mut self, pid: Pid) -> bool {
        if self.pid == Some(pid) {
            self.pid = None;
            return true;
        }
        false
    }

    fn spawn(&self) -> std::io::Result<Pid> {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.console)?;
        let mut cmd = Command::new(&self.busybox);
        cmd.arg("sh")
            .stdin(Stdio::from(tty.try_clone()?))
            .stdout(Stdio::from(tty.try_clone()?))
            .stderr(Stdio::from(tty))
            .env("PATH", AGENT_PATH)
            .env("HOME", "/")
            .env("PS1", "rescue# ");
        // SAFETY: runs in the forked child before exec; setsid, ioctl and sigprocmask
        // are async-signal-safe and nothing is allocated.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                // Make the console our controlling terminal for job control; a
                // failure only costs Ctrl-C handling.
                libc::ioctl(0, libc::TIOCSCTTY as _, 1);
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(Pid::from_raw(child.id() as i32))
    }
}
