//! A small network lab for the privileged tests: a server namespace with a bridge
//! (`br0`, 10.77.0.1/24) and one namespace per client, each wired to the bridge by a
//! veth pair whose client end is `c0`. Names are unique per process and test; every
//! namespace and process is removed on drop.
//!
//! These tests need root (they create network namespaces). They are `#[ignore]`d with
//! that reason and *fail* (never skip) when run without it.

#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dhcproto::v4::{
    Decodable, Decoder, DhcpOption, Encodable, Encoder, Flags, Message, MessageType, OptionCode,
};
use nix::sched::CloneFlags;
use nix::sys::socket::{self, sockopt};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Run a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Self {
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A command to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run `f` on a thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The server namespace plus client namespaces.
#[derive(Debug)]
pub struct Lab {
    pub prefix: String,
    pub server: Netns,
    pub clients: Vec<Netns>,
    pub dir: tempfile::TempDir,
}

pub const SERVER_IP: &str = "10.77.0.1";

impl Lab {
    /// A lab with `n` clients; client `i` gets MAC `macs[i]` if given.
    pub fn new(n: usize, macs: &[&str]) -> Self {
        let id = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("dnsdt{}-{id}", std::process::id());
        let server = Netns::new(format!("{prefix}-s"));
        server.ip(&["link", "add", "br0", "type", "bridge"]);
        server.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
        server.ip(&["link", "set", "br0", "up"]);
        let mut clients = Vec::new();
        for i in 0..n {
            let ns = Netns::new(format!("{prefix}-c{i}"));
            let host_end = format!("d{}x{id}x{i}", std::process::id() % 100_000);
            sh(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "c0", "netns",
                &ns.name,
            ]);
            sh(&["ip", "link", "set", &host_end, "netns", &server.name]);
            server.ip(&["link", "set", &host_end, "master", "br0", "up"]);
            if let Some(mac) = macs.get(i) {
                ns.ip(&["link", "set", "c0", "address", mac]);
            }
            ns.ip(&["link", "set", "c0", "up"]);
            clients.push(ns);
        }
        Self {
            prefix,
            server,
            clients,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Write the config with a pool `start..=end` and return its path.
    pub fn config(&self, start: &str, end: &str, extra: &str) -> PathBuf {
        self.config_with_dns(start, end, "", extra)
    }

    /// Like [`Lab::config`], with `dns_keys` (`key = value` lines) in `[dns]`.
    pub fn config_with_dns(&self, start: &str, end: &str, dns_keys: &str, extra: &str) -> PathBuf {
        self.write_config(&config_text(start, end, "1m", dns_keys, extra))
    }

    /// Write `text` as the config (replacing the last one) and return its path.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Start dnsd in the server namespace on `br0` and wait until it is ready.
    pub fn start_dnsd(&self, config: &Path) -> Dnsd {
        self.start_dnsd_with(config, &["--interface", "br0=lan"])
    }

    /// Start dnsd in the server namespace with `args` after `--config` and
    /// `--state-dir` and wait until it is ready.
    pub fn start_dnsd_with(&self, config: &Path, args: &[&str]) -> Dnsd {
        let log = self.dir.path().join(format!(
            "dnsd-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let mut cmd = self.server.command(env!("CARGO_BIN_EXE_dnsd"));
        cmd.arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .env("HEARTH_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let child = cmd.spawn().expect("spawning dnsd");
        let d = Dnsd { child, log };
        d.wait_log("ready", Duration::from_secs(10));
        d
    }
}

/// The test config: the LAN (`br-lan`, 10.77.0.1/24) with a pool `start..=end`
/// leasing for `lease`, `dns_keys` in `[dns]` and `extra` lines in `[dhcp]`.
pub fn config_text(start: &str, end: &str, lease: &str, dns_keys: &str, extra: &str) -> String {
    format!(
        r#"version = 1
[system]
hostname = "hearth"
[network.lan]
bridge = "br-lan"
address = "10.77.0.1/24"
[dns]
domain = "home.arpa"
{dns_keys}
[dhcp]
ntp_servers = ["10.77.0.5", "10.77.0.6"]
pools = [ {{ segment = "lan", range_start = "{start}", range_end = "{end}", lease_time = "{lease}", routes = [ {{ destination = "192.168.50.0/24", gateway = "10.77.0.3" }} ] }} ]
{extra}
"#
    )
}

/// A running dnsd; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Dnsd {
    pub child: Child,
    pub log: PathBuf,
}

impl Dnsd {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsd log never said {needle:?}:\n{}", self.log_text());
    }

    /// Send SIGHUP (reload the config).
    pub fn hup(&self) {
        sh(&["kill", "-HUP", &self.child.id().to_string()]);
    }

    /// How often the log contains `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL dnsd");
        self.child.wait().expect("reaping dnsd");
    }
}

impl Drop for Dnsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for `cond`, panicking with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A client-side hook script that configures the address and logs every event as
/// `reason ip` lines to `events`. Works for udhcpc (`$1`, `$ip`, `$subnet`),
/// dhclient (`$reason`, `$new_ip_address`, `$new_subnet_mask`) and dhcpcd (the same
/// names as dhclient; it configures the address itself).
pub fn hook_script(dir: &Path, events: &Path) -> PathBuf {
    let path = dir.join(format!(
        "hook-{}.sh",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let text = format!(
        r#"#!/bin/sh
ev="${{reason:-$1}}"
addr="${{new_ip_address:-$ip}}"
mask="${{new_subnet_mask:-$subnet}}"
iface="$interface"
# dhcpcd (which sets $protocol) configures the interface itself.
[ -n "$protocol" ] || case "$ev" in
  bound|renew|BOUND|RENEW|REBIND|REBOOT)
    ip addr flush dev "$iface"
    ip addr add "$addr/$mask" dev "$iface" ;;
  deconfig|EXPIRE|FAIL|RELEASE|STOP)
    ip addr flush dev "$iface" ;;
esac
echo "$ev $addr router=${{new_routers:-$router}} dns=${{new_domain_name_servers:-$dns}} domain=${{new_domain_name:-$domain}} mtu=${{new_interface_mtu:-$mtu}} ntp=${{new_ntp_servers:-$ntpsrv}} routes=${{new_rfc3442_classless_static_routes:-${{new_classless_static_routes:-$staticroutes}}}} lease=${{new_dhcp_lease_time:-$lease}}" >> {events}
exit 0
"#,
        events = events.display()
    );
    std::fs::write(&path, text).unwrap();
    sh(&["chmod", "+x", path.to_str().unwrap()]);
    path
}

/// The events a hook script recorded.
pub fn events(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A raw DHCP client speaking from inside a namespace with a made-up MAC, for tests
/// that need many clients or exact messages (NAK). Call only on a thread inside the
/// client namespace ([`Netns::run`]).
pub struct RawClient {
    sock: UdpSocket,
}

impl RawClient {
    pub fn new() -> Self {
        let sock = UdpSocket::bind("0.0.0.0:68").expect("binding port 68");
        socket::setsockopt(&sock, sockopt::BindToDevice, &"c0".into()).unwrap();
        socket::setsockopt(&sock, sockopt::Broadcast, &true).unwrap();
        socket::setsockopt(&sock, sockopt::ReuseAddr, &true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Self { sock }
    }

    fn send(&self, msg: &Message) {
        let mut buf = Vec::new();
        msg.encode(&mut Encoder::new(&mut buf)).unwrap();
        self.sock
            .send_to(&buf, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
            .unwrap();
    }

    /// Wait for the reply to `xid`.
    fn recv(&self, xid: u32, timeout: Duration) -> Option<Message> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        while Instant::now() < end {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) {
                if m.xid() == xid {
                    return Some(m);
                }
            }
        }
        None
    }

    pub fn message(mac: [u8; 6], kind: MessageType) -> Message {
        let mut m = Message::default();
        m.set_chaddr(&mac)
            .set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    /// Send `msg`, return the reply's type and yiaddr.
    pub fn exchange(&self, msg: &Message) -> Option<(MessageType, Ipv4Addr)> {
        for _ in 0..3 {
            self.send(msg);
            if let Some(r) = self.recv(msg.xid(), Duration::from_secs(1)) {
                return Some((r.opts().msg_type()?, r.yiaddr()));
            }
        }
        None
    }

    /// A full DISCOVER/OFFER/REQUEST/ACK; the ACKed address.
    pub fn dora(&self, mac: [u8; 6]) -> Option<Ipv4Addr> {
        let (kind, offered) = self.exchange(&Self::message(mac, MessageType::Discover))?;
        assert_eq!(kind, MessageType::Offer);
        let mut req = Self::message(mac, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offered));
        req.opts_mut()
            .insert(DhcpOption::ServerIdentifier(SERVER_IP.parse().unwrap()));
        let (kind, ip) = self.exchange(&req)?;
        (kind == MessageType::Ack).then_some(ip)
    }

    /// An INIT-REBOOT REQUEST for `ip` (no server id): the reply type.
    pub fn request(&self, mac: [u8; 6], ip: Ipv4Addr) -> Option<MessageType> {
        let mut req = Self::message(mac, MessageType::Request);
        req.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        req.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
        ]));
        self.exchange(&req).map(|(k, _)| k)
    }
}

/// Append a line to a file (for shared logs between threads).
pub fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// busybox `udhcpc` in the foreground on `c0` of `ns` with `hook` as its script
/// (which logs to `ev`) and `extra` arguments, once it is bound.
pub fn udhcpc_bound(ns: &Netns, hook: &Path, ev: &Path, extra: &[&str]) -> KillOnDrop {
    let child = ns
        .command("busybox")
        .args(["udhcpc", "-f", "-i", "c0", "-s"])
        .arg(hook)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning busybox udhcpc");
    let udhcpc = KillOnDrop(child);
    wait_until("udhcpc bound", Duration::from_secs(15), || {
        events(ev).iter().any(|l| l.starts_with("bound "))
    });
    udhcpc
}

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
