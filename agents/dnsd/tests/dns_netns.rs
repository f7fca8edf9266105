//! DNS against real `dig` (bind9-dnsutils), with `dnsmasq` (dnsmasq-base) as the
//! upstream in a namespace of its own.
//!
//! Layout: the client namespace (10.77.0.2 on the lab bridge) asks dnsd at
//! 10.77.0.1:53 in the server namespace; dnsd forwards over a veth pair
//! (10.78.0.1 - 10.78.0.2) to dnsmasq in the upstream namespace. The first upstream
//! given to dnsd (port 9 there) refuses, so every forwarded name also exercises
//! failover. One test gives no upstream and writes netd's `wan-dns.json` instead.
//!
//! Needs root and `ip netns`: `cargo test -p dnsd --test dns_netns -- --ignored
//! --test-threads=1`. Without root every test fails at `ip netns add`.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sched::CloneFlags;

use common::{hook_script, sh, wait_until, Dnsd, Lab, Netns};

/// 10 TXT strings of 200 bytes: over 2 KB, more than one UDP answer holds.
fn big_txt(i: usize) -> String {
    format!("{i}{}", "x".repeat(199))
}

/// The lab plus an upstream namespace running dnsmasq, and dnsd.
/// Fields drop in order: dnsd and dnsmasq die before their namespaces go.
struct DnsLab {
    dnsd: Dnsd,
    dnsmasq: Option<Child>,
    blocklist: PathBuf,
    config: PathBuf,
    upstream_args: Vec<String>,
    /// `--dns-listen 10.77.0.1:53` given (else dnsd follows the config's addresses).
    explicit_listen: bool,
    upstream: Netns,
    lab: Lab,
}

impl DnsLab {
    /// `extra` is appended to the config (after `[dhcp]`: use table headers).
    fn new(extra: &str, blocklist: &str) -> Self {
        Self::with_upstreams(
            extra,
            blocklist,
            &["--upstream", "10.78.0.2:9", "--upstream", "10.78.0.2:53"],
        )
    }

    /// Like [`DnsLab::new`], with `upstream_args` instead of the two `--upstream`s.
    fn with_upstreams(extra: &str, blocklist: &str, upstream_args: &[&str]) -> Self {
        Self::build("", extra, blocklist, upstream_args)
    }

    /// Like [`DnsLab::with_upstreams`], with `dns_keys` (`key = value` lines) in
    /// `[dns]`.
    fn build(dns_keys: &str, extra: &str, blocklist: &str, upstream_args: &[&str]) -> Self {
        Self::build_with(dns_keys, extra, blocklist, upstream_args, true)
    }

    /// Like [`DnsLab::build`]; without `explicit_listen` dnsd listens where the config
    /// says (port 53 on the LAN address and every segment gateway).
    fn build_with(
        dns_keys: &str,
        extra: &str,
        blocklist: &str,
        upstream_args: &[&str],
        explicit_listen: bool,
    ) -> Self {
        let lab = Lab::new(1, &[]);
        let upstream = Netns::new(format!("{}-u", lab.prefix));
        let id = lab.prefix.rsplit('-').next().unwrap().to_owned();
        let host_end = format!("u{}x{id}", std::process::id() % 100_000);
        sh(&[
            "ip",
            "link",
            "add",
            &host_end,
            "type",
            "veth",
            "peer",
            "name",
            "u0",
            "netns",
            &upstream.name,
        ]);
        sh(&["ip", "link", "set", &host_end, "netns", &lab.server.name]);
        lab.server
            .ip(&["addr", "add", "10.78.0.1/24", "dev", &host_end]);
        lab.server.ip(&["link", "set", &host_end, "up"]);
        upstream.ip(&["addr", "add", "10.78.0.2/24", "dev", "u0"]);
        upstream.ip(&["link", "set", "u0", "up"]);
        lab.clients[0].ip(&["addr", "add", "10.77.0.2/24", "dev", "c0"]);

        let dnsmasq_log = lab.dir.path().join("dnsmasq.log");
        let mut cmd = upstream.command("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=10.78.0.2",
            "--port=53",
            "--log-queries",
            "--local-ttl=300",
            "--address=/example.test/192.0.2.7",
            "--txt-record=t.example.test,hello upstream",
            "--cname=alias.example.test,www.example.test",
        ]);
        for i in 0..10 {
            cmd.arg(format!("--txt-record=big.example.test,{}", big_txt(i)));
        }
        let dnsmasq = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&dnsmasq_log).unwrap())
            .spawn()
            .expect("spawning dnsmasq (dnsmasq-base)");
        wait_until("dnsmasq listening", Duration::from_secs(10), || {
            upstream
                .command("dig")
                .args([
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "@10.78.0.2",
                    "x.example.test",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("192.0.2.7"))
        });

        let blocklist_path = lab.dir.path().join("ads.hosts");
        std::fs::write(&blocklist_path, blocklist).unwrap();
        let null_list = lab.dir.path().join("null.list");
        std::fs::write(&null_list, "null.example\n").unwrap();
        let extra = format!(
            r#"
[[dns.blocklists]]
path = "{}"
[[dns.blocklists]]
path = "{}"
action = "null"
{extra}"#,
            blocklist_path.display(),
            null_list.display()
        );
        let config = lab.config_with_dns("10.77.0.100", "10.77.0.120", dns_keys, &extra);
        let upstream_args: Vec<String> = upstream_args.iter().map(|a| a.to_string()).collect();
        let dnsd = spawn_dnsd(&lab, &config, &upstream_args, explicit_listen);
        Self {
            dnsd,
            dnsmasq: Some(dnsmasq),
            blocklist: blocklist_path,
            config,
            upstream_args,
            explicit_listen,
            upstream,
            lab,
        }
    }

    /// Kill dnsd (-9) and start it again with the same config and state.
    fn restart_dnsd(&mut self) {
        self.dnsd.kill9();
        self.dnsd = spawn_dnsd(
            &self.lab,
            &self.config,
            &self.upstream_args,
            self.explicit_listen,
        );
    }

    /// `dig @10.77.0.1 ARGS` from the client namespace.
    fn dig(&self, args: &[&str]) -> Answer {
        let out = self.lab.clients[0]
            .command("dig")
            .args([
                "+time=3",
                "+tries=1",
                "+noall",
                "+comments",
                "+answer",
                "@10.77.0.1",
            ])
            .args(args)
            .output()
            .expect("running dig (bind9-dnsutils)");
        Answer::parse(&String::from_utf8_lossy(&out.stdout))
    }

    fn kill_upstream(&mut self) {
        let mut d = self.dnsmasq.take().unwrap();
        d.kill().unwrap();
        d.wait().unwrap();
    }

    fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.lab.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    fn hangup(&self) {
        sh(&["kill", "-HUP", &self.dnsd.child.id().to_string()]);
    }
}

/// Start dnsd in the lab's server namespace (DNS on 10.77.0.1:53, given explicitly
/// if `explicit_listen`) and wait until it is ready; each start logs to a new file.
fn spawn_dnsd(lab: &Lab, config: &Path, upstream_args: &[String], explicit_listen: bool) -> Dnsd {
    let n = std::fs::read_dir(lab.dir.path()).unwrap().count();
    let log = lab.dir.path().join(format!("dnsd-{n}.log"));
    let mut cmd = lab.server.command(env!("CARGO_BIN_EXE_dnsd"));
    cmd.arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(lab.state_dir())
        .args(["--interface", "br0=lan"])
        .args(upstream_args)
        .env("HEARTH_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
    if explicit_listen {
        cmd.args(["--dns-listen", "10.77.0.1:53"]);
    }
    let child = cmd.spawn().expect("spawning dnsd");
    let dnsd = Dnsd { child, log };
    dnsd.wait_log("ready", Duration::from_secs(10));
    dnsd
}

/// A tiny HTTP server on 10.78.0.2:8080 in the upstream namespace answering every
/// request with the current `(status, body)`; runs until the test process exits.
fn http_server(ns: &Netns) -> Arc<Mutex<(u16, String)>> {
    let response = Arc::new(Mutex::new((404, String::new())));
    let path = format!("/run/netns/{}", ns.name);
    let shared = response.clone();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind("10.78.0.2:8080").unwrap();
        bound_tx.send(()).unwrap();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let (status, body) = shared.lock().unwrap().clone();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    bound_rx.recv().unwrap();
    response
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        if let Some(mut d) = self.dnsmasq.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// What dig printed: the status, the header flags and `TYPE RDATA` per answer.
#[derive(Debug)]
struct Answer {
    status: String,
    flags: String,
    records: Vec<String>,
    text: String,
}

impl Answer {
    fn parse(text: &str) -> Self {
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("NO ANSWER")
            .to_owned();
        let flags = text
            .split(";; flags: ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .unwrap_or_default()
            .to_owned();
        let records = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
            .collect();
        Self {
            status,
            flags,
            records,
            text: text.to_owned(),
        }
    }

    fn assert(&self, status: &str, records: &[&str]) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.records, records, "{}", self.text);
    }
}

const RECORDS: &str = r#"
[[dns.records]]
name = "nas"
type = "A"
value = "10.77.0.10"
[[dns.records]]
name = "nas"
type = "AAAA"
value = "fd00:77::10"
[[dns.records]]
name = "files"
type = "CNAME"
value = "nas"
[[dns.records]]
name = "www"
type = "CNAME"
value = "files"
[[dns.records]]
name = "home.arpa"
type = "MX"
value = "10 nas"
[[dns.records]]
name = "nas"
type = "TXT"
value = "v=hearth nas"
[[dns.records]]
name = "printer"
type = "A"
value = "10.77.0.20"
[[dns.records]]
name = "20.0.77.10.in-addr.arpa"
type = "PTR"
value = "laser"
"#;

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn local_zone_over_udp_and_tcp_is_never_forwarded() {
    let l = DnsLab::new(RECORDS, "");
    for tcp in ["+notcp", "+tcp"] {
        l.dig(&[tcp, "nas.home.arpa", "A"])
            .assert("NOERROR", &["A 10.77.0.10"]);
        l.dig(&[tcp, "NAS.home.arpa", "AAAA"])
            .assert("NOERROR", &["AAAA fd00:77::10"]);
        l.dig(&[tcp, "www.home.arpa", "A"]).assert(
            "NOERROR",
            &[
                "CNAME files.home.arpa.",
                "CNAME nas.home.arpa.",
                "A 10.77.0.10",
            ],
        );
        l.dig(&[tcp, "home.arpa", "MX"])
            .assert("NOERROR", &["MX 10 nas.home.arpa."]);
        l.dig(&[tcp, "nas.home.arpa", "TXT"])
            .assert("NOERROR", &["TXT \"v=hearth nas\""]);
        l.dig(&[tcp, "-x", "10.77.0.10"])
            .assert("NOERROR", &["PTR nas.home.arpa."]);
        l.dig(&[tcp, "-x", "10.77.0.20"])
            .assert("NOERROR", &["PTR laser.home.arpa."]);
        l.dig(&[tcp, "-x", "10.77.0.99"]).assert("NXDOMAIN", &[]);
        l.dig(&[tcp, "-x", "fd00:77::10"])
            .assert("NOERROR", &["PTR nas.home.arpa."]);
        l.dig(&[tcp, "-x", "fd00:77::99"]).assert("NXDOMAIN", &[]);
        let nx = l.dig(&[tcp, "nosuch.home.arpa", "A"]);
        nx.assert("NXDOMAIN", &[]);
        assert!(nx.flags.contains("aa"), "{}", nx.text);
        l.dig(&[tcp, "nas.home.arpa", "MX"]).assert("NOERROR", &[]);
    }
    let log = l.dnsmasq_log();
    assert!(
        !log.contains("home.arpa"),
        "a local name went upstream:\n{log}"
    );
    assert!(
        !log.contains("in-addr.arpa") && !log.contains("ip6.arpa"),
        "a local PTR went upstream:\n{log}"
    );
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn url_blocklist_is_downloaded_kept_and_refreshed_on_sighup() {
    let extra = r#"
[[dns.blocklists]]
url = "http://10.78.0.2:8080/ads.hosts"
"#;
    // The server must be up before dnsd downloads at start: build the lab with the
    // list served by a server in the upstream namespace.
    let mut l = DnsLab::build("", extra, "", &["--upstream", "10.78.0.2:53"]);
    let list = http_server(&l.upstream);
    *list.lock().unwrap() = (200, "0.0.0.0 ads.example.test\n".into());
    // dnsd's download at start raced the server: SIGHUP downloads again.
    l.hangup();
    l.dnsd
        .wait_log("downloaded a new version", Duration::from_secs(10));
    wait_until("the URL list blocks", Duration::from_secs(5), || {
        l.dig(&["ads.example.test", "A"]).status == "NXDOMAIN"
    });
    l.dig(&["ok.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);

    // A failing download keeps the last good copy.
    *list.lock().unwrap() = (500, "oops".into());
    l.hangup();
    l.dnsd.wait_log(
        "http://10.78.0.2:8080/ads.hosts: HTTP status 500; keeping the last good copy",
        Duration::from_secs(10),
    );
    l.dig(&["ads.example.test", "A"]).assert("NXDOMAIN", &[]);
    // So does a list that does not parse.
    *list.lock().unwrap() = (200, "<html>not a list</html>\n".into());
    l.hangup();
    l.dnsd.wait_log("not a blocklist", Duration::from_secs(10));
    l.dig(&["ads.example.test", "A"]).assert("NXDOMAIN", &[]);

    // A new version replaces it.
    *list.lock().unwrap() = (200, "0.0.0.0 tracker.example.test\n".into());
    l.hangup();
    wait_until("the new list blocks", Duration::from_secs(10), || {
        l.dig(&["tracker.example.test", "A"]).status == "NXDOMAIN"
    });
    l.dig(&["ads.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);

    // After a restart with the server gone, the copy in the state dir still blocks.
    *list.lock().unwrap() = (404, String::new());
    l.restart_dnsd();
    l.dig(&["tracker.example.test", "A"])
        .assert("NXDOMAIN", &[]);
    l.dnsd.wait_log(
        "HTTP status 404; keeping the last good copy",
        Duration::from_secs(10),
    );
    l.dig(&["tracker.example.test", "A"])
        .assert("NXDOMAIN", &[]);
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn query_log_is_rate_limited_and_counts_what_it_suppressed() {
    let l = DnsLab::build(
        "log_queries = 3",
        RECORDS,
        "",
        &["--upstream", "10.78.0.2:53"],
    );
    // 30 queries as fast as one shell loop sends them (well under a second on an
    // idle machine): the burst of 3 is logged, the rest is counted.
    let script = "for i in $(seq 30); do dig +short +time=2 +tries=1 @10.77.0.1 \
                  q$i.example.test A >/dev/null; done";
    let out = l.lab.clients[0]
        .command("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    l.dnsd
        .wait_log("query log: suppressed", Duration::from_secs(5));
    // Let the once-a-second flush report the tail of the burst.
    std::thread::sleep(Duration::from_millis(1500));
    let log = l.dnsd.log_text();
    let logged = log.matches("query 10.77.0.2: q").count();
    let suppressed: usize = log
        .lines()
        .filter_map(|line| line.split("query log: suppressed ").nth(1))
        .map(|rest| rest.trim_end_matches(" queries").parse::<usize>().unwrap())
        .sum();
    assert!(
        log.contains("query 10.77.0.2: q1.example.test. IN A: forwarded NOERROR"),
        "{log}"
    );
    assert!((3..30).contains(&logged), "{logged} lines logged:\n{log}");
    assert_eq!(logged + suppressed, 30, "{log}");
    // A local name is logged as such once the bucket has refilled.
    l.dig(&["nas.home.arpa", "A"])
        .assert("NOERROR", &["A 10.77.0.10"]);
    l.dnsd.wait_log(
        "query 10.77.0.2: nas.home.arpa. IN A: local NOERROR",
        Duration::from_secs(5),
    );
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn forwards_with_failover_tcp_fallback_and_serves_the_cache_after_upstream_dies() {
    let mut l = DnsLab::new("", "");
    l.dig(&["www.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);
    l.dig(&["+tcp", "t.example.test", "TXT"])
        .assert("NOERROR", &["TXT \"hello upstream\""]);
    // dnsmasq does not chase its --cname into --address names; passed on as is.
    l.dig(&["alias.example.test", "A"])
        .assert("NOERROR", &["CNAME www.example.test."]);
    // dnsmasq truncates the 2 KB answer over UDP; dnsd retries over TCP.
    let big = l.dig(&["+tcp", "big.example.test", "TXT"]);
    assert_eq!(big.status, "NOERROR", "{}", big.text);
    assert_eq!(big.records.len(), 10, "{}", big.text);
    for i in 0..10 {
        assert!(big.text.contains(&big_txt(i)), "{}", big.text);
    }
    l.dnsd.wait_log(
        "truncated answer for big.example.test",
        Duration::from_secs(1),
    );
    // To a UDP client without EDNS dnsd truncates in turn.
    let tc = l.dig(&["+noedns", "+ignore", "+notcp", "big.example.test", "TXT"]);
    assert!(tc.flags.contains("tc"), "{}", tc.text);
    // dig retries over TCP by itself without +ignore.
    assert_eq!(
        l.dig(&["+noedns", "big.example.test", "TXT"]).records.len(),
        10
    );
    // The refusing first upstream was skipped.
    l.dnsd.wait_log(
        "10.78.0.2:53 answers; preferring it",
        Duration::from_secs(1),
    );

    let asked = l.dnsmasq_log().matches("query[A] www.example.test").count();
    l.dig(&["www.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);
    assert_eq!(
        l.dnsmasq_log().matches("query[A] www.example.test").count(),
        asked,
        "the second query was not a cache hit"
    );
    l.kill_upstream();
    let cached = l.dig(&["www.example.test", "A"]);
    cached.assert("NOERROR", &["A 192.0.2.7"]);
    l.dig(&["+tcp", "t.example.test", "TXT"])
        .assert("NOERROR", &["TXT \"hello upstream\""]);
    l.dig(&["uncached.example.test", "A"])
        .assert("SERVFAIL", &[]);
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn blocklists_answer_as_configured_and_reload_on_sighup() {
    let l = DnsLab::new(
        "",
        "# ads\n127.0.0.1 localhost\n0.0.0.0 ads.example tracker.example\n",
    );
    l.dig(&["ads.example", "A"]).assert("NXDOMAIN", &[]);
    l.dig(&["+tcp", "tracker.example", "AAAA"])
        .assert("NXDOMAIN", &[]);
    l.dig(&["null.example", "A"])
        .assert("NOERROR", &["A 0.0.0.0"]);
    l.dig(&["null.example", "AAAA"])
        .assert("NOERROR", &["AAAA ::"]);
    l.dig(&["new.ads.example", "A"]).assert("SERVFAIL", &[]);
    assert!(!l.dnsmasq_log().contains("query[A] ads.example"));

    // A new list is picked up without a restart.
    std::fs::write(&l.blocklist, "0.0.0.0 new.ads.example\n").unwrap();
    l.hangup();
    l.dnsd
        .wait_log("DNS reloaded: 2 blocked names", Duration::from_secs(5));
    l.dig(&["new.ads.example", "A"]).assert("NXDOMAIN", &[]);
    l.dig(&["ads.example", "A"]).assert("SERVFAIL", &[]);

    // A broken list is refused; the old one keeps serving.
    std::fs::write(
        &l.blocklist,
        "0.0.0.0 fine.example\nthis is not a hosts line\n",
    )
    .unwrap();
    l.hangup();
    l.dnsd.wait_log("reload refused", Duration::from_secs(5));
    assert!(
        l.dnsd.log_text().contains("ads.hosts:2:"),
        "{}",
        l.dnsd.log_text()
    );
    l.dig(&["new.ads.example", "A"]).assert("NXDOMAIN", &[]);
    l.dig(&["fine.example", "A"]).assert("SERVFAIL", &[]);
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn a_dhcp_client_name_resolves_forward_and_reverse() {
    let l = DnsLab::new("", "");
    let client = &l.lab.clients[0];
    client.ip(&["addr", "flush", "dev", "c0"]);
    let ev = l.lab.dir.path().join("udhcpc.events");
    let hook = hook_script(l.lab.dir.path(), &ev);
    let _udhcpc = common::udhcpc_bound(client, &hook, &ev, &["-x", "hostname:laptop"]);
    l.dig(&["laptop.home.arpa", "A"])
        .assert("NOERROR", &["A 10.77.0.100"]);
    l.dig(&["+tcp", "-x", "10.77.0.100"])
        .assert("NOERROR", &["PTR laptop.home.arpa."]);
}

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn upstreams_learned_on_the_wan_are_used_when_none_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let lease = dir.path().join("wan-dns.json");
    let lease_arg = lease.to_str().unwrap().to_owned();
    let l = DnsLab::with_upstreams(RECORDS, "", &["--wan-lease", &lease_arg]);
    // No lease yet: forwarded names fail, local ones answer.
    l.dig(&["x.example.test", "A"]).assert("SERVFAIL", &[]);
    l.dig(&["nas.home.arpa", "A"])
        .assert("NOERROR", &["A 10.77.0.10"]);

    // netd's way: temp file + rename.
    let tmp = dir.path().join("wan-dns.json.tmp");
    std::fs::write(
        &tmp,
        r#"{"interface": "wan0", "address": "10.78.0.1/24", "gateway": "10.78.0.2",
"server": "10.78.0.2", "dns": ["10.78.0.2"], "lease_secs": 120, "acked_unix": 1}"#,
    )
    .unwrap();
    std::fs::rename(&tmp, &lease).unwrap();
    wait_until(
        "the learned upstream answering",
        Duration::from_secs(3),
        || l.dig(&["y.example.test", "A"]).status == "NOERROR",
    );
    l.dig(&["z.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);
    assert!(l
        .dnsd
        .log_text()
        .contains("learned on the WAN: [10.78.0.2:53]"));

    // A malformed file keeps the old list.
    std::fs::write(&tmp, "{\"dns\": [").unwrap();
    std::fs::rename(&tmp, &lease).unwrap();
    l.dnsd.wait_log("keeping upstreams", Duration::from_secs(3));
    l.dig(&["m.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);

    // The lease ends: back to no upstreams.
    std::fs::remove_file(&lease).unwrap();
    l.dnsd
        .wait_log("learned on the WAN: []", Duration::from_secs(3));
    l.dig(&["gone.example.test", "A"]).assert("SERVFAIL", &[]);
}

/// Replace the lab's config file: `[dns]` keys `dns_keys`, the lab's first
/// blocklist, [`RECORDS`] and `extra`.
fn rewrite_config(l: &DnsLab, dns_keys: &str, extra: &str) {
    let blocklists = format!(
        "\n[[dns.blocklists]]\npath = \"{}\"\n{RECORDS}\n{extra}",
        l.blocklist.display()
    );
    let path = l
        .lab
        .config_with_dns("10.77.0.100", "10.77.0.120", dns_keys, &blocklists);
    assert_eq!(path, l.config);
}

/// `dig @SERVER ARGS` from the client namespace; `None` when nothing answered.
fn dig_at(l: &DnsLab, server: &str, args: &[&str]) -> Option<Answer> {
    let out = l.lab.clients[0]
        .command("dig")
        .args(["+time=2", "+tries=1", "+noall", "+comments", "+answer"])
        .arg(format!("@{server}"))
        .args(args)
        .output()
        .expect("running dig (bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("status:").then(|| Answer::parse(&text))
}

const GUEST_SEGMENT: &str = r#"
[[network.segments]]
name = "guest"
vlan = 30
subnet = "10.79.0.0/24"
gateway = "10.79.0.1"
"#;

#[test]
#[ignore = "needs root + netns: run with --ignored"]
fn sighup_reloads_upstreams_query_log_cache_and_listen_addresses_or_nothing() {
    // No --dns-listen and no --upstream: addresses and upstreams come from the
    // config. The first upstream refuses (nothing on port 9).
    let l = DnsLab::build_with(
        r#"upstreams = ["10.78.0.2:9"]"#,
        RECORDS,
        "",
        &["--wan-lease", "/nonexistent/wan-dns.json"],
        false,
    );
    // The guest gateway is on the server, and the client can reach it.
    l.lab
        .server
        .ip(&["addr", "add", "10.79.0.1/24", "dev", "br0"]);
    l.lab.clients[0].ip(&["addr", "add", "10.79.0.2/24", "dev", "c0"]);
    l.dig(&["x.example.test", "A"]).assert("SERVFAIL", &[]);
    assert!(
        dig_at(&l, "10.79.0.1", &["nas.home.arpa", "A"]).is_none(),
        "nothing listens on the guest gateway before the reload"
    );

    // B: the working upstream, logged queries, a smaller cache, a guest segment.
    let b_keys = "upstreams = [\"10.78.0.2:53\"]\nlog_queries = 50\n[dns.cache]\nmax_entries = 500";
    rewrite_config(&l, b_keys, GUEST_SEGMENT);
    l.hangup();
    l.dnsd.wait_log("reloaded ", Duration::from_secs(5));
    let log = l.dnsd.log_text();
    for line in [
        "DNS upstreams [10.78.0.2:53]",
        "query log now at most 50 lines a second",
        "DNS cache now 500 entries",
        "DNS on 10.79.0.1:53 (UDP and TCP)",
    ] {
        assert!(log.contains(line), "{line:?} missing from:\n{log}");
    }
    l.dig(&["x.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);
    l.dnsd.wait_log(
        "query 10.77.0.2: x.example.test. IN A",
        Duration::from_secs(5),
    );
    dig_at(&l, "10.79.0.1", &["nas.home.arpa", "A"])
        .expect("the guest gateway answers after the reload")
        .assert("NOERROR", &["A 10.77.0.10"]);
    dig_at(&l, "10.79.0.1", &["+tcp", "nas.home.arpa", "A"])
        .expect("over TCP too")
        .assert("NOERROR", &["A 10.77.0.10"]);

    // C: a bad config (a pool outside every network) is refused as a whole: the
    // upstream, the query log and the guest address stay as in B.
    rewrite_config(
        &l,
        "upstreams = [\"10.78.0.2:9\"]\nlog_queries = 0",
        "[[dhcp.pools]]\nsegment = \"nowhere\"\nrange_start = \"10.1.0.10\"\nrange_end = \"10.1.0.20\"\n",
    );
    l.hangup();
    l.dnsd.wait_log("reload refused", Duration::from_secs(5));
    l.dig(&["y.example.test", "A"])
        .assert("NOERROR", &["A 192.0.2.7"]);
    l.dnsd.wait_log(
        "query 10.77.0.2: y.example.test. IN A",
        Duration::from_secs(5),
    );
    dig_at(&l, "10.79.0.1", &["nas.home.arpa", "A"])
        .expect("the guest gateway still answers")
        .assert("NOERROR", &["A 10.77.0.10"]);

    // D: the segment goes: so does the listener on its gateway; the LAN one stays.
    rewrite_config(&l, "upstreams = [\"10.78.0.2:53\"]", "");
    l.hangup();
    l.dnsd
        .wait_log("DNS no longer on 10.79.0.1:53", Duration::from_secs(5));
    assert!(dig_at(&l, "10.79.0.1", &["nas.home.arpa", "A"]).is_none());
    l.dig(&["nas.home.arpa", "A"])
        .assert("NOERROR", &["A 10.77.0.10"]);
}
