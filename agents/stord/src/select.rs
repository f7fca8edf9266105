//! The config's disk selectors (`{ serial = … }` / `{ by_id = … }`) resolved against
//! the disks discovery found.
//!
//! Every problem is collected, each naming its config field and array, so one run of
//! `stord status` shows all of them: a selector that matches no disk, a disk that two
//! selectors match, and a boot disk selected (never allowed, whatever the config
//! says). Resolution is partial: a missing member is a problem for creating an array
//! but not for assembling a degraded one, so callers decide which problems stop them.

use std::fmt;

use hearth_config::{DiskSelector, Storage};
use serde::Serialize;

use crate::disk::Disk;

/// Whether a disk is an active member or a hot spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Active member.
    Member,
    /// Hot spare.
    Spare,
}

/// One selector of the config and the disk it picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// `storage.arrays[0].members[1]`.
    pub field: String,
    /// The array's name.
    pub array: String,
    /// Member or spare.
    pub role: Role,
    /// The selector as written.
    pub selector: DiskSelector,
    /// The disk's kernel name, when found (and not refused).
    pub disk: Option<String>,
}

/// A selector that could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum SelectError {
    /// No disk matches.
    #[error("{field} (array {array}): no disk with {}", describe(selector))]
    NotFound {
        /// The config field.
        field: String,
        /// The array's name.
        array: String,
        /// The selector.
        selector: DiskSelector,
    },
    /// A disk an earlier selector already picked.
    #[error("{field} (array {array}): disk {disk} is already selected by {first}")]
    Twice {
        /// The config field.
        field: String,
        /// The array's name.
        array: String,
        /// The disk.
        disk: String,
        /// The field that picked it first.
        first: String,
    },
    /// The boot disk.
    #[error("{field} (array {array}): disk {disk} holds the running system and is never used")]
    BootDisk {
        /// The config field.
        field: String,
        /// The array's name.
        array: String,
        /// The disk.
        disk: String,
    },
}

fn describe(s: &DiskSelector) -> String {
    match s {
        DiskSelector::Serial(v) => format!("serial {v:?}"),
        DiskSelector::ById(v) => format!("by-id name {v:?}"),
    }
}

/// All problems, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SelectErrors(pub Vec<SelectError>);

impl fmt::Display for SelectErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The outcome for the whole `storage` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Every selector in config order (members, then spares, array by array).
    pub slots: Vec<Slot>,
    /// What could not be honoured.
    pub problems: Vec<SelectError>,
}

impl Selection {
    /// The slot that picked disk `name`.
    pub fn slot_of(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.disk.as_deref() == Some(name))
    }

    /// Every slot found, or every problem.
    pub fn complete(self) -> Result<Vec<Slot>, SelectErrors> {
        if self.problems.is_empty() {
            Ok(self.slots)
        } else {
            Err(SelectErrors(self.problems))
        }
    }
}

/// Whether `sel` names `disk`.
pub fn matches(sel: &DiskSelector, disk: &Disk) -> bool {
    match sel {
        DiskSelector::Serial(s) => disk.serial.as_deref() == Some(s.as_str()),
        DiskSelector::ById(id) => disk.by_id.iter().any(|b| b == id),
    }
}

/// Resolve every selector of `storage` against `disks`.
pub fn resolve(storage: &Storage, disks: &[Disk]) -> Selection {
    let mut slots: Vec<Slot> = Vec::new();
    let mut problems = Vec::new();
    for (i, array) in storage.arrays.iter().enumerate() {
        let members = array.members.iter().map(|s| (Role::Member, "members", s));
        let spares = array.spares.iter().map(|s| (Role::Spare, "spares", s));
        let mut index = [0usize; 2];
        for (role, key, selector) in members.chain(spares) {
            let n = &mut index[usize::from(role == Role::Spare)];
            let field = format!("storage.arrays[{i}].{key}[{n}]");
            *n += 1;
            let name = array.name.to_string();
            let found = disks.iter().find(|d| matches(selector, d));
            let disk = match found {
                None => {
                    problems.push(SelectError::NotFound {
                        field: field.clone(),
                        array: name.clone(),
                        selector: selector.clone(),
                    });
                    None
                }
                Some(d) if d.boot => {
                    problems.push(SelectError::BootDisk {
                        field: field.clone(),
                        array: name.clone(),
                        disk: d.label(),
                    });
                    None
                }
                Some(d) => match slots
                    .iter()
                    .find(|s| s.disk.as_deref() == Some(d.name.as_str()))
                {
                    Some(first) => {
                        problems.push(SelectError::Twice {
                            field: field.clone(),
                            array: name.clone(),
                            disk: d.label(),
                            first: first.field.clone(),
                        });
                        None
                    }
                    None => Some(d.name.clone()),
                },
            };
            slots.push(Slot {
                field,
                array: name,
                role,
                selector: selector.clone(),
                disk,
            });
        }
    }
    Selection { slots, problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::discover;
    use crate::fixture::{FakeDisk, Fixture};

    fn storage(toml: &str) -> Storage {
        let src = format!("version = 1\n[system]\nhostname = \"nas\"\n{toml}");
        hearth_config::parse(&src, "test.toml").unwrap().storage
    }

    fn disks() -> (Fixture, Vec<Disk>) {
        let fx = Fixture::new();
        fx.disk(&FakeDisk::virtio("vda", "BOOT", 8 << 30).partition(1, 8 << 30));
        for (i, s) in ["S1", "S2", "S3", "S4"].iter().enumerate() {
            fx.disk(&FakeDisk::virtio(
                &format!("vd{}", char::from(b'b' + i as u8)),
                s,
                1 << 30,
            ));
        }
        fx.disk(&FakeDisk::sata("sda", "WDC WD40EFRX", "WD-1", 4 << 40));
        fx.mountinfo(&[("254:1", "/", "/dev/vda1")]);
        let d = discover(&fx.root(), &[]).unwrap();
        (fx, d)
    }

    #[test]
    fn serial_and_by_id_pick_disks_in_config_order() {
        let (_fx, d) = disks();
        let s = storage(
            r#"
[[storage.arrays]]
name = "photos"
level = "raid5"
members = [{ serial = "S1" }, { by_id = "virtio-S2" }, { by_id = "ata-WDC_WD40EFRX_WD-1" }]
spares = [{ serial = "S4" }]
"#,
        );
        let sel = resolve(&s, &d);
        assert!(sel.problems.is_empty(), "{:?}", sel.problems);
        let picked: Vec<_> = sel
            .slots
            .iter()
            .map(|s| s.disk.as_deref().unwrap())
            .collect();
        assert_eq!(picked, ["vdb", "vdc", "sda", "vde"]);
        assert_eq!(sel.slots[3].role, Role::Spare);
        assert_eq!(sel.slots[3].field, "storage.arrays[0].spares[0]");
        assert_eq!(
            sel.slot_of("vdc").unwrap().field,
            "storage.arrays[0].members[1]"
        );
        assert_eq!(sel.complete().unwrap().len(), 4);
    }

    #[test]
    fn every_problem_names_field_array_and_selector() {
        let (_fx, d) = disks();
        let s = storage(
            r#"
[[storage.arrays]]
name = "photos"
level = "raid1"
members = [{ serial = "S1" }, { serial = "X" }]

[[storage.arrays]]
name = "media"
level = "raid1"
members = [{ by_id = "virtio-S1" }, { serial = "BOOT" }]
"#,
        );
        let errs = resolve(&s, &d).complete().unwrap_err();
        assert_eq!(
            errs.to_string(),
            "storage.arrays[0].members[1] (array photos): no disk with serial \"X\"\n\
             storage.arrays[1].members[0] (array media): disk vdb (serial S1) is already \
             selected by storage.arrays[0].members[0]\n\
             storage.arrays[1].members[1] (array media): disk vda (serial BOOT) holds the \
             running system and is never used"
        );
    }
}
