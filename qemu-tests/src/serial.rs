//! The guest console, captured by QEMU into a file and scanned here.
//!
//! [`SerialLog`] remembers how far it has matched: each [`SerialLog::find_next`] looks
//! only at complete lines after the previous match, so a scenario can wait for boot
//! markers in order without seeing an old line twice. QEMU's serial output has CRLF
//! line ends; lines are returned without them.

use std::path::{Path, PathBuf};

use regex::Regex;

/// What to look for in a console line.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The line contains this text.
    Text(String),
    /// The regex matches somewhere in the line.
    Regex(Regex),
}

impl Pattern {
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Text(text) => line.contains(text.as_str()),
            Pattern::Regex(re) => re.is_match(line),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Text(text) => write!(f, "console line containing {text:?}"),
            Pattern::Regex(re) => write!(f, "console line matching /{re}/"),
        }
    }
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Self {
        Pattern::Text(text.to_string())
    }
}

impl From<String> for Pattern {
    fn from(text: String) -> Self {
        Pattern::Text(text)
    }
}

impl From<Regex> for Pattern {
    fn from(re: Regex) -> Self {
        Pattern::Regex(re)
    }
}

impl From<&Regex> for Pattern {
    fn from(re: &Regex) -> Self {
        Pattern::Regex(re.clone())
    }
}

/// A console log file and the position of the last match in it.
#[derive(Debug)]
pub struct SerialLog {
    path: PathBuf,
    /// Byte offset just after the last matched line.
    position: usize,
}

impl SerialLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SerialLog {
            path: path.into(),
            position: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything logged so far (empty before QEMU created the file).
    pub fn contents(&self) -> String {
        std::fs::read(&self.path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// All complete lines so far, without line ends.
    pub fn lines(&self) -> Vec<String> {
        complete_lines(&self.contents())
            .map(str::to_string)
            .collect()
    }

    /// The first complete line after the last match that matches `pattern`; moves the
    /// position past it.
    pub fn find_next(&mut self, pattern: &Pattern) -> Option<String> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let new = bytes.get(self.position..).unwrap_or_default();
        let mut offset = 0;
        // Work on bytes so a stray invalid byte cannot shift offsets.
        for chunk in new.split_inclusive(|&b| b == b'\n') {
            if !chunk.ends_with(b"\n") {
                break;
            }
            offset += chunk.len();
            let line = String::from_utf8_lossy(chunk);
            let line = line.trim_end_matches(['\r', '\n']);
            if pattern.matches(line) {
                self.position += offset;
                return Some(line.to_string());
            }
        }
        None
    }

    /// How many complete lines in the whole log match `pattern`.
    pub fn count(&self, pattern: &Pattern) -> usize {
        complete_lines(&self.contents())
            .filter(|line| pattern.matches(line))
            .count()
    }

    /// The last `n` lines (including an unterminated last line), for error messages.
    pub fn tail(&self, n: usize) -> String {
        let contents = self.contents();
        let lines: Vec<&str> = contents.lines().map(|l| l.trim_end_matches('\r')).collect();
        let start = lines.len().saturating_sub(n);
        let mut out = lines[start..].join("\n");
        if lines.is_empty() {
            out.push_str("(console is empty)");
        }
        out
    }
}

/// Every `\n`-terminated line, without CR/LF.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter(|chunk| chunk.ends_with('\n'))
        .map(|chunk| chunk.trim_end_matches(['\r', '\n']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn matches_in_order_and_ignores_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let mut file = std::fs::File::create(&path).unwrap();
        let mut log = SerialLog::new(&path);
        let ready = Pattern::from(Regex::new(r"ready in \d+\.\d\ds").unwrap());

        file.write_all(b"booting\r\nhearth-init: ready in 1.2")
            .unwrap();
        assert_eq!(log.find_next(&ready), None, "partial line must not match");
        file.write_all(b"3s\r\nagent a\r\nagent b\r\n").unwrap();
        assert_eq!(
            log.find_next(&ready).unwrap(),
            "hearth-init: ready in 1.23s"
        );
        assert_eq!(log.find_next(&"agent".into()).unwrap(), "agent a");
        assert_eq!(log.find_next(&"agent".into()).unwrap(), "agent b");
        assert_eq!(log.find_next(&"agent".into()), None);
        assert_eq!(log.find_next(&"booting".into()), None, "already passed");
        assert_eq!(log.count(&"agent".into()), 2);
        assert_eq!(log.tail(2), "agent a\nagent b");
    }

    #[test]
    fn missing_file_is_empty() {
        let mut log = SerialLog::new("/nonexistent/serial.log");
        assert_eq!(log.find_next(&"x".into()), None);
        assert_eq!(log.tail(30), "(console is empty)");
    }

    #[test]
    fn invalid_utf8_still_advances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(&path, b"\xff\xfe noise\nmark one\nmark two\n").unwrap();
        let mut log = SerialLog::new(&path);
        assert_eq!(log.find_next(&"mark".into()).unwrap(), "mark one");
        assert_eq!(log.find_next(&"mark".into()).unwrap(), "mark two");
    }
}
