//! The serving loop: read a request line, carry it out, write the response line.
//!
//! Requests are handled one at a time, in order. The host may disconnect and
//! reconnect at any time (every test connects afresh); the guest sees that as EOF on
//! the port, and the server reopens it and carries on. While no host is connected the
//! port reads as EOF immediately, hence the short pause before reopening.

use hearth_agent::error_chain;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{self, Op, Request, RequestBody, Response, ResponseBody};
use crate::{exec, procfs, Error};

/// Pause between reopen attempts while the host is away.
const REOPEN_PAUSE: Duration = Duration::from_millis(50);

/// Serves the control port.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    port: Option<File>,
}

impl Server {
    pub fn new(path: PathBuf) -> Self {
        Server { path, port: None }
    }

    /// Open the port now, so a failure shows before readiness is reported.
    pub fn open(&mut self) -> Result<(), Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|source| Error::OpenPort {
                path: self.path.clone(),
                source,
            })?;
        self.port = Some(file);
        Ok(())
    }

    /// Serve forever, reopening the port after every disconnect.
    pub fn run(mut self) -> ! {
        let mut warned = false;
        loop {
            let port = match self.port.take() {
                Some(port) => port,
                None => match self.open() {
                    Ok(()) => self.port.take().expect("just opened"),
                    Err(e) => {
                        // Rate-limit: one warning per run of failures.
                        if !warned {
                            log::warn!("{e}");
                            warned = true;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            warned = false;
            let reader = match port.try_clone() {
                Ok(reader) => BufReader::new(reader),
                Err(e) => {
                    log::warn!("duplicating the port fd: {e}");
                    std::thread::sleep(REOPEN_PAUSE);
                    continue;
                }
            };
            if let Err(e) = serve(reader, port) {
                log::debug!("control connection ended: {e}");
            }
            std::thread::sleep(REOPEN_PAUSE);
        }
    }
}

/// Serve one connection until EOF (`Ok`) or an I/O error.
pub fn serve(mut reader: impl BufRead, mut writer: impl Write) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = match protocol::decode_request(&line) {
            Ok(request) => handle(&request, Path::new("/proc")),
            Err(e) => Response {
                id: 0,
                body: ResponseBody::Error {
                    error: error_chain(&e),
                },
            },
        };
        writer.write_all(protocol::encode(&response).as_bytes())?;
        writer.flush()?;
    }
}

/// Carry out one request.
pub fn handle(request: &Request, proc_root: &Path) -> Response {
    log::debug!("request {}: {:?}", request.id, request.body);
    let body = match &request.body {
        RequestBody::Exec(exec) => exec::run(exec).map(ResponseBody::Exec),
        RequestBody::Op(Op::Ping) => Ok(ResponseBody::Pong { pong: true }),
        RequestBody::Op(Op::Ps) => {
            procfs::list(proc_root).map(|processes| ResponseBody::Processes { processes })
        }
        RequestBody::Op(Op::ReadFile { path }) => std::fs::read(path)
            .map(|bytes| ResponseBody::File {
                contents: String::from_utf8_lossy(&bytes).into_owned(),
            })
            .map_err(|source| Error::Read {
                path: path.into(),
                source,
            }),
        RequestBody::Op(Op::WriteFile { path, contents }) => std::fs::write(path, contents)
            .map(|()| ResponseBody::Written {
                written: contents.len(),
            })
            .map_err(|source| Error::Write {
                path: path.into(),
                source,
            }),
    };
    let body = body.unwrap_or_else(|e| {
        // The error goes back to the host; a failed request is not the agent's problem,
        // and the host may poll (e.g. for a file to appear), so keep it off the console.
        log::debug!("request {}: {}", request.id, error_chain(&e));
        ResponseBody::Error {
            error: error_chain(&e),
        }
    });
    Response {
        id: request.id,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode_response;

    fn exchange(input: &str) -> Vec<Response> {
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| decode_response(l).unwrap())
            .collect()
    }

    #[test]
    fn answers_each_request_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let file = file.to_str().unwrap();
        let input = format!(
            concat!(
                "{{\"id\":1,\"op\":\"ping\"}}\n",
                "\n",
                "{{\"id\":2,\"op\":\"write_file\",\"path\":\"{f}\",\"contents\":\"abc\"}}\n",
                "{{\"id\":3,\"op\":\"read_file\",\"path\":\"{f}\"}}\n",
                "{{\"id\":4,\"argv\":[\"/bin/sh\",\"-c\",\"cat; exit 2\"],\"stdin\":\"in\"}}\n",
                "{{\"id\":5,\"op\":\"read_file\",\"path\":\"/nonexistent\"}}\n",
                "garbage\n",
                "{{\"id\":6,\"op\":\"ps\"}}\n",
            ),
            f = file
        );
        let responses = exchange(&input);
        let ids: Vec<u64> = responses.iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 0, 6]);
        assert_eq!(responses[0].body, ResponseBody::Pong { pong: true });
        assert_eq!(responses[1].body, ResponseBody::Written { written: 3 });
        assert_eq!(
            responses[2].body,
            ResponseBody::File {
                contents: "abc".into()
            }
        );
        match &responses[3].body {
            ResponseBody::Exec(result) => {
                assert_eq!(result.status, Some(2));
                assert_eq!(result.stdout, "in");
            }
            other => panic!("not an exec result: {other:?}"),
        }
        match &responses[4].body {
            ResponseBody::Error { error } => {
                assert!(error.starts_with("reading /nonexistent: "), "{error}")
            }
            other => panic!("not an error: {other:?}"),
        }
        assert!(
            matches!(&responses[5].body, ResponseBody::Error { error } if error.contains("garbage"))
        );
        match &responses[6].body {
            ResponseBody::Processes { processes } => {
                assert!(processes.iter().any(|p| p.pid == std::process::id()))
            }
            other => panic!("not a process list: {other:?}"),
        }
    }

    #[test]
    fn eof_ends_the_connection_cleanly() {
        assert!(exchange("").is_empty());
        // A partial last line is still answered.
        assert_eq!(exchange("{\"id\":9,\"op\":\"ping\"}").len(), 1);
    }
}
