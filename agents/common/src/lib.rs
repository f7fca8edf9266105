//! What every Hearth agent shares with its supervisor, `hearth-init`.
//!
//! Two small protocols, the same for every agent, so that init needs to know nothing
//! about any one of them:
//!
//! * **Readiness** ([`ready`]): init starts each agent with the write end of a pipe as
//!   fd 3 and `HEARTH_READY_FD=3` in the environment. The agent writes one line
//!   (`READY=1\n`) when it is serving, then closes the fd. Any first line counts, which
//!   is why Debian's `dbus-daemon --print-address=3` speaks the same protocol unchanged.
//!   An agent run by hand has no such variable and [`ready::notify`] does nothing.
//! * **Logging** ([`logging`]): under init (`HEARTH_SUPERVISED=1`) an agent writes log
//!   records to stderr prefixed with the syslog priority (`<6>message`, the sd-daemon
//!   convention); init adds the timestamp and agent name and writes the line to the
//!   console and `/var/log/hearth/<agent>.log`. Run standalone on a systemd host the
//!   agent logs to journald; with neither it logs plain timestamped lines to stderr.

pub mod logging;
pub mod ready;

/// `outer: inner: innermost` — an error with its whole source chain on one line, for
/// the one place (an agent's `main` or log line) that prints it. A source whose text
/// is already in the line (a library error that embeds its cause) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
