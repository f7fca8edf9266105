use super::*;
use crate::fixture::Fixture;

const UUID: &str = "0f7a1c52-3b1e-4a8d-9c5e-2d6b8f0a4e11";

/// A 4-disk raid5 as the kernel shows it when clean, with `overrides` applied.
fn raid5(fx: &Fixture, md: &str, overrides: &[(&str, &str)]) {
    let mut attrs = vec![
        ("array_state", "clean"),
        ("level", "raid5"),
        ("metadata_version", "1.2"),
        ("uuid", UUID),
        ("raid_disks", "4"),
        ("degraded", "0"),
        ("sync_action", "idle"),
        ("sync_completed", "none"),
        ("sync_speed", "none"),
        ("mismatch_cnt", "0"),
        ("dev-vdb/state", "in_sync"),
        ("dev-vdb/slot", "0"),
        ("dev-vdc/state", "in_sync"),
        ("dev-vdc/slot", "1"),
        ("dev-vdd/state", "in_sync"),
        ("dev-vdd/slot", "2"),
        ("dev-vde/state", "in_sync"),
        ("dev-vde/slot", "3"),
    ];
    for (k, v) in overrides {
        match attrs.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => attrs.push((k, v)),
        }
    }
    fx.md_attrs(md, &attrs);
}

fn one(fx: &Fixture) -> ArrayStatus {
    let mut all = arrays(&fx.root()).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[test]
fn clean_raid5() {
    let fx = Fixture::new();
    raid5(&fx, "md127", &[]);
    let a = one(&fx);
    assert_eq!(a.device, "md127");
    assert_eq!(a.state, ArrayState::Clean);
    assert_eq!(a.level.as_deref(), Some("raid5"));
    assert_eq!(a.metadata.as_deref(), Some("1.2"));
    assert_eq!(a.uuid.as_deref(), Some(UUID));
    assert_eq!(a.raid_disks, 4);
    assert_eq!(a.sync_action, Some(SyncAction::Idle));
    assert_eq!(a.progress, None);
    assert_eq!(a.mismatch_cnt, Some(0));
    assert_eq!(a.members.len(), 4);
    assert_eq!(a.members[0].device, "vdb");
    assert_eq!(a.members[3].slot, Some(3));
    assert_eq!(a.health, Health::Clean);
    assert!(a.health.is_healthy());
    assert_eq!(a.health.to_string(), "clean");
}

#[test]
fn writes_in_flight_are_active_and_healthy() {
    let fx = Fixture::new();
    raid5(&fx, "md0", &[("array_state", "active")]);
    assert_eq!(one(&fx).health, Health::Active);
    assert!(one(&fx).health.is_healthy());
}

#[test]
fn failed_member_makes_it_degraded() {
    let fx = Fixture::new();
    raid5(
        &fx,
        "md127",
        &[
            ("degraded", "1"),
            ("dev-vdc/state", "faulty"),
            ("dev-vdc/slot", "none"),
        ],
    );
    let a = one(&fx);
    assert_eq!(a.health, Health::Degraded { missing: 1 });
    assert!(!a.health.is_healthy());
    assert!(a.members[1].is_faulty());
    assert_eq!(a.members[1].slot, None);
    assert_eq!(a.health.to_string(), "degraded (1 missing)");
}

#[test]
fn rebuild_onto_a_spare_is_recovering_with_progress() {
    let fx = Fixture::new();
    raid5(
        &fx,
        "md127",
        &[
            ("array_state", "active"),
            ("degraded", "1"),
            ("sync_action", "recover"),
            ("sync_completed", "1048576 / 4194304"),
            ("sync_speed", "51200"),
            ("dev-vdc/state", "spare"),
            ("dev-vdc/slot", "1"),
        ],
    );
    let a = one(&fx);
    let progress = Some(Progress {
        done: 1_048_576,
        total: 4_194_304,
    });
    assert_eq!(
        a.health,
        Health::Recovering {
            missing: 1,
            progress
        }
    );
    assert_eq!(a.sync_speed_kib, Some(51200));
    assert!(a.members[1].is_spare());
    assert_eq!(
        a.health.to_string(),
        "degraded (1 missing), recovering 25.0%"
    );
}

#[test]
fn initial_resync_and_scrub() {
    let fx = Fixture::new();
    raid5(
        &fx,
        "md0",
        &[
            ("array_state", "active"),
            ("sync_action", "resync"),
            ("sync_completed", "262144 / 2093056"),
        ],
    );
    let a = one(&fx);
    assert!(matches!(a.health, Health::Resyncing { progress: Some(p) } if p.done == 262_144));
    assert_eq!(a.health.to_string(), "resyncing 12.5%");

    let fx = Fixture::new();
    raid5(
        &fx,
        "md0",
        &[
            ("sync_action", "check"),
            ("sync_completed", "delayed"),
            ("mismatch_cnt", "128"),
        ],
    );
    let a = one(&fx);
    assert_eq!(
        a.health,
        Health::Checking {
            repair: false,
            progress: None
        }
    );
    assert_eq!(a.mismatch_cnt, Some(128));
    assert!(a.health.is_healthy());
}

#[test]
fn idle_array_ignores_a_stale_sync_completed() {
    let fx = Fixture::new();
    raid5(
        &fx,
        "md0",
        &[("sync_completed", "10 / 20"), ("sync_speed", "0")],
    );
    let a = one(&fx);
    assert_eq!(a.progress, None);
    assert_eq!(a.sync_speed_kib, None);
    assert_eq!(a.health, Health::Clean);
}

#[test]
fn inactive_and_broken() {
    let fx = Fixture::new();
    // An array mdadm assembled without starting: no personality, so no sync files.
    fx.md_attrs(
        "md126",
        &[
            ("array_state", "inactive"),
            ("level", ""),
            ("raid_disks", "0"),
            ("metadata_version", "1.2"),
            ("dev-sdb/state", "spare"),
            ("dev-sdb/slot", "none"),
        ],
    );
    let a = one(&fx);
    assert_eq!(a.health, Health::Inactive);
    assert_eq!(a.level, None);
    assert_eq!(a.sync_action, None);

    let fx = Fixture::new();
    fx.md_attrs(
        "md0",
        &[
            ("array_state", "broken"),
            ("level", "raid0"),
            ("raid_disks", "2"),
            ("degraded", "0"),
        ],
    );
    assert_eq!(one(&fx).health, Health::Broken);
}

#[test]
fn unknown_values_name_the_attribute() {
    let fx = Fixture::new();
    raid5(&fx, "md0", &[("sync_action", "dance")]);
    let e = arrays(&fx.root()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("md0/md/sync_action") && text.contains("\"dance\""),
        "{text}"
    );

    let fx = Fixture::new();
    raid5(&fx, "md0", &[("array_state", "sleepy")]);
    assert!(arrays(&fx.root())
        .unwrap_err()
        .to_string()
        .contains("array_state"));
}

#[test]
fn md_without_md_dir_and_other_devices_are_skipped() {
    let fx = Fixture::new();
    fx.virtual_device("md5", 0);
    fx.virtual_device("loop0", 4096);
    assert!(arrays(&fx.root()).unwrap().is_empty());
}
