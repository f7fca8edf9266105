//! Running one program for the host: clean environment, own process group, captured
//! output, a timeout.
//!
//! The program leads a new process group so a timeout can kill everything it started
//! (`killpg(SIGKILL)`). When the program itself exits, whatever it left running in the
//! background keeps running and, once orphaned, is PID 1's to reap — that is exactly
//! what the orphan-reaping scenario exercises. Such leftovers may hold the output pipes
//! open, so output is collected until EOF *or* [`DRAIN_GRACE`] after the exit, never
//! longer.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::protocol::{ExecRequest, ExecResult, DEFAULT_TIMEOUT_SECS};
use crate::Error;

/// The only environment variable a program gets.
pub const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// How long to keep reading output after the program exited while background
/// processes still hold the pipes.
pub const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Run the request's program to completion (or timeout).
pub fn run(request: &ExecRequest) -> Result<ExecResult, Error> {
    let argv0 = request.argv.first().ok_or(Error::EmptyArgv)?.clone();
    let timeout = Duration::from_secs(request.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS));
    let mut child = Command::new(&argv0)
        .args(&request.argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            argv0: argv0.clone(),
            source,
        })?;

    // Feed stdin from a thread so a program that never reads cannot block us; a
    // program that exits first makes the write fail with EPIPE, which is fine.
    let stdin = child.stdin.take().expect("stdin is piped");
    let input = request.stdin.clone().into_bytes();
    let feeder = std::thread::spawn(move || {
        let mut stdin = stdin;
        let _ = stdin.write_all(&input);
    });

    let outcome = collect(&mut child, timeout).map_err(|source| Error::Wait {
        argv0: argv0.clone(),
        source,
    });
    // The feeder ends once the pipe is closed by exit or kill.
    let _ = feeder.join();
    outcome
}

fn collect(child: &mut Child, timeout: Duration) -> std::io::Result<ExecResult> {
    let deadline = Instant::now() + timeout;
    let mut stdout = Pipe::new(child.stdout.take());
    let mut stderr = Pipe::new(child.stderr.take());
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    let mut timed_out = false;

    loop {
        if exited.is_none() {
            if let Some(status) = child.try_wait()? {
                exited = Some((status, Instant::now()));
            }
        }
        let open = stdout.is_open() || stderr.is_open();
        match exited {
            Some((_, at)) if !open || at.elapsed() >= DRAIN_GRACE => break,
            _ => {}
        }
        if exited.is_none() && Instant::now() >= deadline {
            timed_out = true;
            // The group id is the child's pid (process_group(0)).
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let status = child.wait()?;
            exited = Some((status, Instant::now()));
            continue;
        }
        // Wake at least every 20 ms to notice the exit (no SIGCHLD plumbing needed).
        wait_readable(&mut [&mut stdout, &mut stderr], 20)?;
    }

    let (status, _) = exited.expect("loop ends only after exit");
    Ok(ExecResult {
        status: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: String::from_utf8_lossy(&stdout.data).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.data).into_owned(),
    })
}

/// One captured output stream.
struct Pipe {
    reader: Option<File>,
    data: Vec<u8>,
}

impl Pipe {
    fn new(reader: Option<impl Into<OwnedFd>>) -> Self {
        Pipe {
            reader: reader.map(|r| File::from(r.into())),
            data: Vec::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Read what poll said is there; EOF closes the pipe.
    fn read_some(&mut self) -> std::io::Result<()> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 8192];
        match reader.read(&mut buf) {
            Ok(0) => self.reader = None,
            Ok(n) => self.data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// Poll the open pipes for up to `ms` and read from each that is readable (or hung up).
fn wait_readable(pipes: &mut [&mut Pipe], ms: u16) -> std::io::Result<()> {
    let ready: Vec<bool> = {
        let open: Vec<(usize, BorrowedFd)> = pipes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.reader.as_ref().map(|r| (i, r.as_fd())))
            .collect();
        if open.is_empty() {
            std::thread::sleep(Duration::from_millis(ms.into()));
            return Ok(());
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut ready = vec![false; pipes.len()];
        for ((i, _), fd) in open.iter().zip(&fds) {
            ready[*i] = fd.revents().is_some_and(|r| !r.is_empty());
        }
        ready
    };
    for (pipe, ready) in pipes.iter_mut().zip(ready) {
        if ready {
            pipe.read_some()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ExecRequest {
        ExecRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout_secs: Some(10),
            stdin: String::new(),
        }
    }

    #[test]
    fn captures_status_and_both_streams() {
        let result = run(&sh("echo out; echo err >&2; exit 3")).unwrap();
        assert_eq!(result.status, Some(3));
        assert_eq!(result.signal, None);
        assert!(!result.timed_out);
        assert_eq!(result.stdout, "out\n");
        assert_eq!(result.stderr, "err\n");
    }

    #[test]
    fn environment_is_clean_and_cwd_is_root() {
        let result = run(&sh("env; pwd")).unwrap();
        let mut lines: Vec<&str> = result.stdout.lines().collect();
        lines.sort();
        assert!(
            lines.contains(&"PATH=/usr/bin:/bin:/usr/sbin:/sbin"),
            "{lines:?}"
        );
        assert!(lines.contains(&"/"), "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("HOME=")), "{lines:?}");
    }

    #[test]
    fn feeds_stdin() {
        let mut request = sh("tr a-z A-Z");
        request.stdin = "hello\n".repeat(20_000);
        let result = run(&request).unwrap();
        assert_eq!(result.status, Some(0));
        assert_eq!(result.stdout, "HELLO\n".repeat(20_000));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let mut request = sh("sleep 30 & echo $!; sleep 30");
        request.timeout_secs = Some(1);
        let started = Instant::now();
        let result = run(&request).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(result.timed_out);
        assert_eq!(result.status, None);
        assert_eq!(result.signal, Some(9));
        let bg: i32 = result.stdout.trim().parse().unwrap();
        // The background sleep got SIGKILL too (it is a zombie or gone, never sleeping).
        std::thread::sleep(Duration::from_millis(100));
        let state = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || crate::procfs::parse_stat(&state).unwrap().state == "Z",
            "background sleep survived: {state}"
        );
    }

    #[test]
    fn background_leftovers_do_not_hold_the_response() {
        let started = Instant::now();
        let result = run(&sh("sleep 5 & echo started")).unwrap();
        assert_eq!(result.status, Some(0));
        assert_eq!(result.stdout, "started\n");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let request = ExecRequest {
            argv: vec!["/nonexistent/prog".into()],
            timeout_secs: None,
            stdin: String::new(),
        };
        let err = run(&request).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
        let empty = ExecRequest {
            argv: vec![],
            timeout_secs: None,
            stdin: String::new(),
        };
        assert!(matches!(run(&empty), Err(Error::EmptyArgv)));
    }
}
