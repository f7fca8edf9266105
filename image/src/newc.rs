//! A deterministic "newc" cpio writer for the initramfs.
//!
//! The format is small enough to write by hand, and doing so keeps every header field
//! under our control: entries come in [`Tree`] order (sorted by path, parents first),
//! uid/gid are 0, every mtime is `SOURCE_DATE_EPOCH`, inode numbers count up from 1 in
//! archive order, `nlink` is 1 for files (no hardlinks) and 2 for directories, and mode
//! bits are the real ones (setuid kept). Same tree, same epoch → same bytes.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use thiserror::Error;

use crate::rootfs::{Contents, Node, Tree};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Errors while writing the archive.
#[derive(Debug, Error)]
pub enum CpioError {
    #[error("reading {path} for /{entry}")]
    Read {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed size while being archived as /{entry}")]
    Changed { path: PathBuf, entry: String },
    #[error("writing the archive")]
    Write(#[source] io::Error),
}

struct Header<'a> {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev: (u32, u32),
    name: &'a str,
}

/// Counts bytes written so padding can be computed.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    fn header(&mut self, h: &Header) -> io::Result<()> {
        let namesize = h.name.len() + 1;
        let text = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            h.ino, h.mode, 0, 0, h.nlink, h.mtime, h.size, 0, 0, h.rdev.0, h.rdev.1, namesize, 0
        );
        self.put(text.as_bytes())?;
        self.put(h.name.as_bytes())?;
        self.put(&[0])?;
        self.pad4()
    }
}

/// Write `tree` as a newc archive to `out`, every mtime set to `mtime`. Returns the
/// number of bytes written.
pub fn write(tree: &Tree, mtime: u32, out: impl Write) -> Result<u64, CpioError> {
    let mut w = Counting {
        inner: out,
        written: 0,
    };
    for (index, (path, node)) in tree.iter().enumerate() {
        let mut h = Header {
            ino: index as u32 + 1,
            mode: 0,
            nlink: 1,
            mtime,
            size: 0,
            rdev: (0, 0),
            name: path,
        };
        match node {
            Node::Dir { mode } => {
                h.mode = S_IFDIR | mode;
                h.nlink = 2;
                w.header(&h).map_err(CpioError::Write)?;
            }
            Node::Symlink { target } => {
                h.mode = S_IFLNK | 0o777;
                h.size = target.len() as u32;
                w.header(&h).map_err(CpioError::Write)?;
                w.put(target.as_bytes()).map_err(CpioError::Write)?;
                w.pad4().map_err(CpioError::Write)?;
            }
            Node::CharDev { mode, major, minor } => {
                h.mode = S_IFCHR | mode;
                h.rdev = (*major, *minor);
                w.header(&h).map_err(CpioError::Write)?;
            }
            Node::File { contents, mode } => {
                h.mode = S_IFREG | mode;
                match contents {
                    Contents::Bytes(data) => {
                        h.size = data.len() as u32;
                        w.header(&h).map_err(CpioError::Write)?;
                        w.put(data).map_err(CpioError::Write)?;
                    }
                    Contents::Host(host) => {
                        let read_err = |source| CpioError::Read {
                            path: host.clone(),
                            entry: path.clone(),
                            source,
                        };
                        let mut file = std::fs::File::open(host).map_err(read_err)?;
                        let len = file.metadata().map_err(read_err)?.len();
                        h.size = len as u32;
                        w.header(&h).map_err(CpioError::Write)?;
                        let copied = io::copy(&mut (&mut file).take(len), &mut w.inner)
                            .map_err(CpioError::Write)?;
                        if copied != len {
                            return Err(CpioError::Changed {
                                path: host.clone(),
                                entry: path.clone(),
                            });
                        }
                        w.written += copied;
                    }
                }
                w.pad4().map_err(CpioError::Write)?;
            }
        }
    }
    let trailer = Header {
        ino: 0,
        mode: 0,
        nlink: 1,
        mtime: 0,
        size: 0,
        rdev: (0, 0),
        name: "TRAILER!!!",
    };
    w.header(&trailer).map_err(CpioError::Write)?;
    w.inner.flush().map_err(CpioError::Write)?;
    Ok(w.written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample(host_file: &std::path::Path) -> Tree {
        let mut tree = Tree::new();
        tree.bytes("/etc/hearth/modules", "evdev\n", 0o644).unwrap();
        tree.host_file("/usr/bin/tool", host_file, 0o4755).unwrap();
        tree.symlink("/bin/sh", "/usr/bin/busybox").unwrap();
        tree.insert(
            "/dev/console",
            Node::CharDev {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        )
        .unwrap();
        tree
    }

    #[test]
    fn same_tree_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("tool");
        std::fs::write(&host, b"#!tool\n").unwrap();
        let mut a = Vec::new();
        let mut b = Vec::new();
        let n = write(&sample(&host), 1_700_000_000, &mut a).unwrap();
        write(&sample(&host), 1_700_000_000, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(n as usize, a.len());
        assert_eq!(a.len() % 4, 0);
    }

    /// The host's `cpio` reads it back: names in sorted order, modes and targets kept.
    #[test]
    fn host_cpio_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("tool");
        std::fs::write(&host, b"#!tool\n").unwrap();
        let archive = dir.path().join("a.cpio");
        let mut bytes = Vec::new();
        write(&sample(&host), 1_700_000_000, &mut bytes).unwrap();
        std::fs::write(&archive, &bytes).unwrap();
        let out = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-F"])
            .arg(&archive)
            .output()
            .expect("running the host's cpio (install the cpio package)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = listing
            .lines()
            .map(|l| {
                let l = l.split(" -> ").next().unwrap();
                l.split_whitespace().last().unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/hearth",
                "etc/hearth/modules",
                "usr",
                "usr/bin",
                "usr/bin/tool"
            ]
        );
        assert!(listing.contains("-rwsr-xr-x"), "{listing}");
        assert!(listing.contains("bin/sh -> /usr/bin/busybox"), "{listing}");
        assert!(listing.contains("crw-------"), "{listing}");
        assert!(listing.lines().all(|l| l.contains(" root ")), "{listing}");

        let extract = dir.path().join("x");
        std::fs::create_dir(&extract).unwrap();
        let status = Command::new("cpio")
            .args(["-i", "-d", "--quiet", "-F"])
            .arg(&archive)
            .arg("etc/hearth/modules")
            .current_dir(&extract)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(extract.join("etc/hearth/modules")).unwrap(),
            "evdev\n"
        );
    }
}
