//! A small QMP client: QEMU's JSON control protocol over a unix socket.
//!
//! QMP greets with `{"QMP": ...}`, waits for `qmp_capabilities`, then answers each
//! `{"execute": ..}` with `{"return": ..}` or `{"error": {"class", "desc"}}`.
//! Asynchronous `{"event": ..}` messages can arrive at any time; they are queued and
//! handed out by [`Qmp::wait_event`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Error;

/// How long a command may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A negotiated QMP connection.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<Value>,
}

impl Qmp {
    /// Connect (retrying until QEMU has created the socket) and negotiate.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, Error> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(protocol(format!("connecting to {}: {e}", socket.display())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let writer = stream
            .try_clone()
            .map_err(|e| protocol(format!("duplicating the socket: {e}")))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
        };
        let greeting = qmp.read_message(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(protocol(format!("expected a greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Run `command` with optional `arguments`; returns the `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| protocol(format!("sending {command}: {e}")))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let message = self.read_message(deadline)?;
            if message.get("event").is_some() {
                self.events.push_back(message);
            } else if let Some(value) = message.get("return") {
                return Ok(value.clone());
            } else if let Some(error) = message.get("error") {
                let field = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("?");
                return Err(Error::Qmp {
                    command: command.to_string(),
                    class: field("class").to_string(),
                    desc: field("desc").to_string(),
                });
            } else {
                return Err(protocol(format!(
                    "unexpected reply to {command}: {message}"
                )));
            }
        }
    }

    /// The next event named `name` (e.g. `DEVICE_DELETED`, `SHUTDOWN`), waiting up to
    /// `timeout`. Earlier events of other names stay queued.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value, Error> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Ok(self.events.remove(i).expect("index is valid"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.read_message(deadline)?;
            if message["event"] == name {
                return Ok(message);
            }
            if message.get("event").is_some() {
                self.events.push_back(message);
            }
        }
    }

    /// Events received so far and not yet handed out.
    pub fn drain_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Value, Error> {
        let mut buf = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(protocol("timed out waiting for a QMP message".into()));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(remaining))
                .map_err(|e| protocol(format!("setting a read timeout: {e}")))?;
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Err(protocol("QEMU closed the QMP socket".into())),
                Ok(_) if buf.ends_with(b"\n") => {
                    return serde_json::from_slice(&buf).map_err(|e| {
                        protocol(format!(
                            "bad message {:?}: {e}",
                            String::from_utf8_lossy(&buf)
                        ))
                    })
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(protocol(format!("reading: {e}"))),
            }
        }
    }
}

fn protocol(message: String) -> Error {
    Error::QmpProtocol { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Negotiates with a real QEMU started paused with no guest (`-S`, no kernel).
    #[test]
    fn negotiates_with_real_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let mut qemu = std::process::Command::new(hearth::qemu::QEMU_BINARY)
            .args([
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
                "-S",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .spawn()
            .unwrap();
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(10)).unwrap();
        let status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status["status"], "prelaunch");
        let err = qmp
            .execute("device_del", Some(json!({"id": "nope"})))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Qmp { command, .. } if command == "device_del"),
            "{err}"
        );
        qmp.execute("quit", None).unwrap();
        let _ = qmp.wait_event("SHUTDOWN", Duration::from_secs(5));
        assert!(qemu.wait().unwrap().success());
    }
}
