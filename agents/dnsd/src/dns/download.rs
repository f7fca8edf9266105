//! Blocklists with a `url`: downloaded over HTTP(S), kept as the last good copy in the
//! state directory, refreshed at start, on SIGHUP and once a day.
//!
//! The copy for a URL is `DIR/url-<16 hex of its SHA-256>.hosts`. Serving only ever
//! reads the copy ([`cached_path`]), never the network, so DNS starts at once and
//! answers with the last good list while a download runs; a list never downloaded
//! yet blocks nothing until its first download succeeds.
//!
//! A download replaces the copy only when it is complete (HTTP 200, at most
//! [`MAX_BYTES`]) and parses as a blocklist: written to a temp file, fsynced, renamed
//! over the copy, directory fsynced. Anything else — unreachable, an HTTP error, a
//! timeout, a list with a malformed line — is logged and the old copy stays.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::blocklist;

/// Largest list accepted (the biggest public hosts lists are ~10 MiB).
pub const MAX_BYTES: u64 = 64 << 20;
/// How long one download may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How often every URL list is downloaded again while dnsd runs.
pub const REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Why a download did not replace the copy. Each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("blocklist {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("blocklist {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("blocklist {url}: larger than {MAX_BYTES} bytes")]
    TooLarge { url: String },
    #[error("blocklist {url}: not a blocklist: {source}")]
    Parse {
        url: String,
        #[source]
        source: blocklist::BlocklistError,
    },
    #[error("blocklist {url}: writing {}", path.display())]
    Write {
        url: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The copy was replaced by a different list.
    Changed,
    /// The list downloaded is the one already kept.
    Unchanged,
}

/// The last good copy of `url` inside `dir`.
pub fn cached_path(dir: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(url.as_bytes());
    dir.join(format!("url-{}.hosts", hex::encode(&digest[..8])))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .user_agent(concat!("hearth-dnsd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Download `url`, check that it parses, and keep it as its copy in `dir`.
pub fn fetch(url: &str, dir: &Path) -> Result<Outcome, DownloadError> {
    let fetch_err = |message: String| DownloadError::Fetch {
        url: url.to_owned(),
        message,
    };
    let mut resp = agent().get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(status) => DownloadError::Status {
            url: url.to_owned(),
            status,
        },
        other => fetch_err(other.to_string()),
    })?;
    let mut bytes = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fetch_err(format!("reading the response: {e}")))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(DownloadError::TooLarge {
            url: url.to_owned(),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    blocklist::parse(&text, Path::new(url)).map_err(|source| DownloadError::Parse {
        url: url.to_owned(),
        source,
    })?;
    let path = cached_path(dir, url);
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(Outcome::Unchanged);
    }
    persist(dir, &path, &bytes).map_err(|(path, source)| DownloadError::Write {
        url: url.to_owned(),
        path,
        source,
    })?;
    Ok(Outcome::Changed)
}

/// Write `bytes` to `path` atomically and durably.
fn persist(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    std::fs::create_dir_all(dir).map_err(|e| (dir.to_owned(), e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| (tmp.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| (path.to_owned(), e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (dir.to_owned(), e))
}

/// Download every URL list of `lists` into `dir`; whether any copy changed. Failures
/// are logged and keep the old copy.
pub fn fetch_all(lists: &[hearth_config::Blocklist], dir: &Path) -> bool {
    let mut changed = false;
    for url in lists.iter().filter_map(|l| l.url.as_ref()) {
        let url = url.as_str();
        match fetch(url, dir) {
            Ok(Outcome::Changed) => {
                log::info!("blocklist {url}: downloaded a new version");
                changed = true;
            }
            Ok(Outcome::Unchanged) => log::info!("blocklist {url}: unchanged"),
            Err(e) => log::warn!("{}; keeping the last good copy", error_chain(&e)),
        }
    }
    changed
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on loopback answering every request with `status` and
    /// `body`; returns its base URL.
    fn serve(responses: Vec<(u16, &'static str)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (status, body) in responses {
                let (mut s, _) = listener.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        format!("http://{addr}/ads.hosts")
    }

    #[test]
    fn keeps_the_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve(vec![
            (200, "0.0.0.0 ads.example\n"),
            (200, "0.0.0.0 ads.example\n"),
            (500, "oops"),
            (200, "this is not a hosts file\n"),
            (200, "0.0.0.0 ads.example other.example\n"),
        ]);
        let copy = cached_path(dir.path(), &url);
        assert_eq!(fetch(&url, dir.path()).unwrap(), Outcome::Changed);
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "0.0.0.0 ads.example\n"
        );
        assert_eq!(fetch(&url, dir.path()).unwrap(), Outcome::Unchanged);
        assert!(matches!(
            fetch(&url, dir.path()),
            Err(DownloadError::Status { status: 500, .. })
        ));
        assert!(matches!(
            fetch(&url, dir.path()),
            Err(DownloadError::Parse { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "0.0.0.0 ads.example\n"
        );
        assert_eq!(fetch(&url, dir.path()).unwrap(), Outcome::Changed);
        assert!(std::fs::read_to_string(&copy)
            .unwrap()
            .contains("other.example"));
        // Nothing listens any more: unreachable, copy kept.
        assert!(matches!(
            fetch(&url, dir.path()),
            Err(DownloadError::Fetch { .. })
        ));
        assert!(copy.exists());
    }
}
