//! heartbeatd supervised by the real `hearth-init` supervisor (without a bus; see
//! `on_the_bus.rs` for that): readiness, heartbeats, a clean SIGTERM stop, and the
//! crash loop the fail file triggers.

use std::sync::Mutex;
use std::time::Duration;

use hearth_init::console::{Captured, Console};
use hearth_init::manifest::{AgentSpec, Manifest};
use hearth_init::state::AgentState;
use hearth_init::supervisor::{Options, Policy, Supervisor};

/// The supervisor reaps with waitpid(-1): one at a time per process.
static SERIAL: Mutex<()> = Mutex::new(());

fn supervise(dir: &std::path::Path) -> (Supervisor, Captured) {
    std::fs::write(dir.join("config.toml"), hearth_config::DEFAULT_TOML).unwrap();
    let exe = env!("CARGO_BIN_EXE_heartbeatd");
    let config = dir.join("config.toml");
    let fail = dir.join("fail");
    let spec = AgentSpec::new(
        "heartbeatd",
        &[
            exe,
            "--interval",
            "1",
            "--config",
            config.to_str().unwrap(),
            "--fail-file",
            fail.to_str().unwrap(),
            "--no-bus",
        ],
    );
    let (console, captured) = Console::memory();
    let opts = Options {
        policy: Policy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            stop_timeout: Duration::from_secs(3),
            ..Policy::default()
        },
        log_dir: Some(dir.join("log")),
        announce_ready: true,
        ..Options::default()
    };
    let mut sup = Supervisor::new(&Manifest::from_agents(vec![spec]), console, opts);
    sup.start();
    (sup, captured)
}

#[test]
fn becomes_ready_beats_and_stops_on_sigterm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, console) = supervise(dir.path());
    assert!(
        sup.wait_until(Duration::from_secs(5), |s| s.state("heartbeatd")
            == Some(AgentState::Ready)),
        "{}",
        console.text()
    );
    assert!(
        sup.wait_until(Duration::from_secs(4), |_| console
            .text()
            .contains("heartbeatd: heartbeat 1")),
        "{}",
        console.text()
    );
    sup.stop_all();
    let text = console.text();
    let hostname = hearth_config::parse(hearth_config::DEFAULT_TOML, "default")
        .unwrap()
        .system
        .hostname
        .to_string();
    assert!(
        text.contains(&format!("heartbeatd: config loaded, hostname {hostname}")),
        "{text}"
    );
    assert!(text.contains("heartbeatd: stopping"), "{text}");
    assert_eq!(sup.state("heartbeatd"), Some(AgentState::Stopped));
    let init_log = std::fs::read_to_string(dir.path().join("log/init.log")).unwrap();
    assert!(
        init_log.contains("agent heartbeatd stopped (exited with status 0)"),
        "{init_log}"
    );
}

#[test]
fn fail_file_makes_it_crash_loop() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fail"), "").unwrap();
    let (mut sup, console) = supervise(dir.path());
    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s.state("heartbeatd")
            == Some(AgentState::Failed)),
        "{}",
        console.text()
    );
    let reason = sup.record("heartbeatd").unwrap().reason.unwrap();
    assert!(
        reason.starts_with("exited with status 1 5 times in "),
        "{reason}"
    );
    let text = console.text();
    assert!(
        text.contains("heartbeatd: error: simulated failure requested by "),
        "{text}"
    );
    assert!(!text.contains("ready in"), "{text}");
}
