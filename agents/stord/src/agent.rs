//! The resident agent (`stord`, `stord run`): reconcile the config into mounted
//! arrays, report ready, then watch.
//!
//! Every tick (1 s, or sooner when a block uevent arrives) disks are rediscovered
//! and the health watcher ([`crate::health`]) reads every running array back from
//! sysfs. A full reconcile ([`crate::reconcile`]) runs on the first tick, after any
//! block uevent (a disk appeared or vanished), and every 10 s, so arrays waiting for
//! disks pick them up. Outcome changes are logged once; everything is written to the
//! status file (`/run/hearth/stord/status.json`, atomically replaced) for people,
//! tests and, later, monitoring.
//!
//! Nothing here exits on a missing disk or a refused array: those are states, shown
//! in the status file, and stord stays up and ready. SIGTERM/SIGINT unmount the
//! arrays stord mounted (the kernel marks md arrays clean at reboot) and exit 0.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_config::Config;
use serde::Serialize;

use crate::disk::{self, Disk};
use crate::fs::{FsAdmin, RealFs};
use crate::health::{ArrayReport, Event, Watcher, TICK};
use crate::md::mdadm::{MdAdmin, Mdadm, MDADM};
use crate::reconcile::{reconcile, Action, Outcome, Tools, World};
use crate::select::resolve;
use crate::status::DEFAULT_CONFIG;
use crate::uevent::Monitor;
use crate::Root;

/// Where the agent writes its status.
pub const STATUS_FILE: &str = "/run/hearth/stord/status.json";

/// How often a full reconcile runs without a uevent.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

/// Flags of the agent (bare `stord` and `stord run`).
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The appliance config.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Directory holding `sys/block`, `proc/self/mountinfo` and `dev/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysfs_root: PathBuf,
    /// A disk holding the running system that mounts do not show (kernel name,
    /// serial or by-id name); may repeat.
    #[arg(long, value_name = "DISK")]
    pub boot_disk: Vec<String>,
    /// Where to write the status JSON.
    #[arg(long, value_name = "FILE", default_value = STATUS_FILE)]
    pub status_file: PathBuf,
    /// The mdadm binary.
    #[arg(long, value_name = "FILE", default_value = MDADM)]
    pub mdadm: PathBuf,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] hearth_config::LoadError),
    /// Writing the status file failed.
    #[error("writing status file {path}")]
    Status {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Installing the signal handler failed.
    #[error("installing the SIGTERM handler")]
    Signal(#[source] nix::Error),
    /// Readiness could not be reported.
    #[error(transparent)]
    Ready(#[from] hearth_agent::ready::ReadyError),
}

impl AgentError {
    /// Whether the input (config) is at fault: exit code 2.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Config(_))
    }
}

/// The status file's content.
#[derive(Debug, Serialize)]
pub struct StatusFile<'a> {
    /// Unix time of this write, milliseconds.
    pub updated_ms: u64,
    /// Every configured array.
    pub arrays: &'a [ArrayReport],
    /// Recent events, oldest first.
    pub events: Vec<&'a Event>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signals() -> Result<(), nix::Error> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action)? };
    }
    Ok(())
}

/// Write `bytes` to `path` atomically (temp file in the same directory, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Run the agent until SIGTERM/SIGINT.
pub fn run(args: &AgentArgs) -> Result<(), AgentError> {
    let config: Config = hearth_config::load(&args.config)?;
    install_signals().map_err(AgentError::Signal)?;
    let mut md = Mdadm::new(&args.mdadm);
    let mut fs = RealFs;
    let root = Root::new(&args.sysfs_root);
    let monitor = match Monitor::open() {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!("{}; polling sysfs only", hearth_agent::error_chain(&e));
            None
        }
    };
    log::info!(
        "{} array(s) configured, replace = {}, scrub = {}",
        config.storage.arrays.len(),
        match config.storage.replace {
            hearth_config::ReplacePolicy::SparesOnly => "spares-only",
            hearth_config::ReplacePolicy::BlankDisks => "blank-disks",
        },
        config
            .storage
            .scrub
            .map_or_else(|| "never".to_owned(), |d| d.to_string())
    );
    let mut watcher: Option<Watcher> = None;
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    let mut last_reconcile: Option<Instant> = None;
    let mut dirty = true;
    let mut ready = false;
    let mut last_status = Vec::new();
    let mut last_write: Option<Instant> = None;
    while !STOP.load(Ordering::SeqCst) {
        let disks = match disk::discover(&root, &args.boot_disk) {
            Ok(d) => d,
            Err(e) => {
                log::error!("discovering disks: {}", hearth_agent::error_chain(&e));
                Vec::new()
            }
        };
        let watcher = watcher.get_or_insert_with(|| Watcher::new(&disks));
        let selection = resolve(&config.storage, &disks);
        if dirty || last_reconcile.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
            dirty = false;
            last_reconcile = Some(Instant::now());
            let world = World {
                root: &root,
                storage: &config.storage,
                disks: &disks,
                selection: &selection,
            };
            let next = reconcile(
                &world,
                &mut Tools {
                    md: &mut md as &mut dyn MdAdmin,
                    fs: &mut fs as &mut dyn FsAdmin,
                },
            );
            log_changes(&outcomes, &next);
            outcomes = keep_actions(&outcomes, next);
        }
        let reports = watcher.tick(
            &root,
            &config.storage,
            &disks,
            &selection,
            &outcomes,
            &mut md,
            Instant::now(),
        );
        let status = StatusFile {
            updated_ms: now_ms(),
            arrays: &reports,
            events: watcher.events().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&status).unwrap_or_default();
        // Rewrite when something but the time changed, and at least every 10 s.
        let key = serde_json::to_vec(&(&reports, status.events.len())).unwrap_or_default();
        if key != last_status || last_write.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
            write_atomic(&args.status_file, &bytes).map_err(|source| AgentError::Status {
                path: args.status_file.clone(),
                source,
            })?;
            last_status = key;
            last_write = Some(Instant::now());
        }
        if !ready {
            ready = true;
            hearth_agent::ready::notify()?;
            log::info!("ready: {}", summary(&outcomes));
        }
        dirty |= wait(monitor.as_ref(), &disks);
    }
    shutdown(&outcomes);
    Ok(())
}

/// Wait one tick; true when a block device appeared, vanished or changed.
fn wait(monitor: Option<&Monitor>, disks: &[Disk]) -> bool {
    let Some(m) = monitor else {
        std::thread::sleep(TICK);
        return false;
    };
    match m.wait(TICK) {
        Ok(events) => {
            let block: Vec<_> = events.iter().filter(|e| e.is_block()).collect();
            for e in &block {
                let known = e
                    .devname()
                    .is_some_and(|n| disks.iter().any(|d| d.name == n));
                log::debug!(
                    "uevent {} {} (known disk: {known})",
                    e.action,
                    e.devname().unwrap_or(&e.devpath)
                );
                if e.action == "add" || e.action == "remove" {
                    log::info!(
                        "block device {} {}",
                        e.devname().unwrap_or(&e.devpath),
                        if e.action == "add" {
                            "appeared"
                        } else {
                            "vanished"
                        }
                    );
                }
            }
            !block.is_empty()
        }
        Err(e) => {
            log::warn!("{}", hearth_agent::error_chain(&e));
            std::thread::sleep(TICK);
            false
        }
    }
}

/// What stord did to an array stays in the status file while the array keeps
/// running: a later pass that finds it `unchanged` keeps `created`/`assembled`.
fn keep_actions(
    before: &[(String, Outcome)],
    next: Vec<(String, Outcome)>,
) -> Vec<(String, Outcome)> {
    next.into_iter()
        .map(|(name, o)| {
            let prev = before.iter().find(|(n, _)| *n == name).map(|(_, o)| o);
            let o = match (prev, o) {
                (
                    Some(Outcome::Mounted {
                        device: d0, action, ..
                    }),
                    Outcome::Mounted {
                        device,
                        mount,
                        action: Action::Unchanged,
                    },
                ) if *d0 == device => Outcome::Mounted {
                    device,
                    mount,
                    action: *action,
                },
                (_, o) => o,
            };
            (name, o)
        })
        .collect()
}

fn summary(outcomes: &[(String, Outcome)]) -> String {
    if outcomes.is_empty() {
        return "no arrays configured".to_owned();
    }
    outcomes
        .iter()
        .map(|(n, o)| match o {
            Outcome::Mounted { device, mount, .. } => {
                format!("{n} on {device} at {}", mount.display())
            }
            Outcome::Waiting { .. } => format!("{n} waiting for disks"),
            Outcome::Refused { .. } => format!("{n} refused"),
            Outcome::Failed { .. } => format!("{n} failed"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn log_changes(before: &[(String, Outcome)], after: &[(String, Outcome)]) {
    for (name, o) in after {
        let same = before
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, b)| b.same_state(o));
        if same {
            continue;
        }
        match o {
            Outcome::Mounted { .. } => {}
            Outcome::Waiting { reason } => log::warn!("array {name}: waiting: {reason}"),
            Outcome::Refused { reason } => log::error!("array {name}: refused: {reason}"),
            Outcome::Failed { reason } => log::error!("array {name}: failed: {reason}"),
        }
    }
}

/// Unmount what stord mounted; errors are logged, every array is tried.
fn shutdown(outcomes: &[(String, Outcome)]) {
    log::info!("stopping: unmounting arrays");
    nix::unistd::sync();
    for (name, o) in outcomes {
        let Outcome::Mounted { mount, .. } = o else {
            continue;
        };
        match nix::mount::umount(mount.as_path()) {
            Ok(()) => log::info!("array {name}: unmounted {}", mount.display()),
            Err(e) => log::warn!("array {name}: unmounting {}: {e}", mount.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/stord/status.json");
        write_atomic(&path, b"{\"a\":1}").unwrap();
        write_atomic(&path, b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["status.json"]);
    }

    #[test]
    fn the_action_of_a_running_array_is_kept() {
        let m = |action| Outcome::Mounted {
            device: "md127".into(),
            mount: "/srv/tank".into(),
            action,
        };
        let before = vec![("tank".to_owned(), m(Action::Assembled))];
        let next = vec![("tank".to_owned(), m(Action::Unchanged))];
        assert_eq!(keep_actions(&before, next), before);
        let fresh = vec![("tank".to_owned(), m(Action::Unchanged))];
        assert_eq!(keep_actions(&[], fresh.clone()), fresh);
    }

    #[test]
    fn changes_are_logged_once_and_summarised() {
        let waiting = vec![("tank".to_owned(), Outcome::Waiting { reason: "x".into() })];
        log_changes(&[], &waiting);
        assert_eq!(summary(&waiting), "tank waiting for disks");
        assert_eq!(summary(&[]), "no arrays configured");
    }
}
