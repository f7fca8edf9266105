//! The process list, read straight from `/proc` (no `ps` binary needed).
//!
//! The tests use it to look for zombies (`state == "Z"`) and to find agents by name.
//! The proc root is a parameter so unit tests run on fixtures.

use std::path::Path;

use crate::protocol::ProcessInfo;
use crate::Error;

/// Every process under `proc_root`, sorted by pid. Processes that exit while the list
/// is read are skipped.
pub fn list(proc_root: &Path) -> Result<Vec<ProcessInfo>, Error> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| Error::Read {
        path: proc_root.to_path_buf(),
        source,
    })?;
    let mut processes: Vec<ProcessInfo> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect();
    processes.sort_by_key(|p| p.pid);
    Ok(processes)
}

/// Parse `/proc/<pid>/stat`: `pid (comm) state ppid ...`. `comm` may itself contain
/// spaces and parentheses, so it runs to the *last* `)`.
pub fn parse_stat(stat: &str) -> Option<ProcessInfo> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.to_string();
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcessInfo {
        pid,
        ppid,
        state,
        comm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_awkward_comm() {
        let p = parse_stat("42 (a (b) c) Z 1 42 42 0 -1 4194560 0").unwrap();
        assert_eq!(
            p,
            ProcessInfo {
                pid: 42,
                ppid: 1,
                state: "Z".into(),
                comm: "a (b) c".into()
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x)"), None);
    }

    #[test]
    fn lists_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, stat) in [
            ("1", "1 (hearth-init) S 0 1 1 0"),
            ("10", "10 (heartbeatd) S 1 10 10 0"),
            ("9", "9 (sleep) Z 1 9 9 0"),
        ] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("stat"), stat).unwrap();
        }
        // Non-pid entries and pids without stat are ignored.
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        std::fs::create_dir(dir.path().join("77")).unwrap();
        let list = list(dir.path()).unwrap();
        let pids: Vec<u32> = list.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 9, 10]);
        assert_eq!(list[1].state, "Z");
    }

    #[test]
    fn lists_the_real_proc() {
        let me = std::process::id();
        let list = list(Path::new("/proc")).unwrap();
        assert!(list.iter().any(|p| p.pid == me), "own pid {me} missing");
    }
}
