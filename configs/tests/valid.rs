//! The shipped configs (the embedded default and every file in `configs/examples/`)
//! are valid, and a parsed config survives a serialize/parse round trip.

use std::path::{Path, PathBuf};

use hearth_config::{parse, Config, RaidLevel, Wan, DEFAULT_NAME, DEFAULT_TOML};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn parse_ok(src: &str, name: &str) -> Config {
    parse(src, name).unwrap_or_else(|e| panic!("{name} must be valid:\n{e}"))
}

#[test]
fn default_is_valid_and_has_what_the_docs_promise() {
    let cfg = parse_ok(DEFAULT_TOML, DEFAULT_NAME);
    assert_eq!(cfg.version, 1);
    assert_eq!(cfg.system.hostname.as_str(), "hearth");
    assert_eq!(cfg.system.hostname.to_string(), "hearth");
    assert_eq!(cfg.system.console.as_ref().unwrap().baud, Some(115200));
    assert_eq!(cfg.image.kernel, "linux-image-amd64");
    assert!(!cfg.image.debug_shell);
    assert_eq!(
        cfg.image.mirror, None,
        "the default must use the host's apt sources"
    );
    assert_eq!(cfg.network.wan, Wan::Dhcp);
    let names: Vec<&str> = cfg
        .network
        .segments
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["media", "backup", "management"]);
    assert_eq!(cfg.dns.cache.ttl.as_secs(), 3600);
    assert_eq!(cfg.dhcp.pools.len(), 4);
    let tank = &cfg.storage.arrays[0];
    assert_eq!(tank.name.as_str(), "tank");
    assert_eq!(tank.level, RaidLevel::Raid5);
    assert_eq!(tank.members.len(), 3);
    assert_eq!(tank.mount_point(), Path::new("/srv/tank"));
    let job = &cfg.services.backup.jobs[0];
    assert_eq!(
        (
            job.retention.daily,
            job.retention.weekly,
            job.retention.monthly
        ),
        (7, 4, 12)
    );
    assert!(cfg.update.is_some());
}

#[test]
fn examples_are_valid() {
    let files = examples();
    assert!(
        files.len() >= 2,
        "expected at least two examples, found {files:?}"
    );
    for f in files {
        let cfg = hearth_config::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.version, 1);
    }
}

#[test]
fn a_minimal_config_takes_defaults() {
    let cfg = parse_ok("version = 1\n[system]\nhostname = \"box\"\n", "min.toml");
    assert_eq!(cfg.image.kernel, "linux-image-amd64");
    assert_eq!(cfg.network.lan.bridge.as_str(), "br-lan");
    assert_eq!(cfg.dns.domain.as_str(), "home.arpa");
    assert_eq!(cfg.system.admin.user.as_str(), "admin");
    assert!(cfg.update.is_none());
}

#[test]
fn serialized_configs_parse_back_the_same() {
    let mut sources = vec![(DEFAULT_NAME.to_owned(), DEFAULT_TOML.to_owned())];
    for f in examples() {
        sources.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap(),
        ));
    }
    for (name, src) in sources {
        let cfg = parse_ok(&src, &name);
        let text = toml::to_string(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = parse_ok(&text, &format!("{name} (re-serialized)"));
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            serde_json::to_value(&again).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn schema_describes_the_sections_and_value_rules() {
    let schema = hearth_config::json_schema();
    let props = schema["properties"].as_object().expect("properties");
    for section in [
        "version", "system", "image", "network", "dns", "dhcp", "storage",
    ] {
        assert!(props.contains_key(section), "schema lacks {section}");
    }
    let text = schema.to_string();
    assert!(text.contains("\"maximum\":4094"), "VlanId range missing");
    assert!(text.contains("\"maxLength\":15"), "IfName length missing");
}

#[test]
fn plain_serde_reads_the_same_config() {
    // `parse` deserializes section by section; the derived `Deserialize` must agree,
    // so every section `parse` knows is a field of `Config` and vice versa.
    let sectioned = parse_ok(DEFAULT_TOML, DEFAULT_NAME);
    let plain: Config = toml::from_str(DEFAULT_TOML).expect("derived Deserialize");
    assert_eq!(
        serde_json::to_value(&sectioned).unwrap(),
        serde_json::to_value(&plain).unwrap()
    );
}

#[test]
fn array_disks_and_selectors() {
    let cfg = parse_ok(DEFAULT_TOML, DEFAULT_NAME);
    let serials: Vec<&str> = cfg.storage.arrays[0]
        .disks()
        .filter_map(|d| d.serial())
        .collect();
    assert_eq!(serials, ["HEARTH-TANK-1", "HEARTH-TANK-2", "HEARTH-TANK-3"]);
}
