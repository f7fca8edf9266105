//! The download cache: `<cache>/debs/<sha256>.deb`, `<cache>/indexes/...`,
//! `<cache>/extract/<sha256>/`.
//!
//! Files are named by content hash and only ever appear through an atomic rename
//! of a verified temp file, so a crash leaves at worst a `.tmp-*` file behind,
//! never a half file under a good name. Cached files are re-hashed before use; a
//! mismatch (disk corruption, tampering) is deleted and fetched again, or reported
//! in offline mode.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use log::warn;
use sha2::{Digest, Sha256};

use super::error::DebianError;
use super::fetch::{Http, HINT_DEB};
use super::progress::Progress;

/// The default cache directory: `$XDG_CACHE_HOME/hearth`, else `~/.cache/hearth`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("hearth");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/hearth")
}

/// Paths inside one cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn deb_path(&self, sha256: &str) -> PathBuf {
        self.root.join("debs").join(format!("{sha256}.deb"))
    }

    pub fn extract_path(&self, sha256: &str) -> PathBuf {
        self.root.join("extract").join(sha256)
    }

    /// A decompressed-or-not index file, named by the hash InRelease gives it.
    pub fn index_path(&self, sha256: &str) -> PathBuf {
        self.root.join("indexes/by-hash").join(sha256)
    }

    /// The last `InRelease` seen for a suite (re-verified at every use).
    pub fn inrelease_path(&self, uri: &str, suite: &str) -> PathBuf {
        let host_path: String = uri
            .split_once("://")
            .map_or(uri, |(_, rest)| rest)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root
            .join("indexes")
            .join(host_path)
            .join(suite.replace('/', "_"))
            .join("InRelease")
    }

    /// Returns the verified cached `.deb`, downloading it when missing or corrupt.
    #[allow(clippy::too_many_arguments)]
    pub fn ensure_deb(
        &self,
        http: Option<&Http>,
        package: &str,
        url: &str,
        sha256: &str,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<PathBuf, DebianError> {
        let path = self.deb_path(sha256);
        if path.exists() {
            let (actual, actual_size) =
                sha256_file(&path).map_err(|e| DebianError::io("reading", &path, e))?;
            if actual == sha256 && actual_size == size {
                return Ok(path);
            }
            let _ = fs::remove_file(&path);
            if http.is_none() {
                return Err(DebianError::CacheCorrupt {
                    package: package.into(),
                    path,
                    expected: sha256.into(),
                    actual,
                });
            }
            warn!(
                "{package}: cached {} has SHA256 {actual}, expected {sha256}: deleted, downloading again",
                path.display()
            );
        }
        let Some(http) = http else {
            return Err(DebianError::OfflineMissing {
                what: format!("package {package}"),
                path,
            });
        };
        http.download_verified(url, &path, sha256, Some(size), HINT_DEB, progress)?;
        Ok(path)
    }
}

/// A fresh temp file name in `dir` (same filesystem as the final name).
pub fn temp_path(dir: &Path, stem: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        ".tmp-{stem}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Renames a complete, synced temp file to its final name and syncs the directory.
pub fn persist(tmp: &Path, dest: &Path) -> Result<(), DebianError> {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        return Err(DebianError::io("renaming into place", dest, e));
    }
    if let Some(dir) = dest.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes `bytes` to `dest` atomically (temp file + fsync + rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), DebianError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| DebianError::io("creating", dir, e))?;
    let tmp = temp_path(dir, "write");
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(DebianError::io("writing", &tmp, e));
    }
    persist(&tmp, dest)
}

/// SHA256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path());
        assert_eq!(
            c.inrelease_path("http://127.0.0.1:8080/debian", "bookworm"),
            dir.path()
                .join("indexes/127.0.0.1_8080_debian/bookworm/InRelease")
        );
        let p = c.index_path("ab");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        let (sum, size) = sha256_file(&p).unwrap();
        assert_eq!(size, 5);
        assert_eq!(
            sum,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left");
    }

    #[test]
    fn offline_cache_miss_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path());
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let p = crate::debian::progress::NoProgress;
        let err = c
            .ensure_deb(None, "pkg", "http://m.invalid/x.deb", sha, 5, &p)
            .unwrap_err();
        assert!(matches!(err, DebianError::OfflineMissing { .. }), "{err}");
        assert!(err.to_string().contains("without --offline"), "{err}");
        write_atomic(&c.deb_path(sha), b"hello").unwrap();
        assert_eq!(
            c.ensure_deb(None, "pkg", "u", sha, 5, &p).unwrap(),
            c.deb_path(sha)
        );
        write_atomic(&c.deb_path(sha), b"hellp").unwrap();
        let err = c.ensure_deb(None, "pkg", "u", sha, 5, &p).unwrap_err();
        assert!(matches!(err, DebianError::CacheCorrupt { .. }), "{err}");
        assert!(!c.deb_path(sha).exists(), "corrupt file removed");
    }
}
