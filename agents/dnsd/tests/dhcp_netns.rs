//! DHCP against real clients (busybox udhcpc, ISC dhclient, dhcpcd) and a raw dhcproto
//! client, each in its own network namespace, with dnsd in another. Every real client
//! checks the options it read: router, DNS, domain, MTU (26), NTP (42) and the
//! classless static routes (121).
//!
//! Needs root and `ip netns`: `cargo test -p dnsd --test dhcp_netns -- --ignored
//! --test-threads=1`. Without root every test fails at `ip netns add`.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use common::{events, hook_script, wait_until, Lab, RawClient};
use dhcproto::v4::MessageType;
use dnsd::dhcp::{Lease, LeaseDb};

fn leases(lab: &Lab) -> HashMap<Ipv4Addr, Lease> {
    // Reading opens (and compacts) the log, exactly as a restart would.
    let copy = lab.dir.path().join("copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        lab.state_dir().join(dnsd::dhcp::lease::LOG_NAME),
        copy.join(dnsd::dhcp::lease::LOG_NAME),
    )
    .unwrap();
    let db = LeaseDb::open(&copy).unwrap();
    db.iter().map(|l| (l.ip, l.clone())).collect()
}

fn mac_of(ns: &common::Netns) -> String {
    ns.ip(&["-br", "link", "show", "c0"])
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned()
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn udhcpc_gets_renews_and_releases_a_lease() {
    let lab = Lab::new(1, &[]);
    let cfg = lab.config("10.77.0.100", "10.77.0.120", "");
    let dnsd = lab.start_dnsd(&cfg);
    let ev = lab.dir.path().join("udhcpc.events");
    let hook = hook_script(lab.dir.path(), &ev);
    let client = &lab.clients[0];
    let mut udhcpc = common::udhcpc_bound(
        client,
        &hook,
        &ev,
        &["-x", "hostname:laptop", "-O", "121", "-O", "mtu"],
    );
    let bound = events(&ev)
        .into_iter()
        .find(|l| l.starts_with("bound "))
        .unwrap();
    assert!(bound.starts_with("bound 10.77.0.100 "), "{bound}");
    assert!(bound.contains("router=10.77.0.1"), "{bound}");
    assert!(bound.contains("dns=10.77.0.1"), "{bound}");
    assert!(bound.contains("domain=home.arpa"), "{bound}");
    assert!(bound.contains("lease=60"), "{bound}");
    assert!(bound.contains("mtu=1500"), "{bound}");
    assert!(bound.contains("ntp=10.77.0.5 10.77.0.6"), "{bound}");
    assert!(
        bound.contains("routes=0.0.0.0/0 10.77.0.1 192.168.50.0/24 10.77.0.3"),
        "{bound}"
    );
    assert!(client
        .ip(&["-4", "addr", "show", "c0"])
        .contains("10.77.0.100/24"));
    let first = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert_eq!(first.hostname.as_deref(), Some("laptop"));

    // SIGUSR1: renew (a unicast REQUEST with ciaddr).
    std::thread::sleep(Duration::from_secs(1));
    common::sh(&["kill", "-USR1", &udhcpc.0.id().to_string()]);
    wait_until("udhcpc renew", Duration::from_secs(15), || {
        events(&ev)
            .iter()
            .any(|l| l.starts_with("renew 10.77.0.100"))
    });
    let renewed = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert!(renewed.expires > first.expires, "{first:?} -> {renewed:?}");

    // SIGUSR2: release.
    common::sh(&["kill", "-USR2", &udhcpc.0.id().to_string()]);
    dnsd.wait_log("released 10.77.0.100", Duration::from_secs(10));
    let released = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert!(released.expires <= dnsd::dhcp::socket::unix_now());
    udhcpc.0.kill().unwrap();
    udhcpc.0.wait().unwrap();
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn dhclient_gets_renews_and_releases_a_lease() {
    let lab = Lab::new(1, &[]);
    let cfg = lab.config("10.77.0.100", "10.77.0.120", "");
    let dnsd = lab.start_dnsd(&cfg);
    let ev = lab.dir.path().join("dhclient.events");
    let hook = hook_script(lab.dir.path(), &ev);
    let lease_file = lab.dir.path().join("dhclient.leases");
    let pid_file = lab.dir.path().join("dhclient.pid");
    let conf = lab.dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
         send host-name \"desktop\";\nrequest subnet-mask, broadcast-address, routers, \
         domain-name, domain-name-servers, interface-mtu, ntp-servers, \
         rfc3442-classless-static-routes;\n",
    )
    .unwrap();
    let client = &lab.clients[0];
    let dhclient = |extra: &[&str]| {
        let mut c = client.command("dhclient");
        c.arg("-cf")
            .arg(&conf)
            .args(["-v", "-sf"])
            .arg(&hook)
            .arg("-lf")
            .arg(&lease_file)
            .arg("-pf")
            .arg(&pid_file)
            .args(extra)
            .arg("c0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // Foreground, so it stays and renews at T1 (30 s of a 1 min lease).
    let mut running = dhclient(&["-d"]).spawn().unwrap();
    wait_until("dhclient bound", Duration::from_secs(20), || {
        events(&ev)
            .iter()
            .any(|l| l.starts_with("BOUND 10.77.0.100"))
    });
    let bound = events(&ev)
        .into_iter()
        .find(|l| l.starts_with("BOUND"))
        .unwrap();
    assert!(bound.contains("router=10.77.0.1"), "{bound}");
    assert!(bound.contains("domain=home.arpa"), "{bound}");
    assert!(bound.contains("mtu=1500"), "{bound}");
    assert!(bound.contains("ntp=10.77.0.5 10.77.0.6"), "{bound}");
    // dhclient prints option 121 as its bytes: width, significant octets, router.
    assert!(
        bound.contains("routes=0 10 77 0 1 24 192 168 50 10 77 0 3"),
        "{bound}"
    );
    assert_eq!(
        leases(&lab)[&"10.77.0.100".parse().unwrap()]
            .hostname
            .as_deref(),
        Some("desktop")
    );
    let first = leases(&lab)[&"10.77.0.100".parse().unwrap()].expires;
    wait_until("dhclient RENEW at T1", Duration::from_secs(50), || {
        events(&ev)
            .iter()
            .any(|l| l.starts_with("RENEW 10.77.0.100"))
    });
    assert!(leases(&lab)[&"10.77.0.100".parse().unwrap()].expires > first);
    running.kill().unwrap();
    running.wait().unwrap();
    let status = dhclient(&["-r"]).status().unwrap();
    assert!(status.success());
    dnsd.wait_log("released 10.77.0.100", Duration::from_secs(10));
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn dhcpcd_gets_renews_and_releases_a_lease() {
    let lab = Lab::new(1, &[]);
    let cfg = lab.config("10.77.0.100", "10.77.0.120", "");
    let dnsd = lab.start_dnsd(&cfg);
    let ev = lab.dir.path().join("dhcpcd.events");
    let hook = hook_script(lab.dir.path(), &ev);
    let conf = lab.dir.path().join("dhcpcd.conf");
    std::fs::write(
        &conf,
        "option domain_name_servers, domain_name, ntp_servers, interface_mtu, \
         classless_static_routes\n",
    )
    .unwrap();
    let client = &lab.clients[0];
    let dhcpcd = |args: &[&str]| {
        let mut c = client.command("dhcpcd");
        // dhcpcd hands its whole environment to the hook through a fixed-size
        // buffer; cargo's is too big for it ("Argument list too long").
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["-4", "-f"])
            .arg(&conf)
            .args(args)
            .arg("c0");
        c
    };
    // Foreground (-B), no ARP probe (-A), no IPv4LL (-L); dhcpcd configures the
    // address and routes itself and calls the hook for every event. dhcpcd keeps
    // its last lease in /var/lib/dhcpcd/c0.lease, so a second run starts with a
    // REBOOT (INIT-REBOOT REQUEST) instead of a DISCOVER: both must bind.
    let hook = hook.to_str().unwrap();
    let running = dhcpcd(&["-B", "-A", "-L", "-h", "tablet", "-c", hook])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(lab.dir.path().join("dhcpcd.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed even when an assertion fails, so no dhcpcd outlives the test.
    let mut running = common::KillOnDrop(running);
    let log = || std::fs::read_to_string(lab.dir.path().join("dhcpcd.log")).unwrap();
    let start = std::time::Instant::now();
    while !events(&ev)
        .iter()
        .any(|l| l.starts_with("BOUND 10.77.0.100") || l.starts_with("REBOOT 10.77.0.100"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dhcpcd never bound; its log:\n{}\nevents: {:?}",
            log(),
            events(&ev)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let bound = events(&ev)
        .into_iter()
        .find(|l| l.starts_with("BOUND") || l.starts_with("REBOOT"))
        .unwrap();
    assert!(bound.contains("router=10.77.0.1"), "{bound}");
    assert!(bound.contains("dns=10.77.0.1"), "{bound}");
    assert!(bound.contains("domain=home.arpa"), "{bound}");
    assert!(bound.contains("mtu=1500"), "{bound}");
    assert!(bound.contains("ntp=10.77.0.5 10.77.0.6"), "{bound}");
    assert!(
        bound.contains("routes=0.0.0.0/0 10.77.0.1 192.168.50.0/24 10.77.0.3"),
        "{bound}"
    );
    assert!(bound.contains("lease=60"), "{bound}");
    // dhcpcd installed what it read: the address and both routes.
    assert!(client
        .ip(&["-4", "addr", "show", "c0"])
        .contains("10.77.0.100/24"));
    let routes = client.ip(&["-4", "route", "show"]);
    assert!(routes.contains("default via 10.77.0.1"), "{routes}");
    assert!(routes.contains("192.168.50.0/24 via 10.77.0.3"), "{routes}");
    let first = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert_eq!(first.hostname.as_deref(), Some("tablet"));

    // `dhcpcd -n`: renew now (a unicast REQUEST).
    std::thread::sleep(Duration::from_secs(1));
    assert!(dhcpcd(&["-n"]).output().unwrap().status.success());
    wait_until("dhcpcd renew", Duration::from_secs(15), || {
        events(&ev)
            .iter()
            .any(|l| l.starts_with("RENEW 10.77.0.100"))
    });
    let renewed = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert!(renewed.expires > first.expires, "{first:?} -> {renewed:?}");

    // `dhcpcd -k`: release and stop.
    assert!(dhcpcd(&["-k"]).output().unwrap().status.success());
    dnsd.wait_log("released 10.77.0.100", Duration::from_secs(10));
    let released = leases(&lab)[&"10.77.0.100".parse().unwrap()].clone();
    assert!(released.expires <= dnsd::dhcp::socket::unix_now());
    let _ = running.0.kill();
    running.0.wait().unwrap();
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn reservation_is_honoured() {
    let lab = Lab::new(1, &["02:00:00:00:00:99"]);
    let cfg = lab.config(
        "10.77.0.100",
        "10.77.0.120",
        r#"reservations = [ { mac = "02:00:00:00:00:99", address = "10.77.0.50", hostname = "printer" } ]"#,
    );
    let _dnsd = lab.start_dnsd(&cfg);
    assert_eq!(mac_of(&lab.clients[0]), "02:00:00:00:00:99");
    let out = lab.clients[0]
        .command("busybox")
        .args([
            "udhcpc",
            "-n",
            "-q",
            "-t",
            "5",
            "-i",
            "c0",
            "-s",
            "/bin/true",
        ])
        .args(["-r", "10.77.0.101"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("lease of 10.77.0.50 obtained"),
        "{text}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let l = &leases(&lab)[&"10.77.0.50".parse().unwrap()];
    assert_eq!(l.hostname.as_deref(), Some("printer"));
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn exhausted_pool_offers_nothing_and_naks_taken_addresses() {
    let lab = Lab::new(3, &[]);
    let cfg = lab.config("10.77.0.100", "10.77.0.101", "");
    let _dnsd = lab.start_dnsd(&cfg);
    let udhcpc = |i: usize| {
        let out = lab.clients[i]
            .command("busybox")
            .args([
                "udhcpc",
                "-n",
                "-q",
                "-t",
                "3",
                "-T",
                "1",
                "-i",
                "c0",
                "-s",
                "/bin/true",
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok0, t0) = udhcpc(0);
    let (ok1, t1) = udhcpc(1);
    assert!(ok0 && t0.contains("lease of 10.77.0.10"), "{t0}");
    assert!(ok1 && t1.contains("lease of 10.77.0.10"), "{t1}");
    let (ok2, t2) = udhcpc(2);
    assert!(
        !ok2,
        "a third client got a lease from a 2-address pool: {t2}"
    );
    assert!(t2.contains("no lease, failing"), "{t2}");
    assert_eq!(leases(&lab).len(), 2);

    // A client asking for an address that is someone else's gets a NAK; one asking
    // outside the subnet too.
    lab.clients[2].ip(&["addr", "add", "10.77.0.250/24", "dev", "c0"]);
    let (taken, foreign) = lab.clients[2].run(|| {
        let c = RawClient::new();
        let mac = [2, 0, 0, 0, 7, 7];
        (
            c.request(mac, "10.77.0.100".parse().unwrap()),
            c.request(mac, "192.168.5.5".parse().unwrap()),
        )
    });
    assert_eq!(taken, Some(MessageType::Nak));
    assert_eq!(foreign, Some(MessageType::Nak));
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn kill_9_mid_stream_keeps_every_acked_lease() {
    let lab = Lab::new(1, &[]);
    let cfg = lab.config("10.77.0.10", "10.77.0.250", "");
    let mut dnsd = lab.start_dnsd(&cfg);
    lab.clients[0].ip(&["addr", "add", "10.77.0.254/24", "dev", "c0"]);
    let mac = |i: u8| [2, 0, 0, 0, 0x11, i];

    // A client thread does DORA for MAC after MAC while the main thread kills dnsd
    // -9 once some ACKs have arrived.
    let acked: std::sync::Mutex<Vec<([u8; 6], Ipv4Addr)>> = Default::default();
    std::thread::scope(|s| {
        let client = s.spawn(|| {
            lab.clients[0].run(|| {
                let c = RawClient::new();
                for i in 0..=255u8 {
                    match c.dora(mac(i)) {
                        Some(ip) => acked.lock().unwrap().push((mac(i), ip)),
                        None => break, // dnsd is gone
                    }
                }
            })
        });
        let start = std::time::Instant::now();
        while acked.lock().unwrap().len() < 20 {
            assert!(start.elapsed() < Duration::from_secs(30), "no ACKs");
            std::thread::sleep(Duration::from_millis(1));
        }
        dnsd.kill9();
        client.join().unwrap();
    });
    let acked = acked.into_inner().unwrap();
    eprintln!("{} leases ACKed before kill -9", acked.len());
    assert!(acked.len() >= 20 && acked.len() < 200, "{}", acked.len());

    // Every ACKed lease is on disk, for the client it was given to.
    let db = leases(&lab);
    for (m, ip) in &acked {
        let l = db.get(ip).unwrap_or_else(|| panic!("lease {ip} lost"));
        assert_eq!(l.mac.unwrap().0, *m, "{ip}");
    }

    // After a restart, old clients keep their addresses and new ones never get one
    // that is taken.
    let _dnsd = lab.start_dnsd(&cfg);
    let again = lab.clients[0].run(|| {
        let c = RawClient::new();
        let old: Vec<_> = acked.iter().map(|(m, _)| c.dora(*m)).collect();
        let new: Vec<_> = (0..20u8).map(|i| c.dora([2, 0, 0, 0, 0x22, i])).collect();
        (old, new)
    });
    for ((_, ip), got) in acked.iter().zip(&again.0) {
        assert_eq!(got.as_ref(), Some(ip));
    }
    for got in &again.1 {
        let got = got.expect("a new client gets an address");
        assert!(!acked.iter().any(|(_, ip)| *ip == got), "{got} given twice");
    }
}

/// Run `udhcpc -n -q` once on client `i` with the hook writing to `ev`: whether it
/// got a lease and its stderr.
fn udhcpc_once(lab: &Lab, i: usize, ev: &std::path::Path, tries: &str) -> (bool, String) {
    let hook = hook_script(lab.dir.path(), ev);
    let out = lab.clients[i]
        .command("busybox")
        .args([
            "udhcpc", "-n", "-q", "-t", tries, "-T", "1", "-i", "c0", "-O", "mtu",
        ])
        .arg("-s")
        .arg(&hook)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last `bound` event of a hook log.
fn bound(ev: &std::path::Path) -> String {
    events(ev)
        .into_iter()
        .rfind(|l| l.starts_with("bound "))
        .unwrap_or_else(|| panic!("no bound event: {:?}", events(ev)))
}

/// Whether a `bound IP ...` event's address is in .100-.120.
fn in_range(event: &str) -> bool {
    let ip: Ipv4Addr = event.split_whitespace().nth(1).unwrap().parse().unwrap();
    (Ipv4Addr::new(10, 77, 0, 100)..=Ipv4Addr::new(10, 77, 0, 120)).contains(&ip)
}

/// `dig +short NAME` against dnsd from client `i`.
fn resolve(lab: &Lab, i: usize, name: &str) -> String {
    let out = lab.clients[i]
        .command("dig")
        .args(["@10.77.0.1", "+short", "+time=2", "+tries=2", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn sighup_moves_a_client_to_its_new_reservation_and_a_bad_config_changes_nothing() {
    let lab = Lab::new(3, &["02:00:00:00:00:51"]);
    let a = common::config_text("10.77.0.100", "10.77.0.120", "1m", "", "");
    let cfg = lab.write_config(&a);
    let dnsd = lab.start_dnsd(&cfg);
    let ev = lab.dir.path().join("udhcpc.events");
    let hook = hook_script(lab.dir.path(), &ev);
    let udhcpc = common::udhcpc_bound(&lab.clients[0], &hook, &ev, &["-x", "hostname:laptop"]);
    let first = bound(&ev);
    assert!(first.starts_with("bound 10.77.0.100 "), "{first}");
    assert!(first.contains("lease=60"), "{first}");

    // Config B: a reservation for the client's MAC, a longer lease.
    let b = common::config_text(
        "10.77.0.100",
        "10.77.0.120",
        "2m",
        "",
        r#"reservations = [ { mac = "02:00:00:00:00:51", address = "10.77.0.50", hostname = "desk" } ]"#,
    );
    lab.write_config(&b);
    let reloaded = format!("reloaded {}", cfg.display());
    dnsd.hup();
    dnsd.wait_log(&reloaded, Duration::from_secs(10));
    assert_eq!(resolve(&lab, 0, "desk.home.arpa"), "10.77.0.50");
    // The client's renewal of .100 is NAKed; it starts over and gets .50.
    common::sh(&["kill", "-USR1", &udhcpc.0.id().to_string()]);
    wait_until(
        "udhcpc bound to the reservation",
        Duration::from_secs(20),
        || {
            events(&ev)
                .iter()
                .any(|l| l.starts_with("bound 10.77.0.50 "))
        },
    );
    let moved = bound(&ev);
    assert!(moved.contains("lease=120"), "{moved}");
    assert!(
        dnsd.log_text().contains("NAK 10.77.0.100"),
        "{}",
        dnsd.log_text()
    );
    let db = leases(&lab);
    assert_eq!(
        db[&"10.77.0.50".parse().unwrap()].hostname.as_deref(),
        Some("desk")
    );
    let old = &db[&"10.77.0.100".parse().unwrap()];
    assert!(!old.active(dnsd::dhcp::socket::unix_now()), "{old:?}");

    // Config C does not parse: refused, B keeps serving (a new client gets a 2 min
    // lease from B's range).
    lab.write_config("version = 1\n[system\n");
    dnsd.hup();
    wait_until("C refused", Duration::from_secs(10), || {
        dnsd.log_count("reload refused") == 1
    });
    let ev1 = lab.dir.path().join("c1.events");
    let (ok, text) = udhcpc_once(&lab, 1, &ev1, "5");
    assert!(ok, "{text}");
    let got = bound(&ev1);
    assert!(in_range(&got), "{got}");
    assert!(got.contains("lease=120"), "{got}");

    // Config D is valid but has no pool for the flagged `br0=lan`: DHCP refuses,
    // so nothing changes (DNS included).
    let d: String = a
        .lines()
        .filter(|l| !l.starts_with("pools ="))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.write_config(&d);
    dnsd.hup();
    wait_until("D refused", Duration::from_secs(10), || {
        dnsd.log_count("reload refused") == 2
    });
    assert!(
        dnsd.log_text().contains("DHCP: --interface br0=lan"),
        "{}",
        dnsd.log_text()
    );
    let ev2 = lab.dir.path().join("c2.events");
    let (ok, text) = udhcpc_once(&lab, 2, &ev2, "5");
    assert!(ok, "{text}");
    let got = bound(&ev2);
    assert!(in_range(&got), "{got}");
    assert!(got.contains("lease=120"), "{got}");
    assert_eq!(resolve(&lab, 0, "desk.home.arpa"), "10.77.0.50");
    assert_eq!(dnsd.log_count(&reloaded), 1);
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn an_interface_that_appears_late_is_served_and_a_reload_can_stop_and_restart_it() {
    let lab = Lab::new(2, &[]);
    // No --interface: `lan` is served on the config's bridge, which does not exist
    // yet (the lab's bridge is br0).
    let with_pool =
        common::config_text("10.77.0.100", "10.77.0.120", "1m", "", "").replace("br-lan", "brlate");
    let cfg = lab.write_config(&with_pool);
    let dnsd = lab.start_dnsd_with(&cfg, &[]);
    assert!(
        dnsd.log_text().contains("interface brlate does not exist"),
        "{}",
        dnsd.log_text()
    );
    // netd creates the bridge: here, br0 is renamed.
    lab.server.ip(&["link", "set", "br0", "down"]);
    lab.server.ip(&["link", "set", "br0", "name", "brlate"]);
    lab.server.ip(&["link", "set", "brlate", "up"]);
    dnsd.wait_log("serving DHCP on brlate now", Duration::from_secs(15));
    let ev0 = lab.dir.path().join("c0.events");
    let (ok, text) = udhcpc_once(&lab, 0, &ev0, "5");
    assert!(ok, "{text}");
    let got = bound(&ev0);
    assert!(got.starts_with("bound 10.77.0.100 "), "{got}");
    // The MTU was read when the interface appeared.
    assert!(got.contains("mtu=1500"), "{got}");

    // A config without the pool: the interface is no longer served...
    let without: String = with_pool
        .lines()
        .filter(|l| !l.starts_with("pools ="))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.write_config(&without);
    dnsd.hup();
    dnsd.wait_log("no longer serving DHCP on brlate", Duration::from_secs(10));
    let ev1 = lab.dir.path().join("c1.events");
    let (ok, text) = udhcpc_once(&lab, 1, &ev1, "2");
    assert!(!ok, "a lease from an interface no longer served: {text}");
    // ...and with it again, served on the same socket.
    lab.write_config(&with_pool);
    dnsd.hup();
    let reloaded = format!("reloaded {}", cfg.display());
    wait_until("second reload", Duration::from_secs(10), || {
        dnsd.log_count(&reloaded) == 2
    });
    let (ok, text) = udhcpc_once(&lab, 1, &ev1, "5");
    assert!(ok, "{text}");
    assert!(
        bound(&ev1).starts_with("bound 10.77.0.101 "),
        "{:?}",
        events(&ev1)
    );
    assert_eq!(dnsd.log_count("serving DHCP on brlate now"), 1);

    // netd deletes the bridge and creates it again (a new index): the old socket
    // is bound to a device that is gone; dnsd binds the new one by itself.
    let ports: Vec<String> = lab
        .server
        .ip(&["-o", "link", "show", "master", "brlate"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_owned())
        .collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    lab.server.ip(&["link", "del", "brlate"]);
    lab.server.ip(&["link", "add", "brlate", "type", "bridge"]);
    lab.server
        .ip(&["addr", "add", "10.77.0.1/24", "dev", "brlate"]);
    for port in &ports {
        lab.server
            .ip(&["link", "set", port, "master", "brlate", "up"]);
    }
    lab.server.ip(&["link", "set", "brlate", "up"]);
    dnsd.wait_log(
        "interface brlate was recreated: DHCP bound to it again",
        Duration::from_secs(15),
    );
    let ev2 = lab.dir.path().join("c0-again.events");
    let (ok, text) = udhcpc_once(&lab, 0, &ev2, "5");
    assert!(ok, "no lease on the recreated bridge: {text}");
    assert!(in_range(&bound(&ev2)), "{:?}", events(&ev2));
}
