//! The WAN DHCPv4 client against a real server: `dnsmasq` plays the ISP in its own
//! network namespace, netd runs resident in the router namespace with
//! `network.wan.mode = "dhcp"`. Proves: the lease's address and default route land
//! on the WAN, the DNS servers are published in `<state-dir>/wan-dns.json`, the lease
//! is renewed at T1, a SIGHUP re-apply leaves it alone, SIGTERM sends a RELEASE
//! (dnsmasq drops the lease) and takes the lease off the interface, and a restart
//! replaces the address a previous run recorded. A second test renumbers the ISP: an
//! authoritative server that does not know the lease NAKs the renewal, and netd drops
//! the address and binds a new one.
//!
//! Run: `cargo test -p netd --test dhcp_wan -- --ignored` as root (needs `ip` and
//! `dnsmasq`, Debian `dnsmasq-base`). Without root it fails creating the namespace;
//! it never passes by skipping. Addresses are test nets, only inside the namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use netd::dhcp_client::{WanLeaseFile, DNS_FILE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Kills the child on drop (a failing test must not leave dnsmasq or netd behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

mod common;
use common::{veth, Ns};

/// Poll `f` every 100 ms until it returns `Some` or `secs` pass.
fn wait_for<T>(secs: u64, what: &str, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {secs} s waiting for {what}; netd log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_lease(path: &Path) -> Option<WanLeaseFile> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// dnsmasq's lease file line for `ip`: its expiry time.
fn dnsmasq_expiry(leases: &Path, ip: &str) -> Option<u64> {
    let text = std::fs::read_to_string(leases).ok()?;
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&ip))
        .and_then(|f| f.first()?.parse().ok())
}

const CONFIG: &str = r#"version = 1
[system]
hostname = "r"
[network]
interfaces = [
  { name = "wan0", role = "wan" },
  { name = "lan0", role = "lan" },
]
[network.wan]
mode = "dhcp"
[network.lan]
address = "192.168.1.1/24"
"#;

/// Router (`wan0` to the ISP, `lan0` to a client), the ISP at 198.51.100.1, and a
/// temp dir for configs, logs and netd's state.
struct Lab {
    router: Ns,
    isp: Ns,
    _client: Ns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let router = Ns::new("router");
        let isp = Ns::new("isp");
        let client = Ns::new("client");
        veth(&router, "wan0", &isp, "eth0");
        veth(&router, "lan0", &client, "eth0");
        isp.ip(&["addr", "add", "198.51.100.1/24", "dev", "eth0"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
        Self {
            router,
            isp,
            _client: client,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// dnsmasq as the ISP's DHCP server on `range` (leases in `<tag>.leases`, log in
    /// `<tag>.log`): 2-minute leases (dnsmasq's minimum), T1 = `t1` s, T2 = 100 s.
    /// (With `58,2` dnsmasq 2.90 sent its default T1 of half the lease here; 3 s works.)
    fn dnsmasq(&self, tag: &str, range: &str, t1: u32, extra: &[&str]) -> Proc {
        let mut args = vec![
            "dnsmasq".to_owned(),
            "--no-daemon".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--port=0".into(),
            "--interface=eth0".into(),
            "--bind-interfaces".into(),
            "--user=root".into(),
            "--log-dhcp".into(),
            "--log-facility=-".into(),
            format!("--pid-file={}", self.path(&format!("{tag}.pid")).display()),
            format!(
                "--dhcp-leasefile={}",
                self.path(&format!("{tag}.leases")).display()
            ),
            format!("--dhcp-range={range},255.255.255.0,120s"),
            "--dhcp-option=3,198.51.100.1".into(),
            "--dhcp-option=6,192.0.2.53,192.0.2.54".into(),
            format!("--dhcp-option=58,{t1}"),
            "--dhcp-option=59,100".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc(self.isp.spawn(&args, &self.path(&format!("{tag}.log"))))
    }

    /// Resident netd in the router namespace, logging to `log`.
    fn netd(&self, log: &str) -> Proc {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_netd"));
        let cfg = self.path("config.toml");
        let state = self.path("state");
        let args = [
            "env",
            "HEARTH_SUPERVISED=1",
            bin.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            // Retransmit fast in case dnsmasq is not listening yet.
            "--dhcp-retransmit-ms",
            "500",
            "--dhcp-jitter-ms",
            "100",
        ];
        Proc(self.router.spawn(&args, &self.path(log)))
    }

    fn lease_file(&self) -> PathBuf {
        self.path("state").join(DNS_FILE)
    }

    fn wan_addresses(&self) -> String {
        self.router.ip(&["-4", "addr", "show", "dev", "wan0"])
    }
}

fn signal(p: &Proc, s: Signal) {
    kill(Pid::from_raw(p.0.id() as i32), s).unwrap();
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn dhcp_wan_leases_renews_and_releases_against_dnsmasq() {
    let lab = Lab::new();
    let router = &lab.router;
    let leases = lab.path("dnsmasq.leases");
    let dnsmasq_log = lab.path("dnsmasq.log");
    // A 2-minute lease (dnsmasq's minimum) with T1 = 3 s, T2 = 100 s: renews quickly.
    let _dnsmasq = lab.dnsmasq("dnsmasq", "198.51.100.50,198.51.100.60", 3, &[]);
    let netd_log = lab.path("netd.log");
    let mut netd = lab.netd("netd.log");

    // Bound: the DNS servers are published, the address and route are on the WAN.
    let lease_file = lab.lease_file();
    let lease = wait_for(20, "wan-dns.json", &netd_log, || read_lease(&lease_file));
    assert_eq!(lease.interface, "wan0");
    assert_eq!(
        lease.dns,
        vec![
            "192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap(),
            "192.0.2.54".parse().unwrap()
        ]
    );
    assert_eq!(lease.gateway, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(
        lease.server,
        "198.51.100.1".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(lease.lease_secs, Some(120));
    // dnsmasq picks from the range by a hash of the (random) veth MAC: any of .50-.60.
    let (ip, prefix) = lease.address.split_once('/').expect("address/prefix");
    let host = ip.parse::<std::net::Ipv4Addr>().unwrap().octets();
    assert!(
        host[..3] == [198, 51, 100] && (50..=60).contains(&host[3]) && prefix == "24",
        "{}",
        lease.address
    );
    let ip = ip.to_owned();
    let addrs = lab.wan_addresses();
    assert!(addrs.contains(&lease.address), "{addrs}");
    let route = router.ip(&["-4", "route", "show", "default"]);
    assert!(
        route.contains("via 198.51.100.1 dev wan0"),
        "default route: {route}"
    );
    let first = wait_for(5, "dnsmasq's lease entry", &netd_log, || {
        dnsmasq_expiry(&leases, &ip)
    });

    // Renewed at T1 (3 s): dnsmasq extends the lease, netd republishes it.
    wait_for(15, "a renewal", &netd_log, || {
        dnsmasq_expiry(&leases, &ip).filter(|e| *e > first)
    });
    let renewed = wait_for(5, "the renewed lease file", &netd_log, || {
        read_lease(&lease_file).filter(|l| l.acked_unix > lease.acked_unix)
    });
    assert_eq!(renewed.address, lease.address, "same address after renewal");
    let log = std::fs::read_to_string(&netd_log).unwrap();
    assert!(log.contains("BOUND -> RENEWING"), "{log}");
    // The router reaches the ISP through its lease.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &router.name,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
        ])
        .arg("198.51.100.1")
        .output()
        .unwrap();
    assert!(ping.status.success(), "router cannot ping the ISP");

    // A config reload (SIGHUP) re-applies without touching the lease.
    signal(&netd, Signal::SIGHUP);
    wait_for(5, "the SIGHUP re-apply", &netd_log, || {
        let log = std::fs::read_to_string(&netd_log).ok()?;
        log.contains("applied: unchanged").then_some(())
    });
    let addrs = lab.wan_addresses();
    assert!(addrs.contains(&lease.address), "{addrs}");
    assert!(lease_file.exists());

    // SIGTERM: RELEASE (dnsmasq forgets the lease), address, route and file gone.
    signal(&netd, Signal::SIGTERM);
    let status = netd.0.wait().unwrap();
    let log = std::fs::read_to_string(&netd_log).unwrap();
    assert!(status.success(), "netd exit {status}: {log}");
    wait_for(5, "dnsmasq to drop the lease", &netd_log, || {
        dnsmasq_expiry(&leases, &ip).is_none().then_some(())
    });
    let dns_log = std::fs::read_to_string(&dnsmasq_log).unwrap();
    assert!(dns_log.contains("DHCPRELEASE"), "{dns_log}");
    assert!(!lease_file.exists(), "wan-dns.json removed on release");
    let addrs = lab.wan_addresses();
    assert!(!addrs.contains(&ip), "{addrs}");
    let route = router.ip(&["-4", "route", "show", "default"]);
    assert!(route.trim().is_empty(), "default route left: {route}");

    // A restart after a crash: the address the previous run recorded is replaced.
    router.ip(&["addr", "add", "192.0.2.99/24", "dev", "wan0"]);
    let stale = WanLeaseFile {
        address: "192.0.2.99/24".into(),
        gateway: None,
        ..lease
    };
    std::fs::write(&lease_file, serde_json::to_string(&stale).unwrap()).unwrap();
    let netd_log = lab.path("netd2.log");
    let mut netd = lab.netd("netd2.log");
    let again = wait_for(20, "a new lease", &netd_log, || {
        read_lease(&lease_file).filter(|l| l.address.starts_with("198.51.100."))
    });
    let addrs = lab.wan_addresses();
    assert!(addrs.contains(&again.address), "{addrs}");
    assert!(!addrs.contains("192.0.2.99"), "stale address kept: {addrs}");
    signal(&netd, Signal::SIGTERM);
    assert!(netd.0.wait().unwrap().success());
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn nak_on_renewal_drops_the_lease_and_binds_a_new_address() {
    let lab = Lab::new();
    let first_server = lab.dnsmasq("first", "198.51.100.50,198.51.100.60", 3, &[]);
    let log = lab.path("netd.log");
    let netd = lab.netd("netd.log");
    let first = wait_for(20, "the first lease", &log, || {
        read_lease(&lab.lease_file())
    });
    // The ISP renumbers: a new authoritative server that knows nothing of the lease
    // NAKs the renewal at T1; netd drops the address and DISCOVERs a new one.
    drop(first_server);
    let _second = lab.dnsmasq(
        "second",
        "198.51.100.70,198.51.100.80",
        3,
        &["--dhcp-authoritative"],
    );
    let second = wait_for(20, "a lease from the new range", &log, || {
        read_lease(&lab.lease_file()).filter(|l| l.address.starts_with("198.51.100.7"))
    });
    let addrs = lab.wan_addresses();
    assert!(addrs.contains(&second.address), "{addrs}");
    assert!(
        !addrs.contains(&first.address),
        "NAKed address kept: {addrs}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("dropping lease {}", first.address)),
        "{text}"
    );
    let route = lab.router.ip(&["-4", "route", "show", "default"]);
    assert!(route.contains("via 198.51.100.1 dev wan0"), "{route}");
    let dns_log = std::fs::read_to_string(lab.path("second.log")).unwrap();
    assert!(dns_log.contains("DHCPNAK"), "{dns_log}");
    signal(&netd, Signal::SIGTERM);
}
