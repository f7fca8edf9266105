//! `stord status`: disks and arrays as a table for people (`--json` for scripts).
//!
//! Per disk: identity, which array slot of the config selects it (member or spare),
//! whether it is wipe-listed or a boot disk, and what it holds (blank, or every
//! signature found). Per array: the kernel's state and its health summary. Config
//! problems (a selector matching nothing, a boot disk selected) are listed last; they
//! do not make the command fail, because status is what one runs to debug them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hearth_config::Storage;
use serde::Serialize;

use crate::disk::{self, Disk, DiskError};
use crate::md::{self, ArrayStatus, MdError};
use crate::select::{self, Role};
use crate::signature::{self, DeviceFile, Found};
use crate::Root;

/// Where the appliance config lives in the image.
pub const DEFAULT_CONFIG: &str = "/etc/hearth/config.toml";

/// `stord status` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Directory holding `sys/block`, `proc/self/mountinfo` and `dev/` (tests use a
    /// fixture tree).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysfs_root: PathBuf,
    /// The appliance config [default: /etc/hearth/config.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A disk holding the running system that mounts do not show (kernel name,
    /// serial or by-id name); may repeat.
    #[arg(long, value_name = "DISK")]
    pub boot_disk: Vec<String>,
}

/// Why status could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] hearth_config::LoadError),
    /// Disks could not be listed.
    #[error("listing disks")]
    Disk(#[from] DiskError),
    /// Arrays could not be read.
    #[error("reading md arrays")]
    Md(#[from] MdError),
    /// JSON output failed.
    #[error("writing JSON")]
    Json(#[from] serde_json::Error),
}

impl StatusError {
    /// Whether the input (config) is at fault: exit code 2.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Config(_))
    }
}

/// What a disk holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Content {
    /// No known signature.
    Blank,
    /// Signatures found.
    Used {
        /// Each signature, in offset order.
        found: Vec<Found>,
    },
    /// The node could not be read.
    Unreadable {
        /// The node and the I/O error.
        error: String,
    },
}

impl std::fmt::Display for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blank => f.write_str("blank"),
            Self::Used { found } => {
                let parts: Vec<String> = found.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join(", "))
            }
            Self::Unreadable { error } => write!(f, "unreadable: {error}"),
        }
    }
}

/// The config's use of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    /// Array name.
    pub array: String,
    /// Member or spare.
    pub role: Role,
    /// The selecting config field.
    pub field: String,
}

/// One disk row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskReport {
    /// The disk.
    #[serde(flatten)]
    pub disk: Disk,
    /// Selected by the config as.
    pub selected: Option<Use>,
    /// Its serial is in `storage.wipe`.
    pub wipe_listed: bool,
    /// What it holds.
    pub content: Content,
}

/// Everything `stord status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The config read, if any.
    pub config: Option<PathBuf>,
    /// Disks by name.
    pub disks: Vec<DiskReport>,
    /// md arrays by device.
    pub arrays: Vec<ArrayStatus>,
    /// Config selectors that could not be honoured.
    pub problems: Vec<String>,
}

/// Gather the report: `storage` is the config's section, when there is a config.
pub fn gather(
    root: &Root,
    storage: Option<&Storage>,
    boot_hints: &[String],
) -> Result<Report, StatusError> {
    let disks = disk::discover(root, boot_hints)?;
    let selection = storage.map(|s| select::resolve(s, &disks));
    let wipe: &[String] = storage.map_or(&[], |s| &s.wipe);
    let reports = disks
        .into_iter()
        .map(|d| {
            let selected = selection
                .as_ref()
                .and_then(|sel| sel.slot_of(&d.name))
                .map(|s| Use {
                    array: s.array.clone(),
                    role: s.role,
                    field: s.field.clone(),
                });
            let node = root.dev_node(&d.name);
            let content = match DeviceFile::open(&node).and_then(|f| signature::scan(&f)) {
                Ok(found) if found.is_empty() => Content::Blank,
                Ok(found) => Content::Used { found },
                Err(e) => Content::Unreadable {
                    error: format!("{}: {e}", node.display()),
                },
            };
            DiskReport {
                wipe_listed: d.serial.as_ref().is_some_and(|s| wipe.contains(s)),
                disk: d,
                selected,
                content,
            }
        })
        .collect();
    Ok(Report {
        config: None,
        disks: reports,
        arrays: md::arrays(root)?,
        problems: selection
            .map(|s| s.problems.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
    })
}

/// Run `stord status`; returns the text to print.
pub fn run(args: &StatusArgs) -> Result<String, StatusError> {
    let config_path = args.config.clone().or_else(|| {
        let default = Path::new(DEFAULT_CONFIG);
        default.exists().then(|| default.to_path_buf())
    });
    let config = config_path
        .as_deref()
        .map(hearth_config::load)
        .transpose()?;
    let root = Root::new(&args.sysfs_root);
    let mut report = gather(&root, config.as_ref().map(|c| &c.storage), &args.boot_disk)?;
    report.config = config_path;
    if args.json {
        Ok(serde_json::to_string_pretty(&report)? + "\n")
    } else {
        Ok(render(&report))
    }
}

/// `16.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Rows padded to column widths; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human tables.
pub fn render(report: &Report) -> String {
    let mut rows = vec![[
        "DISK", "SIZE", "TRAN", "ROT", "SERIAL", "BY-ID", "USE", "CONTENT",
    ]
    .map(String::from)
    .to_vec()];
    for d in &report.disks {
        let mut uses = Vec::new();
        if d.disk.boot {
            uses.push("boot".to_owned());
        }
        if let Some(u) = &d.selected {
            let role = match u.role {
                Role::Member => "member",
                Role::Spare => "spare",
            };
            uses.push(format!("{} {role}", u.array));
        }
        if d.wipe_listed {
            uses.push("wipe".to_owned());
        }
        if !d.disk.holders.is_empty() {
            uses.push(format!("held by {}", d.disk.holders.join(",")));
        }
        rows.push(vec![
            d.disk.name.clone(),
            human_size(d.disk.size_bytes),
            d.disk.transport.to_string(),
            if d.disk.rotational { "yes" } else { "no" }.to_owned(),
            d.disk.serial.clone().unwrap_or_else(|| "-".into()),
            d.disk.by_id.first().cloned().unwrap_or_else(|| "-".into()),
            if uses.is_empty() {
                "-".into()
            } else {
                uses.join(", ")
            },
            d.content.to_string(),
        ]);
    }
    let mut out = table(&rows);
    out.push('\n');
    if report.arrays.is_empty() {
        out.push_str("no md arrays\n");
    } else {
        let mut rows = vec![[
            "ARRAY", "LEVEL", "STATE", "DISKS", "MISMATCH", "MEMBERS", "HEALTH",
        ]
        .map(String::from)
        .to_vec()];
        for a in &report.arrays {
            let members: Vec<String> = a
                .members
                .iter()
                .map(|m| {
                    let slot = m.slot.map_or("-".to_owned(), |s| s.to_string());
                    let flag = if m.is_faulty() {
                        "(F)"
                    } else if m.is_spare() {
                        "(S)"
                    } else {
                        ""
                    };
                    format!("{}[{slot}]{flag}", m.device)
                })
                .collect();
            rows.push(vec![
                a.device.clone(),
                a.level.clone().unwrap_or_else(|| "-".into()),
                serde_json::to_value(a.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                format!(
                    "{}/{}",
                    a.raid_disks.saturating_sub(a.degraded),
                    a.raid_disks
                ),
                a.mismatch_cnt.map_or("-".into(), |m| m.to_string()),
                if members.is_empty() {
                    "-".into()
                } else {
                    members.join(" ")
                },
                a.health.to_string(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if !report.problems.is_empty() {
        out.push_str("\nconfig problems:\n");
        for p in &report.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
