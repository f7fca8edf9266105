//! SIGHUP reload in two phases, so a bad config changes nothing.
//!
//! Every part of dnsd that follows the config (DNS: zone, blocklists, upstreams,
//! cache limits, query log, listen addresses; DHCP: pools and their interfaces)
//! implements [`Reloadable`]. A reload first *prepares* every part against the new
//! config: parse, validate, build the new tables, bind the new sockets — nothing a
//! client can see changes. Only when every part prepared without error are the
//! returned [`Commit`]s run, and a commit cannot fail. If any part refuses, the
//! prepared pieces are dropped (new sockets closed) and the old config keeps serving
//! in every part; the error names the part and the reason.

use hearth_config::Config;

/// Applies a prepared change; cannot fail.
pub type Commit = Box<dyn FnOnce() + Send>;

/// Why a part refused the new config.
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// A part of dnsd that follows the config.
pub trait Reloadable: Send + Sync {
    /// The part's name in logs (`DNS`, `DHCP`).
    fn name(&self) -> &'static str;

    /// Check `cfg` and acquire what applying it needs without changing what is
    /// served; the commit applies it.
    fn prepare(&self, cfg: &Config) -> Result<Commit, PrepareError>;
}

/// Prepare every part against `cfg`, then commit them all; on the first refusal
/// nothing is committed and the error says which part refused and why.
pub fn apply(parts: &[&dyn Reloadable], cfg: &Config) -> Result<(), String> {
    let mut commits = Vec::with_capacity(parts.len());
    for part in parts {
        match part.prepare(cfg) {
            Ok(c) => commits.push(c),
            Err(e) => return Err(format!("{}: {e}", part.name())),
        }
    }
    for commit in commits {
        commit();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Part {
        refuse: bool,
        applied: Arc<AtomicUsize>,
    }

    impl Reloadable for Part {
        fn name(&self) -> &'static str {
            if self.refuse {
                "refusing"
            } else {
                "accepting"
            }
        }
        fn prepare(&self, _: &Config) -> Result<Commit, PrepareError> {
            if self.refuse {
                return Err("no".into());
            }
            let applied = self.applied.clone();
            Ok(Box::new(move || {
                applied.fetch_add(1, Ordering::SeqCst);
            }))
        }
    }

    #[test]
    fn one_refusal_commits_nothing() {
        let cfg =
            hearth_config::parse(hearth_config::DEFAULT_TOML, hearth_config::DEFAULT_NAME).unwrap();
        let applied = Arc::new(AtomicUsize::new(0));
        let ok = Part {
            refuse: false,
            applied: applied.clone(),
        };
        let bad = Part {
            refuse: true,
            applied: applied.clone(),
        };
        let err = apply(&[&ok, &bad, &ok], &cfg).unwrap_err();
        assert_eq!(err, "refusing: no");
        assert_eq!(applied.load(Ordering::SeqCst), 0);
        apply(&[&ok, &ok], &cfg).unwrap();
        assert_eq!(applied.load(Ordering::SeqCst), 2);
    }
}
