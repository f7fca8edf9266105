//! `hearth.lock`: the exact packages of an image, pinned by SHA256.
//!
//! With a lock that matches the requested roots and exclusions, a build reads no
//! index at all: it downloads (or takes from the cache) exactly the pinned files, so
//! rebuilds are fast and reproducible. `hearth update-lock` re-resolves against the
//! current archives. The file is TOML, sorted by package name, and written
//! atomically (temp file + fsync + rename).
//!
//! Each package records the archive URI it came from and is downloaded from there:
//! the lock, not the current apt sources, is the truth for a locked build (a
//! changed `mirror` takes effect with `hearth update-lock`). Changing the roots or the
//! exclusions re-resolves, keeping every still-available pinned version.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cache;
use super::error::DebianError;

pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "# hearth.lock: every Debian package of the image, pinned by SHA256.\n\
                      # Written by `hearth build`; refresh with `hearth update-lock`.\n\n";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The requested root packages (sorted, unique).
    pub roots: Vec<String>,
    /// The exclusion list used (sorted, unique).
    pub exclude: Vec<String>,
    #[serde(rename = "source", default)]
    pub sources: Vec<LockedSource>,
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

/// One archive suite the packages were resolved from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSource {
    pub uri: String,
    pub suite: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// Pool path relative to `source`.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Archive URI the file is downloaded from.
    pub source: String,
}

impl LockedPackage {
    pub fn url(&self) -> String {
        format!("{}/{}", self.source.trim_end_matches('/'), self.filename)
    }
}

/// Sorted, de-duplicated copy of a name list.
pub fn normalize(names: &[String]) -> Vec<String> {
    names
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl Lock {
    /// Reads a lock file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Lock>, DebianError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DebianError::io("reading", path, e)),
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| DebianError::Lock {
            path: path.into(),
            message: e.to_string(),
        })?;
        lock.validate(path)?;
        Ok(Some(lock))
    }

    /// Checks what a hand edit could break: the format version and that hashes
    /// are hashes (they become cache file names).
    pub fn validate(&self, path: &Path) -> Result<(), DebianError> {
        let err = |message: String| DebianError::Lock {
            path: path.into(),
            message,
        };
        if self.version != LOCK_VERSION {
            return Err(err(format!(
                "version {} is not supported (expected {LOCK_VERSION})",
                self.version
            )));
        }
        for p in &self.packages {
            if p.sha256.len() != 64
                || !p
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(err(format!(
                    "package {}: bad sha256 `{}`",
                    p.name, p.sha256
                )));
            }
            if p.filename.starts_with('/') || p.filename.split('/').any(|c| c == "..") {
                return Err(err(format!(
                    "package {}: bad filename `{}`",
                    p.name, p.filename
                )));
            }
        }
        Ok(())
    }

    /// Whether this lock was made for exactly these roots and exclusions.
    pub fn covers(&self, roots: &[String], exclude: &[String]) -> bool {
        self.roots == normalize(roots) && self.exclude == normalize(exclude)
    }

    /// Writes the lock atomically, packages sorted by name.
    pub fn write(&self, path: &Path) -> Result<(), DebianError> {
        let mut sorted = self.clone();
        sorted.roots = normalize(&sorted.roots);
        sorted.exclude = normalize(&sorted.exclude);
        sorted.packages.sort_by(|a, b| a.name.cmp(&b.name));
        let body = toml::to_string(&sorted).map_err(|e| DebianError::Lock {
            path: path.into(),
            message: format!("serializing: {e}"),
        })?;
        cache::write_atomic(path, format!("{HEADER}{body}").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        let p = |name: &str, c: char| LockedPackage {
            name: name.into(),
            version: "1:2.0-1".into(),
            filename: format!("pool/main/x/{name}.deb"),
            size: 42,
            sha256: c.to_string().repeat(64),
            source: "http://mirror.invalid/debian".into(),
        };
        Lock {
            version: 1,
            roots: vec!["b".into(), "a".into(), "a".into()],
            exclude: vec!["kmod".into()],
            sources: vec![LockedSource {
                uri: "http://mirror.invalid/debian".into(),
                suite: "bookworm".into(),
            }],
            packages: vec![p("zeta", 'a'), p("alpha", 'b')],
        }
    }

    #[test]
    fn round_trip_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.lock");
        assert_eq!(Lock::read(&path).unwrap(), None);
        sample().write(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# hearth.lock"));
        assert!(text.contains("version = 1"));
        assert!(text.find("name = \"alpha\"").unwrap() < text.find("name = \"zeta\"").unwrap());
        let back = Lock::read(&path).unwrap().unwrap();
        assert_eq!(back.roots, ["a", "b"]);
        assert_eq!(back.packages[0].name, "alpha");
        assert_eq!(
            back.packages[1].url(),
            "http://mirror.invalid/debian/pool/main/x/zeta.deb"
        );
        assert!(back.covers(&["a".into(), "b".into()], &["kmod".into()]));
        assert!(!back.covers(&["a".into()], &["kmod".into()]));
        assert!(!back.covers(&["a".into(), "b".into()], &[]));
    }

    #[test]
    fn rejects_bad_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.lock");
        let mut l = sample();
        l.version = 2;
        l.write(&path).unwrap();
        assert!(Lock::read(&path)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        let mut l = sample();
        l.packages[0].sha256 = "../../etc/passwd".into();
        l.write(&path).unwrap();
        assert!(Lock::read(&path)
            .unwrap_err()
            .to_string()
            .contains("bad sha256"));
        fs::write(&path, "version = 1\nroots = []\nexclude = []\nextra = 1\n").unwrap();
        let err = Lock::read(&path).unwrap_err();
        assert!(matches!(err, DebianError::Lock { .. }), "{err}");
    }
}
