//! Upstreams learned on the WAN: netd's DHCP client writes the servers of its lease
//! to `wan-dns.json` (contract in `agents/netd/README.md`; atomically replaced on
//! every ACK, deleted when the lease ends). dnsd uses them only when no upstream is
//! configured (`--upstream` or `dns.upstreams`): configured upstreams always win.
//!
//! The file is polled once a second by a small task on the DNS runtime (and re-read
//! on SIGHUP) rather than checked on the forward path: a query never waits for a
//! `stat`, a renumbered WAN is picked up even while no query is forwarded, and the
//! poll is one `stat` per second (inotify would need a new dependency and still the
//! directory to exist). A change is detected by (device, inode, mtime, size), which
//! catches netd's temp-file + rename even within one mtime tick.
//!
//! No file = no learned upstreams (forwarded queries get SERVFAIL, the local zone
//! still answers). A malformed file is logged (once per version of the file, at most
//! once a minute) and the previous list is kept.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The default location of netd's lease file.
pub const DEFAULT_PATH: &str = "/run/hearth/netd/wan-dns.json";
/// How often the file is checked.
pub const POLL: Duration = Duration::from_secs(1);
/// At most one warning about an unreadable or malformed file per this period.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why the lease file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WanLeaseError {
    #[error("WAN lease file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAN lease file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The part of netd's `WanLeaseFile` dnsd needs (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
struct LeaseFile {
    dns: Vec<Ipv4Addr>,
}

/// The upstreams (port 53) in `text`, in the server's order.
pub fn parse(text: &[u8]) -> Result<Vec<SocketAddr>, serde_json::Error> {
    let f: LeaseFile = serde_json::from_slice(text)?;
    Ok(f.dns
        .into_iter()
        .map(|a| SocketAddr::from((a, 53)))
        .collect())
}

/// The upstreams to forward to: the configured ones if any, else the learned ones.
pub fn effective(configured: &[SocketAddr], learned: &[SocketAddr]) -> Vec<SocketAddr> {
    if configured.is_empty() {
        learned.to_vec()
    } else {
        configured.to_vec()
    }
}

/// Identity of one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    size: u64,
}

/// The watched file and what was last learned from it.
#[derive(Debug)]
pub struct WanLease {
    path: PathBuf,
    /// The version last read (good or bad); `None`: no file.
    stamp: Option<Stamp>,
    learned: Vec<SocketAddr>,
    last_warn: Option<Instant>,
}

impl WanLease {
    /// Watch `path`; nothing is learned until [`WanLease::refresh`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            stamp: None,
            learned: Vec::new(),
            last_warn: None,
        }
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The upstreams currently learned.
    pub fn learned(&self) -> &[SocketAddr] {
        &self.learned
    }

    /// Re-read the file if it changed (always if `force`); the new list when the
    /// learned upstreams changed.
    pub fn refresh(&mut self, force: bool) -> Option<Vec<SocketAddr>> {
        match self.check(force) {
            Ok(changed) => changed,
            Err(e) => {
                let now = Instant::now();
                if self.last_warn.is_none_or(|t| now - t >= WARN_EVERY) {
                    log::warn!("{e}; keeping upstreams {:?}", self.learned);
                    self.last_warn = Some(now);
                }
                None
            }
        }
    }

    fn check(&mut self, force: bool) -> Result<Option<Vec<SocketAddr>>, WanLeaseError> {
        let read = |source| WanLeaseError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stamp = None;
                return Ok(self.set(Vec::new()));
            }
            Err(e) => return Err(read(e)),
        };
        let stamp = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            size: meta.size(),
        };
        if !force && self.stamp == Some(stamp) {
            return Ok(None);
        }
        // Recorded before parsing: a bad version is reported once, not every second.
        self.stamp = Some(stamp);
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            // Deleted between stat and read: the next poll sees it gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stamp = None;
                return Ok(None);
            }
            Err(e) => return Err(read(e)),
        };
        let list = parse(&text).map_err(|source| WanLeaseError::Parse {
            path: self.path.clone(),
            source,
        })?;
        self.last_warn = None;
        Ok(self.set(list))
    }

    fn set(&mut self, list: Vec<SocketAddr>) -> Option<Vec<SocketAddr>> {
        if list == self.learned {
            return None;
        }
        self.learned = list.clone();
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETD: &str = r#"{
  "interface": "wan0",
  "address": "198.51.100.50/24",
  "gateway": null,
  "server": "198.51.100.1",
  "dns": ["192.0.2.53", "192.0.2.54"],
  "lease_secs": null,
  "acked_unix": 1764113000
}"#;

    fn addrs(s: &[&str]) -> Vec<SocketAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn parses_netds_file_in_order_on_port_53() {
        assert_eq!(
            parse(NETD.as_bytes()).unwrap(),
            addrs(&["192.0.2.53:53", "192.0.2.54:53"])
        );
        assert_eq!(parse(br#"{"dns": []}"#).unwrap(), Vec::new());
    }

    #[test]
    fn rejects_malformed_files() {
        assert!(parse(b"").is_err());
        assert!(parse(br#"{"dns": "192.0.2.53"}"#).is_err());
        assert!(parse(br#"{"dns": ["2001:db8::1"]}"#).is_err());
        assert!(parse(br#"{"dns": ["192.0.2"]}"#).is_err());
        assert!(parse(br#"{"interface": "wan0"}"#).is_err());
    }

    #[test]
    fn configured_upstreams_win_over_learned_ones() {
        let conf = addrs(&["10.0.0.1:5353"]);
        let learned = addrs(&["192.0.2.53:53"]);
        assert_eq!(effective(&conf, &learned), conf);
        assert_eq!(effective(&conf, &[]), conf);
        assert_eq!(effective(&[], &learned), learned);
        assert_eq!(effective(&[], &[]), Vec::new());
    }

    #[test]
    fn follows_the_file_and_keeps_the_old_list_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wan-dns.json");
        let mut w = WanLease::new(&path);
        // No file: nothing learned, nothing changed.
        assert_eq!(w.refresh(false), None);
        assert!(w.learned().is_empty());

        let write = |text: &str| {
            let tmp = dir.path().join("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write(NETD);
        assert_eq!(
            w.refresh(false),
            Some(addrs(&["192.0.2.53:53", "192.0.2.54:53"]))
        );
        // Unchanged file: no re-read, no change.
        assert_eq!(w.refresh(false), None);

        write("{\"dns\": [\"192.0.2.5");
        assert_eq!(w.refresh(false), None);
        assert_eq!(w.learned(), addrs(&["192.0.2.53:53", "192.0.2.54:53"]));
        assert_eq!(
            w.refresh(true),
            None,
            "a forced re-read keeps the old list too"
        );
        assert_eq!(w.learned(), addrs(&["192.0.2.53:53", "192.0.2.54:53"]));

        write(r#"{"dns": ["192.0.2.99"], "interface": "wan0"}"#);
        assert_eq!(w.refresh(false), Some(addrs(&["192.0.2.99:53"])));

        std::fs::remove_file(&path).unwrap();
        assert_eq!(w.refresh(false), Some(Vec::new()));
        assert!(w.learned().is_empty());
    }
}
