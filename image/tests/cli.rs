//! The `hearth` command line: subcommands, exit codes, config errors. Runs the real
//! binary; nothing here needs the network or QEMU.

use assert_cmd::Command;

fn hearth() -> Command {
    Command::cargo_bin("hearth").unwrap()
}

#[test]
fn help_lists_subcommands_and_exit_codes() {
    let out = hearth()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for sub in ["check", "schema", "build", "update-lock", "run", "bench"] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(text.contains("4  guest failure"), "{text}");
}

#[test]
fn check_accepts_the_embedded_default() {
    hearth().arg("check").assert().code(0);
}

#[test]
fn check_rejects_an_invalid_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "version = 1\n[system]\nhostname = \"bad_name\"\n").unwrap();
    let assert = hearth().arg("check").arg(&path).assert().code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(&format!("{}:3:12", path.display())),
        "no file:line:col in:\n{stderr}"
    );
}

#[test]
fn build_of_an_invalid_config_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "version = 1\n[system]\nhostname = \"bad_name\"\n").unwrap();
    let out = dir.path().join("out");
    let assert = hearth()
        .arg("build")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .arg("--offline")
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("bad.toml:3:12"), "{stderr}");
    assert_eq!(
        stderr.matches("bad.toml:3:12").count(),
        1,
        "printed once:\n{stderr}"
    );
    assert!(!out.exists(), "the output directory was created");
    assert!(
        !dir.path().join("hearth.lock").exists(),
        "a lock file was written"
    );
}

#[test]
fn build_refuses_an_output_format_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.toml");
    let config = hearth_config::DEFAULT_TOML.replace(
        "formats = [\"initramfs\"]",
        "formats = [\"initramfs\", \"disk\"]",
    );
    assert_ne!(
        config,
        hearth_config::DEFAULT_TOML,
        "default.toml changed shape"
    );
    std::fs::write(&path, config).unwrap();
    let out = dir.path().join("out");
    let assert = hearth()
        .arg("build")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .arg("--offline")
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("image.formats: \"disk\" is not built yet"),
        "{stderr}"
    );
    assert!(!out.exists(), "the output directory was created");
}

#[test]
fn run_refuses_a_directory_that_is_not_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let assert = hearth()
        .arg("run")
        .arg(dir.path())
        .arg("--check")
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("build.json"), "{stderr}");
}

#[test]
fn unknown_arguments_are_invalid_input() {
    hearth().args(["build", "--no-such-flag"]).assert().code(2);
}

#[test]
fn offline_build_without_cache_is_a_fetch_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let assert = hearth()
        .arg("build")
        .arg("--offline")
        .arg("--cache")
        .arg(dir.path().join("cache"))
        .arg("--lock")
        .arg(dir.path().join("hearth.lock"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(3);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("--offline"), "{stderr}");
    assert!(!out.join("build.json").exists());
}
