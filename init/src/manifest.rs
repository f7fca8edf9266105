//! The agent manifest, `/etc/hearth/agents.toml` (format in the README):
//!
//! ```toml
//! [[agent]]
//! name = "dbus"
//! exec = ["/usr/bin/dbus-daemon", "--system", "--nofork", "--nopidfile", "--print-address=3"]
//! after = []
//! ready_timeout_secs = 30   # optional, 0 = wait forever
//! rescue = false            # optional: also started in the rescue state
//! modules = []              # optional: kernel modules loaded before its first start
//! ```
//!
//! A file that does not parse (or repeats a name) is unusable as a whole and sends
//! init to rescue. Problems local to some agents — an empty `exec`, an unknown name in
//! `after`, a dependency cycle — are kept in [`Manifest::problems`]: those agents are
//! reported as failed and never started, the rest of the system comes up.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Readiness timeout when the manifest gives none.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `[[agent]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: String,
    pub exec: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub ready_timeout_secs: Option<u64>,
    #[serde(default)]
    pub rescue: bool,
    /// Kernel modules this agent needs, loaded (dependencies first, each once per
    /// boot) right before its first start.
    #[serde(default)]
    pub modules: Vec<String>,
}

impl AgentSpec {
    /// A spec with defaults, for building manifests in code.
    pub fn new(name: &str, exec: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            exec: exec.iter().map(|s| s.to_string()).collect(),
            after: Vec::new(),
            ready_timeout_secs: None,
            rescue: false,
            modules: Vec::new(),
        }
    }

    pub fn modules(mut self, modules: &[&str]) -> Self {
        self.modules = modules.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn after(mut self, deps: &[&str]) -> Self {
        self.after = deps.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn ready_timeout(mut self, secs: u64) -> Self {
        self.ready_timeout_secs = Some(secs);
        self
    }

    /// `None` = wait forever.
    pub fn ready_timeout_duration(&self) -> Option<Duration> {
        match self.ready_timeout_secs {
            None => Some(DEFAULT_READY_TIMEOUT),
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    agent: Vec<AgentSpec>,
}

/// Why the manifest as a whole is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: agent {name:?} is defined more than once")]
    Duplicate { path: PathBuf, name: String },
}

/// A parsed manifest: agents in file order plus per-agent problems.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub agents: Vec<AgentSpec>,
    /// Agent name → why it cannot be started.
    pub problems: BTreeMap<String, String>,
    /// Indices into `agents` in a valid start order (dependencies first, file order
    /// otherwise); agents with problems are left out.
    pub order: Vec<usize>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        let mut seen = HashMap::new();
        for agent in &file.agent {
            if seen.insert(agent.name.clone(), ()).is_some() {
                return Err(ManifestError::Duplicate {
                    path: path.to_path_buf(),
                    name: agent.name.clone(),
                });
            }
        }
        Ok(Self::from_agents(file.agent))
    }

    /// Validate dependencies and compute the start order.
    pub fn from_agents(agents: Vec<AgentSpec>) -> Self {
        let index: HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let mut problems = BTreeMap::new();
        for agent in &agents {
            if agent.exec.is_empty() || agent.exec[0].is_empty() {
                problems.insert(agent.name.clone(), "exec is empty".to_string());
            } else if agent.name.is_empty() || agent.name.contains(['/', ' ']) {
                problems.insert(agent.name.clone(), "invalid agent name".to_string());
            } else if let Some(dep) = agent.after.iter().find(|d| !index.contains_key(d.as_str())) {
                problems.insert(agent.name.clone(), format!("unknown dependency {dep:?}"));
            }
        }
        // Depth-first search from each agent in file order: finds cycles and yields a
        // stable topological order.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; agents.len()];
        let mut order = Vec::new();
        fn visit(
            i: usize,
            agents: &[AgentSpec],
            index: &HashMap<&str, usize>,
            marks: &mut [Mark],
            stack: &mut Vec<usize>,
            order: &mut Vec<usize>,
            problems: &mut BTreeMap<String, String>,
        ) {
            match marks[i] {
                Mark::Done => return,
                Mark::Active => {
                    let start = stack.iter().position(|s| *s == i).unwrap_or(0);
                    let mut names: Vec<&str> = stack[start..]
                        .iter()
                        .map(|s| agents[*s].name.as_str())
                        .collect();
                    names.push(agents[i].name.as_str());
                    let cycle = format!("dependency cycle: {}", names.join(" -> "));
                    for s in &stack[start..] {
                        problems
                            .entry(agents[*s].name.clone())
                            .or_insert_with(|| cycle.clone());
                    }
                    return;
                }
                Mark::New => {}
            }
            marks[i] = Mark::Active;
            stack.push(i);
            for dep in &agents[i].after {
                if let Some(&d) = index.get(dep.as_str()) {
                    visit(d, agents, index, marks, stack, order, problems);
                }
            }
            stack.pop();
            marks[i] = Mark::Done;
            order.push(i);
        }
        let mut stack = Vec::new();
        for i in 0..agents.len() {
            visit(
                i,
                &agents,
                &index,
                &mut marks,
                &mut stack,
                &mut order,
                &mut problems,
            );
        }
        order.retain(|i| !problems.contains_key(&agents[*i].name));
        Self {
            agents,
            problems,
            order,
        }
    }

    /// Only the agents marked `rescue = true`, with dependencies on others dropped
    /// (they will not run in rescue).
    pub fn rescue_only(&self) -> Self {
        let keep: Vec<AgentSpec> = self.agents.iter().filter(|a| a.rescue).cloned().collect();
        let names: Vec<String> = keep.iter().map(|a| a.name.clone()).collect();
        let keep = keep
            .into_iter()
            .map(|mut a| {
                a.after.retain(|d| names.contains(d));
                a
            })
            .collect();
        Self::from_agents(keep)
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(m: &Manifest) -> Vec<&str> {
        m.order.iter().map(|i| m.agents[*i].name.as_str()).collect()
    }

    #[test]
    fn parses_the_readme_example() {
        let text = r#"
[[agent]]
name = "dbus"
exec = ["/usr/bin/dbus-daemon", "--system", "--nofork", "--nopidfile", "--print-address=3"]
after = []
ready_timeout_secs = 30

[[agent]]
name = "heartbeatd"
exec = ["/usr/libexec/hearth/heartbeatd"]
after = ["dbus"]

[[agent]]
name = "guestctld"
exec = ["/usr/libexec/hearth/guestctld"]
rescue = true

[[agent]]
name = "stord"
exec = ["/usr/libexec/hearth/stord"]
after = ["dbus"]
modules = ["raid1", "raid456"]
"#;
        let m = Manifest::parse(text, Path::new("agents.toml")).unwrap();
        assert_eq!(names(&m), ["dbus", "heartbeatd", "guestctld", "stord"]);
        assert!(m.problems.is_empty());
        assert!(m.agents[0].modules.is_empty());
        assert_eq!(m.agents[3].modules, ["raid1", "raid456"]);
        assert_eq!(
            m.agents[1].ready_timeout_duration(),
            Some(DEFAULT_READY_TIMEOUT)
        );
        let rescue = m.rescue_only();
        assert_eq!(names(&rescue), ["guestctld"]);
    }

    #[test]
    fn orders_dependencies_first() {
        let m = Manifest::from_agents(vec![
            AgentSpec::new("c", &["/c"]).after(&["b"]),
            AgentSpec::new("a", &["/a"]),
            AgentSpec::new("b", &["/b"]).after(&["a"]),
        ]);
        assert_eq!(names(&m), ["a", "b", "c"]);
    }

    #[test]
    fn cycles_and_unknown_names_are_per_agent_problems() {
        let m = Manifest::from_agents(vec![
            AgentSpec::new("ok", &["/ok"]),
            AgentSpec::new("x", &["/x"]).after(&["y"]),
            AgentSpec::new("y", &["/y"]).after(&["x"]),
            AgentSpec::new("lost", &["/lost"]).after(&["nope"]),
            AgentSpec::new("empty", &[]),
        ]);
        assert_eq!(names(&m), ["ok"]);
        assert_eq!(m.problems["x"], "dependency cycle: x -> y -> x");
        assert_eq!(m.problems["y"], "dependency cycle: x -> y -> x");
        assert_eq!(m.problems["lost"], "unknown dependency \"nope\"");
        assert_eq!(m.problems["empty"], "exec is empty");
    }

    #[test]
    fn bad_files_are_errors_with_the_path() {
        let err = Manifest::parse("[[agent]]\nname = 1\n", Path::new("/etc/a.toml")).unwrap_err();
        assert!(err.to_string().starts_with("/etc/a.toml: "), "{err}");
        let err = Manifest::parse(
            "[[agent]]\nname=\"a\"\nexec=[\"/a\"]\n[[agent]]\nname=\"a\"\nexec=[\"/b\"]\n",
            Path::new("m.toml"),
        )
        .unwrap_err();
        assert!(matches!(err, ManifestError::Duplicate { .. }), "{err}");
        let err = Manifest::parse(
            "[[agent]]\nname=\"a\"\nexec=[\"/a\"]\nbogus=1\n",
            Path::new("m"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
