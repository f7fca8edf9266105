//! The image-layout contract (README "Image layout"), as paths under a root so tests
//! can point init at a temp dir.

use std::path::{Path, PathBuf};

/// Where init finds its inputs and writes its outputs.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the running image (`/`).
    pub fn system() -> Self {
        Self::under("/")
    }

    /// The same layout below `root`.
    pub fn under(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("etc/hearth/config.toml")
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("etc/hearth/agents.toml")
    }

    pub fn module_list(&self) -> PathBuf {
        self.root.join("etc/hearth/modules")
    }

    /// `/lib/modules/<kver>`.
    pub fn modules_dir(&self, kernel_release: &str) -> PathBuf {
        self.root.join("lib/modules").join(kernel_release)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("var/log/hearth")
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("run/hearth/agents.json")
    }

    /// Directories agents expect to exist before they start (`/run/dbus` for the
    /// system bus).
    pub fn runtime_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("run/hearth"),
            self.root.join("run/dbus"),
            self.log_dir(),
        ]
    }

    /// The rescue shell, when the image has one.
    pub fn busybox(&self) -> PathBuf {
        self.root.join("usr/bin/busybox")
    }

    pub fn sys_class_input(&self) -> PathBuf {
        self.root.join("sys/class/input")
    }

    pub fn dev(&self) -> PathBuf {
        self.root.join("dev")
    }
}
