//! Kernel modules: which `.ko` files go into the image, and their `modules.dep`.
//!
//! Debian's kernel package ships no `modules.dep` (depmod runs at install time), so we
//! compute it: every `.ko` carries a `.modinfo` ELF section of NUL-separated `key=value`
//! strings, and its `depends=` entry names the modules it needs. Starting from the
//! module names the config asks for, we follow `depends=` (and `softdep=` `pre:`/`post:`
//! targets, which modprobe would load too) to a closure, ship exactly those files at
//! their original paths and write `modules.dep` in the standard format for init.
//!
//! Only the modules we need are read: the index maps module names to files from the
//! file names alone (a module's name is its file stem with `-` turned into `_`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use thiserror::Error;

/// Errors while indexing or reading kernel modules.
#[derive(Debug, Error)]
pub enum KmodError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ELF module: {reason}")]
    BadElf { path: PathBuf, reason: String },
    #[error("{path}: no .modinfo section")]
    NoModinfo { path: PathBuf },
    #[error("kernel module `{name}` (wanted by {wanted_by}) is neither in {dir} nor built in")]
    Missing {
        name: String,
        wanted_by: String,
        dir: PathBuf,
    },
}

/// The parsed `.modinfo` fields we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`, when present.
    pub name: Option<String>,
    /// `depends=`, split on commas.
    pub depends: Vec<String>,
    /// Modules named by `softdep=` (`pre:` and `post:` lists).
    pub softdeps: Vec<String>,
    /// `alias=` entries (`crc32c`, `crypto-crc32c`, `pci:v...`).
    pub aliases: Vec<String>,
}

/// Parse the bytes of a `.modinfo` section.
pub fn parse_modinfo(section: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for field in section.split(|b| *b == 0) {
        let Ok(field) = std::str::from_utf8(field) else {
            continue;
        };
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "name" => info.name = Some(value.to_string()),
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(normalize_name),
            ),
            "alias" => info.aliases.push(value.to_string()),
            "softdep" => info.softdeps.extend(
                value
                    .split_whitespace()
                    .filter(|w| !w.ends_with(':'))
                    .map(normalize_name),
            ),
            _ => {}
        }
    }
    info
}

/// modprobe treats `-` and `_` in module names alike; we use `_`.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Read the `.modinfo` section of one `.ko` file.
pub fn read_modinfo(path: &Path) -> Result<ModInfo, KmodError> {
    let data = std::fs::read(path).map_err(|source| KmodError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = object::File::parse(&*data).map_err(|e| KmodError::BadElf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| KmodError::NoModinfo {
            path: path.to_path_buf(),
        })?;
    let bytes = section.data().map_err(|e| KmodError::BadElf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(parse_modinfo(bytes))
}

/// Module name to path (relative to `/lib/modules/<kver>/`) for one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// The `/lib/modules/<kver>` directory on the host.
    pub dir: PathBuf,
    pub files: BTreeMap<String, PathBuf>,
    /// Names listed in `modules.builtin`: already in the kernel, nothing to load.
    pub builtin: BTreeSet<String>,
}

impl ModuleIndex {
    /// Index every `.ko` under `dir` (a `/lib/modules/<kver>` tree).
    pub fn scan(dir: &Path) -> Result<Self, KmodError> {
        let mut index = ModuleIndex {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let abs = dir.join(&rel);
            let entries = std::fs::read_dir(&abs).map_err(|source| KmodError::Io {
                path: abs.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| KmodError::Io {
                    path: abs.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let child = rel.join(&name);
                let kind = entry.file_type().map_err(|source| KmodError::Io {
                    path: abs.join(&name),
                    source,
                })?;
                if kind.is_dir() {
                    stack.push(child);
                } else if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".ko")) {
                    index.files.insert(normalize_name(stem), child);
                }
            }
        }
        let builtin = dir.join("modules.builtin");
        if let Ok(text) = std::fs::read_to_string(&builtin) {
            index.builtin = text
                .lines()
                .filter_map(|l| Path::new(l).file_name()?.to_str()?.strip_suffix(".ko"))
                .map(normalize_name)
                .collect();
        }
        Ok(index)
    }

    /// Expand `pattern` (a module name, or a name ending in `*`) to indexed names.
    fn expand(&self, pattern: &str) -> Vec<String> {
        let pattern = normalize_name(pattern);
        match pattern.strip_suffix('*') {
            Some(prefix) => self
                .files
                .keys()
                .filter(|n| n.starts_with(prefix))
                .cloned()
                .collect(),
            None => vec![pattern],
        }
    }

    /// Modules whose `alias=` names `alias`, searched among the crypto modules
    /// (`kernel/crypto`, `kernel/arch/*/crypto`): softdeps name crypto algorithms,
    /// and reading a few hundred small modules is cheap where all 4000 would not be.
    fn alias_providers(
        &self,
        alias: &str,
        modinfo: &mut impl FnMut(&Path) -> Result<ModInfo, KmodError>,
    ) -> Result<Vec<String>, KmodError> {
        let mut found = Vec::new();
        for (name, rel) in &self.files {
            let is_crypto = rel.starts_with("kernel/crypto")
                || (rel.starts_with("kernel/arch")
                    && rel
                        .components()
                        .nth(3)
                        .is_some_and(|c| c.as_os_str() == "crypto"));
            if !is_crypto {
                continue;
            }
            let info = modinfo(&self.dir.join(rel))?;
            if info.aliases.iter().any(|a| normalize_name(a) == alias) {
                found.push(name.clone());
            }
        }
        Ok(found)
    }

    /// Resolve the wanted module names to a [`ModuleSet`]: the closure over `depends=`
    /// and softdeps, read through `modinfo` (normally [`read_modinfo`] on the indexed
    /// file; tests pass synthetic data).
    pub fn resolve(
        &self,
        wanted: &[String],
        mut modinfo: impl FnMut(&Path) -> Result<ModInfo, KmodError>,
    ) -> Result<ModuleSet, KmodError> {
        let mut set = ModuleSet::default();
        let mut queue: VecDeque<(String, String)> = VecDeque::new();
        for pattern in wanted {
            for name in self.expand(pattern) {
                if self.builtin.contains(&name) && !self.files.contains_key(&name) {
                    continue;
                }
                if !set.load.contains(&name) {
                    set.load.push(name.clone());
                }
                queue.push_back((name, "the config".to_string()));
            }
        }
        let mut seen = BTreeSet::new();
        while let Some((name, wanted_by)) = queue.pop_front() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(rel) = self.files.get(&name) else {
                if self.builtin.contains(&name) {
                    continue;
                }
                return Err(KmodError::Missing {
                    name,
                    wanted_by,
                    dir: self.dir.clone(),
                });
            };
            let info = modinfo(&self.dir.join(rel))?;
            for dep in &info.depends {
                queue.push_back((dep.clone(), name.clone()));
            }
            // Softdeps are best effort (as in modprobe) and often name an alias
            // (libcrc32c's `pre: crc32c` means crc32c_generic or crc32c-intel):
            // ship what they resolve to. They are not in modules.dep, so init loads
            // them because we list them — first, because a `pre:` softdep must be
            // there before its user initialises and the image has no modprobe to
            // load it on demand.
            for soft in &info.softdeps {
                let providers = if self.files.contains_key(soft) {
                    vec![soft.clone()]
                } else {
                    self.alias_providers(soft, &mut modinfo)?
                };
                for provider in providers.into_iter().rev() {
                    queue.push_back((provider.clone(), name.clone()));
                    if !set.load.contains(&provider) {
                        set.load.insert(0, provider);
                    }
                }
            }
            set.modules.insert(
                name,
                Module {
                    path: rel.clone(),
                    depends: info.depends,
                },
            );
        }
        // A softdep may only be builtin: nothing to load then.
        set.load.retain(|n| set.modules.contains_key(n));
        Ok(set)
    }
}

/// One shipped module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Relative to `/lib/modules/<kver>/`.
    pub path: PathBuf,
    /// Direct dependencies (module names).
    pub depends: Vec<String>,
}

/// The modules an image ships.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSet {
    /// Every shipped module by name (the closure).
    pub modules: BTreeMap<String, Module>,
    /// Names for `/etc/hearth/modules`, in the order asked for.
    pub load: Vec<String>,
}

impl ModuleSet {
    /// `modules.dep` text: `path: dep-path dep-path ...` with the full transitive
    /// dependency list, nearest first, as depmod writes it (modprobe loads right to
    /// left). Lines sorted by path.
    pub fn modules_dep(&self) -> String {
        let mut lines: Vec<(String, String)> = Vec::new();
        for module in self.modules.values() {
            let mut order = Vec::new();
            let mut seen = BTreeSet::new();
            let mut queue: VecDeque<&String> = module.depends.iter().collect();
            while let Some(dep) = queue.pop_front() {
                if !seen.insert(dep.clone()) {
                    continue;
                }
                if let Some(m) = self.modules.get(dep) {
                    order.push(m.path.display().to_string());
                    queue.extend(m.depends.iter());
                }
            }
            let path = module.path.display().to_string();
            let line = if order.is_empty() {
                format!("{path}:")
            } else {
                format!("{path}: {}", order.join(" "))
            };
            lines.push((path, line));
        }
        lines.sort();
        let mut out = String::new();
        for (_, line) in lines {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(fields: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in fields {
            out.extend_from_slice(f.as_bytes());
            out.push(0);
            out.push(0); // padding NULs appear between fields in real modules
        }
        out
    }

    #[test]
    fn parses_modinfo_fields() {
        let bytes = section(&[
            "license=GPL",
            "depends=md-mod,async_tx,,raid6_pq",
            "softdep=pre: crc32c post: foo-bar",
            "name=raid456",
            "vermagic=6.1.0 SMP mod_unload",
        ]);
        let info = parse_modinfo(&bytes);
        assert_eq!(info.name.as_deref(), Some("raid456"));
        assert_eq!(info.depends, ["md_mod", "async_tx", "raid6_pq"]);
        assert_eq!(info.softdeps, ["crc32c", "foo_bar"]);
        assert_eq!(parse_modinfo(b"depends=\0"), ModInfo::default());
        assert_eq!(parse_modinfo(b"alias=crc32c\0").aliases, ["crc32c"]);
    }

    fn index() -> ModuleIndex {
        let mut index = ModuleIndex {
            dir: "/m".into(),
            ..Default::default()
        };
        for (name, path) in [
            ("raid456", "kernel/drivers/md/raid456.ko"),
            ("md_mod", "kernel/drivers/md/md-mod.ko"),
            ("async_tx", "kernel/crypto/async_tx/async_tx.ko"),
            ("libcrc32c", "kernel/lib/libcrc32c.ko"),
            ("crc32c_generic", "kernel/crypto/crc32c_generic.ko"),
            ("crc32c_intel", "kernel/arch/x86/crypto/crc32c-intel.ko"),
            ("aes_generic", "kernel/crypto/aes_generic.ko"),
            ("nft_nat", "kernel/net/netfilter/nft_nat.ko"),
            ("nft_ct", "kernel/net/netfilter/nft_ct.ko"),
        ] {
            index.files.insert(name.into(), path.into());
        }
        index.builtin.insert("crc32c".into());
        index.builtin.insert("virtio_pci".into());
        index
    }

    fn fake(path: &Path) -> Result<ModInfo, KmodError> {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let fields: &[&str] = match stem {
            "raid456" => &["depends=async_tx,md-mod"],
            "md-mod" => &["depends="],
            "async_tx" => &["depends="],
            "libcrc32c" => &["depends=", "softdep=pre: crc32c"],
            "crc32c_generic" => &["alias=crypto-crc32c", "alias=crc32c"],
            "crc32c-intel" => &["alias=crypto-crc32c", "alias=crc32c"],
            "aes_generic" => &["alias=aes"],
            "nft_nat" => &["depends=libcrc32c"],
            _ => &[],
        };
        Ok(parse_modinfo(&section(fields)))
    }

    #[test]
    fn closure_follows_depends_and_skips_builtins() {
        let wanted = vec!["raid456".to_string(), "virtio_pci".to_string()];
        let set = index().resolve(&wanted, fake).unwrap();
        assert_eq!(set.load, ["raid456"]);
        assert_eq!(
            set.modules.keys().collect::<Vec<_>>(),
            ["async_tx", "md_mod", "raid456"]
        );
        assert_eq!(
            set.modules_dep(),
            "kernel/crypto/async_tx/async_tx.ko:\n\
             kernel/drivers/md/md-mod.ko:\n\
             kernel/drivers/md/raid456.ko: kernel/crypto/async_tx/async_tx.ko kernel/drivers/md/md-mod.ko\n"
        );
    }

    #[test]
    fn globs_and_transitive_deps() {
        let set = index().resolve(&["nft_*".to_string()], fake).unwrap();
        // The alias `crc32c` resolves to both crypto modules providing it; they are
        // shipped and loaded first.
        assert_eq!(
            set.load,
            ["crc32c_generic", "crc32c_intel", "nft_ct", "nft_nat"]
        );
        assert!(!set.modules.contains_key("aes_generic"));
        assert!(set.modules.contains_key("libcrc32c"));
        assert!(set.modules.contains_key("crc32c_generic"));
        assert!(set
            .modules_dep()
            .contains("kernel/net/netfilter/nft_nat.ko: kernel/lib/libcrc32c.ko\n"));
    }

    #[test]
    fn missing_module_names_who_wanted_it() {
        let err = index()
            .resolve(&["nosuchmod".to_string()], fake)
            .unwrap_err();
        assert!(err.to_string().contains("`nosuchmod`"), "{err}");
    }
}
