//! The supervisor against real child processes (`sh -c` scripts), run as an ordinary
//! process: the test binary becomes a child subreaper to stand in for PID 1.
//!
//! The supervisor reaps with `waitpid(-1)`, so two supervisors in one process would
//! steal each other's children: every test takes `SERIAL` first.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_init::console::{Captured, Console};
use hearth_init::manifest::{AgentSpec, Manifest};
use hearth_init::state::{self, AgentState};
use hearth_init::supervisor::{Options, Policy, Supervisor};
use nix::sys::signal::{kill, Signal};

static SERIAL: Mutex<()> = Mutex::new(());

struct Rig {
    sup: Supervisor,
    console: Captured,
    dir: tempfile::TempDir,
}

impl Rig {
    fn log(&self, agent: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("log").join(format!("{agent}.log")))
            .unwrap_or_default()
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("run/agents.json")
    }

    fn wait_state(&mut self, name: &str, want: AgentState, timeout: Duration) {
        let ok = self
            .sup
            .wait_until(timeout, |s| s.state(name) == Some(want));
        assert!(
            ok,
            "{name} never became {want}: {:?}\nconsole:\n{}",
            self.sup.record(name),
            self.console.text()
        );
    }
}

fn fast_policy() -> Policy {
    Policy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        crash_limit: 5,
        crash_window: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(1),
    }
}

fn sh(name: &str, script: &str) -> AgentSpec {
    AgentSpec::new(name, &["/bin/sh", "-c", script])
}

fn rig(agents: Vec<AgentSpec>, policy: Policy) -> Rig {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes how orphans are reparented.
    let rc = unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
    let dir = tempfile::tempdir().unwrap();
    let (console, captured) = Console::memory();
    let opts = Options {
        policy,
        log_dir: Some(dir.path().join("log")),
        state_file: Some(dir.path().join("run/agents.json")),
        env: vec![("TEST_DIR".into(), dir.path().display().to_string())],
        rescue: None,
        announce_ready: true,
    };
    let manifest = Manifest::from_agents(agents);
    let mut sup = Supervisor::new(&manifest, console, opts);
    sup.start();
    Rig {
        sup,
        console: captured,
        dir,
    }
}

fn stop(rig: &mut Rig) {
    rig.sup.stop_all();
}

#[test]
fn ready_via_fd3_with_the_documented_environment() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let script = r#"
        [ "$HEARTH_SUPERVISED" = 1 ] || exit 11
        [ "$HEARTH_READY_FD" = 3 ] || exit 12
        [ "$(readlink /proc/$$/fd/0)" = /dev/null ] || exit 13
        [ "$(cat /proc/$$/stat | cut -d' ' -f6)" = $$ ] || exit 14
        echo "<6>fds $(ls /proc/$$/fd | sort -n | tr '\n' ' ')"
        echo "<7>debug detail"
        echo "<4>careful" >&2
        echo READY=1 >&3
        exec sleep 30
    "#;
    let mut rig = rig(vec![sh("a", script)], fast_policy());
    rig.wait_state("a", AgentState::Ready, Duration::from_secs(5));
    // Output is read asynchronously: let the loop drain the pipe.
    let log_file = rig.dir.path().join("log/a.log");
    rig.sup.wait_until(Duration::from_secs(3), |_| {
        std::fs::read_to_string(&log_file).is_ok_and(|l| l.contains("careful"))
    });
    let log = rig.log("a");
    // sh has its script's fds 0-3 and the one `ls` reads the directory with.
    assert!(log.contains(" INFO a: fds 0 1 2 3 "), "{log}");
    assert!(log.contains(" DEBUG a: debug detail"), "{log}");
    assert!(log.contains(" WARN a: careful"), "{log}");
    let console = rig.console.text();
    assert!(console.contains("a: fds 0 1 2 3"), "{console}");
    assert!(!console.contains("debug detail"), "{console}");
    assert!(console.contains("a: warning: careful"), "{console}");
    assert_eq!(
        console.matches("hearth-init: ready in ").count(),
        1,
        "{console}"
    );
    assert!(console.contains("] agent a ready"), "{console}");
    let snap = state::read(&rig.state_file()).expect("state file");
    assert!(snap.ready);
    assert_eq!(snap.agents[0].state, AgentState::Ready);
    assert_eq!(snap.agents[0].pid, rig.sup.pid("a").map(|p| p.as_raw()));
    stop(&mut rig);
}

#[test]
fn restarts_after_kill() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = rig(
        vec![sh("a", "echo READY=1 >&3; exec sleep 30")],
        fast_policy(),
    );
    rig.wait_state("a", AgentState::Ready, Duration::from_secs(5));
    let first = rig.sup.pid("a").unwrap();
    kill(first, Signal::SIGKILL).unwrap();
    let ok = rig.sup.wait_until(Duration::from_secs(5), |s| {
        s.state("a") == Some(AgentState::Ready) && s.pid("a").is_some_and(|p| p != first)
    });
    assert!(ok, "{:?}\n{}", rig.sup.record("a"), rig.console.text());
    let rec = rig.sup.record("a").unwrap();
    assert_eq!(rec.restarts, 1);
    let init_log = rig.log("init");
    assert!(
        init_log.contains("agent a killed by signal SIGKILL; restarting in 0.0s"),
        "{init_log}"
    );
    // The ready marker is printed once, not again after the restart.
    assert_eq!(rig.console.text().matches("ready in").count(), 1);
    stop(&mut rig);
}

#[test]
fn crash_loop_marks_failed_blocks_dependents_and_spares_the_rest() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut rig = rig(
        vec![
            sh("good", "echo READY=1 >&3; exec sleep 30"),
            sh("bad", "echo '<3>boom'; exit 1"),
            sh("needs-bad", "echo READY=1 >&3; exec sleep 30").after(&["bad"]),
        ],
        fast_policy(),
    );
    rig.wait_state("bad", AgentState::Failed, Duration::from_secs(10));
    rig.wait_state("needs-bad", AgentState::Blocked, Duration::from_secs(1));
    assert_eq!(rig.sup.state("good"), Some(AgentState::Ready));
    let rec = rig.sup.record("bad").unwrap();
    let reason = rec.reason.unwrap();
    assert!(
        reason.starts_with("exited with status 1 5 times in "),
        "{reason}"
    );
    assert_eq!(rec.restarts, 4);
    // Backoff 20+40+80+160 ms: the loop was not instant.
    assert!(started.elapsed() >= Duration::from_millis(300));
    let console = rig.console.text();
    assert!(
        console.contains(&format!("hearth-init: agent bad failed: {reason}")),
        "{console}"
    );
    assert!(
        console.contains("hearth-init: agent needs-bad blocked: dependency bad failed"),
        "{console}"
    );
    assert!(console.contains("bad: error: boom"), "{console}");
    assert!(!console.contains("ready in"), "{console}");
    assert!(console.contains("boot finished degraded: failed: bad; blocked: needs-bad"));
    let snap = state::read(&rig.state_file()).unwrap();
    assert!(!snap.ready);
    let states: Vec<AgentState> = snap.agents.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        [AgentState::Ready, AgentState::Failed, AgentState::Blocked]
    );
    stop(&mut rig);
}

#[test]
fn dependencies_start_only_when_ready() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = rig(
        vec![
            // Listed first, but depends on `a`, which takes a while to get ready.
            sh(
                "b",
                r#"[ -e "$TEST_DIR/a-ready" ] || exit 9; echo READY=1 >&3; exec sleep 30"#,
            )
            .after(&["a"]),
            sh(
                "a",
                r#"sleep 0.4; touch "$TEST_DIR/a-ready"; echo READY=1 >&3; exec sleep 30"#,
            ),
        ],
        fast_policy(),
    );
    assert_eq!(rig.sup.state("b"), Some(AgentState::Starting));
    assert_eq!(rig.sup.pid("b"), None, "b started before a was ready");
    rig.wait_state("b", AgentState::Ready, Duration::from_secs(5));
    assert_eq!(
        rig.sup.record("b").unwrap().restarts,
        0,
        "{}",
        rig.console.text()
    );
    assert_eq!(rig.sup.state("a"), Some(AgentState::Ready));
    stop(&mut rig);
}

#[test]
fn readiness_timeout_counts_as_failure() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let policy = Policy {
        crash_limit: 2,
        ..fast_policy()
    };
    let started = Instant::now();
    let mut rig = rig(
        vec![AgentSpec::new("mute", &["/bin/sleep", "30"]).ready_timeout(1)],
        policy,
    );
    rig.wait_state("mute", AgentState::Failed, Duration::from_secs(6));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let reason = rig.sup.record("mute").unwrap().reason.unwrap();
    assert!(
        reason.starts_with("was not ready within 1s 2 times in "),
        "{reason}"
    );
}

#[test]
fn ordered_stop_reverse_order_and_sigkill_for_the_stubborn() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let polite = |name: &str| {
        format!(
            r#"trap 'echo {name} >> "$TEST_DIR/stops"; exit 0' TERM; echo READY=1 >&3; sleep 30 & wait"#
        )
    };
    let mut rig = rig(
        vec![
            sh("a", &polite("a")),
            sh(
                "stubborn",
                "trap '' TERM; echo READY=1 >&3; while :; do sleep 1; done",
            )
            .after(&["a"]),
            sh("c", &polite("c")).after(&["stubborn"]),
        ],
        fast_policy(),
    );
    for name in ["a", "stubborn", "c"] {
        rig.wait_state(name, AgentState::Ready, Duration::from_secs(5));
    }
    let pids: Vec<_> = ["a", "stubborn", "c"]
        .iter()
        .map(|n| rig.sup.pid(n).unwrap())
        .collect();
    let t0 = Instant::now();
    rig.sup.stop_all();
    let took = t0.elapsed();
    let stops = std::fs::read_to_string(rig.dir.path().join("stops")).unwrap();
    assert_eq!(stops, "c\na\n");
    // stubborn needed the full stop timeout and a SIGKILL.
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let init_log = rig.log("init");
    assert!(
        init_log.contains("agent stubborn ignored SIGTERM, sending SIGKILL"),
        "{init_log}"
    );
    for name in ["a", "stubborn", "c"] {
        assert_eq!(rig.sup.state(name), Some(AgentState::Stopped));
    }
    for pid in pids {
        assert!(kill(pid, None).is_err(), "{pid} still alive");
    }
    // Nothing restarts after a stop.
    rig.sup.wait_until(Duration::from_millis(300), |_| false);
    assert!(rig.sup.pid("a").is_none());
    let snap = state::read(&rig.state_file()).unwrap();
    assert!(snap.agents.iter().all(|a| a.state == AgentState::Stopped));
}

#[test]
fn orphans_are_reaped_and_logged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The subshell exits at once, so its background child is reparented to us.
    let mut rig = rig(
        vec![sh(
            "parent",
            r#"( sh -c 'sleep 0.3; exit 3' & ); echo READY=1 >&3; exec sleep 30"#,
        )],
        fast_policy(),
    );
    rig.wait_state("parent", AgentState::Ready, Duration::from_secs(5));
    let captured = rig.console.clone();
    let ok = rig.sup.wait_until(Duration::from_secs(5), |_| {
        captured.text().contains("status 3")
    });
    let console = rig.console.text();
    assert!(ok, "{console}");
    let line = console
        .lines()
        .find(|l| l.contains("reaped orphan pid") && l.ends_with("status 3"))
        .unwrap_or_else(|| panic!("no orphan line in:\n{console}"));
    assert!(
        line.starts_with("hearth-init: reaped orphan pid "),
        "{line}"
    );
    // The agent itself is untouched.
    assert_eq!(rig.sup.state("parent"), Some(AgentState::Ready));
    assert_eq!(rig.sup.record("parent").unwrap().restarts, 0);
    stop(&mut rig);
}

#[test]
fn exec_failure_is_a_failure_with_the_program_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let policy = Policy {
        crash_limit: 2,
        ..fast_policy()
    };
    let mut rig = rig(
        vec![AgentSpec::new("ghost", &["/nonexistent/ghostd"])],
        policy,
    );
    rig.wait_state("ghost", AgentState::Failed, Duration::from_secs(3));
    let reason = rig.sup.record("ghost").unwrap().reason.unwrap();
    assert!(
        reason.starts_with("cannot execute /nonexistent/ghostd: "),
        "{reason}"
    );
}
