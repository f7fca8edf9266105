//! In-process `.deb` extraction: no dpkg, no chroot, no root needed.
//!
//! A `.deb` is an `ar` archive whose `data.tar[.xz|.zst]` member holds the files.
//! It is unpacked into `<cache>/extract/<sha256>.tmp-*`, flushed with `syncfs`, then
//! renamed to `<cache>/extract/<sha256>`: the final name exists only for a complete
//! tree, so a crash never leaves a half tree that looks good. Symlinks, hard links,
//! modes (setuid included) and mtimes are kept; ownership is not (the image is all
//! root anyway). Entries with absolute paths or `..` components are refused, and
//! the tar crate refuses writes through symlinks that lead outside the tree.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::cache;
use super::error::DebianError;
use super::progress::Progress;

/// Extracts `deb` into `dest` unless `dest` already exists (a previous complete
/// extraction). Returns `dest`.
pub fn extract(
    deb: &Path,
    dest: &Path,
    package: &str,
    progress: &dyn Progress,
) -> Result<PathBuf, DebianError> {
    if dest.is_dir() {
        return Ok(dest.to_path_buf());
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| DebianError::io("creating", parent, e))?;
    let stem = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = cache::temp_path(parent, &format!("extract-{stem}"));
    fs::create_dir(&tmp).map_err(|e| DebianError::io("creating", &tmp, e))?;
    let result = unpack_data(deb, &tmp, package, progress).and_then(|()| {
        let dir = File::open(&tmp).map_err(|e| DebianError::io("opening", &tmp, e))?;
        nix::unistd::syncfs(&dir).map_err(|e| DebianError::io("syncing", &tmp, io::Error::from(e)))
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, dest) {
        let _ = fs::remove_dir_all(&tmp);
        // Someone else finished the same extraction first: theirs is as good.
        if !dest.is_dir() {
            return Err(DebianError::io("renaming into place", dest, e));
        }
    }
    Ok(dest.to_path_buf())
}

/// Counts bytes read through it into the progress hook.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

fn unpack_data(
    deb: &Path,
    dest: &Path,
    package: &str,
    progress: &dyn Progress,
) -> Result<(), DebianError> {
    let bad = |message: String| DebianError::BadDeb {
        package: package.into(),
        path: deb.into(),
        message,
    };
    let file = File::open(deb).map_err(|e| DebianError::io("opening", deb, e))?;
    let mut ar = ar::Archive::new(BufReader::with_capacity(256 * 1024, file));
    let mut first = true;
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| bad(format!("reading ar archive: {e}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if first {
            first = false;
            let mut version = String::new();
            if name != "debian-binary" || entry.read_to_string(&mut version).is_err() {
                return Err(bad("first member is not debian-binary".into()));
            }
            if !version.starts_with("2.") {
                return Err(bad(format!("unsupported format {}", version.trim())));
            }
            continue;
        }
        if !name.starts_with("data.tar") {
            continue;
        }
        let size = entry.header().size();
        progress.start(&format!("extracting {package}"), Some(size));
        let counted = Counting {
            inner: &mut entry,
            progress,
        };
        let reader: Box<dyn Read + '_> = match name.as_str() {
            "data.tar" => Box::new(counted),
            "data.tar.xz" => Box::new(xz2::read::XzDecoder::new_multi_decoder(counted)),
            "data.tar.zst" => Box::new(
                zstd::stream::read::Decoder::new(counted).map_err(|e| bad(format!("zstd: {e}")))?,
            ),
            other => return Err(bad(format!("unsupported member {other}"))),
        };
        let result = unpack_tar(reader, dest, package, deb);
        progress.finish();
        return result;
    }
    Err(bad("no data.tar member".into()))
}

fn check_path(bytes: &[u8], package: &str, deb: &Path) -> Result<(), DebianError> {
    if bytes.starts_with(b"/") || bytes.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(DebianError::UnsafeEntry {
            package: package.into(),
            path: deb.into(),
            entry: String::from_utf8_lossy(bytes).into_owned(),
        });
    }
    Ok(())
}

fn unpack_tar(
    reader: impl Read,
    dest: &Path,
    package: &str,
    deb: &Path,
) -> Result<(), DebianError> {
    let io_err = |e: io::Error| DebianError::BadDeb {
        package: package.into(),
        path: deb.into(),
        message: format!("unpacking data.tar into {}: {e}", dest.display()),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // Directories last, deepest first, so a read-only directory mode cannot block
    // its own contents (what tar's `unpack` does, with our path checks added).
    let mut directories = Vec::new();
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        check_path(&entry.path_bytes(), package, deb)?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                check_path(&target, package, deb)?;
            }
        }
        if kind.is_dir() {
            directories.push(entry);
        } else {
            entry.unpack_in(dest).map_err(io_err)?;
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        dir.unpack_in(dest).map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::debian::progress::NoProgress;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    pub(crate) enum Item<'a> {
        Dir(&'a str),
        File(&'a str, u32, &'a [u8]),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        /// A name written raw, bypassing tar's own `..` check.
        RawFile(&'a str),
    }

    /// Builds a `.deb` (ar + data.tar.<compression>) in memory.
    pub(crate) fn build_deb(items: &[Item], compression: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for item in items {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            match item {
                Item::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    tar.append_data(&mut h, p, io::empty()).unwrap();
                }
                Item::File(p, mode, data) => {
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, p, *data).unwrap();
                }
                Item::Symlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, p, target).unwrap();
                }
                Item::HardLink(p, target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(0o644);
                    h.set_size(0);
                    tar.append_link(&mut h, p, target).unwrap();
                }
                Item::RawFile(p) => {
                    h.set_mode(0o644);
                    h.set_size(4);
                    let name = &mut h.as_old_mut().name;
                    name[..p.len()].copy_from_slice(p.as_bytes());
                    h.set_cksum();
                    tar.append(&h, &b"evil"[..]).unwrap();
                }
            }
        }
        let data = tar.into_inner().unwrap();
        let (member, data) = match compression {
            "xz" => {
                let mut out = Vec::new();
                xz2::read::XzEncoder::new(&data[..], 1)
                    .read_to_end(&mut out)
                    .unwrap();
                ("data.tar.xz", out)
            }
            "zst" => ("data.tar.zst", zstd::encode_all(&data[..], 3).unwrap()),
            _ => ("data.tar", data),
        };
        let mut ar = ar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", Vec::new()),
            (member, data),
        ] {
            let h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            ar.append(&h, &bytes[..]).unwrap();
        }
        ar.into_inner().unwrap()
    }

    fn sample_items() -> Vec<Item<'static>> {
        vec![
            Item::Dir("./"),
            Item::Dir("./usr/"),
            Item::Dir("./usr/bin/"),
            Item::File("./usr/bin/tool", 0o4755, b"#!/bin/sh\necho hi\n"),
            Item::Symlink("./usr/bin/alias", "tool"),
            Item::Symlink("./usr/bin/abs", "/etc/alternatives/x"),
            Item::HardLink("./usr/bin/tool2", "./usr/bin/tool"),
            Item::Dir("./etc/"),
            Item::File("./etc/conf", 0o600, b"secret"),
        ]
    }

    #[test]
    fn extracts_files_links_and_modes() {
        for compression in ["xz", "zst", "none"] {
            let dir = tempfile::tempdir().unwrap();
            let deb = dir.path().join("p.deb");
            fs::write(&deb, build_deb(&sample_items(), compression)).unwrap();
            let dest = dir.path().join("extract/abc");
            let root = extract(&deb, &dest, "p", &NoProgress).unwrap();
            assert_eq!(root, dest);
            let tool = dest.join("usr/bin/tool");
            assert_eq!(fs::read(&tool).unwrap(), b"#!/bin/sh\necho hi\n");
            let meta = fs::metadata(&tool).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o4755, "{compression}");
            assert_eq!(meta.mtime(), 1_700_000_000);
            assert_eq!(
                fs::read_link(dest.join("usr/bin/alias")).unwrap(),
                Path::new("tool")
            );
            assert_eq!(
                fs::read_link(dest.join("usr/bin/abs")).unwrap(),
                Path::new("/etc/alternatives/x")
            );
            assert_eq!(
                fs::read(dest.join("usr/bin/tool2")).unwrap(),
                b"#!/bin/sh\necho hi\n"
            );
            assert_eq!(
                fs::metadata(dest.join("etc/conf"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600
            );
            // Only the final directory is left: no temp trees.
            let names: Vec<_> = fs::read_dir(dir.path().join("extract")).unwrap().collect();
            assert_eq!(names.len(), 1);
            // A second call reuses the finished tree.
            fs::remove_file(&deb).unwrap();
            extract(&deb, &dest, "p", &NoProgress).unwrap();
        }
    }

    #[test]
    fn refuses_path_traversal_and_leaves_nothing() {
        for evil in ["./usr/../../evil", "/etc/evil"] {
            let dir = tempfile::tempdir().unwrap();
            let deb = dir.path().join("p.deb");
            let mut items = sample_items();
            items.push(Item::RawFile(evil));
            fs::write(&deb, build_deb(&items, "xz")).unwrap();
            let dest = dir.path().join("extract/abc");
            let err = extract(&deb, &dest, "p", &NoProgress).unwrap_err();
            assert!(
                matches!(&err, DebianError::UnsafeEntry { entry, .. } if entry == evil),
                "{err}"
            );
            assert!(err.to_string().contains("refusing unsafe entry"));
            assert!(!dest.exists());
            assert_eq!(fs::read_dir(dir.path().join("extract")).unwrap().count(), 0);
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn refuses_non_debs() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("p.deb");
        fs::write(&deb, b"not an ar archive at all").unwrap();
        let err = extract(&deb, &dir.path().join("x"), "p", &NoProgress).unwrap_err();
        assert!(matches!(err, DebianError::BadDeb { .. }), "{err}");
    }
}
