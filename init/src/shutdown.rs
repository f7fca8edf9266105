//! Ordered shutdown: stop the agents (reverse start order, SIGTERM then SIGKILL),
//! signal every remaining process, sync, unmount what init mounted, and call
//! `reboot(2)`. Every step reports its errors and carries on: the machine must go
//! down even when something is stuck.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console::{error_chain, Console};
use crate::mounts::{self, Mounted};
use crate::supervisor::Supervisor;

/// How long processes that are not agents get after SIGTERM.
pub const STRAGGLER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the shutdown ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Halt,
    Poweroff,
    Reboot,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Halt => "halt",
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
        }
    }

    fn mode(self) -> RebootMode {
        match self {
            Self::Halt => RebootMode::RB_HALT_SYSTEM,
            Self::Poweroff => RebootMode::RB_POWER_OFF,
            Self::Reboot => RebootMode::RB_AUTOBOOT,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Shut the machine down. PID 1 only: it signals every process on the system.
pub fn run(
    action: Action,
    supervisor: Option<&mut Supervisor>,
    mounted: &Mounted,
    console: &Console,
) -> ! {
    console.say(format!("shutting down ({action})"));
    if let Some(sup) = supervisor {
        sup.stop_all();
    }
    kill_everything(console);
    nix::unistd::sync();
    for e in mounts::unmount_all(mounted) {
        console.say(error_chain(&e));
    }
    nix::unistd::sync();
    console.say(format!("{action} now"));
    let Err(e) = reboot(action.mode());
    console.say(format!("reboot({action}) failed: {e}"));
    // Nothing left to do; never return from PID 1.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// SIGTERM to every process but init, reap, SIGKILL the stragglers, reap again.
fn kill_everything(console: &Console) {
    // kill(-1) from PID 1 reaches every process except init and kernel threads.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    if !reap_all(STRAGGLER_TIMEOUT) {
        console.say("sending SIGKILL to remaining processes");
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        if !reap_all(STRAGGLER_TIMEOUT) {
            console.say("some processes did not exit");
        }
    }
}

/// Reap children until none are left (true) or `timeout` passes (false).
fn reap_all(timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= end {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}
