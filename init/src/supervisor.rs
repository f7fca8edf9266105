//! The agent supervisor: a single-threaded event loop over the signal self-pipe, every
//! agent's output pipe and readiness pipe, with timers for backoff, readiness
//! timeouts and stop timeouts.
//!
//! Life of an agent:
//!
//! ```text
//! waiting ──deps ready──▶ starting ──line on fd 3──▶ ready
//!    │                       │  ▲                      │
//!    │ dep failed            │  └──backoff elapsed──┐  │ exit / timeout
//!    ▼                       ▼                      │  ▼
//! blocked                 (exit or not ready in time) ─▶ restarting
//!                            └── CRASH_LIMIT failures within CRASH_WINDOW ─▶ failed
//! ```
//!
//! Right before an agent's *first* start the supervisor loads the kernel modules its
//! manifest entry lists (see [`crate::modules`]); restarts do not load them again.
//!
//! An exit of any kind (even status 0) is a failure that leads to a restart: agents
//! are meant to run forever. Shutdown ([`Supervisor::stop_all`]) stops agents in
//! reverse start order, SIGTERM first and SIGKILL after [`Policy::stop_timeout`].
//!
//! The supervisor reaps with `waitpid(-1)`: processes that are not agents are orphans
//! reparented to init (or, in tests, to a subreaper) and are logged, unless registered
//! with [`Supervisor::expect_child`]. It needs no PID 1 powers, which is how the
//! integration tests run it on the host.

use std::collections::{HashSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc::c_int;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::agent;
use crate::clock;
use crate::console::{error_chain, Console};
use crate::logsink::{LineBuffer, LogSink};
use crate::manifest::{AgentSpec, Manifest};
use crate::modules::ModuleLoading;
use crate::signals;
use crate::state::{self, AgentRecord, AgentState, Snapshot};

/// First restart delay; doubles per failure in the crash window.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// This many failures within [`CRASH_WINDOW`] mark an agent failed.
pub const CRASH_LIMIT: usize = 5;
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long a stopping agent gets between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait after SIGKILL before giving up on a process (D state).
pub const KILL_TIMEOUT: Duration = Duration::from_secs(3);

/// Restart and stop timing.
#[derive(Debug, Clone)]
pub struct Policy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub crash_limit: usize,
    pub crash_window: Duration,
    pub stop_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            crash_limit: CRASH_LIMIT,
            crash_window: CRASH_WINDOW,
            stop_timeout: STOP_TIMEOUT,
        }
    }
}

impl Policy {
    /// The delay before restart number `failures` (1-based) in the window.
    pub fn backoff(&self, failures: usize) -> Duration {
        let shift = failures.saturating_sub(1).min(20) as u32;
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

/// How the supervisor reports and where it writes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub policy: Policy,
    /// `/var/log/hearth`; `None` = console only.
    pub log_dir: Option<PathBuf>,
    /// `/run/hearth/agents.json`; `None` = no state file.
    pub state_file: Option<PathBuf>,
    /// Extra environment for every agent.
    pub env: Vec<(String, String)>,
    /// Set in the rescue state; shown in the state file.
    pub rescue: Option<String>,
    /// Print `hearth-init: ready in X.XXs` when every agent is ready.
    pub announce_ready: bool,
}

/// What one [`Supervisor::step`] saw besides agent events.
#[derive(Debug, Default)]
pub struct StepOutcome {
    /// Signals other than SIGCHLD, in arrival order.
    pub signals: Vec<c_int>,
    /// For each extra fd passed to `step`: readable (or hung up).
    pub extra_ready: Vec<bool>,
    /// Children registered with [`Supervisor::expect_child`] that exited.
    pub exited: Vec<(Pid, WaitStatus)>,
}

#[derive(Debug)]
enum Phase {
    Waiting,
    Running {
        pid: Pid,
        ready: bool,
        deadline: Option<Instant>,
        timed_out: bool,
    },
    Backoff {
        until: Instant,
    },
    Stopping {
        pid: Pid,
        deadline: Instant,
        killed: bool,
    },
    Failed,
    Blocked,
    Stopped,
}

#[derive(Debug)]
struct Slot {
    spec: AgentSpec,
    phase: Phase,
    reason: Option<String>,
    starts: u32,
    failures: VecDeque<Instant>,
    output: Option<(OwnedFd, LineBuffer)>,
    ready_pipe: Option<(OwnedFd, Vec<u8>)>,
}

impl Slot {
    fn state(&self) -> AgentState {
        match self.phase {
            Phase::Waiting => AgentState::Starting,
            Phase::Running { ready: true, .. } => AgentState::Ready,
            Phase::Running { .. } => AgentState::Starting,
            Phase::Backoff { .. } => AgentState::Restarting,
            Phase::Stopping { .. } => AgentState::Starting,
            Phase::Failed => AgentState::Failed,
            Phase::Blocked => AgentState::Blocked,
            Phase::Stopped => AgentState::Stopped,
        }
    }

    fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Running { ready: true, .. })
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Signals,
    Extra(usize),
    Output(usize),
    Ready(usize),
}

/// Supervises the agents of one manifest.
#[derive(Debug)]
pub struct Supervisor {
    slots: Vec<Slot>,
    /// Start order from the manifest (dependencies first).
    order: Vec<usize>,
    /// First-start order, reversed for shutdown.
    started: Vec<usize>,
    sink: LogSink,
    opts: Options,
    announced: bool,
    settled_reported: bool,
    shutting_down: bool,
    expected: HashSet<Pid>,
    dirty: bool,
    /// Loads agents' modules; `None` = agents' `modules` lists are ignored.
    modules: Option<ModuleLoading>,
}

impl Supervisor {
    /// Prepare to supervise `manifest`; nothing starts before [`Supervisor::start`].
    pub fn new(manifest: &Manifest, console: Console, opts: Options) -> Self {
        // Without the handler SIGCHLD would not wake poll; the loop still reaps on
        // every timeout, so a failure here only costs latency.
        let _ = signals::install(&[nix::libc::SIGCHLD]);
        let slots = manifest
            .agents
            .iter()
            .map(|spec| {
                let problem = manifest.problems.get(&spec.name);
                Slot {
                    spec: spec.clone(),
                    phase: if problem.is_some() {
                        Phase::Failed
                    } else {
                        Phase::Waiting
                    },
                    reason: problem.cloned(),
                    starts: 0,
                    failures: VecDeque::new(),
                    output: None,
                    ready_pipe: None,
                }
            })
            .collect();
        let sink = LogSink::new(console, opts.log_dir.clone());
        Self {
            slots,
            order: manifest.order.clone(),
            started: Vec::new(),
            sink,
            opts,
            announced: false,
            settled_reported: false,
            shutting_down: false,
            expected: HashSet::new(),
            dirty: true,
            modules: None,
        }
    }

    /// Load each agent's `modules` with `loading` before its first start (init passes
    /// the one that already loaded the base list, so nothing loads twice).
    pub fn set_module_loading(&mut self, loading: ModuleLoading) {
        self.modules = Some(loading);
    }

    /// Report manifest problems and start every agent without dependencies.
    pub fn start(&mut self) {
        for slot in &self.slots {
            if let (Phase::Failed, Some(reason)) = (&slot.phase, &slot.reason) {
                self.sink
                    .console()
                    .say(format!("agent {} failed: {reason}", slot.spec.name));
            }
        }
        self.advance(Instant::now());
        self.publish();
    }

    pub fn console(&self) -> &Console {
        self.sink.console()
    }

    /// Log a message of init's own (console at info or above, and `init.log`).
    pub fn log(&mut self, priority: u8, message: &str) {
        self.sink.init_message(priority, message);
    }

    /// Hand a child that is not an agent (the rescue shell) back through
    /// [`StepOutcome::exited`] instead of logging it as an orphan.
    pub fn expect_child(&mut self, pid: Pid) {
        self.expected.insert(pid);
    }

    /// Every agent is ready (true for an empty manifest).
    pub fn all_ready(&self) -> bool {
        self.slots.iter().all(Slot::is_ready)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            agents: self
                .slots
                .iter()
                .map(|s| AgentRecord {
                    name: s.spec.name.clone(),
                    state: s.state(),
                    pid: s.pid().map(Pid::as_raw),
                    restarts: s.starts.saturating_sub(1),
                    reason: s.reason.clone(),
                })
                .collect(),
            ready: self.all_ready(),
            rescue: self.opts.rescue.clone(),
        }
    }

    /// The state-file record of agent `name`.
    pub fn record(&self, name: &str) -> Option<AgentRecord> {
        self.snapshot().agents.into_iter().find(|a| a.name == name)
    }

    pub fn state(&self, name: &str) -> Option<AgentState> {
        self.record(name).map(|r| r.state)
    }

    pub fn pid(&self, name: &str) -> Option<Pid> {
        self.slots
            .iter()
            .find(|s| s.spec.name == name)
            .and_then(Slot::pid)
    }

    /// Run the loop until `done` holds or `timeout` passes; returns whether `done`
    /// held. Signals other than SIGCHLD are discarded (tests and shutdown use this).
    pub fn wait_until(&mut self, timeout: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            self.step(&[], (end - now).min(Duration::from_millis(200)));
        }
    }

    /// Wait for at most `max_wait` for something to happen and handle it: agent
    /// output, readiness, exits, timers. `extra` fds are polled for the caller.
    pub fn step(&mut self, extra: &[BorrowedFd<'_>], max_wait: Duration) -> StepOutcome {
        let mut outcome = StepOutcome {
            extra_ready: vec![false; extra.len()],
            ..StepOutcome::default()
        };
        let now = Instant::now();
        let wait = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(now))
            .map_or(max_wait, |d| d.min(max_wait));
        let mut sources = Vec::new();
        let mut fds = Vec::new();
        if let Some(fd) = signals::pipe() {
            sources.push(Source::Signals);
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        for (k, fd) in extra.iter().enumerate() {
            sources.push(Source::Extra(k));
            fds.push(PollFd::new(*fd, PollFlags::POLLIN));
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((fd, _)) = &slot.output {
                sources.push(Source::Output(i));
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            if let Some((fd, _)) = &slot.ready_pipe {
                sources.push(Source::Ready(i));
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        // Round up so a sub-millisecond wait does not spin.
        let millis = wait.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let polled = nix::poll::poll(&mut fds, timeout);
        let readable: Vec<Source> = match polled {
            Ok(n) if n > 0 => sources
                .iter()
                .zip(fds.iter())
                .filter(|(_, fd)| fd.any().unwrap_or(false))
                .map(|(s, _)| *s)
                .collect(),
            // Timeout, EINTR (a signal arrived) or a transient error: timers and
            // reaping below run anyway.
            _ => Vec::new(),
        };
        drop(fds);
        for source in readable {
            match source {
                Source::Signals => {}
                Source::Extra(k) => outcome.extra_ready[k] = true,
                Source::Output(i) => self.read_output(i),
                Source::Ready(i) => self.read_ready(i),
            }
        }
        outcome.signals = signals::drain()
            .into_iter()
            .filter(|s| *s != nix::libc::SIGCHLD)
            .collect();
        self.reap(&mut outcome);
        self.advance(Instant::now());
        self.publish();
        outcome
    }

    /// Stop every agent in reverse start order: SIGTERM to its process group, SIGKILL
    /// after the stop timeout. Nothing restarts afterwards.
    pub fn stop_all(&mut self) {
        self.shutting_down = true;
        for slot in &mut self.slots {
            if matches!(slot.phase, Phase::Waiting | Phase::Backoff { .. }) {
                slot.phase = Phase::Stopped;
                self.dirty = true;
            }
        }
        let order: Vec<usize> = self.started.iter().rev().copied().collect();
        for i in order {
            let Phase::Running { pid, .. } = self.slots[i].phase else {
                continue;
            };
            self.sink
                .init_message(7, &format!("stopping agent {}", self.slots[i].spec.name));
            signal_group(pid, Signal::SIGTERM);
            self.slots[i].phase = Phase::Stopping {
                pid,
                deadline: Instant::now() + self.opts.policy.stop_timeout,
                killed: false,
            };
            self.dirty = true;
            let limit = self.opts.policy.stop_timeout + KILL_TIMEOUT + Duration::from_secs(1);
            self.wait_until(limit, |s| {
                !matches!(s.slots[i].phase, Phase::Stopping { .. })
            });
        }
        self.publish();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.phase {
                Phase::Running {
                    deadline: Some(d),
                    timed_out: false,
                    ready: false,
                    ..
                } => Some(d),
                Phase::Backoff { until } => Some(until),
                Phase::Stopping { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Start what can start, fire due timers, block what cannot start.
    fn advance(&mut self, now: Instant) {
        for idx in 0..self.order.len() {
            let i = self.order[idx];
            match self.slots[i].phase {
                Phase::Waiting if !self.shutting_down => {
                    if let Some(reason) = self.dependency_failure(i) {
                        let name = self.slots[i].spec.name.clone();
                        self.sink
                            .console()
                            .say(format!("agent {name} blocked: {reason}"));
                        self.slots[i].phase = Phase::Blocked;
                        self.slots[i].reason = Some(reason);
                        self.dirty = true;
                    } else if self.dependencies_ready(i) {
                        self.launch(i, now);
                    }
                }
                Phase::Backoff { until } if now >= until && !self.shutting_down => {
                    self.launch(i, now);
                }
                Phase::Running {
                    pid,
                    ready: false,
                    deadline: Some(deadline),
                    timed_out: false,
                } if now >= deadline => {
                    let name = self.slots[i].spec.name.clone();
                    self.sink
                        .init_message(4, &format!("agent {name} not ready in time, killing it"));
                    signal_group(pid, Signal::SIGKILL);
                    self.slots[i].phase = Phase::Running {
                        pid,
                        ready: false,
                        deadline: Some(deadline),
                        timed_out: true,
                    };
                }
                Phase::Stopping {
                    pid,
                    deadline,
                    killed,
                } if now >= deadline => {
                    let name = self.slots[i].spec.name.clone();
                    if killed {
                        self.sink.init_message(
                            3,
                            &format!("agent {name} (pid {pid}) survived SIGKILL, giving up on it"),
                        );
                        self.close_pipes(i);
                        self.slots[i].phase = Phase::Stopped;
                        self.slots[i].reason = Some("did not die after SIGKILL".into());
                    } else {
                        self.sink.init_message(
                            4,
                            &format!("agent {name} ignored SIGTERM, sending SIGKILL"),
                        );
                        signal_group(pid, Signal::SIGKILL);
                        self.slots[i].phase = Phase::Stopping {
                            pid,
                            deadline: now + KILL_TIMEOUT,
                            killed: true,
                        };
                    }
                    self.dirty = true;
                }
                _ => {}
            }
        }
    }

    fn dependency_failure(&self, i: usize) -> Option<String> {
        self.slots[i].spec.after.iter().find_map(|dep| {
            let d = self.slots.iter().find(|s| &s.spec.name == dep)?;
            match d.phase {
                Phase::Failed => Some(format!("dependency {dep} failed")),
                Phase::Blocked => Some(format!("dependency {dep} is blocked")),
                _ => None,
            }
        })
    }

    fn dependencies_ready(&self, i: usize) -> bool {
        self.slots[i].spec.after.iter().all(|dep| {
            self.slots
                .iter()
                .any(|s| &s.spec.name == dep && s.is_ready())
        })
    }

    /// The modules of agent `i`, before its first start; errors are reported and the
    /// agent starts anyway (it reports what it cannot do without them).
    fn load_agent_modules(&mut self, i: usize) {
        let (Some(loading), 0) = (&mut self.modules, self.slots[i].starts) else {
            return;
        };
        let spec = &self.slots[i].spec;
        if spec.modules.is_empty() {
            return;
        }
        let report = loading.load(&spec.modules);
        let name = spec.name.clone();
        for e in &report.errors {
            let msg = format!("agent {name}: {}", error_chain(e));
            self.sink.console().say(&msg);
            self.sink.init_message(7, &msg);
        }
        self.sink.console().timeline(format!(
            "agent {name} modules loaded ({})",
            report.loaded.len()
        ));
    }

    fn launch(&mut self, i: usize, now: Instant) {
        self.dirty = true;
        self.load_agent_modules(i);
        let slot = &mut self.slots[i];
        match agent::spawn(&slot.spec, &self.opts.env) {
            Ok(spawned) => {
                slot.starts += 1;
                if slot.starts == 1 {
                    self.started.push(i);
                }
                slot.phase = Phase::Running {
                    pid: spawned.pid,
                    ready: false,
                    deadline: slot.spec.ready_timeout_duration().map(|t| now + t),
                    timed_out: false,
                };
                slot.output = Some((spawned.output, LineBuffer::default()));
                slot.ready_pipe = Some((spawned.ready, Vec::new()));
                let msg = format!("agent {} started (pid {})", slot.spec.name, spawned.pid);
                self.sink.init_message(7, &msg);
            }
            Err(e) => {
                slot.starts += 1;
                if slot.starts == 1 {
                    self.started.push(i);
                }
                self.failure(i, error_chain(&e), now);
            }
        }
    }

    /// Count a failure; restart after backoff or give up after a crash loop.
    fn failure(&mut self, i: usize, what: String, now: Instant) {
        self.dirty = true;
        let policy = &self.opts.policy;
        let slot = &mut self.slots[i];
        slot.failures.push_back(now);
        while slot
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.crash_window)
        {
            slot.failures.pop_front();
        }
        let count = slot.failures.len();
        let name = slot.spec.name.clone();
        if count >= policy.crash_limit {
            let span = slot
                .failures
                .front()
                .map_or(Duration::ZERO, |t| now.duration_since(*t));
            let reason = format!("{what} {count} times in {:.1}s", span.as_secs_f64());
            self.sink
                .console()
                .say(format!("agent {name} failed: {reason}"));
            self.sink
                .init_message(7, &format!("agent {name} failed: {reason}"));
            slot.phase = Phase::Failed;
            slot.reason = Some(reason);
        } else {
            let delay = policy.backoff(count);
            self.sink.init_message(
                4,
                &format!(
                    "agent {name} {what}; restarting in {:.1}s",
                    delay.as_secs_f64()
                ),
            );
            slot.phase = Phase::Backoff { until: now + delay };
            slot.reason = Some(what);
        }
    }

    fn read_output(&mut self, i: usize) {
        let name = self.slots[i].spec.name.clone();
        let Some((fd, buf)) = &mut self.slots[i].output else {
            return;
        };
        let mut chunk = [0u8; 8192];
        let mut lines = Vec::new();
        let mut eof = false;
        // Bounded so one chatty agent cannot starve the loop.
        for _ in 0..16 {
            match nix::unistd::read(&*fd, &mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => lines.extend(buf.push(&chunk[..n])),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            lines.extend(buf.finish());
            self.slots[i].output = None;
        }
        for line in lines {
            self.sink.agent_line(&name, &line);
        }
    }

    fn read_ready(&mut self, i: usize) {
        let Some((fd, buf)) = &mut self.slots[i].ready_pipe else {
            return;
        };
        let mut chunk = [0u8; 256];
        let mut eof = false;
        loop {
            match nix::unistd::read(&*fd, &mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let ready = buf.contains(&b'\n') || (eof && !buf.is_empty());
        if ready || eof {
            self.slots[i].ready_pipe = None;
        }
        if !ready {
            return;
        }
        if let Phase::Running {
            pid, ready: false, ..
        } = self.slots[i].phase
        {
            self.slots[i].phase = Phase::Running {
                pid,
                ready: true,
                deadline: None,
                timed_out: false,
            };
            self.slots[i].reason = None;
            self.dirty = true;
            let name = &self.slots[i].spec.name;
            self.sink.console().timeline(format!("agent {name} ready"));
        }
    }

    fn close_pipes(&mut self, i: usize) {
        if self.slots[i].output.is_some() {
            self.read_output(i);
        }
        if let Some((_, buf)) = &mut self.slots[i].output {
            if let Some(line) = buf.finish() {
                let name = self.slots[i].spec.name.clone();
                self.sink.agent_line(&name, &line);
            }
        }
        self.slots[i].output = None;
        self.slots[i].ready_pipe = None;
    }

    fn reap(&mut self, outcome: &mut StepOutcome) {
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            if !matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                continue;
            }
            if let Some(i) = self.slots.iter().position(|s| s.pid() == Some(pid)) {
                self.on_exit(i, pid, &status);
            } else if self.expected.remove(&pid) {
                outcome.exited.push((pid, status));
            } else {
                // Printed at info on purpose: tests watch for it on the console.
                self.sink.init_message(
                    6,
                    &format!("reaped orphan pid {pid} status {}", short_status(&status)),
                );
            }
        }
    }

    fn on_exit(&mut self, i: usize, pid: Pid, status: &WaitStatus) {
        // Read what the agent wrote before it died, then drop its pipes. Readiness
        // written just before exiting still counts for the log.
        if self.slots[i].ready_pipe.is_some() {
            self.read_ready(i);
        }
        self.close_pipes(i);
        // Leftover members of its process group go with it.
        let _ = killpg(pid, Signal::SIGKILL);
        self.dirty = true;
        let now = Instant::now();
        let name = self.slots[i].spec.name.clone();
        match self.slots[i].phase {
            Phase::Stopping { .. } => {
                self.sink
                    .init_message(7, &format!("agent {name} stopped ({})", describe(status)));
                self.slots[i].phase = Phase::Stopped;
            }
            _ if self.shutting_down => {
                self.slots[i].phase = Phase::Stopped;
            }
            Phase::Running { timed_out, .. } => {
                let what = if timed_out {
                    let secs = self.slots[i]
                        .spec
                        .ready_timeout_duration()
                        .map_or(0, |d| d.as_secs());
                    format!("was not ready within {secs}s")
                } else {
                    describe(status)
                };
                self.failure(i, what, now);
            }
            _ => {}
        }
    }

    /// Rewrite the state file if something changed; print the boot markers.
    fn publish(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(path) = &self.opts.state_file {
            if let Err(e) = state::write_atomic(path, &self.snapshot()) {
                self.sink.init_message(4, &error_chain(&e));
            }
        }
        if !self.announced && self.all_ready() {
            self.announced = true;
            if self.opts.announce_ready {
                let t = clock::boottime().as_secs_f64();
                self.sink.console().say(format!("ready in {t:.2}s"));
            }
        }
        let settled = self
            .slots
            .iter()
            .all(|s| s.is_ready() || matches!(s.phase, Phase::Failed | Phase::Blocked));
        if settled && !self.all_ready() && !self.settled_reported && !self.shutting_down {
            self.settled_reported = true;
            let list = |want: AgentState| {
                self.slots
                    .iter()
                    .filter(|s| s.state() == want)
                    .map(|s| s.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut msg = format!(
                "boot finished degraded: failed: {}",
                list(AgentState::Failed)
            );
            let blocked = list(AgentState::Blocked);
            if !blocked.is_empty() {
                msg.push_str(&format!("; blocked: {blocked}"));
            }
            self.sink.console().timeline(msg);
        }
    }
}

/// Signal an agent's process group, or the process alone if the group is gone.
fn signal_group(pid: Pid, signal: Signal) {
    if killpg(pid, signal).is_err() {
        let _ = kill(pid, signal);
    }
}

/// `exited with status 1`, `killed by signal SIGSEGV`.
pub fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by signal {}", sig.as_str()),
        other => format!("{other:?}"),
    }
}

/// `3` for an exit status, `SIGKILL` for a signal.
pub fn short_status(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => code.to_string(),
        WaitStatus::Signaled(_, sig, _) => sig.as_str().to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Policy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(8), MAX_BACKOFF);
        assert_eq!(p.backoff(1000), MAX_BACKOFF);
    }
}
