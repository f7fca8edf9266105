//! Kernel parameters under `/proc/sys`, read before written so an unchanged value
//! costs no write. The root is a parameter so tests run against a temp directory.

use std::path::{Path, PathBuf};

use crate::plan::Sysctl;

/// A failed sysctl read or write.
#[derive(Debug, thiserror::Error)]
#[error("sysctl {}: {action}", path.display())]
pub struct SysctlError {
    /// The file.
    pub path: PathBuf,
    /// `reading` or `writing "1"`.
    pub action: String,
    #[source]
    pub source: std::io::Error,
}

/// Set each sysctl that differs; returns the keys written.
pub fn apply(root: &Path, wanted: &[Sysctl]) -> Result<Vec<&'static str>, SysctlError> {
    let mut written = Vec::new();
    for (key, value) in wanted {
        let path = root.join(key);
        let now = std::fs::read_to_string(&path).map_err(|source| SysctlError {
            path: path.clone(),
            action: "reading".into(),
            source,
        })?;
        if now.trim() == *value {
            continue;
        }
        std::fs::write(&path, value).map_err(|source| SysctlError {
            path: path.clone(),
            action: format!("writing {value:?}"),
            source,
        })?;
        written.push(*key);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        for (key, _) in crate::plan::SYSCTLS {
            let p = dir.path().join(key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "0\n").unwrap();
        }
        let first = apply(dir.path(), crate::plan::SYSCTLS).unwrap();
        assert!(first.contains(&"net/ipv4/ip_forward"));
        assert!(!first.contains(&"net/ipv4/conf/all/send_redirects"));
        assert!(apply(dir.path(), crate::plan::SYSCTLS).unwrap().is_empty());
        let missing = apply(&dir.path().join("nope"), crate::plan::SYSCTLS).unwrap_err();
        assert!(missing
            .to_string()
            .contains("nope/net/ipv4/ip_forward: reading"));
    }
}
