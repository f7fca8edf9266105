//! Kernel modules: `/etc/hearth/modules` names what to load (one per line, `#`
//! comments), `/lib/modules/<kver>/modules.dep` says where each module is and what it
//! needs. Dependencies load first, each module once, with `finit_module(2)`.
//!
//! `EEXIST` (already loaded) is fine, modules listed in `modules.builtin` are skipped,
//! and a module that is missing or fails to load is reported without stopping boot.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

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
pub trait ModuleLoader {
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

/// What [`load_listed`] did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub already_loaded: Vec<String>,
    pub errors: Vec<ModuleError>,
}

/// Load every module listed in the image for kernel `release`.
pub fn load_listed(layout: &Layout, release: &str, loader: &mut dyn ModuleLoader) -> LoadReport {
    let mut report = LoadReport::default();
    let wanted = match read_list(&layout.module_list()) {
        Ok(w) => w,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    if wanted.is_empty() {
        return report;
    }
    let db = match ModuleDb::load(&layout.modules_dir(release)) {
        Ok(db) => db,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let (order, missing) = db.load_order(&wanted);
    for name in missing {
        report.errors.push(ModuleError::Missing {
            name,
            dep_file: db.dep_file(),
        });
    }
    for (name, path) in order {
        match loader.insert(&name, &path) {
            Ok(true) => report.loaded.push(name),
            Ok(false) => report.already_loaded.push(name),
            Err(e) => report.errors.push(e),
        }
    }
    report
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

    /// Records inserts; `fail` makes one module fail, `loaded` ones report EEXIST.
    #[derive(Default)]
    struct Recorder {
        inserted: Vec<String>,
        loaded: HashSet<String>,
        fail: Option<String>,
    }

    impl ModuleLoader for Recorder {
        fn insert(&mut self, name: &str, path: &Path) -> Result<bool, ModuleError> {
            if self.fail.as_deref() == Some(name) {
                return Err(ModuleError::Load {
                    name: name.into(),
                    path: path.into(),
                    source: Errno::ENOEXEC,
                });
            }
            self.inserted.push(name.to_string());
            Ok(self.loaded.insert(name.to_string()))
        }
    }

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
        let mut rec = Recorder::default();
        let report = load_listed(&Layout::under(root.path()), "6.1.0-test", &mut rec);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            rec.inserted,
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
        let mut rec = Recorder {
            fail: Some("button".into()),
            loaded: ["evdev".to_string()].into(),
            ..Recorder::default()
        };
        let report = load_listed(&Layout::under(root.path()), "6.1.0-test", &mut rec);
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
        let report = load_listed(&Layout::under(root.path()), "x", &mut Recorder::default());
        assert!(report.loaded.is_empty() && report.errors.is_empty());
    }
}
