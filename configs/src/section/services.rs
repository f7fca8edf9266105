//! `[services]`: what the NAS serves from its arrays: SMB shares, NFS exports, the
//! media library and backup jobs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::locate::FieldPath;
use crate::validate::{path, Findings};
use crate::value::{list, BackupTarget, Cidr, CronSchedule, Name, RelPath, UserName};
use crate::Config;

/// `[services]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// SMB file sharing.
    #[serde(default)]
    pub smb: Smb,
    /// NFS exports.
    #[serde(default)]
    pub nfs: Nfs,
    /// The media server.
    #[serde(default)]
    pub media: Media,
    /// Backup jobs.
    #[serde(default)]
    pub backup: Backup,
}

/// `[services.smb]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smb {
    /// The shares.
    #[serde(default)]
    pub shares: Vec<Share>,
}

/// `[[services.smb.shares]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// Share name as clients see it (unique, case-insensitively).
    pub name: Name,
    /// The array it lives on.
    pub array: Name,
    /// Directory inside the array (`.` for its root).
    pub path: RelPath,
    /// Read-only for everyone. Default false.
    #[serde(default)]
    pub read_only: bool,
    /// Users allowed in. Empty: the admin user only.
    #[serde(default, deserialize_with = "list")]
    pub users: Vec<UserName>,
}

/// `[services.nfs]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    /// The exports.
    #[serde(default)]
    pub exports: Vec<Export>,
}

/// `[[services.nfs.exports]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Export name (for logs and the pseudo-root path).
    pub name: Name,
    /// The array it lives on.
    pub array: Name,
    /// Directory inside the array.
    pub path: RelPath,
    /// Networks allowed to mount it.
    #[serde(deserialize_with = "list")]
    pub clients: Vec<Cidr>,
    /// Export read-only. Default false.
    #[serde(default)]
    pub read_only: bool,
}

/// `[services.media]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// Run the media server. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Directories it indexes.
    #[serde(default)]
    pub library: Vec<LibraryDir>,
}

/// `[[services.media.library]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LibraryDir {
    /// The array.
    pub array: Name,
    /// Directory inside the array.
    pub path: RelPath,
}

/// `[services.backup]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The jobs.
    #[serde(default)]
    pub jobs: Vec<BackupJob>,
}

/// `[[services.backup.jobs]]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupJob {
    /// Job name.
    pub name: Name,
    /// The array backed up.
    pub source_array: Name,
    /// Directories inside the array. Default: the whole array.
    #[serde(default = "whole_array", deserialize_with = "list")]
    pub paths: Vec<RelPath>,
    /// Where snapshots go.
    pub target: BackupTarget,
    /// When it runs (five-field cron, local time).
    pub schedule: CronSchedule,
    /// Snapshots kept.
    #[serde(default)]
    pub retention: Retention,
}

fn whole_array() -> Vec<RelPath> {
    vec![RelPath::try_from(".".to_owned()).expect("valid relative path")]
}

/// `[services.backup.jobs.retention]`: snapshots kept per period.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Daily snapshots kept. Default 7.
    #[serde(default = "seven")]
    pub daily: u32,
    /// Weekly snapshots kept. Default 4.
    #[serde(default = "four")]
    pub weekly: u32,
    /// Monthly snapshots kept. Default 12.
    #[serde(default = "twelve")]
    pub monthly: u32,
}

fn seven() -> u32 {
    7
}
fn four() -> u32 {
    4
}
fn twelve() -> u32 {
    12
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            daily: seven(),
            weekly: four(),
            monthly: twelve(),
        }
    }
}

pub(crate) fn check(cfg: &Config, out: &mut Findings) {
    let svc = &cfg.services;
    let arrays: Vec<&str> = cfg.storage.arrays.iter().map(|a| a.name.as_str()).collect();
    let mut array = |at: FieldPath, name: &Name| {
        if !arrays.contains(&name.as_str()) {
            let known = if arrays.is_empty() {
                "no arrays are configured".to_owned()
            } else {
                format!("arrays are {}", arrays.join(", "))
            };
            out.push(at, format!("unknown array {:?}; {known}", name.as_str()));
        }
    };
    let share = |i: usize| path("services.smb.shares").at(i);
    let export = |i: usize| path("services.nfs.exports").at(i);
    let lib = |i: usize| path("services.media.library").at(i);
    let job = |i: usize| path("services.backup.jobs").at(i);
    for (i, s) in svc.smb.shares.iter().enumerate() {
        array(share(i).key("array"), &s.array);
    }
    for (i, e) in svc.nfs.exports.iter().enumerate() {
        array(export(i).key("array"), &e.array);
    }
    for (i, l) in svc.media.library.iter().enumerate() {
        array(lib(i).key("array"), &l.array);
    }
    for (i, j) in svc.backup.jobs.iter().enumerate() {
        array(job(i).key("source_array"), &j.source_array);
    }

    out.duplicates(
        (svc.smb.shares.iter().enumerate())
            .map(|(i, s)| (share(i).key("name"), s.name.as_str().to_ascii_lowercase())),
        |n| format!("share name {n:?} is used twice (SMB names ignore case)"),
    );
    out.duplicates(
        (svc.nfs.exports.iter().enumerate()).map(|(i, e)| (export(i).key("name"), e.name.as_str())),
        |n| format!("export name {n:?} is used twice"),
    );
    out.duplicates(
        (svc.backup.jobs.iter().enumerate()).map(|(i, j)| (job(i).key("name"), j.name.as_str())),
        |n| format!("backup job name {n:?} is used twice"),
    );
    for (i, e) in svc.nfs.exports.iter().enumerate() {
        if e.clients.is_empty() {
            out.push(
                export(i).key("clients"),
                "an export needs at least one client network",
            );
        }
    }
    if svc.media.enabled && svc.media.library.is_empty() {
        out.push(
            path("services.media.library"),
            "media is enabled but the library is empty",
        );
    }
    for (i, j) in svc.backup.jobs.iter().enumerate() {
        if j.paths.is_empty() {
            out.push(job(i).key("paths"), "a backup job needs at least one path");
        }
        let r = &j.retention;
        if r.daily == 0 && r.weekly == 0 && r.monthly == 0 {
            out.push(
                job(i).key("retention"),
                "daily, weekly and monthly are all 0: every snapshot would be deleted",
            );
        }
    }
}
