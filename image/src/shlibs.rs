//! Shared libraries for the dynamically linked programs an image ships.
//!
//! Debian's `dbus-daemon` (and whatever `image.extra_packages` brings) is linked
//! against glibc and a dozen libraries. They are resolved with `lddtree` against the
//! fetched packages, never the host: the non-kernel package trees are merged into one
//! *sysroot* view (a directory of links into the extracted trees, rebuilt each build
//! because it is cheap) and `lddtree` searches it the way `ld.so` would, using the
//! sysroot's own `ld.so.conf`. Each library found is added to the image with the
//! symlink chain that leads to it (`libfoo.so.1 -> libfoo.so.1.2.3`), and the ELF
//! interpreter likewise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::rootfs::{self, Contents, Node, Tree, TreeError};

/// Errors resolving shared libraries.
#[derive(Debug, Error)]
pub enum ShlibError {
    #[error("building the library sysroot at {path}")]
    Sysroot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("analysing /{binary} ({host})")]
    Analyze {
        binary: String,
        host: PathBuf,
        #[source]
        source: lddtree::Error,
    },
    #[error("/{binary} needs {library}, which no fetched package provides; add its package to image.extra_packages")]
    NotFound { binary: String, library: String },
    #[error("symlink loop or dangling link at /{path} in the fetched packages")]
    BadLink { path: String },
}

/// One path in the merged package view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ViewEntry {
    Dir,
    File(PathBuf),
    Symlink(String),
}

/// The union of several extracted package trees, by path (no leading `/`).
#[derive(Debug, Default)]
pub struct PackageView {
    entries: BTreeMap<String, ViewEntry>,
}

/// Parts of package trees that never matter for running programs.
fn is_doc(rel: &str) -> bool {
    [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/lintian",
        "usr/share/locale",
        "usr/share/info",
    ]
    .iter()
    .any(|p| rel == *p || rel.starts_with(&format!("{p}/")))
}

impl PackageView {
    /// Merge `roots` (later roots win on conflicts).
    pub fn new(roots: &[&Path]) -> Result<Self, ShlibError> {
        let mut view = PackageView::default();
        for root in roots {
            let mut rels = Vec::new();
            rootfs::walk(root, "", &mut rels)?;
            for rel in rels {
                if is_doc(&rel) {
                    continue;
                }
                let host = root.join(&rel);
                let meta =
                    std::fs::symlink_metadata(&host).map_err(|source| ShlibError::Sysroot {
                        path: host.clone(),
                        source,
                    })?;
                let entry = if meta.is_dir() {
                    ViewEntry::Dir
                } else if meta.file_type().is_symlink() {
                    let target =
                        std::fs::read_link(&host).map_err(|source| ShlibError::Sysroot {
                            path: host.clone(),
                            source,
                        })?;
                    ViewEntry::Symlink(target.to_string_lossy().into_owned())
                } else {
                    ViewEntry::File(host)
                };
                view.entries.insert(rel, entry);
            }
        }
        Ok(view)
    }

    /// Write the view as a directory `dir`: directories, symlinks to the host files,
    /// and the packages' own symlinks with absolute targets moved under `dir`.
    pub fn materialize(&self, dir: &Path) -> Result<(), ShlibError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ShlibError::Sysroot { path, source }
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(err(dir))?;
        }
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        for (rel, entry) in &self.entries {
            let dest = dir.join(rel);
            match entry {
                ViewEntry::Dir => std::fs::create_dir_all(&dest).map_err(err(&dest))?,
                ViewEntry::File(host) => {
                    std::os::unix::fs::symlink(host, &dest).map_err(err(&dest))?
                }
                ViewEntry::Symlink(target) => {
                    let target = match target.strip_prefix('/') {
                        Some(abs) => dir.join(abs),
                        None => PathBuf::from(target),
                    };
                    std::os::unix::fs::symlink(target, &dest).map_err(err(&dest))?
                }
            }
        }
        Ok(())
    }

    /// Add `rel` to `tree`: every symlink on the way (final component only) and the
    /// file at the end.
    pub fn add_with_links(&self, rel: &str, tree: &mut Tree) -> Result<(), ShlibError> {
        let mut current = rel.trim_start_matches('/').to_string();
        for _ in 0..16 {
            match self.entries.get(&current) {
                Some(ViewEntry::File(host)) => {
                    let mode = file_mode(host)?;
                    tree.host_file(&current, host, mode)?;
                    return Ok(());
                }
                Some(ViewEntry::Symlink(target)) => {
                    tree.symlink(&current, target)?;
                    current = resolve_link(&current, target);
                }
                _ => return Err(ShlibError::BadLink { path: current }),
            }
        }
        Err(ShlibError::BadLink {
            path: rel.to_string(),
        })
    }

    /// The host file behind `rel`, following symlinks.
    pub fn host_path(&self, rel: &str) -> Option<PathBuf> {
        let mut current = rel.trim_start_matches('/').to_string();
        for _ in 0..16 {
            match self.entries.get(&current)? {
                ViewEntry::File(host) => return Some(host.clone()),
                ViewEntry::Symlink(target) => current = resolve_link(&current, target),
                ViewEntry::Dir => return None,
            }
        }
        None
    }
}

fn file_mode(host: &Path) -> Result<u32, ShlibError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(host).map_err(|source| ShlibError::Sysroot {
        path: host.to_path_buf(),
        source,
    })?;
    Ok(meta.permissions().mode() & 0o7777)
}

/// Where the symlink at `link` (image-relative) pointing to `target` leads,
/// image-relative and normalized.
fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// True when the file starts with the ELF magic.
pub fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| magic == *b"\x7fELF")
        .unwrap_or(false)
}

/// Add the libraries (and interpreter) needed by every dynamically linked ELF in
/// `tree` except kernel modules, resolved in `sysroot` (a materialized `view`).
/// Returns the image paths added.
pub fn add_needed(
    tree: &mut Tree,
    view: &PackageView,
    sysroot: &Path,
) -> Result<BTreeSet<String>, ShlibError> {
    let binaries: Vec<(String, PathBuf)> = tree
        .iter()
        .filter_map(|(path, node)| match node {
            Node::File {
                contents: Contents::Host(host),
                ..
            } if !path.ends_with(".ko") && is_elf(host) => Some((path.clone(), host.clone())),
            _ => None,
        })
        .collect();
    let mut needed = BTreeSet::new();
    for (binary, host) in binaries {
        let analyzer = lddtree::DependencyAnalyzer::new(sysroot.to_path_buf())
            .add_library_path(sysroot.join("lib/x86_64-linux-gnu"))
            .add_library_path(sysroot.join("usr/lib/x86_64-linux-gnu"));
        let deps = analyzer
            .analyze(&host)
            .map_err(|source| ShlibError::Analyze {
                binary: binary.clone(),
                host: host.clone(),
                source,
            })?;
        if let Some(interp) = &deps.interpreter {
            needed.insert(interp.trim_start_matches('/').to_string());
        }
        for lib in deps.libraries.values() {
            let rel = lib.path.strip_prefix(sysroot).ok().filter(|_| lib.found());
            let Some(rel) = rel else {
                return Err(ShlibError::NotFound {
                    binary,
                    library: lib.name.clone(),
                });
            };
            needed.insert(rel.to_string_lossy().into_owned());
        }
    }
    for rel in &needed {
        view.add_with_links(rel, tree)?;
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_within_the_image() {
        assert_eq!(
            resolve_link(
                "lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ),
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        assert_eq!(
            resolve_link("usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1.2.13"),
            "usr/lib/x86_64-linux-gnu/libz.so.1.2.13"
        );
        assert_eq!(resolve_link("usr/bin/x", "../lib/y"), "usr/lib/y");
    }

    /// The host's `/bin/true` resolved against a sysroot made from the host's own
    /// libc files, copied to a temp dir: proves lookups stay inside the sysroot.
    #[test]
    fn resolves_inside_the_sysroot_only() {
        let pkg = tempfile::tempdir().unwrap();
        let libdir = pkg.path().join("lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libdir).unwrap();
        std::fs::create_dir_all(pkg.path().join("lib64")).unwrap();
        std::fs::create_dir_all(pkg.path().join("usr/bin")).unwrap();
        let real_libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let real_ld = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        std::fs::copy(&real_libc, libdir.join("libc.so.6")).unwrap();
        std::fs::copy(&real_ld, libdir.join("ld-linux-x86-64.so.2")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            pkg.path().join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::fs::copy("/bin/true", pkg.path().join("usr/bin/true")).unwrap();

        let view = PackageView::new(&[pkg.path()]).unwrap();
        let work = tempfile::tempdir().unwrap();
        let sysroot = work.path().join("sysroot");
        view.materialize(&sysroot).unwrap();
        let mut tree = Tree::new();
        tree.add_host("usr/bin/true", &pkg.path().join("usr/bin/true"))
            .unwrap();
        let added = add_needed(&mut tree, &view, &sysroot).unwrap();
        assert!(
            added.contains("lib/x86_64-linux-gnu/libc.so.6"),
            "{added:?}"
        );
        assert!(added.contains("lib64/ld-linux-x86-64.so.2"), "{added:?}");
        assert_eq!(
            tree.get("lib64/ld-linux-x86-64.so.2"),
            Some(&Node::Symlink {
                target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()
            })
        );
        match tree.get("lib/x86_64-linux-gnu/libc.so.6") {
            Some(Node::File {
                contents: Contents::Host(host),
                ..
            }) => assert!(host.starts_with(pkg.path()), "{host:?}"),
            other => panic!("{other:?}"),
        }

        // Without libc in the packages, the host's libc must not be used.
        std::fs::remove_file(libdir.join("libc.so.6")).unwrap();
        let view = PackageView::new(&[pkg.path()]).unwrap();
        view.materialize(&sysroot).unwrap();
        let mut tree = Tree::new();
        tree.add_host("usr/bin/true", &pkg.path().join("usr/bin/true"))
            .unwrap();
        let err = add_needed(&mut tree, &view, &sysroot).unwrap_err();
        assert!(matches!(err, ShlibError::NotFound { .. }), "{err}");
    }
}
