//! The logging half of the agent protocol (see the crate docs). Call [`init`] once, in
//! `main`, before anything logs.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Set by init in every agent's environment.
pub const SUPERVISED_ENV: &str = "HEARTH_SUPERVISED";
/// Overrides the level filter (`error`, `warn`, `info`, `debug`, `trace`).
pub const LEVEL_ENV: &str = "HEARTH_LOG";

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `<N>message` lines on stderr, for init to timestamp and route.
    Supervisor,
    /// The systemd journal (standalone on a systemd host).
    Journal,
    /// Plain `TIME LEVEL target: message` lines on stderr.
    Stderr,
}

/// The syslog priority init expects in front of each line.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Parse the `<N>` prefix init reads back; returns the priority and the rest.
pub fn split_priority(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let (num, msg) = rest.split_once('>')?;
    let p: u8 = num.parse().ok()?;
    (p <= 7).then_some((p, msg))
}

/// Install the logger for agent `name` and return which sink it chose.
pub fn init(name: &'static str) -> Sink {
    let level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    let sink = if std::env::var_os(SUPERVISED_ENV).is_some() {
        Sink::Supervisor
    } else {
        match systemd_journal_logger::JournalLog::new() {
            // The crate errors when there is no journald socket: fall back, never fail.
            Ok(journal) => {
                let journal = journal.with_syslog_identifier(name.to_string());
                if log::set_boxed_logger(Box::new(journal)).is_ok() {
                    log::set_max_level(level);
                    return Sink::Journal;
                }
                Sink::Stderr
            }
            Err(_) => Sink::Stderr,
        }
    };
    let _ = log::set_boxed_logger(Box::new(StderrLogger { sink }));
    log::set_max_level(level);
    sink
}

struct StderrLogger {
    sink: Sink,
}

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let line = match self.sink {
            Sink::Supervisor => format!("<{}>{}\n", priority(record.level()), record.args()),
            _ => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                format!(
                    "{}.{:03} {:<5} {}: {}\n",
                    now.as_secs(),
                    now.subsec_millis(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            }
        };
        // One write per line so lines from threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_round_trips() {
        let line = format!("<{}>disk sda gone", priority(Level::Warn));
        assert_eq!(split_priority(&line), Some((4, "disk sda gone")));
        assert_eq!(split_priority("no prefix"), None);
        assert_eq!(split_priority("<9>too high"), None);
    }
}
