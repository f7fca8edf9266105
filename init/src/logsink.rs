//! Agent output: every line an agent writes on stdout/stderr is split into syslog
//! priority and message (`hearth_agent::logging::split_priority`), appended to
//! `/var/log/hearth/<agent>.log` as `<monotonic secs.millis> <LEVEL> <agent>: <message>`
//! and, at priority info or more urgent, echoed on the console.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use hearth_agent::logging::split_priority;

use crate::{clock, console::Console};

/// Lines without a `<N>` prefix count as info.
pub const DEFAULT_PRIORITY: u8 = 6;
/// Lines at this priority or more urgent reach the console.
pub const CONSOLE_MAX_PRIORITY: u8 = 6;
/// Longer lines are cut into pieces of this size so one agent cannot grow init's memory.
pub const MAX_LINE: usize = 4096;

/// The level name written in log files.
pub fn level_name(priority: u8) -> &'static str {
    match priority {
        0..=3 => "ERROR",
        4 => "WARN",
        5 | 6 => "INFO",
        _ => "DEBUG",
    }
}

/// Routes agent lines to the console and the per-agent log files.
#[derive(Debug)]
pub struct LogSink {
    console: Console,
    log_dir: Option<PathBuf>,
    files: HashMap<String, Option<File>>,
}

impl LogSink {
    /// `log_dir = None` keeps agent output on the console only.
    pub fn new(console: Console, log_dir: Option<PathBuf>) -> Self {
        Self {
            console,
            log_dir,
            files: HashMap::new(),
        }
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// One line of agent output (without its newline).
    pub fn agent_line(&mut self, agent: &str, raw: &str) {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (priority, message) = split_priority(raw).unwrap_or((DEFAULT_PRIORITY, raw));
        self.append(agent, priority, message);
        if priority <= CONSOLE_MAX_PRIORITY {
            match priority {
                0..=3 => self.console.line(&format!("{agent}: error: {message}")),
                4 => self.console.line(&format!("{agent}: warning: {message}")),
                _ => self.console.line(&format!("{agent}: {message}")),
            }
        }
    }

    /// Init's own messages: console (prefixed `hearth-init:`) and `init.log`.
    pub fn init_message(&mut self, priority: u8, message: &str) {
        self.append("init", priority, message);
        if priority <= CONSOLE_MAX_PRIORITY {
            self.console.say(message);
        }
    }

    fn append(&mut self, agent: &str, priority: u8, message: &str) {
        let Some(dir) = &self.log_dir else {
            return;
        };
        let file = self.files.entry(agent.to_string()).or_insert_with(|| {
            let _ = std::fs::create_dir_all(dir);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{agent}.log")))
                .ok()
        });
        if let Some(file) = file {
            let line = format!(
                "{} {} {agent}: {message}\n",
                clock::stamp(clock::monotonic()),
                level_name(priority)
            );
            // Best effort: a full /var must not stop supervision.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Turns a byte stream into lines, keeping the unfinished tail between reads.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Add bytes; returns the complete lines (without newlines).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(pos + 1);
            let mut line = std::mem::replace(&mut self.pending, rest);
            line.pop();
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.pending, rest);
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }

    /// The unfinished last line at end of stream, if any.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.pending);
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads() {
        let mut buf = LineBuffer::default();
        assert!(buf.push(b"<6>hel").is_empty());
        assert_eq!(buf.push(b"lo\n<3>bad\npart"), vec!["<6>hello", "<3>bad"]);
        assert_eq!(buf.finish().as_deref(), Some("part"));
        assert_eq!(buf.finish(), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut buf = LineBuffer::default();
        let lines = buf.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(buf.finish().map(|l| l.len()), Some(10));
    }

    #[test]
    fn routes_by_priority() {
        let dir = tempfile::tempdir().unwrap();
        let (console, captured) = Console::memory();
        let mut sink = LogSink::new(console, Some(dir.path().to_path_buf()));
        sink.agent_line("netd", "<7>noisy detail");
        sink.agent_line("netd", "<4>link down");
        sink.agent_line("netd", "plain line");
        let text = captured.text();
        assert!(!text.contains("noisy detail"), "{text}");
        assert!(text.contains("netd: warning: link down\n"), "{text}");
        assert!(text.contains("netd: plain line\n"), "{text}");
        let log = std::fs::read_to_string(dir.path().join("netd.log")).unwrap();
        let levels: Vec<&str> = log
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(levels, ["DEBUG", "WARN", "INFO"], "{log}");
        assert!(log.lines().all(|l| l.contains(" netd: ")), "{log}");
    }
}
