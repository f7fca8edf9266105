//! `dnsd bench dns`: dnsd and dnsmasq as caching forwarders, measured with `dnsperf`.
//!
//! Layout (loopback only): a dnsmasq at 127.77.0.1 is the upstream, authoritative
//! for `bench.test` (every name 192.0.2.1, TTL 1 day); the dnsmasq under test listens
//! on 127.77.0.2, dnsd on 127.77.0.3, both forwarding to it, port 5300 everywhere.
//! Both caches are warmed with the same names, then `dnsperf` asks only those names,
//! so every answer is a cache hit. Runs alternate in ABBA order (dnsmasq, dnsd, dnsd,
//! dnsmasq, ...) so background load on the shared machine hits both alike; the
//! median per server is reported:
//! * QPS: `dnsperf -c CLIENTS -T 2 -q 256 -l SECS`, as fast as it goes;
//! * p99: `dnsperf -Q RATE -v` at a fixed rate (default 10k QPS) in many short
//!   slices, each query's latency from the verbose lines, which go to a file (a pipe
//!   to this process would add its own wake-ups to every latency). The median of the
//!   slices' p99 is reported: on this VM the host stalls every vCPU for milliseconds
//!   now and then, which ruins the p99 of whichever slice it hits, so one long run
//!   per server compares luck, many short interleaved ones compare the servers;
//! * memory: a fresh dnsd's RSS before and after 100k distinct names are cached.

use std::process::Command;

use super::{dnsd_exe, number_after, output, wait, BenchError, Proc, Scratch};

const UPSTREAM: &str = "127.77.0.1";
const DNSMASQ: &str = "127.77.0.2";
const DNSD: &str = "127.77.0.3";
/// A second, fresh dnsd for the memory figure.
const DNSD_MEMORY: &str = "127.77.0.4";
const PORT: &str = "5300";

/// `dnsd bench dns` options.
#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    /// Distinct cached names the load cycles through.
    #[arg(long, default_value_t = 1000)]
    pub names: usize,
    /// Seconds per QPS run.
    #[arg(long, default_value_t = 5)]
    pub secs: u32,
    /// QPS runs per server (alternating).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Fixed-rate latency slices per server (alternating).
    #[arg(long, default_value_t = 10)]
    pub slices: usize,
    /// Seconds per latency slice.
    #[arg(long, default_value_t = 2)]
    pub slice_secs: u32,
    /// The fixed rate of the latency runs (queries per second).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u32,
    /// dnsperf clients (sockets) of the QPS runs.
    #[arg(long, default_value_t = 8)]
    pub clients: u32,
    /// Names cached for the memory figure.
    #[arg(long, default_value_t = 100_000)]
    pub memory_records: usize,
}

/// One server's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub qps: f64,
    pub p99_ms: f64,
}

/// Run dnsperf against `server`; its standard output, which goes through the file
/// `out` (see the module docs).
fn dnsperf(
    server: &str,
    data: &std::path::Path,
    extra: &[String],
    out: &std::path::Path,
) -> Result<String, BenchError> {
    let io = |source| BenchError::Io {
        path: out.to_owned(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    output(
        "dnsperf",
        Command::new("dnsperf")
            .args(["-s", server, "-p", PORT, "-d"])
            .arg(data)
            .args(extra)
            .stdout(file),
    )?;
    std::fs::read_to_string(out).map_err(io)
}

/// Server indices for round `r` in ABBA order.
fn abba(r: usize) -> [usize; 2] {
    if r.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// The 99th percentile of the latencies in dnsperf's `-v` lines
/// (`> NOERROR name A 0.000123`), in milliseconds; with the share of non-NOERROR.
pub fn p99_ms(verbose: &str) -> Option<(f64, f64)> {
    let mut lat: Vec<f64> = Vec::new();
    let mut bad = 0usize;
    for line in verbose.lines().filter(|l| l.starts_with("> ")) {
        if !line.starts_with("> NOERROR ") {
            bad += 1;
        }
        if let Some(s) = line.rsplit(' ').next().and_then(|s| s.parse().ok()) {
            lat.push(s);
        }
    }
    if lat.is_empty() {
        return None;
    }
    lat.sort_by(f64::total_cmp);
    let idx = ((lat.len() as f64) * 0.99).ceil() as usize - 1;
    Some((
        lat[idx.min(lat.len() - 1)] * 1000.0,
        bad as f64 / lat.len() as f64,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    number_after(&status, "VmRSS:").map(|v| v as u64)
}

fn answers(server: &str) -> bool {
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'u', b'p', 5, b'b', b'e', b'n', b'c', b'h',
        4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
    ];
    let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(300)));
    let mut buf = [0u8; 512];
    sock.send_to(&q, format!("{server}:{PORT}")).is_ok() && sock.recv(&mut buf).is_ok()
}

/// Run the benchmark and print the table.
/// dnsd on `listen`:PORT, forwarding to the bench's upstream, logging warnings only.
fn spawn_dnsd(
    config: &std::path::Path,
    state: &std::path::Path,
    listen: &str,
    log: &std::path::Path,
) -> Result<Proc, BenchError> {
    Proc::spawn(
        "dnsd",
        Command::new(dnsd_exe())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .args(["--dns-listen", &format!("{listen}:{PORT}")])
            .args(["--upstream", &format!("{UPSTREAM}:{PORT}")])
            .args(["--wan-lease", "/nonexistent"])
            .env("HEARTH_LOG", "warn"),
        log,
    )
}

pub fn run(a: &DnsArgs) -> Result<(), BenchError> {
    let dir = Scratch::new()?;
    let names: String = (0..a.names)
        .map(|i| format!("h{i}.bench.test A\n"))
        .collect();
    let names = dir.write("names.txt", &names)?;
    let many: String = (0..a.memory_records)
        .map(|i| format!("m{i}.bench.test A\n"))
        .collect();
    let many = dir.write("many.txt", &many)?;

    let dnsmasq = |name: &str, listen: &str, extra: &[&str]| {
        let log = dir.join(&format!("{name}.log"));
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--pid-file=",
            "--log-facility=/dev/null",
            &format!("--listen-address={listen}"),
            &format!("--port={PORT}"),
        ])
        .args(extra);
        Proc::spawn("dnsmasq", &mut cmd, &log)
    };
    let _upstream = dnsmasq(
        "upstream",
        UPSTREAM,
        &["--address=/bench.test/192.0.2.1", "--local-ttl=86400"],
    )?;
    let _dnsmasq = dnsmasq(
        "dnsmasq",
        DNSMASQ,
        &[
            &format!("--server={UPSTREAM}#{PORT}"),
            "--cache-size=10000",
            "--dns-forward-max=1000",
        ],
    )?;
    let config = dir.write(
        "config.toml",
        "version = 1\n[system]\nhostname = \"bench\"\n[dns.cache]\nmax_entries = 1000000\n\
         max_bytes = \"1GiB\"\n",
    )?;
    let dnsd_log = dir.join("dnsd.log");
    let mut dnsd = spawn_dnsd(&config, &dir.join("state"), DNSD, &dnsd_log)?;
    for s in [UPSTREAM, DNSMASQ, DNSD] {
        wait(&format!("DNS on {s}:{PORT}"), 10, || answers(s))?;
    }
    dnsd.check_alive(&dnsd_log)?;

    // Warm both caches with every name (and check they all resolve).
    for s in [DNSMASQ, DNSD] {
        let out = dnsperf(
            s,
            &names,
            &["-n".into(), "1".into(), "-Q".into(), "5000".into()],
            &dir.join("warm.out"),
        )?;
        let done = number_after(&out, "Queries completed:").unwrap_or_default();
        if done < a.names as f64 {
            return Err(BenchError::Parse {
                what: format!("warming {s}"),
                field: "every query completed",
                output: out,
            });
        }
    }

    let servers = [("dnsmasq", DNSMASQ), ("dnsd", DNSD)];
    let perf_out = dir.join("dnsperf.out");
    let mut qps: [Vec<f64>; 2] = Default::default();
    for round in 0..a.rounds {
        for i in abba(round) {
            let (name, addr) = servers[i];
            let out = dnsperf(
                addr,
                &names,
                &[
                    "-l".into(),
                    a.secs.to_string(),
                    "-c".into(),
                    a.clients.to_string(),
                    "-T".into(),
                    "2".into(),
                    "-q".into(),
                    "256".into(),
                ],
                &perf_out,
            )?;
            let q = number_after(&out, "Queries per second:").ok_or(BenchError::Parse {
                what: format!("dnsperf against {name}"),
                field: "Queries per second:",
                output: out.clone(),
            })?;
            eprintln!("QPS round {}: {name} {q:.0} QPS", round + 1);
            qps[i].push(q);
        }
    }
    let mut p99: [Vec<f64>; 2] = Default::default();
    for slice in 0..a.slices {
        for i in abba(slice) {
            let (name, addr) = servers[i];
            let out = dnsperf(
                addr,
                &names,
                &[
                    "-l".into(),
                    a.slice_secs.to_string(),
                    "-Q".into(),
                    a.rate.to_string(),
                    "-v".into(),
                ],
                &perf_out,
            )?;
            let (ms, bad) = p99_ms(&out).ok_or(BenchError::Parse {
                what: format!("dnsperf -v against {name}"),
                field: "> NOERROR ... latency lines",
                output: out.lines().take(40).collect::<Vec<_>>().join("\n"),
            })?;
            eprintln!(
                "latency slice {}: {name} p99 {ms:.3} ms at {} QPS ({:.2}% not NOERROR)",
                slice + 1,
                a.rate,
                bad * 100.0
            );
            p99[i].push(ms);
        }
    }
    dnsd.check_alive(&dnsd_log)?;
    let m = Figures {
        qps: median(qps[0].clone()),
        p99_ms: median(p99[0].clone()),
    };
    let d = Figures {
        qps: median(qps[1].clone()),
        p99_ms: median(p99[1].clone()),
    };

    // Memory: a fresh dnsd (so the arenas the load runs grew do not hide it), RSS
    // before and after caching `memory_records` names.
    let mem_log = dir.join("dnsd-memory.log");
    let mut fresh = spawn_dnsd(&config, &dir.join("state-memory"), DNSD_MEMORY, &mem_log)?;
    wait(&format!("DNS on {DNSD_MEMORY}:{PORT}"), 10, || {
        answers(DNSD_MEMORY)
    })?;
    let before = rss_kib(fresh.pid()).unwrap_or_default();
    let out = dnsperf(
        DNSD_MEMORY,
        &many,
        &["-n".into(), "1".into(), "-Q".into(), "20000".into()],
        &dir.join("memory.out"),
    )?;
    let cached = number_after(&out, "Queries completed:").unwrap_or_default();
    let after = rss_kib(fresh.pid()).unwrap_or_default();
    fresh.check_alive(&mem_log)?;

    println!(
        "DNS, cached names: median QPS of {} runs, median p99 of {} slices of {} s, each",
        a.rounds, a.slices, a.slice_secs
    );
    println!("  server    QPS        p99 @ {} QPS", a.rate);
    println!("  dnsmasq   {:>9.0}  {:>8.3} ms", m.qps, m.p99_ms);
    println!("  dnsd      {:>9.0}  {:>8.3} ms", d.qps, d.p99_ms);
    println!(
        "  dnsd/dnsmasq QPS ratio {:.2} (target >= 1.5), p99 {}",
        d.qps / m.qps,
        if d.p99_ms <= m.p99_ms {
            "no worse (target met)"
        } else {
            "WORSE than dnsmasq"
        }
    );
    println!(
        "  dnsd RSS: {before} KiB fresh, {after} KiB with {cached} cached records \
         ({:.0} bytes per record)",
        (after.saturating_sub(before) as f64 * 1024.0) / cached.max(1.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_from_verbose_lines() {
        let mut text = String::from("[Status] x\n");
        for i in 1..=100 {
            text.push_str(&format!("> NOERROR h{i}.bench.test A 0.{i:06}\n"));
        }
        text.push_str("> SERVFAIL x.bench.test A 0.000001\n");
        let (ms, bad) = p99_ms(&text).unwrap();
        assert!((ms - 0.099).abs() < 1e-9, "{ms}");
        assert!((bad - 1.0 / 101.0).abs() < 1e-9);
        assert!(p99_ms("nothing").is_none());
    }
}
