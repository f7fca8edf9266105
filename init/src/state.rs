//! `/run/hearth/agents.json`: the live state of every agent, for `guestctld` and
//! people. Rewritten atomically (temp file + rename) on every change, so readers never
//! see a torn file.
//!
//! ```json
//! {"agents":[{"name":"dbus","state":"ready","pid":42,"restarts":0,"reason":null}],
//!  "ready":true,"rescue":null}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The externally visible state of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Started (or waiting for its dependencies), not ready yet.
    Starting,
    Ready,
    /// Exited; waiting out the backoff before the next start.
    Restarting,
    /// Crash-looped or cannot be started; not restarted any more.
    Failed,
    /// Stopped by shutdown.
    Stopped,
    /// Never started because a dependency failed.
    Blocked,
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Blocked => "blocked",
        };
        f.write_str(s)
    }
}

/// One agent in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub state: AgentState,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub reason: Option<String>,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub agents: Vec<AgentRecord>,
    /// Every supervised agent is ready.
    pub ready: bool,
    /// Why init is in the rescue state, if it is.
    pub rescue: Option<String>,
}

/// Errors writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the agent state")]
    Encode(#[from] serde_json::Error),
}

/// Write `snapshot` to `path` atomically.
pub fn write_atomic(path: &Path, snapshot: &Snapshot) -> Result<(), StateError> {
    let mut json = serde_json::to_vec(snapshot)?;
    json.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    let io = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&json).map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Read a state file back (tests, tools).
pub fn read(path: &Path) -> Option<Snapshot> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_documented_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/hearth/agents.json");
        let snap = Snapshot {
            agents: vec![AgentRecord {
                name: "dbus".into(),
                state: AgentState::Ready,
                pid: Some(42),
                restarts: 1,
                reason: None,
            }],
            ready: true,
            rescue: None,
        };
        write_atomic(&path, &snap).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"agents\":[{\"name\":\"dbus\",\"state\":\"ready\",\"pid\":42,\"restarts\":1,\"reason\":null}],\"ready\":true,\"rescue\":null}\n"
        );
        assert_eq!(read(&path), Some(snap));
        assert!(!path.with_extension("json.tmp").exists());
    }
}
