//! Per-agent kernel modules: the supervisor loads an agent's `modules` (dependencies
//! first, each module once per boot) right before that agent's first start — not at
//! boot, not for agents that are still waiting, and not again on a restart. The
//! kernel is replaced by the recording loader; agents are real `sh` processes.
//!
//! The supervisor reaps with `waitpid(-1)`: every test takes `SERIAL` first.

use std::sync::Mutex;
use std::time::Duration;

use hearth_init::console::Console;
use hearth_init::layout::Layout;
use hearth_init::manifest::{AgentSpec, Manifest};
use hearth_init::modules::{self, ModuleLoading, RecordingLoader};
use hearth_init::state::AgentState;
use hearth_init::supervisor::{Options, Policy, Supervisor};
use nix::sys::signal::{kill, Signal};

static SERIAL: Mutex<()> = Mutex::new(());

const RELEASE: &str = "6.1.0-test";

const DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko
kernel/drivers/net/net_failover.ko:
kernel/net/llc/llc.ko:
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/802/garp.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/8021q/8021q.ko: kernel/net/802/garp.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/drivers/md/md-mod.ko:
kernel/crypto/async_tx/async_tx.ko:
kernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko
kernel/drivers/md/raid456.ko: kernel/crypto/async_tx/async_tx.ko kernel/drivers/md/md-mod.ko
";

fn image() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = Layout::under(root.path()).modules_dir(RELEASE);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("modules.dep"), DEP).unwrap();
    std::fs::create_dir_all(root.path().join("etc/hearth")).unwrap();
    std::fs::write(root.path().join("etc/hearth/modules"), "virtio_net\n").unwrap();
    root
}

fn sh(name: &str, script: &str) -> AgentSpec {
    AgentSpec::new(name, &["/bin/sh", "-c", script])
}

#[test]
fn agent_modules_load_before_first_start_deps_first_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes how orphans are reparented.
    let rc = unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
    let root = image();
    let layout = Layout::under(root.path());
    let rec = RecordingLoader::default();
    let mut loading = ModuleLoading::new(layout.modules_dir(RELEASE), Box::new(rec.clone()));

    // Boot: the base list only.
    let base = modules::load_listed(&layout, &mut loading);
    assert!(base.errors.is_empty(), "{:?}", base.errors);
    assert_eq!(rec.inserted(), ["net_failover", "virtio_net"]);

    let up = "sleep 0.3; echo READY=1 >&3; exec sleep 30";
    let manifest = Manifest::from_agents(vec![
        sh("net", up).modules(&["bridge", "8021q"]),
        // Waits for net; shares llc with it and virtio_net with the base list.
        sh("stor", up)
            .after(&["net"])
            .modules(&["raid1", "raid456", "llc", "virtio_net"]),
        sh("plain", up),
    ]);
    let (console, captured) = Console::memory();
    let opts = Options {
        policy: Policy {
            initial_backoff: Duration::from_millis(20),
            ..Policy::default()
        },
        announce_ready: true,
        ..Options::default()
    };
    let mut sup = Supervisor::new(&manifest, console, opts);
    sup.set_module_loading(loading);
    sup.start();

    // net started (its modules are in, dependencies first); stor still waits, so its
    // modules are not loaded yet.
    assert_eq!(sup.state("stor"), Some(AgentState::Starting));
    assert!(sup.pid("stor").is_none());
    let net = [
        "net_failover",
        "virtio_net",
        "llc",
        "stp",
        "bridge",
        "garp",
        "8021q",
    ];
    assert_eq!(rec.inserted(), net);

    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s.all_ready()),
        "{}",
        captured.text()
    );
    let mut both = net.to_vec();
    both.extend(["md_mod", "raid1", "async_tx", "raid456"]);
    assert_eq!(rec.inserted(), both);

    // A restart does not load anything again.
    kill(sup.pid("stor").unwrap(), Signal::SIGKILL).unwrap();
    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s
            .record("stor")
            .unwrap()
            .restarts
            == 1
            && s.state("stor") == Some(AgentState::Ready)),
        "{}",
        captured.text()
    );
    assert_eq!(rec.inserted(), both);
    sup.stop_all();

    let text = captured.text();
    assert!(text.contains("] agent net modules loaded (5)"), "{text}");
    assert!(text.contains("] agent stor modules loaded (4)"), "{text}");
    assert!(!text.contains("agent plain modules"), "{text}");
}

#[test]
fn agent_module_failures_are_reported_and_the_agent_still_starts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = image();
    let layout = Layout::under(root.path());
    let rec = RecordingLoader::default().failing("raid456");
    let loading = ModuleLoading::new(layout.modules_dir(RELEASE), Box::new(rec.clone()));
    let manifest = Manifest::from_agents(vec![
        sh("stor", "echo READY=1 >&3; exec sleep 30").modules(&["raid456", "nosuch"])
    ]);
    let (console, captured) = Console::memory();
    let mut sup = Supervisor::new(&manifest, console, Options::default());
    sup.set_module_loading(loading);
    sup.start();
    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s.all_ready()),
        "{}",
        captured.text()
    );
    sup.stop_all();
    assert_eq!(rec.inserted(), ["async_tx", "md_mod"]);
    let text = captured.text();
    assert!(
        text.contains("agent stor: module nosuch is not in "),
        "{text}"
    );
    assert!(
        text.contains("agent stor: loading module raid456 from "),
        "{text}"
    );
    assert!(text.contains("] agent stor modules loaded (2)"), "{text}");
}
