//! The image layout: which file goes where, following the README's image-layout
//! contract between builder, init and agents.
//!
//! Input is what the earlier build steps produced (the extracted packages, our static
//! binaries, the config text, the overlay directory); output is the in-memory
//! [`Tree`] the initramfs is written from. Nothing here downloads or compiles.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::kmod::{self, KmodError, ModuleIndex, ModuleSet};
use crate::manifest;
use crate::profile::ImageProfile;
use crate::rootfs::{Node, Tree, TreeError};
use crate::shlibs::{self, PackageView, ShlibError};
use crate::{accounts, module_set};

/// Errors laying out the image.
#[derive(Debug, Error)]
pub enum LayoutError {
    #[error("no fetched package contains a kernel (boot/vmlinuz-*); is image.kernel = {kernel:?} a kernel package?")]
    NoKernel { kernel: String },
    #[error("several fetched packages contain a kernel: {found:?}; image.kernel must pull in exactly one")]
    ManyKernels { found: Vec<String> },
    #[error("the kernel package has boot/vmlinuz-{kver} but no lib/modules/{kver} at {dir}")]
    NoModules { kver: String, dir: PathBuf },
    #[error("no fetched package provides /{path} (needed for {why})")]
    MissingFile { path: String, why: &'static str },
    #[error("running {busybox} --list-full to find its applets")]
    BusyboxList {
        busybox: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Kmod(#[from] KmodError),
    #[error(transparent)]
    Shlib(#[from] ShlibError),
}

/// One extracted package.
#[derive(Debug, Clone)]
pub struct PackageTree {
    pub name: String,
    pub root: PathBuf,
}

/// Our static binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub init: PathBuf,
    /// Agents by name (installed as `/usr/libexec/hearth/<name>`).
    pub agents: Vec<(String, PathBuf)>,
}

/// Everything the layout needs.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub profile: &'a ImageProfile,
    pub packages: &'a [PackageTree],
    pub binaries: &'a Binaries,
    /// `overlays/` of the workspace, laid on top verbatim (absent is fine).
    pub overlay: &'a Path,
    /// A scratch directory for the library sysroot.
    pub work: &'a Path,
    pub test_agent: bool,
}

/// The laid-out image.
#[derive(Debug)]
pub struct Layout {
    pub tree: Tree,
    pub kernel_version: String,
    /// The kernel image on the host.
    pub kernel_image: PathBuf,
    pub modules: ModuleSet,
}

/// Paths inside package trees that an image never needs.
fn is_doc(rel: &str) -> bool {
    [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/lintian",
        "usr/share/bug",
        "usr/share/info",
    ]
    .iter()
    .any(|p| rel == *p || rel.starts_with(&format!("{p}/")))
}

/// Find the kernel package: the one with `boot/vmlinuz-<kver>`.
fn find_kernel(inputs: &Inputs) -> Result<(usize, String, PathBuf), LayoutError> {
    let mut found = Vec::new();
    for (i, pkg) in inputs.packages.iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(pkg.root.join("boot")) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(kver) = name.strip_prefix("vmlinuz-") {
                found.push((i, kver.to_string(), entry.path()));
            }
        }
    }
    match found.len() {
        0 => Err(LayoutError::NoKernel {
            kernel: inputs.profile.kernel.clone(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(LayoutError::ManyKernels {
            found: found.into_iter().map(|(_, k, _)| k).collect(),
        }),
    }
}

/// Lay out the image.
pub fn lay_out(inputs: &Inputs) -> Result<Layout, LayoutError> {
    let mut tree = Tree::new();
    let profile = inputs.profile;

    // Skeleton: mount points and the console init starts on.
    for (dir, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("var/log/hearth", 0o755),
        ("var/lib/dbus", 0o755),
        ("etc/hearth", 0o755),
    ] {
        tree.dir(dir, mode)?;
    }
    tree.insert(
        "dev/console",
        Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    )?;

    // Our binaries.
    tree.host_file("init", &inputs.binaries.init, 0o755)?;
    for (name, path) in &inputs.binaries.agents {
        tree.host_file(&format!("{}/{name}", manifest::AGENT_DIR), path, 0o755)?;
    }
    tree.bytes("etc/hearth/config.toml", profile.text.as_bytes(), 0o644)?;

    // Kernel and modules.
    let (kernel_index, kver, kernel_image) = find_kernel(inputs)?;
    let kernel_root = &inputs.packages[kernel_index].root;
    let moddir = kernel_root.join("lib/modules").join(&kver);
    if !moddir.is_dir() {
        return Err(LayoutError::NoModules { kver, dir: moddir });
    }
    let index = ModuleIndex::scan(&moddir)?;
    // Everything the config needs is shipped; the boot list gets only the base set,
    // each section's modules go to its agent's manifest entry.
    let plan = module_set::plan(profile, &index, kmod::read_modinfo)?;
    tree.bytes(
        "etc/hearth/agents.toml",
        manifest::render(&manifest::agents(
            profile.has_arrays,
            inputs.test_agent,
            &plan.agents,
        )),
        0o644,
    )?;
    let modules = plan.set;
    let kdir = format!("lib/modules/{kver}");
    for module in modules.modules.values() {
        tree.add_host(
            &format!("{kdir}/{}", module.path.display()),
            &moddir.join(&module.path),
        )?;
    }
    tree.bytes(&format!("{kdir}/modules.dep"), modules.modules_dep(), 0o644)?;
    for extra in ["modules.builtin", "modules.order"] {
        if moddir.join(extra).is_file() {
            tree.add_host(&format!("{kdir}/{extra}"), &moddir.join(extra))?;
        }
    }
    let mut load = modules.load.join("\n");
    load.push('\n');
    tree.bytes("etc/hearth/modules", load, 0o644)?;

    // Userspace from packages: a merged view of every non-kernel package.
    let user_roots: Vec<&Path> = inputs
        .packages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != kernel_index)
        .map(|(_, p)| p.root.as_path())
        .collect();
    let view = PackageView::new(&user_roots)?;

    // The system bus: the daemon, its config and the policy files packages ship.
    let dbus = "usr/bin/dbus-daemon";
    view.add_with_links(dbus, &mut tree)
        .map_err(|_| LayoutError::MissingFile {
            path: dbus.into(),
            why: "the system bus",
        })?;
    let mut dbus_config = false;
    for root in &user_roots {
        for sub in ["usr/share/dbus-1", "etc/dbus-1"] {
            let dir = root.join(sub);
            if dir.is_dir() {
                tree.add_tree(sub, &dir, &|_| false)?;
            }
        }
        dbus_config |= root.join("usr/share/dbus-1/system.conf").is_file();
    }
    if !dbus_config {
        return Err(LayoutError::MissingFile {
            path: "usr/share/dbus-1/system.conf".into(),
            why: "the system bus configuration (package dbus-system-bus-common)",
        });
    }
    // The tools agents drive, with whatever they link.
    for tool in agent_tools(profile) {
        let found = tool
            .paths
            .iter()
            .any(|path| view.add_with_links(path, &mut tree).is_ok());
        if !found {
            return Err(LayoutError::MissingFile {
                path: tool.paths[0].into(),
                why: tool.why,
            });
        }
    }
    tree.bytes("etc/passwd", accounts::passwd(accounts::ACCOUNTS), 0o644)?;
    tree.bytes("etc/group", accounts::group(accounts::ACCOUNTS), 0o644)?;

    // Extra packages: their whole trees, minus documentation.
    for pkg in inputs.packages {
        if profile.extra_packages.contains(&pkg.name) {
            tree.add_tree("", &pkg.root, &is_doc)?;
        }
    }

    // Libraries of everything dynamically linked so far.
    let sysroot = inputs.work.join("sysroot");
    view.materialize(&sysroot)?;
    shlibs::add_needed(&mut tree, &view, &sysroot)?;

    // A shell, when asked for.
    if profile.debug_shell || inputs.test_agent {
        add_busybox(&mut tree, &view)?;
    }

    // The overlay wins over everything.
    if inputs.overlay.is_dir() {
        tree.add_tree("", inputs.overlay, &|rel| rel.ends_with(".gitkeep"))?;
    }

    Ok(Layout {
        tree,
        kernel_version: kver,
        kernel_image,
        modules,
    })
}

/// A file an agent runs or reads, at the first of `paths` some package has.
pub struct AgentTool {
    pub paths: &'static [&'static str],
    pub why: &'static str,
}

/// What the image's agents need from packages: `nft` for netd always; for stord, when
/// the config has arrays, `mdadm` and the ext4 tools (and `mkfs.btrfs` if an array
/// wants it). Usr-merged and classic locations are both accepted because Debian moves
/// files between them across releases.
pub fn agent_tools(profile: &ImageProfile) -> Vec<AgentTool> {
    let mut out = vec![AgentTool {
        paths: &["usr/sbin/nft", "sbin/nft"],
        why: "netd's firewall (package nftables)",
    }];
    if profile.has_arrays {
        let storage: [(&'static [&'static str], &'static str); 5] = [
            (
                &["sbin/mdadm", "usr/sbin/mdadm"],
                "stord's md arrays (package mdadm)",
            ),
            (
                &["sbin/mkfs.ext4", "usr/sbin/mkfs.ext4"],
                "stord's ext4 (package e2fsprogs)",
            ),
            (
                &["sbin/mke2fs", "usr/sbin/mke2fs"],
                "stord's ext4 (package e2fsprogs)",
            ),
            (
                &["sbin/e2fsck", "usr/sbin/e2fsck"],
                "stord's ext4 (package e2fsprogs)",
            ),
            (&["etc/mke2fs.conf"], "ext4 defaults (package e2fsprogs)"),
        ];
        out.extend(storage.map(|(paths, why)| AgentTool { paths, why }));
    }
    if profile.has_btrfs {
        out.push(AgentTool {
            paths: &[
                "bin/mkfs.btrfs",
                "sbin/mkfs.btrfs",
                "usr/bin/mkfs.btrfs",
                "usr/sbin/mkfs.btrfs",
            ],
            why: "stord's btrfs (package btrfs-progs)",
        });
    }
    out
}

/// `/usr/bin/busybox` and a link for each applet at the path busybox itself lists
/// (`--list-full`), unless something else already lives there. The binary is the
/// static x86_64 one from `busybox-static`, so it runs on the build host.
fn add_busybox(tree: &mut Tree, view: &PackageView) -> Result<(), LayoutError> {
    let host = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .find_map(|p| view.host_path(p))
        .ok_or(LayoutError::MissingFile {
            path: "bin/busybox".into(),
            why: "the debug shell (package busybox-static)",
        })?;
    tree.host_file("usr/bin/busybox", &host, 0o755)?;
    let out = Command::new(&host)
        .arg("--list-full")
        .output()
        .map_err(|source| LayoutError::BusyboxList {
            busybox: host.clone(),
            source,
        })?;
    let applets: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "linuxrc" && l != "init")
        .collect();
    for applet in applets {
        // usr-merged Debian lists some applets under /bin and /sbin; keep them there
        // (scripts use #!/bin/sh) unless the path is taken.
        if !tree.contains(&applet) {
            tree.symlink(&applet, "/usr/bin/busybox")?;
        }
    }
    Ok(())
}
