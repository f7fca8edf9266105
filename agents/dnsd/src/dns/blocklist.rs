//! Blocklists: hosts-format files (`0.0.0.0 ads.example`, the format ad-blocking lists
//! ship in) or one name per line. Each list has an action (`nxdomain` or `null`).
//!
//! Matching is by exact name, as in a hosts file. A list that cannot be read or has a
//! malformed line makes the whole load fail, so a reload (SIGHUP) keeps serving the
//! old lists instead of silently unblocking everything. Lists with a `url` are read
//! from their last good downloaded copy ([`super::download`]); one not downloaded yet
//! blocks nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hearth_config::BlockAction;
use hickory_proto::rr::Name;

/// Names that hosts files define for the machine itself; never blocked.
const HOSTS_BOILERPLATE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Why a blocklist could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    #[error("blocklist {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blocklist {}:{line}: {text:?} is not `ADDRESS NAME...` or `NAME`", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

/// The blocked names (lowercase, no trailing dot) and how each is answered.
#[derive(Debug, Clone, Default)]
pub struct Blocklists {
    names: HashMap<Box<str>, BlockAction>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !n.starts_with('.')
        && !n.contains("..")
}

/// The names in one list's text. `path` is for error messages.
pub fn parse(text: &str, path: &Path) -> Result<Vec<String>, BlocklistError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut tokens = line.split_whitespace();
        let first = tokens.next().unwrap_or_default();
        let names: Vec<&str> = if first.parse::<IpAddr>().is_ok() {
            tokens.collect()
        } else {
            std::iter::once(first).chain(tokens).collect()
        };
        let bad = || BlocklistError::Line {
            path: path.to_owned(),
            line: i + 1,
            text: raw.to_owned(),
        };
        if names.is_empty() || (first.parse::<IpAddr>().is_err() && names.len() > 1) {
            return Err(bad());
        }
        for n in names {
            let n = n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase();
            if !valid_name(&n) {
                return Err(bad());
            }
            if !HOSTS_BOILERPLATE.contains(&n.as_str()) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

impl Blocklists {
    /// Read every configured list; `url` lists from their copies in `downloads`
    /// (`None`: `url` lists are skipped). Any failure fails the whole load.
    pub fn load(
        lists: &[hearth_config::Blocklist],
        downloads: Option<&Path>,
    ) -> Result<Self, BlocklistError> {
        let mut names = HashMap::new();
        for list in lists {
            let path = match (&list.path, &list.url, downloads) {
                (Some(p), _, _) => PathBuf::from(p.as_str()),
                (None, Some(url), Some(dir)) => {
                    let copy = super::download::cached_path(dir, url.as_str());
                    if !copy.exists() {
                        log::info!("blocklist {url}: not downloaded yet; blocks nothing");
                        continue;
                    }
                    copy
                }
                (None, Some(url), None) => {
                    log::warn!("blocklist {url}: no state directory to download into; skipped");
                    continue;
                }
                (None, None, _) => continue,
            };
            let path = path.as_path();
            let text = std::fs::read_to_string(path).map_err(|source| BlocklistError::Read {
                path: path.to_owned(),
                source,
            })?;
            for n in parse(&text, path)? {
                names.insert(n.into_boxed_str(), list.action);
            }
        }
        Ok(Self { names })
    }

    /// How many names are blocked.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The action for `qname`, if it is blocked.
    pub fn lookup(&self, qname: &Name) -> Option<BlockAction> {
        if self.names.is_empty() {
            return None;
        }
        let mut text = qname.to_ascii();
        if text.ends_with('.') {
            text.pop();
        }
        text.make_ascii_lowercase();
        self.names.get(text.as_str()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_format_and_plain_names() {
        let text = "# ad servers\n127.0.0.1 localhost\n0.0.0.0 Ads.Example tracker.example. # x\n\
                    \n::1 ip6-localhost\nplain.example\n   \n";
        let names = parse(text, Path::new("x")).unwrap();
        assert_eq!(names, ["ads.example", "tracker.example", "plain.example"]);
    }

    #[test]
    fn a_bad_line_fails_with_its_number() {
        let e = parse("0.0.0.0 ok.example\nnot a hosts line\n", Path::new("/l")).unwrap_err();
        assert!(e.to_string().starts_with("blocklist /l:2:"), "{e}");
        assert!(parse("0.0.0.0 bad/name\n", Path::new("/l")).is_err());
        assert!(parse("0.0.0.0\n", Path::new("/l")).is_err());
    }

    #[test]
    fn loads_files_and_looks_up_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.hosts");
        let b = dir.path().join("b.list");
        std::fs::write(&a, "0.0.0.0 ads.example\n").unwrap();
        std::fs::write(&b, "null.example\n").unwrap();
        let cfg: Vec<hearth_config::Blocklist> = serde_json::from_value(serde_json::json!([
            { "path": a },
            { "path": b, "action": "null" },
        ]))
        .unwrap();
        let bl = Blocklists::load(&cfg, None).unwrap();
        assert_eq!(bl.len(), 2);
        let q = |s: &str| bl.lookup(&Name::from_ascii(s).unwrap());
        assert_eq!(q("ADS.example."), Some(BlockAction::Nxdomain));
        assert_eq!(q("null.example."), Some(BlockAction::Null));
        assert_eq!(q("sub.ads.example."), None);
        std::fs::remove_file(&b).unwrap();
        assert!(matches!(
            Blocklists::load(&cfg, None),
            Err(BlocklistError::Read { .. })
        ));
    }

    #[test]
    fn url_lists_read_their_downloaded_copy() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://lists.example.invalid/ads.hosts";
        let cfg: Vec<hearth_config::Blocklist> =
            serde_json::from_value(serde_json::json!([{ "url": url }])).unwrap();
        // Not downloaded yet: nothing blocked, no error.
        assert!(Blocklists::load(&cfg, Some(dir.path())).unwrap().is_empty());
        std::fs::write(
            super::super::download::cached_path(dir.path(), url),
            "0.0.0.0 ads.example
",
        )
        .unwrap();
        let bl = Blocklists::load(&cfg, Some(dir.path())).unwrap();
        assert_eq!(bl.len(), 1);
    }
}
