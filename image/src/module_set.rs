//! Which kernel modules an image loads at boot, from the config.
//!
//! The one place that maps config sections to kernel features: the virtio devices
//! every Hearth machine (and every QEMU test VM) has, the ACPI power button so a
//! host-side `system_powerdown` reaches init, md RAID when the config has arrays, and
//! VLANs, bridges and nftables when it has network segments. `image.modules` adds
//! more. Names ending in `*` match every module with that prefix.

use crate::profile::ImageProfile;

/// Loaded on every machine.
pub const BASE: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "button",
    "evdev",
];

/// Loaded when `storage.arrays` is not empty.
pub const STORAGE_ARRAYS: &[&str] = &["md_mod", "raid0", "raid1", "raid10", "raid456"];

/// Loaded when the network has segments (VLANs behind a bridge, firewalled): the
/// nftables expressions the firewall uses (conntrack state, NAT/masquerade, port
/// forwards, reject, rate-limited logging, reverse-path lookups). Not `nft_*`: the
/// other 25 cost boot time (module loading is slow under emulation) for nothing.
pub const NETWORK_SEGMENTS: &[&str] = &[
    "8021q",
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
    "nft_fib_inet",
];

/// Module names (or `prefix*` patterns) for `profile`, without duplicates, in load
/// order.
pub fn wanted(profile: &ImageProfile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    BASE.iter().for_each(|n| add(n));
    if profile.has_arrays {
        STORAGE_ARRAYS.iter().for_each(|n| add(n));
    }
    if profile.has_segments {
        NETWORK_SEGMENTS.iter().for_each(|n| add(n));
    }
    profile.modules.iter().for_each(|n| add(n));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_add_their_modules() {
        let mut profile = ImageProfile::for_tests();
        assert_eq!(wanted(&profile), BASE);
        profile.has_arrays = true;
        profile.modules = vec!["evdev".into(), "zram".into()];
        let w = wanted(&profile);
        assert!(w.contains(&"raid456".to_string()));
        assert!(!w.contains(&"8021q".to_string()));
        assert_eq!(w.iter().filter(|n| *n == "evdev").count(), 1);
        assert_eq!(w.last().unwrap(), "zram");
        profile.has_segments = true;
        assert!(wanted(&profile).contains(&"nft_masq".to_string()));
    }
}
