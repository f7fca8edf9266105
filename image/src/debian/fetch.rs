//! HTTP downloads (ureq 3), streamed to a temp file while hashing.
//!
//! Nothing downloaded is trusted until its SHA256 (and size, when known) matches the
//! value from a verified source (InRelease → Packages → .deb, or the lock file). A
//! file that fails the check is deleted, never renamed into the cache.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::cache;
use super::error::DebianError;
use super::progress::Progress;

/// What to tell the user when a file is missing on the mirror.
pub const HINT_INDEX: &str = "; is this suite on the mirror?";
pub const HINT_DEB: &str =
    "; the mirror no longer has this version (a stale pin?): run `hearth update-lock`";

/// A reusable HTTP client (keeps connections to the mirror alive).
pub struct Http {
    agent: ureq::Agent,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: config.into(),
        }
    }

    /// Downloads `url` to `dest` (atomically), refusing it unless its SHA256 is
    /// `expected_sha256` and, when given, its size `expected_size`.
    pub fn download_verified(
        &self,
        url: &str,
        dest: &Path,
        expected_sha256: &str,
        expected_size: Option<u64>,
        not_found_hint: &'static str,
        progress: &dyn Progress,
    ) -> Result<(), DebianError> {
        let tmp = self.download(url, dest, expected_size, not_found_hint, progress)?;
        let (actual_sha, actual_size) = tmp.1;
        let size_ok = expected_size.is_none_or(|s| s == actual_size);
        if !size_ok || actual_sha != expected_sha256 {
            let _ = std::fs::remove_file(&tmp.0);
            return Err(DebianError::HashMismatch {
                what: dest
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                url: url.into(),
                expected: format!(
                    "sha256 {expected_sha256}{}",
                    expected_size
                        .map(|s| format!(", {s} bytes"))
                        .unwrap_or_default()
                ),
                actual: format!("sha256 {actual_sha}, {actual_size} bytes"),
            });
        }
        cache::persist(&tmp.0, dest)
    }

    /// Downloads `url` next to `dest` into a temp file; returns the temp path and
    /// (sha256 hex, size). The caller verifies and persists or deletes it.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        total: Option<u64>,
        not_found_hint: &'static str,
        progress: &dyn Progress,
    ) -> Result<(std::path::PathBuf, (String, u64)), DebianError> {
        log::debug!("GET {url}");
        let mut response = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(status) => DebianError::HttpStatus {
                url: url.into(),
                status,
                hint: if status == 404 { not_found_hint } else { "" },
            },
            other => DebianError::Unreachable {
                url: url.into(),
                message: other.to_string(),
            },
        })?;
        let total = total.or_else(|| response.body().content_length());
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| DebianError::io("creating", dir, e))?;
        let tmp = cache::temp_path(dir, "download");
        let mut file = File::create(&tmp).map_err(|e| DebianError::io("creating", &tmp, e))?;
        let name = url.rsplit('/').next().unwrap_or(url);
        progress.start(&format!("downloading {name}"), total);
        let result = (|| {
            let mut reader = response.body_mut().as_reader();
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| DebianError::Unreachable {
                        url: url.into(),
                        message: format!("reading the response: {e}"),
                    })?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(|e| DebianError::io("writing", &tmp, e))?;
                size += n as u64;
                progress.advance(n as u64);
            }
            file.sync_all()
                .map_err(|e| DebianError::io("syncing", &tmp, e))?;
            Ok((hex::encode(hasher.finalize()), size))
        })();
        progress.finish();
        match result {
            Ok(sum) => Ok((tmp, sum)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}
