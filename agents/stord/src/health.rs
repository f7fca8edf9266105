//! The health half of the agent: once a second, every array stord runs is read back
//! from md sysfs and acted on.
//!
//! * **Transitions are logged once** (clean → degraded, recovering, checking, ...),
//!   as warnings when redundancy is lost, and kept as [`Event`]s for the status file.
//! * **Failed or vanished members are taken out** (`faulty`, then `remove`, written to
//!   the member's md sysfs `state`): without udevd nothing else tells md that a
//!   hot-removed disk is gone, and a slot only frees up for a rebuild once it is.
//! * **Rebuild onto a new blank disk** when `storage.replace = "blank-disks"`: a
//!   degraded array with no spare takes a disk that appeared after stord started,
//!   is not the boot disk, is not selected by any array, holds no signature and is
//!   at least the array's member size. (Configured spares and blank disks put in a
//!   member's slot are added by [`crate::reconcile`], under either policy.)
//! * **Scheduled scrub**: every `storage.scrub`, a clean redundant array gets `check`
//!   written to `md/sync_action`; the `mismatch_cnt` it leaves is logged and reported.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_config::{ReplacePolicy, Storage};
use serde::Serialize;

use crate::disk::{attr, Disk};
use crate::md::mdadm::MdAdmin;
use crate::md::{self, ArrayStatus, Health};
use crate::reconcile::{probe, Outcome, Probe};
use crate::select::Selection;
use crate::Root;

/// Events kept for the status file.
const EVENTS_KEPT: usize = 100;

/// Something that happened to an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unix time, milliseconds.
    pub time_ms: u64,
    /// The array's config name.
    pub array: String,
    /// What happened.
    pub message: String,
}

/// One array as the health loop last saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArrayReport {
    /// Config name.
    pub name: String,
    /// The reconcile outcome.
    pub outcome: Outcome,
    /// The kernel's view, while running.
    pub status: Option<ArrayStatus>,
}

/// State the health loop carries between ticks.
#[derive(Debug)]
pub struct Watcher {
    /// Disks present when stord started (or already used), by [`identity`]: never
    /// "newly inserted". Not by kernel name alone: a disk plugged in after one was
    /// pulled often gets the pulled disk's name.
    known: BTreeSet<String>,
    last: BTreeMap<String, Health>,
    last_scrub: BTreeMap<String, Instant>,
    /// `(array, member)` pairs already reported gone (logged once, retried quietly).
    reported_gone: BTreeSet<(String, String)>,
    events: VecDeque<Event>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Watcher {
    /// Start watching; `disks` are the disks present now.
    pub fn new(disks: &[Disk]) -> Self {
        Self {
            known: disks.iter().map(identity).collect(),
            last: BTreeMap::new(),
            last_scrub: BTreeMap::new(),
            reported_gone: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    /// The events so far, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    fn event(&mut self, array: &str, message: String, warn: bool) {
        if warn {
            log::warn!("{message}");
        } else {
            log::info!("{message}");
        }
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            time_ms: now_ms(),
            array: array.to_owned(),
            message,
        });
    }

    /// One pass over every running array.
    #[allow(clippy::too_many_arguments)]
    pub fn tick(
        &mut self,
        root: &Root,
        storage: &Storage,
        disks: &[Disk],
        selection: &Selection,
        outcomes: &[(String, Outcome)],
        md: &mut dyn MdAdmin,
        now: Instant,
    ) -> Vec<ArrayReport> {
        let mut reports = Vec::new();
        for (name, outcome) in outcomes {
            let status = outcome.device().and_then(|dev| {
                md::read_array(dev, &root.sys_block().join(dev).join("md"))
                    .map_err(|e| log::debug!("{name}: {}", hearth_agent::error_chain(&e)))
                    .ok()
            });
            if let Some(st) = &status {
                self.watch(root, storage, disks, selection, name, st, md, now);
            }
            reports.push(ArrayReport {
                name: name.clone(),
                outcome: outcome.clone(),
                status,
            });
        }
        reports
    }

    #[allow(clippy::too_many_arguments)]
    fn watch(
        &mut self,
        root: &Root,
        storage: &Storage,
        disks: &[Disk],
        selection: &Selection,
        name: &str,
        st: &ArrayStatus,
        md: &mut dyn MdAdmin,
        now: Instant,
    ) {
        let md_dev = root.dev_node(&st.device);
        let before = self.last.insert(name.to_owned(), st.health);
        if before.map(kind) != Some(kind(st.health)) {
            let lost = matches!(st.health, Health::Degraded { .. } | Health::Broken);
            self.event(
                name,
                format!("array {name} ({}): {}", st.device, st.health),
                lost,
            );
            if matches!(before, Some(Health::Checking { .. })) {
                self.event(
                    name,
                    format!(
                        "array {name}: scrub finished, mismatch_cnt {}",
                        st.mismatch_cnt.unwrap_or(0)
                    ),
                    st.mismatch_cnt.unwrap_or(0) > 0,
                );
            }
        }

        let gone: Vec<&str> = st
            .members
            .iter()
            .filter(|m| m.is_faulty() || !root.sys_block().join(&m.device).exists())
            .map(|m| m.device.as_str())
            .collect();
        if !gone.is_empty() {
            let new: Vec<&str> = gone
                .iter()
                .copied()
                .filter(|m| {
                    self.reported_gone
                        .insert((name.to_owned(), (*m).to_owned()))
                })
                .collect();
            if !new.is_empty() {
                self.event(
                    name,
                    format!(
                        "array {name} ({}): member {} failed or removed; taking it out",
                        st.device,
                        new.join(", ")
                    ),
                    true,
                );
            }
            let md_dir = root.sys_block().join(&st.device).join("md");
            for m in &gone {
                if let Err(e) = md.remove_member(&md_dir, m) {
                    // md refuses `remove` until it has finished failing the
                    // member: retried next tick, logged once.
                    log::debug!("{}", hearth_agent::error_chain(&e));
                }
            }
        }

        let rebuilding = matches!(st.health, Health::Recovering { .. });
        let has_spare = st
            .members
            .iter()
            .any(|m| m.is_spare() && !m.is_faulty() && root.sys_block().join(&m.device).exists());
        if st.degraded > 0
            && !rebuilding
            && !has_spare
            && storage.replace == ReplacePolicy::BlankDisks
        {
            if let Some(disk) = self.replacement(root, disks, selection, st) {
                self.event(
                    name,
                    format!(
                        "array {name} ({}): rebuilding onto new blank disk {} (storage.replace = blank-disks)",
                        st.device,
                        disk.label()
                    ),
                    false,
                );
                self.known.insert(identity(disk));
                if let Err(e) = md.add(&md_dev, &root.dev_node(&disk.name)) {
                    log::error!("{}", hearth_agent::error_chain(&e));
                }
            }
        }

        if let Some(every) = storage.scrub {
            let last = *self.last_scrub.entry(name.to_owned()).or_insert(now);
            let redundant = st.level.as_deref().is_some_and(|l| l != "raid0");
            if redundant && st.health == Health::Clean && now.duration_since(last) >= every.to_std()
            {
                self.last_scrub.insert(name.to_owned(), now);
                let path = root.sys_block().join(&st.device).join("md/sync_action");
                match std::fs::write(&path, "check\n") {
                    Ok(()) => self.event(
                        name,
                        format!(
                            "array {name} ({}): scrub started (every {every})",
                            st.device
                        ),
                        false,
                    ),
                    Err(e) => log::error!("writing check to {}: {e}", path.display()),
                }
            }
        }
    }

    /// A newly inserted blank disk big enough for `st`.
    fn replacement<'a>(
        &self,
        root: &Root,
        disks: &'a [Disk],
        selection: &Selection,
        st: &ArrayStatus,
    ) -> Option<&'a Disk> {
        let md_dir = root.sys_block().join(&st.device).join("md");
        let need = component_bytes(&md_dir);
        disks.iter().find(|d| {
            !d.boot
                && !self.known.contains(&identity(d))
                && selection.slot_of(&d.name).is_none()
                && d.holders.is_empty()
                && d.partitions.is_empty()
                && !d.read_only
                && d.size_bytes >= need
                && probe(root, &d.name) == Probe::Blank
        })
    }
}

/// What a health transition is logged on: its variant, with `active` (writes in
/// flight) the same as `clean` — they alternate with every burst of writes.
fn kind(h: Health) -> std::mem::Discriminant<Health> {
    match h {
        Health::Active => std::mem::discriminant(&Health::Clean),
        other => std::mem::discriminant(&other),
    }
}

/// What tells two disks apart across hot-plug: name, serial, WWN and device number.
fn identity(d: &Disk) -> String {
    format!(
        "{} {} {} {}",
        d.name,
        d.serial.as_deref().unwrap_or("-"),
        d.wwn.as_deref().unwrap_or("-"),
        d.dev
    )
}

/// `md/component_size` (KiB) in bytes: the space a member must offer.
fn component_bytes(md_dir: &Path) -> u64 {
    attr(&md_dir.join("component_size"))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |k| k.saturating_mul(1024))
}

/// How long the loop waits between ticks.
pub const TICK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
