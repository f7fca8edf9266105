//! `netd bench`: is reconciling as fast as the shell script it replaces?
//!
//! Measured in one run, each sample in a fresh network namespace (a thread that
//! `unshare(CLONE_NEWNET)`s; its children inherit it) holding two veth "NICs",
//! `wan0` and `lan0`:
//! - **netd**: `netd --once --config <generated>` as a process — config parsing,
//!   planning, every netlink write, sysctls and the nft load, as an operator runs it;
//! - **script**: the same state written the classic way — `sh -e` running one `ip`
//!   command per step (bridge, ports, 32 VLANs with addresses, WAN, default route),
//!   the sysctls as `echo > /proc/sys/...`, and one `nft -f` of the *same* ruleset.
//!
//! The two alternate (which one goes first flips every run) so drift in host load
//! hits both alike; medians are printed with their ratio (target ≤ 1.0×). Then the
//! **no-change reconcile**: [`crate::apply`] again in netd's namespace with the same
//! config, in process, as `netd --once` would (a full read of the kernel), with a
//! per-step breakdown that also times the same reads through rtnetlink's typed dumps
//! for comparison; it must report `unchanged` or the bench fails. And the
//! **resident no-change reconcile** (target ≤ 10 ms): the daemon's own
//! [`Resident`] (subscribed, one full apply first), re-applying the unchanged config
//! file as on a SIGHUP — the quick pass unless a notification arrived, in which case
//! the sample is a full pass and is counted as such in the report.
//!
//! The generated config has `--segments` VLAN segments (default 32) and a firewall
//! of about 500 rules: every segment may reach the WAN, the LAN reaches every segment,
//! segments may not reach the LAN, each segment gets DNS/DHCP/ping on the appliance,
//! and `--port-forwards` DNAT rules. Needs root and a kernel with 8021q (the host's
//! lacks it: `hearth bench net` runs this inside a QEMU guest), `ip` (busybox or
//! iproute2) and `sh` on `PATH`, and `nft`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::events::LinkEvents;
use crate::link::LinkOps;
use crate::netlink::Netlink;
use crate::nft::Nft;
use crate::plan::{Missing, SYSCTLS};
use crate::resident::{Pass, Resident};

/// `netd bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Samples of each variant.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// VLAN segments in the generated config.
    #[arg(long, default_value_t = 32)]
    pub segments: usize,
    /// Port forwards (one DNAT rule each) in the generated config.
    #[arg(long, default_value_t = 270)]
    pub port_forwards: usize,
    /// Scratch directory (config, script, ruleset).
    #[arg(long, default_value = "/tmp/netd-bench")]
    pub dir: PathBuf,
}

/// A bench failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file could not be written.
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The generated config is invalid (a bug in the generator).
    #[error("the generated config is invalid: {0}")]
    Config(String),
    /// Setting up a namespace or its veths failed.
    #[error("setting up a network namespace: {0}")]
    Setup(String),
    /// A variant failed to run or exited non-zero.
    #[error("{variant} failed: {message}")]
    Run {
        variant: &'static str,
        message: String,
    },
    /// The re-apply was not a no-op.
    #[error("the no-change re-apply wrote something: {0}")]
    NotUnchanged(String),
}

/// The generated `[network]` config.
pub fn config(segments: usize, port_forwards: usize) -> String {
    let mut t = String::from(
        "version = 1\n[system]\nhostname = \"bench\"\n\n[network]\ninterfaces = [\n  \
         { name = \"wan0\", role = \"wan\" },\n  { name = \"lan0\", role = \"lan\" },\n]\n\
         [network.wan]\nmode = \"static\"\naddress = \"203.0.113.2/24\"\ngateway = \"203.0.113.1\"\n\
         dns = [\"203.0.113.53\"]\n[network.lan]\naddress = \"192.168.1.1/24\"\n",
    );
    for i in 0..segments {
        let _ = write!(
            t,
            "\n[[network.segments]]\nname = \"s{i:02}\"\nvlan = {}\nsubnet = \"10.100.{i}.0/24\"\ngateway = \"10.100.{i}.1\"\n",
            100 + i
        );
    }
    t.push_str("\n[network.firewall]\nforward = [\n");
    for i in 0..segments {
        let _ = writeln!(
            t,
            "  {{ from = \"s{i:02}\", to = \"wan\", action = \"accept\" }},"
        );
        let _ = writeln!(
            t,
            "  {{ from = \"lan\", to = \"s{i:02}\", action = \"accept\" }},"
        );
        let _ = writeln!(
            t,
            "  {{ from = \"s{i:02}\", to = \"lan\", action = \"drop\" }},"
        );
    }
    t.push_str(
        "]\nallow = [\n  { zone = \"lan\", services = [\"dns\", \"dhcp\", \"smb\", \"ping\"] },\n",
    );
    for i in 0..segments {
        let _ = writeln!(
            t,
            "  {{ zone = \"s{i:02}\", services = [\"dns\", \"dhcp\", \"ping\"] }},"
        );
    }
    t.push_str("]\nport_forwards = [\n");
    for i in 0..port_forwards {
        let seg = if segments == 0 {
            "192.168.1".to_owned()
        } else {
            format!("10.100.{}", i % segments)
        };
        let _ = writeln!(
            t,
            "  {{ name = \"pf{i}\", protocol = \"tcp\", external_port = {}, to = \"{seg}.{}\", to_port = 80 }},",
            20000 + i,
            10 + i % 200
        );
    }
    t.push_str("]\n");
    t
}

/// The shell script that writes the same state as netd's apply of `plan`, with one
/// `nft -f` of `ruleset_path`.
pub fn script(plan: &crate::plan::Plan, nft: &Path, ruleset_path: &Path) -> String {
    let mut s = String::from("set -e\n");
    let br = &plan.bridge;
    let _ = writeln!(s, "ip link add {br} type bridge");
    let _ = writeln!(s, "ip link set {br} up");
    let _ = writeln!(s, "ip addr add {} dev {br}", plan.bridge_address);
    for p in &plan.ports {
        let _ = writeln!(s, "ip link set {} master {br}", p.name);
        let _ = writeln!(s, "ip link set {} up", p.name);
    }
    for v in &plan.vlans {
        let _ = writeln!(
            s,
            "ip link add link {br} name {} type vlan id {}",
            v.name, v.id
        );
        let _ = writeln!(s, "ip link set {} up", v.name);
        let _ = writeln!(s, "ip addr add {} dev {}", v.address, v.name);
    }
    if let Some(w) = &plan.wan {
        let _ = writeln!(s, "ip link set {} up", w.name);
        if let Some(a) = w.address {
            let _ = writeln!(s, "ip addr add {a} dev {}", w.name);
        }
        if let Some(g) = w.gateway {
            let _ = writeln!(s, "ip route add default via {g}");
        }
    }
    for (key, value) in SYSCTLS {
        let _ = writeln!(s, "echo {value} > /proc/sys/{key}");
    }
    let _ = writeln!(s, "{} -f {}", nft.display(), ruleset_path.display());
    s
}

/// Rules in a ruleset: statement lines inside chains (not declarations).
pub fn count_rules(ruleset: &str) -> usize {
    let mut in_chain = false;
    let mut n = 0;
    for line in ruleset.lines() {
        let l = line.trim();
        if l.starts_with("chain ") {
            in_chain = true;
        } else if l == "}" {
            in_chain = false;
        } else if in_chain && !l.is_empty() && !l.starts_with("type ") {
            n += 1;
        }
    }
    n
}

/// Run `f` on a new thread in a new, empty network namespace with `lo` up and the
/// veth NICs `wan0` and `lan0`. The namespace goes away with the thread.
fn in_fresh_netns<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| BenchError::Setup(format!("unshare(CLONE_NEWNET): {e} (root needed)")))?;
        let mut nl = Netlink::open().map_err(|e| BenchError::Setup(e.to_string()))?;
        for (a, b) in [("wan0", "wan0p"), ("lan0", "lan0p")] {
            nl.add_veth(a, b)
                .map_err(|e| BenchError::Setup(e.to_string()))?;
        }
        nl.write(&crate::link::LinkWrite::SetUp {
            link: "lo".into(),
            up: true,
        })
        .map_err(|e| BenchError::Setup(e.to_string()))?;
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(BenchError::Setup("the namespace thread panicked".into())))
}

/// Run a command to completion; its stderr is the error.
fn run_timed(variant: &'static str, cmd: &mut Command) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| BenchError::Run {
            variant,
            message: format!("{cmd:?}: {e}"),
        })?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(BenchError::Run {
            variant,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(took)
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The median of `d` (the upper one for an even count).
pub fn median(d: &[Duration]) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where a no-change apply's time goes: each step of [`crate::apply`] timed alone,
/// after the same two dumps read through rtnetlink's typed messages (how links were
/// read before [`crate::link_dump`]), for comparison.
fn phases(
    net: &hearth_config::Network,
    nl: &mut Netlink,
    nft: &Nft,
) -> Result<Vec<(&'static str, Duration)>, BenchError> {
    let fail = |e: String| BenchError::Run {
        variant: "no-change phases",
        message: e,
    };
    let mut out = Vec::new();
    let t = Instant::now();
    nl.dump_links().map_err(|e| fail(e.to_string()))?;
    nl.dump_addresses().map_err(|e| fail(e.to_string()))?;
    out.push((
        "(for comparison: rtnetlink's typed link+address dumps)",
        t.elapsed(),
    ));
    let t = Instant::now();
    let links = nl.links().map_err(|e| fail(e.to_string()))?;
    out.push(("read links+addresses", t.elapsed()));
    let t = Instant::now();
    let (plan, _) = crate::plan(net, &links).map_err(|e| fail(e.to_string()))?;
    out.push(("plan+ruleset", t.elapsed()));
    let t = Instant::now();
    nft.loaded_digest().map_err(|e| fail(e.to_string()))?;
    out.push(("table digest", t.elapsed()));
    let t = Instant::now();
    crate::reconcile::reconcile_from(nl, &plan, &links).map_err(|e| fail(e.to_string()))?;
    out.push(("route+diff", t.elapsed()));
    let t = Instant::now();
    crate::sysctl::apply(Path::new("/proc/sys"), SYSCTLS).map_err(|e| fail(e.to_string()))?;
    out.push(("sysctls", t.elapsed()));
    Ok(out)
}

/// The resident daemon's re-apply with an unchanged config, in process through the
/// daemon's own [`Resident`] (subscribed, one full apply first): the pending
/// notifications are drained between samples as the daemon's loop does, then each
/// sample is a whole [`Resident::apply`] (config read and digest, firewall digest,
/// sysctls — or the full pass when a notification arrived). Returns the times and
/// how many samples took the full pass, and the quick pass's steps timed alone.
/// Every sample must report `unchanged`.
type ResidentSamples = (Vec<Duration>, usize, Vec<(&'static str, Duration)>);

fn resident_samples(
    cfg: &Path,
    nl: &mut Netlink,
    nft: &Nft,
) -> Result<ResidentSamples, BenchError> {
    let fail = |e: String| BenchError::Run {
        variant: "resident no-change apply",
        message: e,
    };
    let links = nl.links().map_err(|e| fail(e.to_string()))?;
    let events = LinkEvents::open(links.into_iter().map(|l| (l.index, l.name, l.carrier)))
        .map_err(|e| fail(crate::error_chain(&e)))?;
    let mut resident = Resident::new(events);
    let proc_sys = Path::new("/proc/sys");
    let mut times = Vec::new();
    let mut full = 0;
    for i in 0..6 {
        resident.drain().map_err(|e| fail(crate::error_chain(&e)))?;
        let start = Instant::now();
        let applied = resident
            .apply(cfg, nl, nft, proc_sys, Missing::Defer)
            .map_err(|e| fail(crate::error_chain(&e)))?;
        let took = start.elapsed();
        if !applied.report.unchanged() {
            return Err(BenchError::NotUnchanged(applied.report.to_string()));
        }
        // The first apply of a fresh Resident is always full: not a sample.
        if i > 0 {
            times.push(took);
            full += usize::from(applied.pass == Pass::Full);
        }
    }
    // The quick pass's steps, each timed alone.
    let mut steps = Vec::new();
    let bytes = std::fs::read(cfg).map_err(|e| fail(format!("{}: {e}", cfg.display())))?;
    let kept = bytes.clone(); // what Resident keeps, compared outside the timing
    let t = Instant::now();
    let now = std::fs::read(cfg).map_err(|e| fail(format!("{}: {e}", cfg.display())))?;
    std::hint::black_box(std::hint::black_box(&now) == &kept);
    steps.push(("config read+compare", t.elapsed()));
    let t = Instant::now();
    nft.loaded_digest().map_err(|e| fail(e.to_string()))?;
    steps.push(("table digest", t.elapsed()));
    let t = Instant::now();
    crate::sysctl::apply(proc_sys, SYSCTLS).map_err(|e| fail(e.to_string()))?;
    steps.push(("sysctls", t.elapsed()));
    Ok((times, full, steps))
}

/// "name median, ..." over samples that each time the same steps in the same order.
fn breakdown(samples: &[Vec<(&'static str, Duration)>]) -> String {
    let names: Vec<&str> = samples
        .first()
        .map(|p| p.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let d: Vec<Duration> = samples.iter().map(|p| p[i].1).collect();
            format!("{name} {:.2}", ms(median(&d)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run the benchmark and return the report text.
pub fn run(args: &BenchArgs) -> Result<String, BenchError> {
    std::fs::create_dir_all(&args.dir).map_err(|source| BenchError::Write {
        path: args.dir.clone(),
        source,
    })?;
    let cfg_text = config(args.segments, args.port_forwards);
    let cfg_path = args.dir.join("config.toml");
    write(&cfg_path, &cfg_text)?;
    let net = hearth_config::parse(&cfg_text, &cfg_path.display().to_string())
        .map_err(|e| BenchError::Config(e.to_string()))?
        .network;
    let nft = Nft::default();
    // Plan against the links every fresh namespace will have.
    let plan_net = net.clone();
    let (plan, ruleset) = in_fresh_netns(move || {
        let links = Netlink::open()
            .and_then(|mut nl| nl.links())
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        crate::plan(&plan_net, &links).map_err(|e| BenchError::Config(e.to_string()))
    })?;
    let rules = count_rules(&ruleset.text);
    let ruleset_path = args.dir.join("ruleset.nft");
    write(&ruleset_path, &ruleset.text)?;
    let script_path = args.dir.join("apply.sh");
    write(&script_path, &script(&plan, nft.program(), &ruleset_path))?;
    let ip_commands = std::fs::read_to_string(&script_path)
        .map(|s| s.lines().filter(|l| l.starts_with("ip ")).count())
        .unwrap_or(0);
    let exe = std::env::current_exe().map_err(|e| BenchError::Setup(e.to_string()))?;
    let state = args.dir.join("state");

    let mut netd_times = Vec::new();
    let mut script_times = Vec::new();
    let mut nochange = Vec::new();
    let mut phase_samples: Vec<Vec<(&'static str, Duration)>> = Vec::new();
    let mut resident = Vec::new();
    let mut resident_full = 0;
    let mut resident_steps: Vec<Vec<(&'static str, Duration)>> = Vec::new();
    for i in 0..args.runs {
        let netd_run = || {
            let (exe, cfg, state, net, nft) = (
                exe.clone(),
                cfg_path.clone(),
                state.clone(),
                net.clone(),
                nft.clone(),
            );
            in_fresh_netns(move || {
                let took = run_timed(
                    "netd --once",
                    Command::new(&exe)
                        .arg("--once")
                        .arg("--config")
                        .arg(&cfg)
                        .arg("--state-dir")
                        .arg(&state),
                )?;
                let mut nl = Netlink::open().map_err(|e| BenchError::Setup(e.to_string()))?;
                let mut again = Vec::new();
                for _ in 0..5 {
                    let start = Instant::now();
                    let report = crate::apply(&net, &mut nl, &nft, Path::new("/proc/sys"))
                        .map_err(|e| BenchError::Run {
                            variant: "no-change apply",
                            message: crate::error_chain(&e),
                        })?;
                    again.push(start.elapsed());
                    if !report.unchanged() {
                        return Err(BenchError::NotUnchanged(report.to_string()));
                    }
                }
                let phases = phases(&net, &mut nl, &nft)?;
                let resident = resident_samples(&cfg, &mut nl, &nft)?;
                Ok((took, again, phases, resident))
            })
        };
        let script_run = || {
            let script = script_path.clone();
            in_fresh_netns(move || run_timed("the shell script", Command::new("sh").arg(&script)))
        };
        // Alternate which goes first.
        let (n, s) = if i % 2 == 0 {
            let n = netd_run()?;
            (n, script_run()?)
        } else {
            let s = script_run()?;
            (netd_run()?, s)
        };
        eprintln!(
            "run {}/{}: netd {:.1} ms, script {:.1} ms, no-change one-shot {:.2} ms, resident {:.2} ms",
            i + 1,
            args.runs,
            ms(n.0),
            ms(s),
            ms(median(&n.1)),
            ms(median(&n.3 .0))
        );
        resident.extend(n.3 .0);
        resident_full += n.3 .1;
        resident_steps.push(n.3 .2);
        netd_times.push(n.0);
        nochange.extend(n.1);
        phase_samples.push(n.2);
        script_times.push(s);
    }
    let (nm, sm, cm) = (
        median(&netd_times),
        median(&script_times),
        median(&nochange),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "netd bench: {} VLAN segments, {rules} nft rules, {} runs each (interleaved, fresh netns each)",
        args.segments, args.runs
    );
    let _ = writeln!(
        out,
        "  full apply, netd --once                 median {:>8.1} ms",
        ms(nm)
    );
    let _ = writeln!(
        out,
        "  full apply, sh: {ip_commands:>3} x ip + 1 x nft -f   median {:>8.1} ms",
        ms(sm)
    );
    let _ = writeln!(
        out,
        "  ratio netd / script                            {:>8.2}x  (target <= 1.0x)",
        nm.as_secs_f64() / sm.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        out,
        "  no-change reconcile, one-shot (full read, as --once)   median {:>8.2} ms  ({} samples)",
        ms(cm),
        nochange.len()
    );
    let _ = writeln!(
        out,
        "    of which (ms, medians): {}",
        breakdown(&phase_samples)
    );
    let _ = writeln!(
        out,
        "  no-change reconcile, resident (SIGHUP, same config)    median {:>8.2} ms  (target <= 10 ms, {} samples, {} took the full pass)",
        ms(median(&resident)),
        resident.len(),
        resident_full
    );
    let _ = writeln!(
        out,
        "    of which (ms, medians): {}",
        breakdown(&resident_steps)
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_and_about_500_rules() {
        let text = config(32, 270);
        let net = hearth_config::parse(&text, "bench.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .network;
        let links = crate::fake::FakeLinks::with_nics(&[
            ("wan0", [2, 0, 0, 0, 0, 1]),
            ("lan0", [2, 0, 0, 0, 0, 2]),
        ])
        .links;
        let (plan, rs) = crate::plan(&net, &links).unwrap();
        assert_eq!(plan.vlans.len(), 32);
        let rules = count_rules(&rs.text);
        assert!((480..=560).contains(&rules), "{rules} rules");
        let s = script(&plan, Path::new("/usr/sbin/nft"), Path::new("/tmp/r.nft"));
        assert!(s.contains("ip link add link br-lan name vl-s31 type vlan id 131\n"));
        assert!(s.contains("ip addr add 10.100.31.1/24 dev vl-s31\n"));
        assert!(s.contains("ip route add default via 203.0.113.1\n"));
        assert!(s.ends_with("/usr/sbin/nft -f /tmp/r.nft\n"));
        assert_eq!(
            s.lines().filter(|l| l.starts_with("ip ")).count(),
            3 + 2 + 96 + 3
        );
    }

    #[test]
    fn median_and_rule_count() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(3), d(1), d(2)]), d(2));
        let text = "table inet t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\tchain c {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established accept\n\n\t\tgoto x\n\t}\n}\n";
        assert_eq!(count_rules(text), 2);
    }
}
