//! The image's file tree, held in memory until it is written as a cpio archive.
//!
//! Nothing is copied into a staging directory: a regular file is a reference to the
//! host file it comes from (an extracted package, a cargo output, the overlay) or a
//! small generated buffer. Paths are kept without the leading `/` in a sorted map, so
//! the archive order — and with it the archive bytes — depends only on the contents.
//! Parent directories are created on insert, so every directory is explicit.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors while adding to the tree.
#[derive(Debug, Error)]
pub enum TreeError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot add /{path}: /{parent} is not a directory in the image")]
    NotADirectory { path: String, parent: String },
    #[error("{path}: file type not supported in an image (sockets, fifos, devices)")]
    Unsupported { path: PathBuf },
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { contents: Contents, mode: u32 },
    Symlink { target: String },
    CharDev { mode: u32, major: u32, minor: u32 },
}

/// The image tree. Keys are paths without the leading `/`.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

fn key(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&key(path))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&key(path))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Insert `node` at `path`, creating missing parents (mode 0755). A later insert
    /// replaces an earlier one (the overlay wins), except that a directory never
    /// replaces a directory's mode set explicitly before.
    pub fn insert(&mut self, path: &str, node: Node) -> Result<(), TreeError> {
        let path = key(path);
        let mut parent = String::new();
        for component in path
            .split('/')
            .take(path.split('/').count().saturating_sub(1))
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(TreeError::NotADirectory {
                        path,
                        parent: parent.clone(),
                    })
                }
            }
        }
        if matches!(node, Node::Dir { .. })
            && matches!(self.nodes.get(&path), Some(Node::Dir { .. }))
        {
            return Ok(());
        }
        self.nodes.insert(path, node);
        Ok(())
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), TreeError> {
        let k = key(path);
        self.insert(&k, Node::Dir { mode })?;
        self.nodes.insert(k, Node::Dir { mode });
        Ok(())
    }

    pub fn bytes(
        &mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), TreeError> {
        self.insert(
            path,
            Node::File {
                contents: Contents::Bytes(data.into()),
                mode,
            },
        )
    }

    pub fn host_file(&mut self, path: &str, host: &Path, mode: u32) -> Result<(), TreeError> {
        self.insert(
            path,
            Node::File {
                contents: Contents::Host(host.to_path_buf()),
                mode,
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), TreeError> {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Add the host file, symlink or directory `host` at `path`, with its mode bits.
    /// Directories are added without their contents (see [`Tree::add_tree`]).
    pub fn add_host(&mut self, path: &str, host: &Path) -> Result<(), TreeError> {
        let meta = std::fs::symlink_metadata(host).map_err(|source| TreeError::Io {
            path: host.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(host).map_err(|source| TreeError::Io {
                path: host.to_path_buf(),
                source,
            })?;
            self.symlink(path, &target.to_string_lossy())
        } else if kind.is_dir() {
            self.dir(path, mode)
        } else if kind.is_file() {
            self.host_file(path, host, mode)
        } else {
            Err(TreeError::Unsupported {
                path: host.to_path_buf(),
            })
        }
    }

    /// Add everything under the host directory `host` at `path` (`""` for the root),
    /// skipping relative paths for which `skip` is true.
    pub fn add_tree(
        &mut self,
        path: &str,
        host: &Path,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<(), TreeError> {
        let mut entries = Vec::new();
        walk(host, "", &mut entries)?;
        for rel in entries {
            if skip(&rel) {
                continue;
            }
            let dest = if path.is_empty() {
                rel.clone()
            } else {
                format!("{}/{rel}", key(path))
            };
            self.add_host(&dest, &host.join(&rel))?;
        }
        Ok(())
    }
}

/// Every path under `root` (relative, sorted, directories before their contents).
pub fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), TreeError> {
    let dir = root.join(rel);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|source| TreeError::Io {
        path: dir.clone(),
        source,
    })? {
        let entry = entry.map_err(|source| TreeError::Io {
            path: dir.clone(),
            source,
        })?;
        let is_dir = entry
            .file_type()
            .map_err(|source| TreeError::Io {
                path: entry.path(),
                source,
            })?
            .is_dir();
        names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    names.sort();
    for (name, is_dir) in names {
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        out.push(child.clone());
        if is_dir {
            walk(root, &child, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_explicit_and_sorted() {
        let mut tree = Tree::new();
        tree.bytes("/etc/hearth/modules", "evdev\n", 0o644).unwrap();
        tree.symlink("/bin/sh", "/usr/bin/busybox").unwrap();
        tree.dir("/tmp", 0o1777).unwrap();
        let keys: Vec<_> = tree.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bin",
                "bin/sh",
                "etc",
                "etc/hearth",
                "etc/hearth/modules",
                "tmp"
            ]
        );
        assert_eq!(tree.get("/etc"), Some(&Node::Dir { mode: 0o755 }));
        assert_eq!(tree.get("tmp"), Some(&Node::Dir { mode: 0o1777 }));
    }

    #[test]
    fn a_file_cannot_hold_children() {
        let mut tree = Tree::new();
        tree.bytes("/etc", "x", 0o644).unwrap();
        let err = tree.bytes("/etc/passwd", "y", 0o644).unwrap_err();
        assert!(matches!(err, TreeError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn host_trees_keep_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        let exe = dir.path().join("usr/bin/helper");
        std::fs::write(&exe, "x").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("helper", dir.path().join("usr/bin/alias")).unwrap();
        std::fs::write(dir.path().join("usr/bin/skipme"), "x").unwrap();
        let mut tree = Tree::new();
        tree.add_tree("", dir.path(), &|rel| rel.ends_with("skipme"))
            .unwrap();
        assert_eq!(
            tree.get("usr/bin/helper"),
            Some(&Node::File {
                contents: Contents::Host(exe),
                mode: 0o4755
            })
        );
        assert_eq!(
            tree.get("usr/bin/alias"),
            Some(&Node::Symlink {
                target: "helper".into()
            })
        );
        assert!(!tree.contains("usr/bin/skipme"));
    }
}
