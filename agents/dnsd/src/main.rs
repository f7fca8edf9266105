//! `dnsd --config FILE --state-dir DIR`: see the library docs. `dnsd bench dns|dhcp`
//! compares dnsd with dnsmasq ([`dnsd::bench`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dnsd::daemon::{self, Options};
use dnsd::dns::server::DnsOptions;
use dnsd::settings::InterfaceFlag;

/// DHCPv4 server and caching DNS for every LAN segment.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The appliance config.
    #[arg(long, default_value = "/etc/hearth/config.toml")]
    config: PathBuf,
    /// Directory of the lease database.
    #[arg(long, default_value = "/var/lib/hearth/dnsd")]
    state_dir: PathBuf,
    /// Serve network NETWORK (`lan` or a segment) on interface IFNAME; repeatable.
    /// Default: lan on the LAN bridge, segment S on netd's VLAN link vl-S.
    #[arg(long = "interface", value_name = "IFNAME=NETWORK")]
    interfaces: Vec<InterfaceFlag>,
    /// Serve DNS on ADDR:PORT (UDP and TCP); repeatable. Default: port 53 on the
    /// appliance's address in every inside network.
    #[arg(long = "dns-listen", value_name = "ADDR:PORT")]
    dns_listen: Vec<SocketAddr>,
    /// Forward to this DNS server instead of `dns.upstreams`; repeatable, in order.
    #[arg(long = "upstream", value_name = "ADDR:PORT")]
    upstreams: Vec<SocketAddr>,
    /// netd's WAN lease file; its DNS servers are used when no upstream is
    /// configured (neither `--upstream` nor `dns.upstreams`).
    #[arg(long, value_name = "FILE", default_value = dnsd::dns::wan_lease::DEFAULT_PATH)]
    wan_lease: PathBuf,
}

/// Subcommands; without one, dnsd serves.
#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Benchmark dnsd against dnsmasq on this machine (root; dnsmasq, dnsperf,
    /// perfdhcp).
    Bench(dnsd::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    hearth_agent::logging::init("dnsd");
    let cli = Cli::parse();
    if let Some(Cmd::Bench(args)) = &cli.command {
        return match dnsd::bench::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dnsd bench: {e}");
                std::process::ExitCode::from(1)
            }
        };
    }
    let opts = Options {
        config: cli.config,
        state_dir: cli.state_dir,
        interfaces: cli.interfaces,
        dns: DnsOptions {
            listen: cli.dns_listen,
            upstreams: cli.upstreams,
            wan_lease: Some(cli.wan_lease),
            downloads: None,
        },
    };
    match daemon::run(&opts) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            log::error!("{msg}");
            std::process::ExitCode::from(1)
        }
    }
}
