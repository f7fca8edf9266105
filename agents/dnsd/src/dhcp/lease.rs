//! The lease database: which client holds which address until when, kept so that a
//! crash (`kill -9`, power loss) never loses a lease that a client was told about.
//!
//! On disk it is one file, `leases.jsonl`, in the state directory: one JSON object per
//! line, each the *whole* new state of one address (`{"ip","mac","expires",
//! "hostname"}`). Replaying the file in order, last line per address wins, gives the
//! database. A release is a line with `expires` set to the release time (the client
//! keeps its claim on the address for the next time it asks); a decline is a line
//! without `mac` that quarantines the address.
//!
//! Promises:
//! * [`LeaseDb::commit`] appends the line and `fdatasync`s it before it returns, and the
//!   server sends an ACK only after the line is synced. So every ACKed lease is on
//!   disk; a crash can at worst tear the *last* line, whose ACK was never sent, and
//!   [`LeaseDb::open`] drops such a torn tail (a bad line anywhere else is an error).
//!   Group commit: the server may [`LeaseDb::stage`] the lines of a whole batch of
//!   requests and [`LeaseDb::sync`] once before it sends any of their ACKs; the
//!   promise is the same, one fsync serves many handshakes.
//! * Compaction writes the live state to `leases.jsonl.tmp`, fsyncs it, renames it over
//!   `leases.jsonl` and fsyncs the directory: at every instant the path names either
//!   the old complete log or the new complete one. It runs on open and whenever the log
//!   has grown to several times the number of live addresses.
//! * An address is in the database at most once, so it can never be bound to two
//!   clients; the server checks ownership under the same lock that commits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The log's file name inside the state directory.
pub const LOG_NAME: &str = "leases.jsonl";
const TMP_NAME: &str = "leases.jsonl.tmp";
/// Compact when the log holds this many more lines than live addresses.
const COMPACT_SLACK: usize = 4096;

/// Errors of the lease database; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("creating state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading lease log {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lease log {path}:{line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("writing lease log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An Ethernet hardware address, stored as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The first six bytes of a DHCP `chaddr`, if it has that many.
    pub fn from_chaddr(chaddr: &[u8]) -> Option<Self> {
        chaddr.get(..6)?.try_into().ok().map(Self)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut octets = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{s:?} is not a MAC address"));
        }
        for (o, p) in octets.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        Ok(Self(octets))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The state of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its client; `None` for an address a client declined (in use by someone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Unix time the lease (or the quarantine) ends.
    pub expires: u64,
    /// The host name the client sent (option 12), sanitised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl Lease {
    /// Whether the lease is still running at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// The database: the live map plus the open log.
#[derive(Debug)]
pub struct LeaseDb {
    dir: PathBuf,
    log: File,
    leases: HashMap<Ipv4Addr, Lease>,
    /// Every address with a record per client, so finding a client's previous
    /// address does not scan the database.
    by_mac: HashMap<Mac, Vec<Ipv4Addr>>,
    /// Per range start: an address below which every one has a record (records are
    /// never removed), so the search for a never-used one starts there.
    recorded_below: RefCell<HashMap<Ipv4Addr, u32>>,
    lines_in_log: usize,
    compact_slack: usize,
    /// Lines were staged but not yet synced.
    dirty: bool,
}

impl LeaseDb {
    /// Open (creating) the database in `dir`, replay the log and compact it.
    pub fn open(dir: &Path) -> Result<Self, LeaseError> {
        std::fs::create_dir_all(dir).map_err(|source| LeaseError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(LOG_NAME);
        let leases = match File::open(&path) {
            Ok(f) => replay(&path, f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(LeaseError::Read { path, source }),
        };
        // A leftover temp file is a compaction that never got renamed: the log is
        // authoritative, so it is simply rewritten below.
        let mut by_mac: HashMap<Mac, Vec<Ipv4Addr>> = HashMap::new();
        for l in leases.values() {
            if let Some(m) = l.mac {
                by_mac.entry(m).or_default().push(l.ip);
            }
        }
        let mut db = Self {
            log: write_log(dir, &leases)?,
            dir: dir.to_owned(),
            by_mac,
            recorded_below: RefCell::default(),
            lines_in_log: leases.len(),
            compact_slack: COMPACT_SLACK,
            dirty: false,
            leases,
        };
        db.lines_in_log = db.leases.len();
        Ok(db)
    }

    /// Compact once the log has `slack` more lines than four per live address
    /// (default 4096).
    pub fn with_compact_slack(mut self, slack: usize) -> Self {
        self.compact_slack = slack;
        self
    }

    /// The path of the log file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_NAME)
    }

    /// The state of `ip`, if it ever had a lease.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// Every record of `mac`'s, in no particular order.
    pub fn of_mac(&self, mac: Mac) -> impl Iterator<Item = &Lease> {
        let ips = self.by_mac.get(&mac).map_or(&[][..], Vec::as_slice);
        ips.iter().filter_map(|ip| self.leases.get(ip))
    }

    /// The lowest address from `start` on (up to `end`, inclusive) that may have no
    /// record: every address in between has one. `end + 1` when all have.
    pub fn first_unrecorded(&self, start: Ipv4Addr, end: Ipv4Addr) -> u64 {
        let mut hints = self.recorded_below.borrow_mut();
        let hint = hints.entry(start).or_insert(u32::from(start));
        let mut at = u64::from(*hint);
        while at <= u64::from(u32::from(end)) {
            let ip = Ipv4Addr::from(u32::try_from(at).unwrap_or(u32::MAX));
            if !self.leases.contains_key(&ip) {
                break;
            }
            at += 1;
        }
        *hint = u32::try_from(at).unwrap_or(u32::MAX);
        at
    }

    /// Every address with a record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Make `lease` durable, then the current state of its address. When this returns
    /// `Ok` the line is on stable storage.
    pub fn commit(&mut self, lease: Lease) -> Result<(), LeaseError> {
        self.stage(lease)?;
        self.sync()
    }

    /// Append `lease` to the log and make it the current state of its address,
    /// *without* waiting for stable storage: nothing may be promised to a client
    /// until [`LeaseDb::sync`] returned `Ok` (group commit: one fsync for a batch).
    pub fn stage(&mut self, lease: Lease) -> Result<(), LeaseError> {
        let mut line = serde_json::to_vec(&lease).expect("a lease serializes");
        line.push(b'\n');
        self.log
            .write_all(&line)
            .map_err(|source| LeaseError::Write {
                path: self.path(),
                source,
            })?;
        let old_mac = self.leases.get(&lease.ip).and_then(|l| l.mac);
        if old_mac != lease.mac {
            if let Some(ips) = old_mac.and_then(|m| self.by_mac.get_mut(&m)) {
                ips.retain(|ip| *ip != lease.ip);
            }
            if let Some(m) = lease.mac {
                self.by_mac.entry(m).or_default().push(lease.ip);
            }
        }
        self.leases.insert(lease.ip, lease);
        self.lines_in_log += 1;
        self.dirty = true;
        Ok(())
    }

    /// Make every staged line durable (`fdatasync`; nothing to do when nothing was
    /// staged), compacting the log when it has grown enough.
    pub fn sync(&mut self) -> Result<(), LeaseError> {
        if !self.dirty {
            return Ok(());
        }
        self.log.sync_data().map_err(|source| LeaseError::Write {
            path: self.path(),
            source,
        })?;
        self.dirty = false;
        if self.lines_in_log > 4 * self.leases.len() + self.compact_slack {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrite the log to hold one line per address (atomic rename, see module docs).
    pub fn compact(&mut self) -> Result<(), LeaseError> {
        self.log = write_log(&self.dir, &self.leases)?;
        self.lines_in_log = self.leases.len();
        self.dirty = false;
        Ok(())
    }
}

/// The database a log's bytes replay to (`path` names it in errors): what
/// [`LeaseDb::open`] does with the file, exposed for the fuzz target.
pub fn parse_log(path: &Path, bytes: &[u8]) -> Result<HashMap<Ipv4Addr, Lease>, LeaseError> {
    replay(path, bytes)
}

fn replay(path: &Path, file: impl Read) -> Result<HashMap<Ipv4Addr, Lease>, LeaseError> {
    let mut leases = HashMap::new();
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(|source| LeaseError::Read {
            path: path.to_owned(),
            source,
        })?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Lease>(&line) {
            Ok(lease) => {
                leases.insert(lease.ip, lease);
            }
            // The last line may be torn by a crash mid-append; its ACK was never sent.
            Err(e) if lines.peek().is_none() => {
                log::warn!(
                    "{}:{}: dropping torn last line ({e})",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => {
                return Err(LeaseError::Corrupt {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(leases)
}

/// Write `leases` to a temp file, fsync, rename over the log, fsync the directory, and
/// return the new log opened for appending.
fn write_log(dir: &Path, leases: &HashMap<Ipv4Addr, Lease>) -> Result<File, LeaseError> {
    let tmp = dir.join(TMP_NAME);
    let path = dir.join(LOG_NAME);
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| LeaseError::Write { path, source }
    };
    let mut sorted: Vec<&Lease> = leases.values().collect();
    sorted.sort_by_key(|l| l.ip);
    let mut buf = Vec::with_capacity(sorted.len() * 80);
    for lease in sorted {
        serde_json::to_writer(&mut buf, lease).expect("a lease serializes");
        buf.push(b'\n');
    }
    let mut f = File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(&buf).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: [u8; 4], mac: u8, expires: u64) -> Lease {
        Lease {
            ip: ip.into(),
            mac: Some(Mac([2, 0, 0, 0, 0, mac])),
            expires,
            hostname: None,
        }
    }

    #[test]
    fn survives_reopen_and_last_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LeaseDb::open(dir.path()).unwrap();
        db.commit(lease([10, 0, 0, 10], 1, 100)).unwrap();
        db.commit(lease([10, 0, 0, 11], 2, 100)).unwrap();
        db.commit(lease([10, 0, 0, 10], 1, 200)).unwrap();
        drop(db);
        let db = LeaseDb::open(dir.path()).unwrap();
        assert_eq!(db.get([10, 0, 0, 10].into()).unwrap().expires, 200);
        assert_eq!(db.iter().count(), 2);
        // Reopening compacted the log to one line per address.
        let text = std::fs::read_to_string(dir.path().join(LOG_NAME)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn the_mac_index_and_the_unrecorded_cursor_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LeaseDb::open(dir.path()).unwrap();
        let ips = |db: &LeaseDb, mac: u8| {
            let mut v: Vec<Ipv4Addr> = db.of_mac(Mac([2, 0, 0, 0, 0, mac])).map(|l| l.ip).collect();
            v.sort();
            v
        };
        let (start, end) = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 13));
        assert_eq!(db.first_unrecorded(start, end), u64::from(u32::from(start)));
        db.commit(lease([10, 0, 0, 10], 1, 100)).unwrap();
        db.commit(lease([10, 0, 0, 11], 1, 100)).unwrap();
        db.commit(lease([10, 0, 0, 13], 2, 100)).unwrap();
        assert_eq!(ips(&db, 1).len(), 2);
        assert_eq!(
            db.first_unrecorded(start, end),
            u64::from(u32::from(start)) + 2
        );
        // The address moves to another client; a decline (no MAC) leaves none.
        db.commit(lease([10, 0, 0, 11], 2, 100)).unwrap();
        assert_eq!(ips(&db, 1), [Ipv4Addr::new(10, 0, 0, 10)]);
        assert_eq!(ips(&db, 2).len(), 2);
        db.commit(Lease {
            mac: None,
            ..lease([10, 0, 0, 13], 2, 100)
        })
        .unwrap();
        assert_eq!(ips(&db, 2), [Ipv4Addr::new(10, 0, 0, 11)]);
        db.commit(lease([10, 0, 0, 12], 3, 100)).unwrap();
        assert_eq!(
            db.first_unrecorded(start, end),
            u64::from(u32::from(end)) + 1
        );
        drop(db);
        let db = LeaseDb::open(dir.path()).unwrap();
        assert_eq!(ips(&db, 1), [Ipv4Addr::new(10, 0, 0, 10)]);
        assert_eq!(ips(&db, 2), [Ipv4Addr::new(10, 0, 0, 11)]);
        assert_eq!(ips(&db, 3), [Ipv4Addr::new(10, 0, 0, 12)]);
    }

    #[test]
    fn torn_last_line_is_dropped_but_corruption_inside_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LeaseDb::open(dir.path()).unwrap();
        db.commit(lease([10, 0, 0, 10], 1, 100)).unwrap();
        drop(db);
        let path = dir.path().join(LOG_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ip\":\"10.0.0.12\",\"ma").unwrap();
        drop(f);
        let db = LeaseDb::open(dir.path()).unwrap();
        assert_eq!(db.iter().count(), 1);
        drop(db);

        std::fs::write(&path, "garbage\n{\"ip\":\"10.0.0.1\",\"expires\":5}\n").unwrap();
        let err = LeaseDb::open(dir.path()).unwrap_err();
        assert!(matches!(err, LeaseError::Corrupt { line: 1, .. }), "{err}");
    }

    #[test]
    fn compaction_keeps_every_lease() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LeaseDb::open(dir.path()).unwrap().with_compact_slack(8);
        for round in 0..10u64 {
            for i in 0..10u32 {
                let ip = Ipv4Addr::from(0x0a00_0000 + i);
                db.commit(Lease {
                    ip,
                    mac: Some(Mac([2, 0, 0, 0, (i >> 8) as u8, i as u8])),
                    expires: round,
                    hostname: None,
                })
                .unwrap();
            }
        }
        drop(db);
        let lines = std::fs::read_to_string(dir.path().join(LOG_NAME))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 4 * 10 + 8 + 1, "never compacted: {lines} lines");
        let db = LeaseDb::open(dir.path()).unwrap();
        assert_eq!(db.iter().count(), 10);
        assert!(db.iter().all(|l| l.expires == 9));
    }
}
