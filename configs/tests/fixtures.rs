//! Every file in `tests/fixtures/invalid/` breaks exactly one rule. Its first line is
//! `# expect: <text>`: parsing the file must fail, and one rendered diagnostic line
//! must contain `<text>` (which includes `line:col`). Every diagnostic line must name
//! the fixture file.

use std::path::{Path, PathBuf};

use hearth_config::parse;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Checks one fixture; `Err` explains what went wrong.
fn check(path: &Path) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let expect = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .ok_or("first line must be `# expect: <substring>`")?
        .trim_end();
    let name = path.display().to_string();
    let errors = match parse(&src, &name) {
        Ok(_) => return Err("parsed without error".to_owned()),
        Err(e) => e,
    };
    let rendered = errors.to_string();
    if let Some(line) = rendered
        .lines()
        .find(|l| !l.starts_with(&format!("{name}:")))
    {
        return Err(format!("line does not name the file: {line}"));
    }
    if !rendered.lines().any(|l| l.contains(expect)) {
        return Err(format!("no line contains {expect:?}; got:\n{rendered}"));
    }
    Ok(())
}

#[test]
fn every_invalid_fixture_fails_with_its_message() {
    let files = fixtures();
    assert!(files.len() >= 30, "only {} fixtures", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| check(f).err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

const BASE: &str = r#"version = 1
[system]
hostname = "box"
"#;

#[test]
fn three_independent_errors_are_all_reported() {
    let src = format!(
        "{BASE}{}",
        r#"
[[network.segments]]
name = "a"
vlan = 10
subnet = "10.0.10.0/24"
gateway = "10.0.11.1"

[[storage.arrays]]
name = "tank"
level = "raid5"
members = [{ serial = "A" }, { serial = "B" }]

[[services.smb.shares]]
name = "x"
array = "pool"
path = "x"
"#
    );
    let errors = parse(&src, "three.toml").unwrap_err();
    let text = errors.to_string();
    assert_eq!(errors.errors.len(), 3, "{text}");
    assert!(text.contains("three.toml:9:11: network.segments[0].gateway: gateway 10.0.11.1 is outside 10.0.10.0/24"), "{text}");
    assert!(text.contains("three.toml:14:11: storage.arrays[0].members: raid5 needs at least 3 member disks, found 2"), "{text}");
    assert!(
        text.contains("three.toml:18:9: services.smb.shares[0].array: unknown array \"pool\""),
        "{text}"
    );
}

#[test]
fn parse_errors_in_different_sections_are_all_reported() {
    let src = format!(
        "{BASE}{}",
        r#"
[[network.segments]]
name = "a"
vlan = 0
subnet = "10.0.10.0/24"
gateway = "10.0.10.1"

[dns.cache]
ttl = "forever"

[storage]
wipe = "sda"
"#
    );
    let errors = parse(&src, "parse3.toml").unwrap_err();
    let fields: Vec<&str> = errors.errors.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        ["network.segments[0].vlan", "dns.cache.ttl", "storage.wipe"],
        "{errors}"
    );
}

#[test]
fn load_reports_missing_files_with_their_path() {
    let err = hearth_config::load(Path::new("/nonexistent/hearth.toml")).unwrap_err();
    assert!(matches!(err, hearth_config::LoadError::Io { .. }));
    assert_eq!(
        err.to_string(),
        "cannot read config /nonexistent/hearth.toml"
    );
}
