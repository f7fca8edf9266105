//! Kernel modules: `/lib/modules/<kver>/modules.dep` says where each module is and
//! what it needs; dependencies load first, each module once, with `finit_module(2)`.
//!
//! Modules belong to whoever needs them. `/etc/hearth/modules` (one name per line, `#`
//! comments) is only the boot-critical base set — virtio devices, the power button —
//! loaded before any agent starts. An agent's own modules (`modules = [..]` in
//! `agents.toml`: md/raid for a storage agent, VLAN/bridge/nftables for a network
//! agent) are loaded by the supervisor right before it first starts that agent, so
//! nobody pays for RAID6 benchmarking or nftables at boot unless an agent uses them.
//! One [`ModuleLoading`] serves both and remembers what it did, so a module shared
//! by several agents (or already in the base set) is inserted once.
//!
//! `EEXIST` (already loaded) is fine, modules listed in `modules.builtin` are skipped,
//! and a module that is missing or fails to load is reported without stopping boot.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::layout::Layout;

/// Errors around module loading (all reported, none fatal).
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module {name} is not in {dep_file}")]
    Missing { name: String, dep_file: PathBuf },
    #[error("loading module {name} from {path}")]
    Load {
        name: String,
        path: PathBuf,
        #[source]
        source: Errno,
    },
}

/// The module name a `.ko` path or a user-written name stands for: basename without
/// `.ko[.xz|.zst|.gz]`, `-` folded to `_` (the kernel treats them alike).
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// Parsed `modules.dep` (+ `modules.builtin` when present).
#[derive(Debug, Default)]
pub struct ModuleDb {
    dir: PathBuf,
    entries: HashMap<String, (PathBuf, Vec<String>)>,
    builtin: HashSet<String>,
}

impl ModuleDb {
    /// Read `<dir>/modules.dep` and `<dir>/modules.builtin` (optional).
    pub fn load(dir: &Path) -> Result<Self, ModuleError> {
        let dep_file = dir.join("modules.dep");
        let text = std::fs::read_to_string(&dep_file).map_err(|source| ModuleError::Read {
            path: dep_file,
            source,
        })?;
        let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(Self::parse(dir, &text, &builtin))
    }

    pub fn parse(dir: &Path, modules_dep: &str, modules_builtin: &str) -> Self {
        let mut entries = HashMap::new();
        for line in modules_dep.lines() {
            let Some((module, deps)) = line.split_once(':') else {
                continue;
            };
            let module = module.trim();
            if module.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(module_name).collect();
            entries.insert(module_name(module), (dir.join(module), deps));
        }
        let builtin = modules_builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        Self {
            dir: dir.to_path_buf(),
            entries,
            builtin,
        }
    }

    /// `(name, path)` in load order for `wanted`: dependencies first, each once,
    /// built-ins skipped; plus the names that could not be found.
    pub fn load_order(&self, wanted: &[String]) -> (Vec<(String, PathBuf)>, Vec<String>) {
        let mut order = Vec::new();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for name in wanted {
            self.visit(&module_name(name), &mut seen, &mut order, &mut missing);
        }
        (order, missing)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<(String, PathBuf)>,
        missing: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_string()) || self.builtin.contains(name) {
            return;
        }
        let Some((path, deps)) = self.entries.get(name) else {
            missing.push(name.to_string());
            return;
        };
        for dep in deps {
            self.visit(dep, seen, order, missing);
        }
        order.push((name.to_string(), path.clone()));
    }

    pub fn dep_file(&self) -> PathBuf {
        self.dir.join("modules.dep")
    }
}

/// Read the list of modules to load; a missing file means none.
pub fn read_list(path: &Path) -> Result<Vec<String>, ModuleError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ModuleError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The kernel surface: insert one module file.
pub trait ModuleLoader: std::fmt::Debug {
    /// `Ok(true)` = loaded now, `Ok(false)` = was already loaded.
    fn insert(&mut self, name: &str, path: &Path) -> Result<bool, ModuleError>;
}

/// `finit_module(2)` on the real kernel.
#[derive(Debug, Default)]
pub struct KernelLoader;

impl ModuleLoader for KernelLoader {
    fn insert(&mut self, name: &str, path: &Path) -> Result<bool, ModuleError> {
        let load_err = |source| ModuleError::Load {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path)
            .map_err(|e| load_err(Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))))?;
        let params = CString::default();
        match finit_module(&file, &params, ModuleInitFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(source) => Err(load_err(source)),
        }
    }
}

/// A [`ModuleLoader`] that touches no kernel: it records every insert, in order, and
/// can be told that a module is already loaded (`EEXIST`) or fails (`ENOEXEC`). Clones
/// share the record, so a test keeps one and hands the other to init.
#[derive(Debug, Clone, Default)]
pub struct RecordingLoader {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
struct Recorded {
    inserted: Vec<String>,
    present: HashSet<String>,
    failing: HashSet<String>,
}

impl RecordingLoader {
    fn with(&self, f: impl FnOnce(&mut Recorded)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// `name` reports `EEXIST`, as if built in by another path or loaded earlier.
    pub fn already_loaded(self, name: &str) -> Self {
        self.with(|r| {
            r.present.insert(name.to_string());
        });
        self
    }

    /// Inserting `name` fails with `ENOEXEC`.
    pub fn failing(self, name: &str) -> Self {
        self.with(|r| {
            r.failing.insert(name.to_string());
        });
        self
    }

    /// Every successful insert so far (including `EEXIST` ones), in order.
    pub fn inserted(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.with(|r| out = r.inserted.clone());
        out
    }
}

impl ModuleLoader for RecordingLoader {
    fn insert(&mut self, name: &str, path: &Path) -> Result<bool, ModuleError> {
        let mut result = Ok(true);
        self.with(|r| {
            if r.failing.contains(name) {
                result = Err(ModuleError::Load {
                    name: name.into(),
                    path: path.into(),
                    source: Errno::ENOEXEC,
                });
            } else {
                r.inserted.push(name.to_string());
                result = Ok(r.present.insert(name.to_string()));
            }
        });
        result
    }
}

/// What one [`ModuleLoading::load`] did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub already_loaded: Vec<String>,
    pub errors: Vec<ModuleError>,
}

/// Loads modules for init during the whole boot: the base list first, then each
/// agent's list before its first start. Reads `modules.dep` on first use and tries
/// every module at most once (a failure is reported once, not on every agent).
#[derive(Debug)]
pub struct ModuleLoading {
    dir: PathBuf,
    db: Option<ModuleDb>,
    loader: Box<dyn ModuleLoader>,
    tried: HashSet<String>,
}

impl ModuleLoading {
    /// Modules of the kernel whose `/lib/modules/<kver>` is `dir`.
    pub fn new(dir: PathBuf, loader: Box<dyn ModuleLoader>) -> Self {
        Self {
            dir,
            db: None,
            loader,
            tried: HashSet::new(),
        }
    }

    /// Load `wanted` (and dependencies first); modules tried before are skipped.
    pub fn load(&mut self, wanted: &[String]) -> LoadReport {
        let mut report = LoadReport::default();
        if wanted.is_empty() {
            return report;
        }
        if self.db.is_none() {
            match ModuleDb::load(&self.dir) {
                Ok(db) => self.db = Some(db),
                Err(e) => {
                    report.errors.push(e);
                    return report;
                }
            }
        }
        let Some(db) = &self.db else {
            return report;
        };
        let (order, missing) = db.load_order(wanted);
        for name in missing {
            if self.tried.insert(name.clone()) {
                report.errors.push(ModuleError::Missing {
                    name,
                    dep_file: db.dep_file(),
                });
            }
        }
        for (name, path) in order {
            if !self.tried.insert(name.clone()) {
                continue;
            }
            match self.loader.insert(&name, &path) {
                Ok(true) => report.loaded.push(name),
                Ok(false) => report.already_loaded.push(name),
                Err(e) => report.errors.push(e),
            }
        }
        report
    }
}

/// Load the base modules listed in the image (`/etc/hearth/modules`).
pub fn load_listed(layout: &Layout, loading: &mut ModuleLoading) -> LoadReport {
    match read_list(&layout.module_list()) {
        Ok(wanted) => loading.load(&wanted),
        Err(e) => LoadReport {
            errors: vec![e],
            ..LoadReport::default()
        },
    }
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; zeroed is a valid value to pass to uname.
    let mut uts: nix::libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { nix::libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/input/evdev.ko:
kernel/drivers/acpi/button.ko:
kernel/fs/nfsd/nfsd.ko: kernel/net/sunrpc/auth_gss/auth_rpcgss.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko
kernel/net/sunrpc/auth_gss/auth_rpcgss.ko: kernel/net/sunrpc/sunrpc.ko
kernel/fs/nfs_common/grace.ko:
kernel/net/sunrpc/sunrpc.ko:
kernel/drivers/net/virtio-net.ko: kernel/drivers/net/net_failover.ko
kernel/drivers/net/net_failover.ko:
";

    fn image(list: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.dep"), DEP).unwrap();
        std::fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        std::fs::create_dir_all(root.path().join("etc/hearth")).unwrap();
        std::fs::write(root.path().join("etc/hearth/modules"), list).unwrap();
        root
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            module_name("kernel/drivers/net/virtio-net.ko"),
            "virtio_net"
        );
        assert_eq!(module_name("kernel/x/foo.ko.zst"), "foo");
        assert_eq!(module_name("virtio-net"), "virtio_net");
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let root = image("# comment\nnfsd\nauth_rpcgss  # again\nvirtio-net\n\nevdev\next4\n");
        let rec = RecordingLoader::default();
        let report = load_listed(&Layout::under(root.path()), &mut loading(&root, &rec));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            rec.inserted(),
            [
                "sunrpc",
                "auth_rpcgss",
                "grace",
                "nfsd",
                "net_failover",
                "virtio_net",
                "evdev"
            ]
        );
        assert_eq!(report.loaded.len(), 7);
    }

    #[test]
    fn missing_and_failing_modules_are_reported_not_fatal() {
        let root = image("nosuch\nbutton\nevdev\n");
        let rec = RecordingLoader::default()
            .failing("button")
            .already_loaded("evdev");
        let report = load_listed(&Layout::under(root.path()), &mut loading(&root, &rec));
        assert_eq!(report.already_loaded, ["evdev"]);
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("module nosuch is not in "),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("loading module button from "),
            "{errors:?}"
        );
    }

    #[test]
    fn no_list_means_nothing_to_do() {
        let root = tempfile::tempdir().unwrap();
        let rec = RecordingLoader::default();
        let report = load_listed(&Layout::under(root.path()), &mut loading(&root, &rec));
        assert!(report.loaded.is_empty() && report.errors.is_empty());
    }

    #[test]
    fn later_lists_skip_what_was_tried_before() {
        let root = image("virtio-net\nbutton\n");
        let rec = RecordingLoader::default().failing("button");
        let mut loading = loading(&root, &rec);
        let base = load_listed(&Layout::under(root.path()), &mut loading);
        assert_eq!(base.loaded, ["net_failover", "virtio_net"]);
        assert_eq!(base.errors.len(), 1);
        // An agent wanting nfsd and a base module again: only what is new loads, and
        // the failed module is not retried (nor reported) a second time.
        let agent = loading.load(&["nfsd".into(), "virtio_net".into(), "button".into()]);
        assert_eq!(agent.loaded, ["sunrpc", "auth_rpcgss", "grace", "nfsd"]);
        assert!(agent.errors.is_empty(), "{:?}", agent.errors);
        let again = loading.load(&["nfsd".into(), "nosuch".into()]);
        assert!(again.loaded.is_empty());
        assert_eq!(again.errors.len(), 1);
        assert!(loading.load(&["nosuch".into()]).errors.is_empty());
        assert_eq!(
            rec.inserted(),
            [
                "net_failover",
                "virtio_net",
                "sunrpc",
                "auth_rpcgss",
                "grace",
                "nfsd"
            ]
        );
    }

    fn loading(root: &tempfile::TempDir, rec: &RecordingLoader) -> ModuleLoading {
        let dir = Layout::under(root.path()).modules_dir("6.1.0-test");
        ModuleLoading::new(dir, Box::new(rec.clone()))
    }
}
