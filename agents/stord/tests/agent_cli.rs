//! The agent binary end to end on a fixture root: a config whose disks are absent
//! must not crash-loop — stord reports ready on fd 3, writes the status file showing
//! the array waiting, and exits 0 on SIGTERM.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn missing_disks_mean_waiting_ready_and_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sys/block")).unwrap();
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), "").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "version = 1\n[system]\nhostname = \"nas\"\n\
         [[storage.arrays]]\nname = \"tank\"\nlevel = \"raid1\"\n\
         members = [{ serial = \"A\" }, { serial = \"B\" }]\n",
    )
    .unwrap();
    let status = dir.path().join("status.json");

    let (read, write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let fd = write.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stord"));
    cmd.arg("--config")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(&root)
        .arg("--status-file")
        .arg(&status)
        .env("HEARTH_SUPERVISED", "1")
        .env("HEARTH_READY_FD", "3")
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if nix::libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(write);

    // The child's fd 3 is the only write end left: EOF once stord closes it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::fs::File::from(read).read_to_string(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    if line.is_err() {
        let _ = child.kill();
    }
    assert_eq!(line.as_deref(), Ok("READY=1\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let json: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "no status file");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(json["arrays"][0]["name"], "tank");
    assert_eq!(json["arrays"][0]["outcome"]["state"], "waiting");
    let reason = json["arrays"][0]["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("members[0] (serial A)"), "{reason}");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    assert!(log.contains("<4>array tank: waiting:"), "{log}");
    assert!(log.contains("<6>ready: tank waiting for disks"), "{log}");
}
