//! Shared by the network scenarios (`network_vlan.rs`, `dns_dhcp.rs`): guest NICs on
//! QEMU hubs, and client namespaces inside the guest made with busybox (`unshare -n`
//! holds a namespace, `ip link set … netns` moves a NIC into it, `nsenter` runs there).

#![allow(dead_code)] // each scenario uses a different subset

use hearth::qemu::Nic;
use hearth_qemu_tests::{Error, Guest};

/// A virtio NIC with a fixed MAC on QEMU hub `hubid`.
pub fn hub(id: &str, hubid: u32, mac: &str) -> Nic {
    Nic::Hub {
        id: id.into(),
        hubid,
        mac: Some(mac.into()),
    }
}

/// The head of a router config both network scenarios share: `hostname`, the WAN
/// (static 203.0.113.2/24 behind 203.0.113.1, the "internet" namespace) and LAN NICs
/// matched by MAC, the LAN bridge at 192.168.1.1/24 and the `media` segment (VLAN 10,
/// 10.10.10.0/24). Each scenario appends its other segments and sections.
pub fn router_config(hostname: &str, wan_mac: &str, lan_mac: &str) -> String {
    format!(
        r#"version = 1
[system]
hostname = "{hostname}"

[network]
interfaces = [
  {{ mac = "{wan_mac}", role = "wan" }},
  {{ mac = "{lan_mac}", role = "lan" }},
]
[network.wan]
mode = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"
dns = ["203.0.113.1"]
[network.lan]
address = "192.168.1.1/24"

[[network.segments]]
name = "media"
vlan = 10
subnet = "10.10.10.0/24"
gateway = "10.10.10.1"
"#
    )
}

/// Shell prelude: `PATH`, and `dev MAC` printing the interface with that MAC.
pub const PRELUDE: &str = "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
dev() { for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = \"$1\" ] && basename $d; done; true; }\n";

/// Start a namespace holder; returns its pid.
pub fn netns(guest: &mut Guest) -> Result<String, Error> {
    let pid = guest.sh_ok(&format!(
        "{PRELUDE}setsid unshare -n sleep 1000 </dev/null >/dev/null 2>&1 &\necho $!"
    ))?;
    Ok(pid.trim().to_string())
}

/// Move the NIC with `mac` into namespace `pid`, bring it and `lo` up and run `setup`
/// there (`$IF` is the NIC's name). Returns the NIC's name.
pub fn enter(guest: &mut Guest, pid: &str, mac: &str, setup: &str) -> Result<String, Error> {
    let name = guest.sh_ok(&format!(
        "{PRELUDE}set -e\nIF=$(dev {mac})\n[ -n \"$IF\" ]\nip link set $IF netns {pid}\n\
         nsenter -n -t {pid} sh -ec \"ip link set lo up; ip link set $IF up; {setup}\"\necho $IF"
    ))?;
    Ok(name.trim().to_string())
}

/// `nc` from namespace `pid` to `to` `port`: the output if it connected.
pub fn connect(guest: &mut Guest, pid: &str, to: &str, port: u16) -> Result<Option<String>, Error> {
    let out = guest.sh(&format!(
        "{PRELUDE}echo hi | nsenter -n -t {pid} timeout 8 nc -w 3 {to} {port}"
    ))?;
    Ok(out.success().then_some(out.stdout))
}
