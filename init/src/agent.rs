//! Starting one agent process with the supervision contract:
//!
//! * stdin is `/dev/null`; stdout and stderr are one pipe that init reads;
//! * fd 3 is the write end of the readiness pipe, announced by `HEARTH_READY_FD=3`,
//!   and `HEARTH_SUPERVISED=1` tells the agent to log `<N>message` lines;
//! * the agent leads its own session and process group, so stopping it signals the
//!   whole group;
//! * no other fd leaks in: init opens everything `O_CLOEXEC`, and the child marks
//!   every fd above 3 close-on-exec before exec as a second line of defence.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use hearth_agent::logging::SUPERVISED_ENV;
use hearth_agent::ready::READY_FD_ENV;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::libc;
use nix::unistd::Pid;

use crate::manifest::AgentSpec;

/// The fd number agents find their readiness pipe on.
pub const READY_FD: i32 = 3;

/// `PATH` agents get; init itself starts with whatever the kernel gave it.
pub const AGENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A started agent: its pid (also its process-group id) and init's pipe ends.
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    /// Read end of stdout+stderr, non-blocking.
    pub output: OwnedFd,
    /// Read end of the readiness pipe, non-blocking.
    pub ready: OwnedFd,
}

/// Errors starting an agent.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("creating a pipe for agent {agent}")]
    Pipe {
        agent: String,
        #[source]
        source: Errno,
    },
    #[error("cannot execute {program}: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Start `spec` with `env` added to the inherited environment.
pub fn spawn(spec: &AgentSpec, env: &[(String, String)]) -> Result<Spawned, SpawnError> {
    let pipe = || {
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| SpawnError::Pipe {
            agent: spec.name.clone(),
            source,
        })
    };
    let (out_read, out_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let out_write2 = out_write.try_clone().map_err(|e| SpawnError::Pipe {
        agent: spec.name.clone(),
        source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)),
    })?;
    let program = spec.exec.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(spec.exec.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(out_write2))
        .env("PATH", AGENT_PATH)
        .env(READY_FD_ENV, READY_FD.to_string())
        .env(SUPERVISED_ENV, "1");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let ready_raw = ready_write.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (dup2, fcntl, setsid, sigprocmask, close_range);
    // it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            if ready_raw == READY_FD {
                // dup2 onto itself would keep O_CLOEXEC: clear it explicitly.
                if libc::fcntl(READY_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(ready_raw, READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Mark every fd above 3 close-on-exec (Linux 5.11+; older kernels rely on
            // init's own O_CLOEXEC discipline). Not a plain close: std's exec-error
            // pipe must survive until exec.
            libc::syscall(
                libc::SYS_close_range,
                (READY_FD + 1) as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|source| SpawnError::Exec { program, source })?;
    drop(cmd);
    drop(ready_write);
    for fd in [&out_read, &ready_read] {
        let flags = fcntl(fd, FcntlArg::F_GETFL).unwrap_or(0);
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
    let pid = Pid::from_raw(child.id() as i32);
    // The supervisor reaps with waitpid(-1); dropping `Child` neither waits nor kills.
    drop(child);
    Ok(Spawned {
        pid,
        output: out_read,
        ready: ready_read,
    })
}
