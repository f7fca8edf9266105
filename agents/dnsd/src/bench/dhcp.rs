//! `dnsd bench dhcp`: full DORA handshakes per second, dnsd vs dnsmasq, with
//! `perfdhcp` across a veth pair between two network namespaces.
//!
//! The server namespace holds `hb-s0` (10.99.0.1/16) and the server under test with
//! one pool, 10.99.1.0-10.99.255.250 (lease 12 h, leases on the real disk: each
//! server's own crash-safety costs are part of the figure; dnsmasq with `--no-ping`,
//! as dnsd does not ping either). The client namespace runs `perfdhcp -r RATE -p
//! SECS -R CLIENTS` on `hb-c0` (10.99.0.2; perfdhcp speaks as a relay agent from
//! that address, so replies are unicast to it). A rate is lossless when neither DISCOVER-OFFER nor
//! REQUEST-ACK dropped a packet. Rates double from `--start` until a run loses
//! packets; then bisect between the last lossless and the first lossy rate. Every
//! run starts a fresh server with an empty lease database.

use std::process::Command;

use super::{dnsd_exe, number_after, output, wait, BenchError, Proc, Scratch};

/// `dnsd bench dhcp` options.
#[derive(Debug, clap::Args)]
pub struct DhcpArgs {
    /// First rate tried (DORA/s).
    #[arg(long, default_value_t = 100)]
    pub start: u32,
    /// Highest rate tried.
    #[arg(long, default_value_t = 20_000)]
    pub max: u32,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    pub secs: u32,
    /// Distinct clients (MACs) perfdhcp simulates.
    #[arg(long, default_value_t = 50_000)]
    pub clients: u32,
    /// Bisection steps after the first loss.
    #[arg(long, default_value_t = 3)]
    pub steps: u32,
}

/// A pair of namespaces joined by a veth pair; deleted on drop.
struct Lab {
    server: String,
    client: String,
}

fn ip(args: &[&str]) -> Result<(), BenchError> {
    output("ip", Command::new("ip").args(args)).map(|_| ())
}

impl Lab {
    fn new() -> Result<Self, BenchError> {
        let id = std::process::id();
        let lab = Self {
            server: format!("dnsd-bench-s{id}"),
            client: format!("dnsd-bench-c{id}"),
        };
        ip(&["netns", "add", &lab.server])?;
        ip(&["netns", "add", &lab.client])?;
        ip(&[
            "link",
            "add",
            "hb-s0",
            "netns",
            &lab.server,
            "type",
            "veth",
            "peer",
            "name",
            "hb-c0",
            "netns",
            &lab.client,
        ])?;
        for (ns, dev) in [(&lab.server, "hb-s0"), (&lab.client, "hb-c0")] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&[
            "-n",
            &lab.server,
            "addr",
            "add",
            "10.99.0.1/16",
            "dev",
            "hb-s0",
        ])?;
        // perfdhcp acts as a relay agent: it needs an address (its giaddr).
        ip(&[
            "-n",
            &lab.client,
            "addr",
            "add",
            "10.99.0.2/16",
            "dev",
            "hb-c0",
        ])?;
        Ok(lab)
    }

    fn exec(&self, ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Dnsmasq,
    Dnsd,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Dnsmasq => "dnsmasq",
            Self::Dnsd => "dnsd",
        }
    }
}

/// What one perfdhcp run saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// DISCOVERs sent.
    pub sent: f64,
    /// Packets dropped in both exchanges.
    pub drops: f64,
    /// Completed DORA per second (perfdhcp's `Rate:`).
    pub rate: f64,
}

/// Parse perfdhcp's report.
pub fn parse(text: &str) -> Option<Run> {
    // From the line after `***Statistics for: NAME***` to the next `***` header.
    let section = |name: &str| {
        let start = text.find(name)?;
        let rest = &text[start..];
        let rest = &rest[rest.find('\n')? + 1..];
        Some(&rest[..rest.find("***").unwrap_or(rest.len())])
    };
    let discover = section("DISCOVER-OFFER")?;
    let request = section("REQUEST-ACK")?;
    let sent = number_after(discover, "sent packets:")?;
    let drops = number_after(discover, "drops:")? + number_after(request, "drops:")?;
    Some(Run {
        sent,
        drops,
        rate: number_after(text, "Rate:").unwrap_or_default(),
    })
}

fn one_run(
    lab: &Lab,
    dir: &Scratch,
    server: Server,
    rate: u32,
    a: &DhcpArgs,
) -> Result<Run, BenchError> {
    let state = dir.join(&format!("{}-{rate}", server.name()));
    std::fs::create_dir_all(&state).map_err(|source| BenchError::Io {
        path: state.clone(),
        source,
    })?;
    let log = dir.join(&format!("{}-{rate}.log", server.name()));
    let mut proc = match server {
        Server::Dnsmasq => {
            let mut cmd = lab.exec(&lab.server, std::path::Path::new("dnsmasq"));
            cmd.args([
                "--no-daemon",
                "--port=0",
                "--interface=hb-s0",
                "--bind-interfaces",
                "--pid-file=",
                "--log-facility=/dev/null",
                "--no-ping",
                "--dhcp-authoritative",
                "--dhcp-lease-max=1000000",
                "--dhcp-range=10.99.1.0,10.99.255.250,255.255.0.0,12h",
            ])
            .arg(format!(
                "--dhcp-leasefile={}",
                state.join("dnsmasq.leases").display()
            ));
            Proc::spawn("dnsmasq", &mut cmd, &log)?
        }
        Server::Dnsd => {
            let config = dir.write(
                "dhcp.toml",
                "version = 1\n[system]\nhostname = \"bench\"\n[network.lan]\n\
                 address = \"10.99.0.1/16\"\n[dhcp]\npools = [ { segment = \"lan\", \
                 range_start = \"10.99.1.0\", range_end = \"10.99.255.250\" } ]\n",
            )?;
            let mut cmd = lab.exec(&lab.server, &dnsd_exe());
            cmd.arg("--config")
                .arg(&config)
                .arg("--state-dir")
                .arg(&state)
                .args(["--interface", "hb-s0=lan"])
                .args(["--dns-listen", "127.0.0.1:5353"])
                .args(["--wan-lease", "/nonexistent"])
                .env("HEARTH_LOG", "warn");
            Proc::spawn("dnsd", &mut cmd, &log)?
        }
    };
    // Up when its DHCP socket is bound.
    let ns = lab.server.clone();
    wait(&format!("{} on hb-s0", server.name()), 10, || {
        Command::new("ip")
            .args(["netns", "exec", &ns, "ss", "-uln", "sport = :67"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(":67"))
    })?;
    proc.check_alive(&log)?;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client,
            "perfdhcp",
            "-4",
            "-l",
            "hb-c0",
        ])
        .args(["-r", &rate.to_string()])
        .args(["-p", &a.secs.to_string()])
        .args(["-R", &a.clients.to_string()])
        .args(["-W", "1000000"])
        .output()
        .map_err(|source| BenchError::Spawn {
            program: "perfdhcp".into(),
            source,
        })?;
    proc.check_alive(&log)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse(&text).ok_or(BenchError::Parse {
        what: format!("perfdhcp against {} at {rate}/s", server.name()),
        field: "DISCOVER-OFFER / REQUEST-ACK statistics",
        output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    })
}

/// The highest lossless rate of `server`.
fn lossless(lab: &Lab, dir: &Scratch, server: Server, a: &DhcpArgs) -> Result<u32, BenchError> {
    let mut good = 0u32;
    let mut bad = None;
    let mut rate = a.start;
    let try_rate = |rate: u32| -> Result<bool, BenchError> {
        let r = one_run(lab, dir, server, rate, a)?;
        let ok = r.drops == 0.0 && r.sent > 0.0;
        eprintln!(
            "{} at {rate}/s: {:.0} sent, {:.0} dropped, {:.0} DORA/s {}",
            server.name(),
            r.sent,
            r.drops,
            r.rate,
            if ok { "lossless" } else { "LOSSY" }
        );
        Ok(ok)
    };
    while rate <= a.max {
        if try_rate(rate)? {
            good = rate;
            rate = rate.saturating_mul(2);
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut hi) = bad {
        for _ in 0..a.steps {
            let mid = good + (hi - good) / 2;
            if mid <= good || mid >= hi {
                break;
            }
            if try_rate(mid)? {
                good = mid;
            } else {
                hi = mid;
            }
        }
    }
    Ok(good)
}

/// Run the benchmark and print the result.
pub fn run(a: &DhcpArgs) -> Result<(), BenchError> {
    let dir = Scratch::new()?;
    let lab = Lab::new()?;
    let m = lossless(&lab, &dir, Server::Dnsmasq, a)?;
    let d = lossless(&lab, &dir, Server::Dnsd, a)?;
    println!("DHCP, full DORA with perfdhcp over a veth pair, highest lossless rate:");
    println!("  dnsmasq  {m:>6}/s");
    println!(
        "  dnsd     {d:>6}/s{}",
        if d >= a.max { " (the --max tried)" } else { "" }
    );
    println!(
        "  dnsd/dnsmasq {:.1}x (target >= 10x)",
        f64::from(d) / f64::from(m.max(1))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_perfdhcp_report() {
        let text = "Running: perfdhcp -4 -l hb-c0 -r 100 -p 5\n\
***Statistics for: DISCOVER-OFFER***\nsent packets: 500\nreceived packets: 500\n\
drops: 0\ndrops ratio: 0 %\n\
***Statistics for: REQUEST-ACK***\nsent packets: 500\nreceived packets: 498\n\
drops: 2\ndrops ratio: 0.4 %\n\n***Rate statistics***\nRate: 99.8 4-way exchanges/second\n";
        let r = parse(text).unwrap();
        assert_eq!(r.rate, 99.8);
        let r = parse(text).unwrap();
        assert_eq!(r.sent, 500.0);
        assert_eq!(r.drops, 2.0);
        assert!(r.rate > 0.0);
        assert!(parse("nothing").is_none());
    }
}
