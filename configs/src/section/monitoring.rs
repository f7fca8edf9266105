//! `[monitoring]`: threshold rules over metrics and where alerts are sent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{path, Findings};
use crate::value::{Duration, Email, Name, Url};
use crate::Config;

/// `[monitoring]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// Alert rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Alert destinations.
    #[serde(default)]
    pub targets: Vec<Target>,
}

/// `[[monitoring.rules]]`: fires when `metric` is above (or below) a threshold for
/// `for`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rule name.
    pub name: Name,
    /// Metric name, e.g. `md.degraded_disks` or `disk.temperature_celsius`.
    pub metric: String,
    /// Fire when the value is greater than this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Fire when the value is less than this.
    #[serde(default)]
    pub below: Option<f64>,
    /// How long the condition must hold. Default `0s`.
    #[serde(rename = "for", default = "zero")]
    pub for_: Duration,
    /// Target names, or `["all"]` (the default) for every target.
    #[serde(default = "all")]
    pub notify: Vec<String>,
}

fn zero() -> Duration {
    Duration::from_secs(0)
}

fn all() -> Vec<String> {
    vec!["all".to_owned()]
}

/// `[[monitoring.targets]]`: `kind = "email"` with `to`, or `kind = "webhook"` with
/// `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", try_from = "TargetToml")]
pub enum Target {
    /// Send an e-mail.
    Email {
        /// Target name.
        name: Name,
        /// Recipient.
        to: Email,
    },
    /// POST JSON to a URL.
    Webhook {
        /// Target name.
        name: Name,
        /// Endpoint.
        url: Url,
    },
}

impl Target {
    /// The target's name.
    pub fn name(&self) -> &Name {
        match self {
            Self::Email { name, .. } | Self::Webhook { name, .. } => name,
        }
    }
}

/// The TOML shape of [`Target`]: flat, so bad values keep their positions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TargetToml {
    name: Name,
    kind: TargetKind,
    to: Option<Email>,
    url: Option<Url>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum TargetKind {
    Email,
    Webhook,
}

impl TryFrom<TargetToml> for Target {
    type Error = String;
    fn try_from(t: TargetToml) -> Result<Self, String> {
        match (t.kind, t.to, t.url) {
            (TargetKind::Email, Some(to), None) => Ok(Self::Email { name: t.name, to }),
            (TargetKind::Webhook, None, Some(url)) => Ok(Self::Webhook { name: t.name, url }),
            (TargetKind::Email, ..) => Err("kind = \"email\" needs `to` and no `url`".to_owned()),
            (TargetKind::Webhook, ..) => {
                Err("kind = \"webhook\" needs `url` and no `to`".to_owned())
            }
        }
    }
}

fn metric_ok(m: &str) -> bool {
    m.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && m.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let mon = &cfg.monitoring;
    let rule = |i: usize| path("monitoring.rules").at(i);
    let targets: Vec<&str> = mon.targets.iter().map(|t| t.name().as_str()).collect();
    out.duplicates(
        (mon.rules.iter().enumerate()).map(|(i, r)| (rule(i).key("name"), r.name.as_str())),
        |n| format!("rule name {n:?} is used twice"),
    );
    out.duplicates(
        (mon.targets.iter().enumerate()).map(|(i, t)| {
            (
                path("monitoring.targets").at(i).key("name"),
                t.name().as_str(),
            )
        }),
        |n| format!("target name {n:?} is used twice"),
    );
    for (i, r) in mon.rules.iter().enumerate() {
        if !metric_ok(&r.metric) {
            out.push(
                rule(i).key("metric"),
                format!(
                    "{:?} is not a metric name (dotted [a-z0-9_] words)",
                    r.metric
                ),
            );
        }
        match (r.above, r.below) {
            (Some(_), Some(_)) | (None, None) => {
                out.push(rule(i), "a rule needs exactly one of `above` or `below`")
            }
            (Some(v), None) | (None, Some(v)) if !v.is_finite() => out.push(
                rule(i).key(if r.above.is_some() { "above" } else { "below" }),
                "the threshold must be a finite number",
            ),
            _ => {}
        }
        for (j, t) in r.notify.iter().enumerate() {
            if t != "all" && !targets.contains(&t.as_str()) {
                out.push(
                    rule(i).key("notify").at(j),
                    format!(
                        "unknown target {t:?}; targets are: all, {}",
                        targets.join(", ")
                    ),
                );
            }
        }
    }
}
