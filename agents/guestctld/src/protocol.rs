//! The JSON-lines protocol between the host harness and `guestctld`.
//!
//! One request per line, answered by one response line carrying the same `id`. A
//! request either runs a program (`argv`) or names a built-in `op` that needs nothing
//! from the image (no busybox):
//!
//! ```text
//! {"id":1,"argv":["/usr/bin/busybox","sh","-c","echo hi"],"timeout_secs":30,"stdin":""}
//! {"id":1,"status":0,"signal":null,"timed_out":false,"stdout":"hi\n","stderr":""}
//! {"id":2,"op":"read_file","path":"/run/hearth/agents.json"}
//! {"id":2,"contents":"..."}
//! {"id":3,"op":"write_file","path":"/run/x","contents":"..."}
//! {"id":3,"written":3}
//! {"id":4,"op":"ps"}
//! {"id":4,"processes":[{"pid":1,"ppid":0,"state":"S","comm":"init"}]}
//! {"id":5,"op":"ping"}
//! {"id":5,"pong":true}
//! {"id":6,"error":"reading /nope: No such file or directory (os error 2)"}
//! ```
//!
//! Output and file contents are UTF-8 text; invalid bytes are replaced (U+FFFD).

use serde::{Deserialize, Serialize};

/// Timeout applied when a request gives none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// A request as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestBody {
    /// A built-in operation, tagged by `op`.
    Op(Op),
    /// Run a program.
    Exec(ExecRequest),
}

/// Built-in operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Read a file (as text).
    ReadFile { path: String },
    /// Create or replace a file.
    WriteFile { path: String, contents: String },
    /// List processes from `/proc`.
    Ps,
    /// Liveness check; the harness uses it to find out the agent is listening.
    Ping,
}

/// Run `argv` with a clean environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub stdin: String,
}

/// A response as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    #[serde(flatten)]
    pub body: ResponseBody,
}

/// The result of a request; which variant is told apart by its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponseBody {
    /// The request could not be carried out.
    Error {
        error: String,
    },
    Exec(ExecResult),
    File {
        contents: String,
    },
    Written {
        written: usize,
    },
    Processes {
        processes: Vec<ProcessInfo>,
    },
    Pong {
        pong: bool,
    },
}

/// How a program ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit code, `None` when killed by a signal.
    pub status: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The timeout expired and the process group was killed.
    #[serde(default)]
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One line of `ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// The state letter from `/proc/<pid>/stat` (`R`, `S`, `D`, `Z`, ...).
    pub state: String,
    pub comm: String,
}

/// Errors decoding a line.
#[derive(Debug, thiserror::Error)]
#[error("bad request line {line:?}")]
pub struct DecodeError {
    pub line: String,
    #[source]
    pub source: serde_json::Error,
}

/// Decode one request line (without or with its trailing newline).
pub fn decode_request(line: &str) -> Result<Request, DecodeError> {
    serde_json::from_str(line.trim_end()).map_err(|source| DecodeError {
        line: line.trim_end().to_string(),
        source,
    })
}

/// Decode one response line.
pub fn decode_response(line: &str) -> Result<Response, DecodeError> {
    serde_json::from_str(line.trim_end()).map_err(|source| DecodeError {
        line: line.trim_end().to_string(),
        source,
    })
}

/// Encode a message as one line, newline included.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    let mut line = serde_json::to_string(message).expect("protocol types serialise");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_requests() {
        let exec = decode_request(
            r#"{"id":1,"argv":["/usr/bin/busybox","sh","-c","true"],"timeout_secs":30,"stdin":""}"#,
        )
        .unwrap();
        assert_eq!(
            exec,
            Request {
                id: 1,
                body: RequestBody::Exec(ExecRequest {
                    argv: vec![
                        "/usr/bin/busybox".into(),
                        "sh".into(),
                        "-c".into(),
                        "true".into()
                    ],
                    timeout_secs: Some(30),
                    stdin: String::new(),
                }),
            }
        );
        let read = decode_request(r#"{"id":2,"op":"read_file","path":"/etc/hostname"}"#).unwrap();
        assert_eq!(
            read.body,
            RequestBody::Op(Op::ReadFile {
                path: "/etc/hostname".into()
            })
        );
        assert_eq!(
            decode_request(r#"{"op":"ps"}"#).unwrap().body,
            RequestBody::Op(Op::Ps)
        );
        let write =
            decode_request(r#"{"id":4,"op":"write_file","path":"/x","contents":"a"}"#).unwrap();
        assert_eq!(
            write.body,
            RequestBody::Op(Op::WriteFile {
                path: "/x".into(),
                contents: "a".into()
            })
        );
        // Minimal exec: no timeout, no stdin.
        let minimal = decode_request("{\"id\":5,\"argv\":[\"/bin/true\"]}\n").unwrap();
        assert!(matches!(
            minimal.body,
            RequestBody::Exec(ExecRequest {
                timeout_secs: None,
                ..
            })
        ));
    }

    #[test]
    fn rejects_garbage_and_unknown_ops() {
        assert!(decode_request("not json").is_err());
        assert!(decode_request(r#"{"id":1,"op":"format_disk"}"#).is_err());
        assert!(decode_request(r#"{"id":1}"#).is_err());
        let err = decode_request("{\"id\":1,\"argv\":7}\n").unwrap_err();
        assert_eq!(err.line, "{\"id\":1,\"argv\":7}");
    }

    #[test]
    fn responses_round_trip() {
        let responses = [
            ResponseBody::Exec(ExecResult {
                status: Some(0),
                signal: None,
                timed_out: false,
                stdout: "hi\n".into(),
                stderr: String::new(),
            }),
            ResponseBody::Exec(ExecResult {
                status: None,
                signal: Some(9),
                timed_out: true,
                stdout: String::new(),
                stderr: String::new(),
            }),
            ResponseBody::File {
                contents: "x".into(),
            },
            ResponseBody::Written { written: 3 },
            ResponseBody::Processes {
                processes: vec![ProcessInfo {
                    pid: 1,
                    ppid: 0,
                    state: "S".into(),
                    comm: "init".into(),
                }],
            },
            ResponseBody::Pong { pong: true },
            ResponseBody::Error {
                error: "nope".into(),
            },
        ];
        for (id, body) in responses.into_iter().enumerate() {
            let response = Response {
                id: id as u64,
                body,
            };
            let line = encode(&response);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(decode_response(&line).unwrap(), response);
        }
    }

    #[test]
    fn exec_response_has_the_documented_shape() {
        let line = encode(&Response {
            id: 1,
            body: ResponseBody::Exec(ExecResult {
                status: Some(0),
                signal: None,
                timed_out: false,
                stdout: "a".into(),
                stderr: "b".into(),
            }),
        });
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id":1,"status":0,"signal":null,"timed_out":false,"stdout":"a","stderr":"b"})
        );
    }
}
