//! A DNS query from a client: parsed and answered from memory by the resolver (local
//! zone with every record type, DHCP names, PTR, blocklists, cache) — the path
//! `dns::server` runs for every datagram and TCP message. Over UDP and TCP limits.
#![no_main]

use std::sync::OnceLock;

use dnsd::dns::cache::{Cache, Limits};
use dnsd::dns::forward::Forwarder;
use dnsd::dns::resolver::Resolver;
use dnsd::hosts::Hosts;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"version = 1
[system]
hostname = "hearth"
[network.lan]
bridge = "br-lan"
address = "10.77.0.1/24"
[dns]
domain = "home.arpa"
records = [
  { name = "nas", type = "A", value = "10.77.0.10" },
  { name = "nas", type = "AAAA", value = "fd00:77::10" },
  { name = "files", type = "CNAME", value = "nas" },
  { name = "www", type = "CNAME", value = "files" },
  { name = "home.arpa", type = "MX", value = "10 nas" },
  { name = "nas", type = "TXT", value = "v=hearth nas" },
]
"#;

struct Fixture {
    resolver: Resolver,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("ads.hosts");
        std::fs::write(&list, "0.0.0.0 ads.example\n").unwrap();
        let text = format!(
            "{CONFIG}[[dns.blocklists]]\npath = \"{}\"\naction = \"null\"\n",
            list.display()
        );
        let cfg = hearth_config::parse(&text, "fuzz.toml").unwrap();
        let hosts = Hosts::default();
        hosts.insert("laptop", "10.77.0.100".parse().unwrap());
        let state = dnsd::dns::server::state(&cfg, &hosts, None).unwrap();
        let limits = Limits {
            max_entries: 100,
            max_bytes: 1 << 20,
            min_ttl: 0,
            max_ttl: 86_400,
        };
        let resolver = Resolver::new(
            state,
            Cache::new(limits),
            Forwarder::new(Vec::new(), std::time::Duration::from_millis(1)),
        );
        Fixture {
            resolver,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let r = &fixture().resolver;
    let client = "10.77.0.2".parse().unwrap();
    // `Forward` needs the network; everything answered from memory is exercised.
    let _ = r.prepare(data, true, client);
    let _ = r.prepare(data, false, client);
});
