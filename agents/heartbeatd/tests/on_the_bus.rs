//! heartbeatd on a real `dbus-daemon` bus, supervised by the real `hearth-init`
//! supervisor: it owns `org.hearth.Heartbeat1` before it reports ready, answers `Ping`,
//! publishes `Count`; the bus enforces the image's own policy file
//! (`overlays/etc/dbus-1/system.d/org.hearth.conf`) over a deny-by-default base like
//! Debian's `system.conf`. Without a bus it warns and still becomes ready.
//!
//! Needs `dbus-daemon` on the host (package `dbus-daemon`): the test fails, it does not
//! skip, when it is missing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use heartbeatd::bus::{BUS_NAME, OBJECT_PATH, PONG};
use hearth_init::console::{Captured, Console};
use hearth_init::manifest::{AgentSpec, Manifest};
use hearth_init::state::AgentState;
use hearth_init::supervisor::{Options, Supervisor};
use zbus::names::BusName;

/// The supervisor reaps with waitpid(-1): one at a time per process.
static SERIAL: Mutex<()> = Mutex::new(());

/// A private bus with the image's policy: deny owning anything by default (as
/// Debian's system.conf does), then the overlay's org.hearth.conf.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bus(dir: &Path) -> Bus {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../overlays/etc/dbus-1/system.d/org.hearth.conf")
        .canonicalize()
        .expect("the overlay policy file exists");
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>{}</include>
</busconfig>
"#,
            dir.display(),
            policy.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--nopidfile", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon must be installed for this test (package dbus-daemon)");
    let mut address = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
    Bus {
        child,
        address: address.trim().to_string(),
    }
}

fn supervise(dir: &Path, bus_address: &str) -> (Supervisor, Captured) {
    std::fs::write(dir.join("config.toml"), hearth_config::DEFAULT_TOML).unwrap();
    let config = dir.join("config.toml");
    let fail = dir.join("fail");
    let spec = AgentSpec::new(
        "heartbeatd",
        &[
            env!("CARGO_BIN_EXE_heartbeatd"),
            "--interval",
            "1",
            "--config",
            config.to_str().unwrap(),
            "--fail-file",
            fail.to_str().unwrap(),
            "--bus-address",
            bus_address,
        ],
    );
    let (console, captured) = Console::memory();
    let opts = Options {
        log_dir: Some(dir.join("log")),
        announce_ready: true,
        ..Options::default()
    };
    let mut sup = Supervisor::new(&Manifest::from_agents(vec![spec]), console, opts);
    sup.start();
    (sup, captured)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn owns_its_name_before_ready_answers_ping_and_counts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bus = start_bus(dir.path());
    let rt = runtime();
    let client = rt
        .block_on(zbus::connection::Builder::address(bus.address.as_str()).build())
        .unwrap();
    let name = BusName::try_from(BUS_NAME).unwrap();
    let dbus = rt.block_on(zbus::fdo::DBusProxy::new(&client)).unwrap();
    assert!(!rt.block_on(dbus.name_has_owner(name.clone())).unwrap());

    let (mut sup, console) = supervise(dir.path(), &bus.address);
    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s.state("heartbeatd")
            == Some(AgentState::Ready)),
        "{}",
        console.text()
    );
    // Ready means the name is already owned.
    assert!(
        rt.block_on(dbus.name_has_owner(name.clone())).unwrap(),
        "{}",
        console.text()
    );
    assert!(
        console
            .text()
            .contains(&format!("heartbeatd: {}", heartbeatd::REGISTERED)),
        "{}",
        console.text()
    );

    let proxy: zbus::Proxy = rt
        .block_on(
            zbus::proxy::Builder::new(&client)
                .destination(BUS_NAME)
                .path(OBJECT_PATH)
                .interface("org.hearth.Heartbeat1")
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )
        .unwrap();
    let pong: String = rt.block_on(proxy.call("Ping", &())).unwrap();
    assert_eq!(pong, PONG);
    // Count follows the heartbeats (one a second here).
    assert!(
        sup.wait_until(Duration::from_secs(5), |_| console
            .text()
            .contains("heartbeatd: heartbeat 2")),
        "{}",
        console.text()
    );
    let count: u64 = rt.block_on(proxy.get_property("Count")).unwrap();
    assert!(count >= 2, "Count = {count}");
    // Read-only: setting it is refused.
    let set = rt.block_on(proxy.set_property("Count", 7u64));
    assert!(set.is_err(), "Count was writable");

    // The policy is the image's: root may own org.hearth.* and nothing else.
    let denied = rt.block_on(client.request_name("org.example.NotHearth"));
    assert!(denied.is_err(), "the bus let root own a non-hearth name");
    rt.block_on(client.request_name("org.hearth.Test1"))
        .unwrap();

    sup.stop_all();
    assert!(console.text().contains("heartbeatd: stopping"));
}

#[test]
fn without_a_bus_it_warns_and_still_becomes_ready() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}/no-bus-here", dir.path().display());
    let (mut sup, console) = supervise(dir.path(), &address);
    assert!(
        sup.wait_until(Duration::from_secs(10), |s| s.state("heartbeatd")
            == Some(AgentState::Ready)),
        "{}",
        console.text()
    );
    sup.stop_all();
    let text = console.text();
    assert!(
        text.contains("heartbeatd: warning: continuing without the bus: connecting to unix:path="),
        "{text}"
    );
    assert!(!text.contains(heartbeatd::REGISTERED), "{text}");
}
