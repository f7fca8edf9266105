//! Injecting files into a guest's initramfs.
//!
//! The kernel unpacks every cpio archive concatenated in the initrd, in order, later
//! files replacing earlier ones. So to give one guest a different
//! `/etc/hearth/config.toml` the harness appends a small uncompressed newc archive to
//! the image's compressed one. The kernel only looks for the next archive at a 4-byte
//! aligned offset after a compressed one, skipping zero bytes, hence the padding.

use std::io::Write;
use std::path::Path;

use crate::Error;

/// A file to add to the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFile {
    /// Absolute path inside the guest.
    pub path: String,
    pub contents: Vec<u8>,
    /// Permission bits (e.g. `0o644`).
    pub mode: u32,
}

/// A newc archive holding `files` and their parent directories.
pub fn newc_archive(files: &[OverlayFile]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut ino = 1;
    for file in files {
        let rel = file.path.trim_start_matches('/');
        let components: Vec<&str> = rel.split('/').collect();
        let mut parent = String::new();
        for component in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            if dirs.contains(&parent) {
                continue;
            }
            dirs.push(parent.clone());
            let writer = cpio::newc::Builder::new(&parent)
                .ino(ino)
                .mode(0o040755)
                .nlink(2)
                .write(&mut out, 0);
            writer.finish()?;
            ino += 1;
        }
        let size = u32::try_from(file.contents.len())
            .map_err(|_| std::io::Error::other(format!("{} is too large", file.path)))?;
        let mut writer = cpio::newc::Builder::new(rel)
            .ino(ino)
            .mode(0o100000 | (file.mode & 0o7777))
            .nlink(1)
            .write(&mut out, size);
        writer.write_all(&file.contents)?;
        writer.finish()?;
        ino += 1;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

/// Write `base` followed by an archive of `files` to `out`.
pub fn write_with_overlay(base: &Path, files: &[OverlayFile], out: &Path) -> Result<(), Error> {
    let mut bytes = std::fs::read(base).map_err(|source| Error::Io {
        what: "reading",
        path: base.to_path_buf(),
        source,
    })?;
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    let archive = newc_archive(files).map_err(|source| Error::Io {
        what: "building the overlay for",
        path: out.to_path_buf(),
        source,
    })?;
    bytes.extend_from_slice(&archive);
    std::fs::write(out, bytes).map_err(|source| Error::Io {
        what: "writing",
        path: out.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn archive_lists_parents_then_file() {
        let archive = newc_archive(&[
            OverlayFile {
                path: "/etc/hearth/config.toml".into(),
                contents: b"version = 2\n".to_vec(),
                mode: 0o644,
            },
            OverlayFile {
                path: "/etc/hearth/extra".into(),
                contents: b"x".to_vec(),
                mode: 0o600,
            },
        ])
        .unwrap();
        let mut entries = Vec::new();
        let mut rest: &[u8] = &archive;
        loop {
            let mut reader = cpio::newc::Reader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let (name, mode) = (reader.entry().name().to_string(), reader.entry().mode());
            let mut data = String::new();
            reader.read_to_string(&mut data).unwrap();
            entries.push((name, mode, data));
            rest = reader.finish().unwrap();
        }
        assert_eq!(
            entries,
            [
                ("etc".to_string(), 0o040755, String::new()),
                ("etc/hearth".to_string(), 0o040755, String::new()),
                (
                    "etc/hearth/config.toml".to_string(),
                    0o100644,
                    "version = 2\n".to_string()
                ),
                ("etc/hearth/extra".to_string(), 0o100600, "x".to_string()),
            ]
        );
    }

    #[test]
    fn the_host_cpio_reads_the_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.cpio");
        // An uncompressed base of odd length exercises the padding.
        std::fs::write(&base, b"123").unwrap();
        let out = dir.path().join("initrd");
        let file = OverlayFile {
            path: "/a/b".into(),
            contents: b"hello".to_vec(),
            mode: 0o644,
        };
        write_with_overlay(&base, &[file], &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..4], b"123\0");
        let listing = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(
                std::fs::File::open({
                    let tail = dir.path().join("tail");
                    std::fs::write(&tail, &bytes[4..]).unwrap();
                    tail
                })
                .unwrap(),
            )
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        assert_eq!(String::from_utf8_lossy(&listing.stdout), "a\na/b\n");
    }
}
