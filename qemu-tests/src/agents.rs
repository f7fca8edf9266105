//! The guest's view of its agents: `/run/hearth/agents.json` (README contract, written
//! by init) and the console markers init prints.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::guest::Guest;
use crate::Error;

/// Where init publishes agent state.
pub const AGENTS_JSON: &str = "/run/hearth/agents.json";

/// Printed exactly once when every agent is ready.
pub const READY_MARKER: &str = r"hearth-init: ready in \d+\.\d\ds";

/// Printed when the config is unusable.
pub const RESCUE_MARKER: &str = "hearth-init: rescue: ";

/// A TCG boot takes ~7–10 s on an idle machine; leave room for a busy one.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentsState {
    pub agents: Vec<AgentRecord>,
    pub ready: bool,
    pub rescue: Option<String>,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    /// `starting`, `ready`, `restarting`, `failed`, `stopped` or `blocked`.
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub reason: Option<String>,
}

impl AgentsState {
    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|a| a.name == name)
    }
}

/// The ready marker as a regex.
pub fn ready_marker() -> Regex {
    Regex::new(READY_MARKER).expect("valid regex")
}

impl Guest {
    /// Read and parse `/run/hearth/agents.json`.
    pub fn agents(&mut self) -> Result<AgentsState, Error> {
        let text = self.read_file(AGENTS_JSON)?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            what: AGENTS_JSON.to_string(),
            source,
        })
    }

    /// Wait until `condition` holds for the agent state file.
    pub fn wait_for_agents(
        &mut self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&AgentsState) -> bool,
    ) -> Result<AgentsState, Error> {
        self.wait_until(what, timeout, |guest| {
            // The file may be mid-rename or not written yet: keep polling.
            match guest.agents() {
                Ok(state) if condition(&state) => Ok(Some(state)),
                Ok(_) | Err(Error::Guest { .. }) | Err(Error::Json { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Wait for the console's ready marker; returns the line.
    pub fn wait_ready(&mut self) -> Result<String, Error> {
        self.wait_for(ready_marker(), BOOT_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_state_file() {
        let state: AgentsState = serde_json::from_str(
            r#"{"agents":[{"name":"dbus","state":"ready","pid":42,"restarts":0,"reason":null}],
                "ready":true,"rescue":null}"#,
        )
        .unwrap();
        assert!(state.ready);
        assert_eq!(state.agent("dbus").unwrap().pid, Some(42));
        assert!(ready_marker().is_match("hearth-init: ready in 7.31s"));
        assert!(!ready_marker().is_match("hearth-init: ready in 7s"));
    }
}
