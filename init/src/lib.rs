//! `hearth-init`: PID 1 of a Hearth appliance.
//!
//! The kernel runs `/init` from the initramfs, which is also the root file system. In
//! boot order, init:
//!
//! 1. mounts the API file systems ([`mounts`]) and makes sure fds 0-2 are the console
//!    ([`console`]);
//! 2. reads `/etc/hearth/config.toml` ([`config`]), sets the host name and brings up
//!    `lo` ([`net`]);
//! 3. loads the boot-critical kernel modules named in `/etc/hearth/modules`,
//!    dependencies first, from `/lib/modules/<kver>/modules.dep` ([`modules`]);
//! 4. reads the agent manifest `/etc/hearth/agents.toml` ([`manifest`]) and supervises
//!    the agents ([`supervisor`], [`agent`]): dependency order, each agent's own
//!    kernel modules loaded right before its first start, readiness on fd 3,
//!    restarts with backoff, crash-loop detection, output capture ([`logsink`]) and the
//!    live state file `/run/hearth/agents.json` ([`state`]);
//! 5. prints `hearth-init: ready in X.XXs` once every agent is ready;
//! 6. on a shutdown signal ([`signals`]) stops the agents in reverse order, kills the
//!    rest, unmounts and calls `reboot(2)` ([`shutdown`]).
//!
//! When the config or the manifest is unusable init does not give up: it enters a
//! rescue state ([`rescue`]) with only the agents marked `rescue = true` and a console
//! shell. Init never exits and never panics out of `main` ([`pid1`]).
//!
//! Console lines other tools may parse (all start at column 0):
//!
//! | line | when |
//! |---|---|
//! | `hearth-init: ready in X.XXs` | once, when every agent is ready (`CLOCK_BOOTTIME`); never in rescue |
//! | `hearth-init: rescue: <reason line>` | one per line of the reason, config/manifest unusable |
//! | `hearth-init: [ X.XXs] <phase>` | boot timeline: `mounts done`, `modules loaded (N)`, `agent <name> modules loaded (N)`, `agent <name> ready` |
//! | `hearth-init: [ X.XXs] boot finished degraded: failed: a, b; blocked: c` | once, when every agent is ready, failed or blocked and not all are ready |
//! | `hearth-init: agent <name> failed: <reason>` | crash loop or manifest problem (e.g. `exited with status 1 5 times in 1.2s`) |
//! | `hearth-init: agent <name> blocked: dependency <dep> failed` | a dependency failed |
//! | `hearth-init: reaped orphan pid N status S` | S is the exit status or the signal name |
//! | `hearth-init: shutting down (poweroff\|reboot\|halt)`, `hearth-init: <action> now` | shutdown |
//! | `<agent>: <message>`, `<agent>: warning: ...`, `<agent>: error: ...` | agent lines at priority info or above |
//!
//! Init relies on unwinding panics (`catch_unwind` in [`pid1`]): do not build it with
//! `panic = "abort"`.
//!
//! Everything that touches `/proc`, `/sys` or `/lib/modules` takes a root path, and
//! [`supervisor::Supervisor`] runs as an ordinary process, so the tests exercise the
//! real code on the host without being PID 1.

pub mod agent;
pub mod clock;
pub mod config;
pub mod console;
pub mod layout;
pub mod logsink;
pub mod manifest;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod pid1;
pub mod power_button;
pub mod rescue;
pub mod shutdown;
pub mod signals;
pub mod state;
pub mod supervisor;
