//! Per-guest artefact directories.
//!
//! Each guest writes its serial log, QEMU's stderr, disk images and initrd under
//! `$HEARTH_TEST_ARTEFACTS/<test>-<millis>-<n>/` (default: `<target>/qemu-artefacts/`).
//! A failed test keeps the directory so the console can be read afterwards; a passing
//! test removes it, except the serial log when `HEARTH_KEEP_ARTEFACTS=1`. Unix
//! sockets live in a short directory under `/tmp` instead, because socket paths are
//! limited to 108 bytes and target directories can be deep.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// Overrides where artefact directories are created.
pub const ARTEFACTS_ENV: &str = "HEARTH_TEST_ARTEFACTS";
/// `1` keeps the serial log of passing tests too.
pub const KEEP_ENV: &str = "HEARTH_KEEP_ARTEFACTS";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The artefact directory of one guest plus its socket directory.
#[derive(Debug)]
pub struct Artefacts {
    dir: PathBuf,
    sockets: PathBuf,
}

impl Artefacts {
    /// Create fresh directories for the test called `name`.
    pub fn create(name: &str) -> Result<Self, Error> {
        let base = std::env::var_os(ARTEFACTS_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("qemu-artefacts"));
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{}-{millis}-{seq}", sanitize(name)));
        let sockets =
            std::env::temp_dir().join(format!("hearth-qemu-{}-{seq}", std::process::id()));
        for path in [&dir, &sockets] {
            std::fs::create_dir_all(path).map_err(|source| Error::Io {
                what: "creating",
                path: path.clone(),
                source,
            })?;
        }
        Ok(Artefacts { dir, sockets })
    }

    /// The artefact directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file in the artefact directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A unix socket path (short, under `/tmp`).
    pub fn socket(&self, name: &str) -> PathBuf {
        self.sockets.join(name)
    }

    /// Clean up after a passing test (`keep == false`) or keep everything and say
    /// where it is (`keep == true`).
    pub fn finish(&self, keep: bool) {
        let _ = std::fs::remove_dir_all(&self.sockets);
        if keep {
            eprintln!("qemu artefacts kept in {}", self.dir.display());
            return;
        }
        if std::env::var(KEEP_ENV).as_deref() == Ok("1") {
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for entry in entries.flatten() {
                    if entry.file_name() != "serial.log" {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Cargo's target directory: the nearest ancestor of the test binary holding
/// `CACHEDIR.TAG` (cargo writes one at the target root).
pub fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join("CACHEDIR.TAG").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Keep test names usable as directory names.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_module_paths() {
        assert_eq!(sanitize("tests::boots/to ready"), "tests__boots_to_ready");
    }

    #[test]
    fn target_dir_has_the_cache_tag() {
        assert!(target_dir().join("CACHEDIR.TAG").is_file());
    }
}
