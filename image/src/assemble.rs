//! `hearth build` as a library: config → packages → binaries → layout → outputs.
//!
//! Outputs are all-or-nothing: `build.json` is deleted before anything else and
//! written after both images are renamed into place, and each image is written to a
//! temporary name first. A failed build therefore never leaves a directory that looks
//! complete. Every step is timed, so a slow warm rebuild shows where the time goes.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::buildinfo::{self, BuildInfo, Output, PackageInfo, VmHints};
use crate::debian::{self, DebianError, FetchRequest, FetchedPackage, Progress};
use crate::layout::{self, Binaries, LayoutError, PackageTree};
use crate::manifest;
use crate::musl::{self, CargoError};
use crate::newc::{self, CpioError};
use crate::profile::{ImageProfile, ProfileError};

/// zstd level for the initramfs (single-threaded). Measured on the default image
/// (15.4 MiB of cpio): level 9 takes 0.6 s for 5.3 MiB; level 19 takes 9.5 s for
/// 4.8 MiB, which would blow the 10 s warm-rebuild budget for a 10% smaller file.
pub const ZSTD_LEVEL: i32 = 9;

/// Debian packages every image needs besides the kernel and `image.extra_packages`.
pub const SYSTEM_BUS_PACKAGES: &[&str] = &["dbus-daemon", "dbus-system-bus-common"];
/// The firewall's `nft` (netd runs in every image).
pub const NETWORK_PACKAGES: &[&str] = &["nftables"];
/// `mdadm` and the file system tools stord drives when the config has arrays.
/// `btrfs-progs` is always fetched (so one lock fits plain and test builds) but only
/// installed when an array wants btrfs, or in test images, whose scenarios try both
/// file systems.
pub const STORAGE_PACKAGES: &[&str] = &["mdadm", "e2fsprogs", "btrfs-progs"];
/// The shell for `image.debug_shell` and test images.
pub const SHELL_PACKAGE: &str = "busybox-static";

/// Errors of a build, by step.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("loading the config")]
    Config(#[source] ProfileError),
    #[error("fetching Debian packages")]
    Fetch(#[source] DebianError),
    #[error("building init and agents")]
    Cargo(#[source] CargoError),
    #[error("laying out the image")]
    Layout(#[source] LayoutError),
    #[error("writing the initramfs")]
    Cpio(#[source] CpioError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io {
        action,
        path,
        source,
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `None` builds the embedded default config.
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    pub offline: bool,
    pub lock: Option<PathBuf>,
    pub test_agent: bool,
    pub cache: Option<PathBuf>,
    /// The Hearth workspace (for `cargo build` and `overlays/`).
    pub workspace: PathBuf,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub out: PathBuf,
    pub info: BuildInfo,
    /// Time per step, in order.
    pub steps: Vec<(&'static str, Duration)>,
}

/// The roots to fetch for `profile`.
pub fn package_roots(profile: &ImageProfile) -> Vec<String> {
    let mut roots = vec![profile.kernel.clone()];
    roots.extend(SYSTEM_BUS_PACKAGES.iter().map(|s| s.to_string()));
    roots.extend(NETWORK_PACKAGES.iter().map(|s| s.to_string()));
    if profile.has_arrays {
        roots.extend(STORAGE_PACKAGES.iter().map(|s| s.to_string()));
    }
    // Always fetched (1 MiB), installed only for `debug_shell` or test images: the
    // lock then fits both kinds of build, and `--test-agent --offline` works from a
    // lock written by a plain build.
    roots.push(SHELL_PACKAGE.to_string());
    for p in &profile.extra_packages {
        if !roots.contains(p) {
            roots.push(p.clone());
        }
    }
    roots
}

/// Resolve the lock file path for `opts`.
pub fn lock_path(opts_lock: Option<&Path>, profile: &ImageProfile) -> PathBuf {
    opts_lock
        .map(Path::to_path_buf)
        .unwrap_or_else(|| profile.default_lock_path())
}

/// Fetch the packages for `profile` (also what `hearth update-lock` runs).
pub fn fetch(
    profile: &ImageProfile,
    roots: Vec<String>,
    lock: PathBuf,
    cache: Option<PathBuf>,
    offline: bool,
    update_lock: bool,
    progress: &dyn Progress,
) -> Result<Vec<FetchedPackage>, DebianError> {
    debian::fetch(&FetchRequest {
        roots,
        exclude: Vec::new(),
        lock_path: lock,
        cache_dir: cache.unwrap_or_else(debian::default_cache_dir),
        offline,
        update_lock,
        mirror: profile.mirror.clone(),
        suites: profile.suites.clone(),
        apt_root: PathBuf::from("/"),
        progress,
    })
}

/// Run a whole build.
pub fn build(opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport, BuildError> {
    let mut steps = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, steps: &mut Vec<(&'static str, Duration)>| {
        steps.push((name, clock.elapsed()));
        clock = Instant::now();
    };

    let mut profile = ImageProfile::load(opts.config.as_deref()).map_err(BuildError::Config)?;
    // Test images carry btrfs next to ext4 (tool and module), so a scenario can switch
    // an array's file system in its config without another image.
    if opts.test_agent {
        profile.has_btrfs |= profile.has_arrays;
    }
    lap("config", &mut steps);

    // Nothing that looks finished may survive a failed build.
    std::fs::create_dir_all(&opts.out).map_err(io_err("creating", &opts.out))?;
    for name in [
        buildinfo::FILE_NAME,
        buildinfo::KERNEL,
        buildinfo::INITRAMFS,
    ] {
        let path = opts.out.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("removing the stale", &path)(e))
            }
            _ => {}
        }
    }

    let lock = lock_path(opts.lock.as_deref(), &profile);
    let fetched = fetch(
        &profile,
        package_roots(&profile),
        lock,
        opts.cache.clone(),
        opts.offline,
        false,
        progress,
    )
    .map_err(BuildError::Fetch)?;
    lap("fetch packages", &mut steps);

    let epoch = musl::source_date_epoch(&opts.workspace);
    let mut crates = vec!["hearth-init"];
    crates.extend(manifest::hearth_agents(profile.has_arrays, opts.test_agent));
    let built = musl::build(&opts.workspace, &crates, epoch).map_err(BuildError::Cargo)?;
    let binaries = Binaries {
        init: built[0].clone(),
        agents: crates[1..]
            .iter()
            .map(|s| s.to_string())
            .zip(built[1..].iter().cloned())
            .collect(),
    };
    lap("cargo build (musl)", &mut steps);

    let work = opts.out.join(".work");
    let packages: Vec<PackageTree> = fetched
        .iter()
        .map(|p| PackageTree {
            name: p.name.clone(),
            root: p.root.clone(),
        })
        .collect();
    let layout = layout::lay_out(&layout::Inputs {
        profile: &profile,
        packages: &packages,
        binaries: &binaries,
        overlay: &opts.workspace.join("overlays"),
        work: &work,
        test_agent: opts.test_agent,
    })
    .map_err(BuildError::Layout)?;
    lap("lay out", &mut steps);

    // The initramfs.
    let initramfs = opts.out.join(buildinfo::INITRAMFS);
    let tmp = opts.out.join(format!(".{}.tmp", buildinfo::INITRAMFS));
    let file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let mut encoder = zstd::stream::Encoder::new(BufWriter::new(file), ZSTD_LEVEL)
        .map_err(io_err("starting zstd for", &tmp))?;
    encoder
        .include_checksum(true)
        .map_err(io_err("configuring zstd for", &tmp))?;
    let uncompressed =
        newc::write(&layout.tree, epoch as u32, &mut encoder).map_err(BuildError::Cpio)?;
    let mut writer = encoder.finish().map_err(io_err("finishing", &tmp))?;
    writer.flush().map_err(io_err("writing", &tmp))?;
    drop(writer);
    std::fs::rename(&tmp, &initramfs).map_err(io_err("renaming into place", &initramfs))?;
    lap("write initramfs", &mut steps);

    // The kernel.
    let vmlinuz = opts.out.join(buildinfo::KERNEL);
    let tmp = opts.out.join(format!(".{}.tmp", buildinfo::KERNEL));
    std::fs::copy(&layout.kernel_image, &tmp).map_err(io_err("copying the kernel to", &tmp))?;
    std::fs::rename(&tmp, &vmlinuz).map_err(io_err("renaming into place", &vmlinuz))?;

    let mut outputs = Vec::new();
    for name in [buildinfo::KERNEL, buildinfo::INITRAMFS] {
        let path = opts.out.join(name);
        let (sha256, size) = sha256_file(&path).map_err(io_err("hashing", &path))?;
        outputs.push(Output {
            file: name.to_string(),
            size,
            sha256,
        });
    }
    let mut packages: Vec<PackageInfo> = fetched
        .iter()
        .map(|p| PackageInfo {
            name: p.name.clone(),
            version: p.version.to_string(),
            sha256: p.sha256.clone(),
        })
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let info = BuildInfo {
        kernel_version: layout.kernel_version.clone(),
        cmdline: buildinfo::DEFAULT_CMDLINE.to_string(),
        source_date_epoch: epoch,
        config: profile.source.to_string(),
        hostname: profile.hostname.clone(),
        outputs,
        initramfs_uncompressed: uncompressed,
        modules: layout.modules.modules.keys().cloned().collect(),
        packages,
        vm: VmHints {
            disks: profile.disk_serials.clone(),
            interfaces: profile.interfaces.clone(),
            test_agent: opts.test_agent,
        },
    };
    let json = opts.out.join(buildinfo::FILE_NAME);
    let tmp = opts.out.join(format!(".{}.tmp", buildinfo::FILE_NAME));
    std::fs::write(&tmp, info.to_json()).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, &json).map_err(io_err("renaming into place", &json))?;
    let _ = std::fs::remove_dir_all(&work);
    lap("kernel, hashes, build.json", &mut steps);

    Ok(BuildReport {
        out: opts.out.clone(),
        info,
        steps,
    })
}

/// sha256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
