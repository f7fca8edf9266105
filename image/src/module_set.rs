//! Which kernel modules an image ships, and who loads them.
//!
//! The one place that maps config sections to kernel features: the virtio devices
//! every Hearth machine (and every QEMU test VM) has, the ACPI power button so a
//! host-side `system_powerdown` reaches init, md RAID when the config has arrays,
//! bridges and nftables always (every Hearth box routes and firewalls), and VLANs when
//! it has network segments. `image.modules` adds more. Names ending in `*` match every module with that prefix.
//!
//! Shipping and loading are separate decisions. Everything above is shipped, with its
//! `modules.dep` closure. Only [`BASE`] (plus `image.modules`) is loaded at boot, from
//! `/etc/hearth/modules`; a section's modules belong to the agent that manages that
//! section ([`Section::agent`]) and are listed in that agent's `modules` in
//! `agents.toml`, so init loads them right before it first starts the agent. Until such
//! an agent is in the manifest nothing loads them: inserting `raid456` benchmarks the
//! RAID6 and XOR routines (~0.3 s under emulation) and nobody would use md yet.
//!
//! That holds for `image.modules` too: a name listed there that a section owns (say
//! `raid456`, `8021q`) is shipped and given to the owning agent, not loaded at boot —
//! only the agent that drives md or VLANs can use them. Other names load at boot.

use std::collections::BTreeMap;
use std::path::Path;

use crate::kmod::{KmodError, ModInfo, ModuleIndex, ModuleSet};
use crate::profile::ImageProfile;

/// Loaded at boot on every machine (`/etc/hearth/modules`).
pub const BASE: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "button",
    "evdev",
];

/// Shipped when `storage.arrays` is not empty; loaded by the storage agent.
/// `ext4` too: Debian builds it as a module, and stord mounts every array it makes.
pub const STORAGE_ARRAYS: &[&str] = &["md_mod", "raid0", "raid1", "raid10", "raid456", "ext4"];

/// Shipped when an array wants btrfs; loaded by the storage agent.
pub const STORAGE_BTRFS: &[&str] = &["btrfs"];

/// Always shipped and loaded by the network agent: the LAN bridge and the nftables
/// expressions the firewall uses (conntrack state, NAT/masquerade, port forwards,
/// reject, rate-limited logging, reverse-path lookups, named counters). `log` needs a
/// logger backend (`nf_log_syslog`) and `counter name` an object reference
/// (`nft_objref`): without them the kernel refuses the rule with ENOENT. Not `nft_*`:
/// the other 23 would cost image size for nothing.
pub const NETWORK: &[&str] = &[
    "bridge",
    "nf_tables",
    "nft_ct",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_redir",
    "nft_reject_inet",
    "nft_limit",
    "nft_log",
    "nf_log_syslog",
    "nft_objref",
    "nft_fib_inet",
];

/// Shipped when the network has segments (802.1q VLANs on the bridge); loaded by the
/// network agent.
pub const NETWORK_SEGMENTS: &[&str] = &["8021q"];

/// Agent that manages `storage.*` (md arrays, file systems, shares).
pub const STORAGE_AGENT: &str = "stord";
/// Agent that manages `network.*` (links, VLANs, bridges, the firewall).
pub const NETWORK_AGENT: &str = "netd";

/// A config section's kernel modules and the agent that loads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The config section, for messages.
    pub section: &'static str,
    pub agent: &'static str,
    pub modules: &'static [&'static str],
}

/// Every section that owns modules.
pub const SECTIONS: &[Section] = &[
    Section {
        section: "storage.arrays",
        agent: STORAGE_AGENT,
        modules: STORAGE_ARRAYS,
    },
    Section {
        section: "storage.arrays.filesystem = btrfs",
        agent: STORAGE_AGENT,
        modules: STORAGE_BTRFS,
    },
    Section {
        section: "network",
        agent: NETWORK_AGENT,
        modules: NETWORK,
    },
    Section {
        section: "network.segments",
        agent: NETWORK_AGENT,
        modules: NETWORK_SEGMENTS,
    },
];

/// The section whose modules include `name` (`-` and `_` alike).
pub fn owner(name: &str) -> Option<&'static Section> {
    let name = name.replace('-', "_");
    SECTIONS.iter().find(|s| s.modules.contains(&name.as_str()))
}

fn push_new(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

/// Module names (or `prefix*` patterns) loaded at boot: [`BASE`] then the
/// `image.modules` no section owns, without duplicates.
pub fn boot(profile: &ImageProfile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in BASE.iter().copied() {
        push_new(&mut out, name);
    }
    for name in profile.modules.iter().filter(|n| owner(n).is_none()) {
        push_new(&mut out, name);
    }
    out
}

/// The sections `profile` enables, each with the modules its agent loads.
pub fn sections(profile: &ImageProfile) -> Vec<Section> {
    SECTIONS
        .iter()
        .filter(|s| match s.section {
            "storage.arrays" => profile.has_arrays,
            "storage.arrays.filesystem = btrfs" => profile.has_btrfs,
            "network" => true,
            "network.segments" => profile.has_segments,
            _ => false,
        })
        .copied()
        .collect()
}

/// Agent name → the module names (before dependency resolution) it loads: its
/// enabled sections' lists, then the `image.modules` entries its sections own.
pub fn agent_wants(profile: &ImageProfile) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for section in sections(profile) {
        let list = out.entry(section.agent.to_string()).or_default();
        for name in section.modules {
            push_new(list, name);
        }
    }
    for name in &profile.modules {
        if let Some(section) = owner(name) {
            push_new(out.entry(section.agent.to_string()).or_default(), name);
        }
    }
    out
}

/// The resolved module plan of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every shipped module (boot and sections, with their closure); `load` is the
    /// boot list for `/etc/hearth/modules`.
    pub set: ModuleSet,
    /// Agent name → modules for its `agents.toml` entry, in load order (softdep
    /// providers first, as [`ModuleIndex::resolve`] orders them).
    pub agents: BTreeMap<String, Vec<String>>,
}

/// Resolve what `profile` ships and who loads it, reading `.modinfo` through
/// `modinfo` (normally [`crate::kmod::read_modinfo`]).
pub fn plan(
    profile: &ImageProfile,
    index: &ModuleIndex,
    mut modinfo: impl FnMut(&Path) -> Result<ModInfo, KmodError>,
) -> Result<Plan, KmodError> {
    let mut set = index.resolve(&boot(profile), &mut modinfo)?;
    let mut agents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (agent, wanted) in agent_wants(profile) {
        let part = index.resolve(&wanted, &mut modinfo)?;
        set.modules.extend(part.modules);
        agents.insert(agent, part.load);
    }
    Ok(Plan { set, agents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmod::parse_modinfo;

    #[test]
    fn boot_is_base_plus_image_modules() {
        let mut profile = ImageProfile::for_tests();
        assert_eq!(boot(&profile), BASE);
        let s = sections(&profile);
        assert_eq!(s.len(), 1, "only the network, which every box has: {s:?}");
        assert_eq!(s[0].section, "network");
        // What the default config lists: section-owned names go to their agents.
        profile.modules = ["evdev", "zram", "8021q", "bridge", "md-mod", "raid456"]
            .map(String::from)
            .to_vec();
        let b = boot(&profile);
        assert_eq!(b.iter().filter(|n| *n == "evdev").count(), 1);
        assert_eq!(b.last().unwrap(), "zram");
        assert_eq!(b.len(), BASE.len() + 1, "{b:?}");
        let wants = agent_wants(&profile);
        assert_eq!(wants["stord"], ["md-mod", "raid456"]);
        assert_eq!(wants["netd"][..NETWORK.len()], *NETWORK);
        assert_eq!(wants["netd"][NETWORK.len()..], ["8021q"]);
        profile.has_arrays = true;
        profile.has_segments = true;
        assert_eq!(boot(&profile), b, "sections never add to the boot list");
        let s = sections(&profile);
        assert_eq!(s[0].agent, "stord");
        assert!(s[0].modules.contains(&"raid456"));
        assert_eq!(s[1].agent, "netd");
        assert!(s[1].modules.contains(&"nft_masq"));
        assert_eq!(s[2].section, "network.segments");
        assert_eq!(s[2].modules, ["8021q"]);
    }

    /// An index with every module the sections name, plus a few dependencies.
    fn index() -> ModuleIndex {
        let mut index = ModuleIndex {
            dir: "/m".into(),
            ..Default::default()
        };
        let names = BASE
            .iter()
            .chain(STORAGE_ARRAYS)
            .chain(NETWORK)
            .chain(NETWORK_SEGMENTS)
            .chain(&["raid6_pq", "xor", "async_tx", "libcrc32c", "crc32c_generic"]);
        for name in names {
            index
                .files
                .insert(name.to_string(), format!("kernel/x/{name}.ko").into());
        }
        index.builtin.insert("virtio_pci".into());
        index.files.remove("virtio_pci");
        // Softdeps name aliases, looked up among crypto modules only.
        index.files.insert(
            "crc32c_generic".into(),
            "kernel/crypto/crc32c_generic.ko".into(),
        );
        index
    }

    fn fake(path: &Path) -> Result<ModInfo, KmodError> {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let fields: &[&str] = match stem {
            "raid456" => &["depends=async_tx,md_mod,raid6_pq,xor"],
            "raid1" | "raid0" | "raid10" => &["depends=md_mod"],
            "nf_tables" => &["depends=libcrc32c"],
            "libcrc32c" => &["softdep=pre: crc32c"],
            "crc32c_generic" => &["alias=crc32c"],
            n if n.starts_with("nft_") => &["depends=nf_tables"],
            _ => &[],
        };
        Ok(parse_modinfo(
            &fields
                .iter()
                .flat_map(|f| f.bytes().chain([0]))
                .collect::<Vec<u8>>(),
        ))
    }

    #[test]
    fn section_modules_ship_but_only_their_agent_loads_them() {
        let mut profile = ImageProfile::for_tests();
        profile.has_arrays = true;
        profile.has_segments = true;
        profile.modules = ["8021q", "bridge", "md_mod", "raid456"]
            .map(String::from)
            .to_vec();
        let plan = plan(&profile, &index(), fake).unwrap();
        let boot = &plan.set.load;
        for name in [
            "raid456",
            "md_mod",
            "raid6_pq",
            "nf_tables",
            "nft_ct",
            "8021q",
        ] {
            assert!(!boot.contains(&name.to_string()), "{name} in boot {boot:?}");
            assert!(plan.set.modules.contains_key(name), "{name} not shipped");
        }
        assert!(boot.contains(&"virtio_net".to_string()));
        assert!(!boot.contains(&"virtio_pci".to_string()), "built in");
        // modules.dep has the closure, so init can load the agents' lists.
        let dep = plan.set.modules_dep();
        assert!(
            dep.contains("kernel/x/raid456.ko: kernel/x/async_tx.ko kernel/x/md_mod.ko"),
            "{dep}"
        );
        assert_eq!(plan.agents["stord"], STORAGE_ARRAYS);
        let netd = &plan.agents["netd"];
        // The softdep provider comes first, then the section's own list.
        assert_eq!(netd[0], "crc32c_generic");
        assert_eq!(&netd[1..=NETWORK.len()], NETWORK);
        assert_eq!(&netd[NETWORK.len() + 1..], NETWORK_SEGMENTS);
    }

    #[test]
    fn btrfs_arrays_bring_the_btrfs_module_to_stord() {
        let mut profile = ImageProfile::for_tests();
        profile.has_arrays = true;
        let wants = agent_wants(&profile);
        assert!(wants["stord"].contains(&"ext4".to_string()));
        assert!(!wants["stord"].contains(&"btrfs".to_string()));
        profile.has_btrfs = true;
        assert_eq!(agent_wants(&profile)["stord"].last().unwrap(), "btrfs");
    }

    #[test]
    fn only_the_network_without_arrays_or_segments() {
        let plan = plan(&ImageProfile::for_tests(), &index(), fake).unwrap();
        assert_eq!(plan.agents.keys().collect::<Vec<_>>(), ["netd"]);
        assert!(!plan.agents["netd"].contains(&"8021q".to_string()));
        assert!(!plan.set.modules.contains_key("raid456"));
        assert!(!plan.set.modules.contains_key("8021q"));
        assert_eq!(plan.set.load.len(), BASE.len() - 1);
    }

    #[test]
    fn an_owned_image_module_ships_for_its_agent_without_the_section() {
        let mut profile = ImageProfile::for_tests();
        profile.modules = vec!["raid1".into()];
        let plan = plan(&profile, &index(), fake).unwrap();
        assert_eq!(plan.agents["stord"], ["raid1"]);
        assert!(plan.set.modules.contains_key("md_mod"));
        assert!(!plan.set.load.contains(&"raid1".to_string()));
        assert!(!plan.set.modules.contains_key("raid456"));
    }
}
