//! The part of the appliance config init needs (`/etc/hearth/config.toml`), read with
//! `hearth-config` so init validates exactly what the builder validated.
//!
//! Init only uses `system.hostname`, but an invalid config means rescue, and the
//! rescue reason is the full [`hearth_config::LoadError`]: every
//! `file:line:col: field: reason` line.

use std::path::Path;

pub use hearth_config::LoadError;

/// What init takes from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub hostname: String,
}

/// Load and validate the config at `path`.
pub fn load(path: &Path) -> Result<BootConfig, LoadError> {
    let config = hearth_config::load(path)?;
    Ok(BootConfig {
        hostname: config.system.hostname.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::error_chain;

    #[test]
    fn missing_file_names_the_path_and_the_cause() {
        let err = load(Path::new("/nonexistent/hearth/config.toml")).unwrap_err();
        let text = error_chain(&err);
        assert!(text.contains("/nonexistent/hearth/config.toml"), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }

    #[test]
    fn invalid_file_reports_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[system\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, LoadError::Invalid(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("{}:1:", path.display())), "{text}");
    }

    #[test]
    fn the_default_config_gives_a_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, hearth_config::DEFAULT_TOML).unwrap();
        let cfg = load(&path).unwrap();
        assert!(!cfg.hostname.is_empty());
    }
}
