//! The cross-field pass: rules that need more than one value.
//!
//! Runs only on a config that parsed, and never stops at the first problem: every
//! rule pushes into `Findings`, so one `hearth check` shows everything to fix. Each
//! section's rules live next to its types (`section/*.rs`); this module is the
//! collector and the driver.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use crate::locate::FieldPath;
use crate::section;
use crate::Config;

/// One broken cross-field rule: the field it is reported at and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field the problem is reported at.
    pub field: FieldPath,
    /// Why.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A field path from dotted keys; shorthand for [`FieldPath::new`].
pub(crate) fn path(dotted: &str) -> FieldPath {
    FieldPath::new(dotted)
}

/// Collects violations.
#[derive(Default)]
pub(crate) struct Findings(Vec<Violation>);

impl Findings {
    pub(crate) fn push(&mut self, field: FieldPath, message: impl Into<String>) {
        self.0.push(Violation {
            field,
            message: message.into(),
        });
    }

    /// Reports every item whose key was already seen, at the later item, naming the
    /// first.
    pub(crate) fn duplicates<K: Eq + Hash>(
        &mut self,
        items: impl IntoIterator<Item = (FieldPath, K)>,
        message: impl Fn(&K) -> String,
    ) {
        let mut seen: HashMap<K, FieldPath> = HashMap::new();
        for (at, key) in items {
            match seen.get(&key) {
                Some(first) => {
                    let m = format!("{} (first at {first})", message(&key));
                    self.push(at, m);
                }
                None => {
                    seen.insert(key, at);
                }
            }
        }
    }
}

/// Runs every cross-field rule over `cfg`.
pub(crate) fn validate(cfg: &Config) -> Vec<Violation> {
    let mut out = Findings::default();
    section::system::check(cfg, &mut out);
    section::image::check(cfg, &mut out);
    section::network::check(cfg, &mut out);
    section::dns::check(cfg, &mut out);
    section::dhcp::check(cfg, &mut out);
    section::storage::check(cfg, &mut out);
    section::services::check(cfg, &mut out);
    section::monitoring::check(cfg, &mut out);
    out.0
}
