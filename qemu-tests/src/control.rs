//! The host end of the `guestctld` control channel.
//!
//! QEMU listens on a unix socket for the `org.hearth.ctl` virtio-serial port. Bytes
//! sent before `guestctld` has opened its end wait in the socket buffer, so
//! [`ControlClient::connect`] repeats a `ping` until one is answered; replies to
//! earlier pings (and any other stale reply) are recognised by their `id` and
//! dropped. Request and response types come from the `guestctld` crate itself.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guestctld::protocol::{self, Op, Request, RequestBody, Response, ResponseBody};

use crate::Error;

/// A connected control channel.
#[derive(Debug)]
pub struct ControlClient {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl ControlClient {
    /// Connect to QEMU's socket and wait until `guestctld` answers a ping.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, Error> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Control {
                        message: format!("connecting to {}: {e}", socket.display()),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let writer = stream.try_clone().map_err(|e| Error::Control {
            message: format!("duplicating the socket: {e}"),
        })?;
        let mut client = ControlClient {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Control {
                    message: format!(
                        "guestctld did not answer on {} within {timeout:?}",
                        socket.display()
                    ),
                });
            }
            let wait = remaining.min(Duration::from_millis(500));
            match client.request_with_timeout(RequestBody::Op(Op::Ping), wait) {
                Ok(_) => return Ok(client),
                Err(Error::Control { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Send a request and wait up to `timeout` for its response.
    pub fn request(&mut self, body: RequestBody, timeout: Duration) -> Result<ResponseBody, Error> {
        let described = describe(&body);
        match self.request_with_timeout(body, timeout)? {
            ResponseBody::Error { error } => Err(Error::Guest {
                request: described,
                message: error,
            }),
            body => Ok(body),
        }
    }

    fn request_with_timeout(
        &mut self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<ResponseBody, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let line = protocol::encode(&Request { id, body });
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.io_error("sending", e))?;
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Control {
                    message: format!("no response to request {id} within {timeout:?}"),
                });
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(remaining))
                .map_err(|e| self.io_error("setting a timeout on", e))?;
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    return Err(Error::Control {
                        message: format!("{} closed by QEMU", self.socket.display()),
                    })
                }
                Ok(_) if buf.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    buf.clear();
                    let response: Response =
                        protocol::decode_response(&line).map_err(|e| Error::Control {
                            message: format!("{e}: {}", e.source),
                        })?;
                    if response.id == id {
                        return Ok(response.body);
                    }
                    // A reply to an earlier (timed-out) request: drop it.
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(self.io_error("reading", e)),
            }
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::Control {
            message: format!("{what} {}: {e}", self.socket.display()),
        }
    }
}

/// A short description of a request for error messages.
fn describe(body: &RequestBody) -> String {
    match body {
        RequestBody::Exec(exec) => format!("{:?}", exec.argv),
        RequestBody::Op(Op::ReadFile { path }) => format!("read_file {path}"),
        RequestBody::Op(Op::WriteFile { path, .. }) => format!("write_file {path}"),
        RequestBody::Op(Op::Ps) => "ps".to_string(),
        RequestBody::Op(Op::Ping) => "ping".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Runs the real `guestctld` serving loop on the far end of a unix socket, with
    /// a late start like a guest that is still booting.
    #[test]
    fn talks_to_the_real_serving_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(700));
            let reader = std::io::BufReader::new(stream.try_clone().unwrap());
            guestctld::server::serve(reader, stream).unwrap();
        });
        let mut client = ControlClient::connect(&path, Duration::from_secs(10)).unwrap();
        let body = client
            .request(
                RequestBody::Op(Op::ReadFile {
                    path: "/proc/self/comm".into(),
                }),
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(matches!(body, ResponseBody::File { .. }), "{body:?}");
        let err = client
            .request(
                RequestBody::Op(Op::ReadFile {
                    path: "/nonexistent".into(),
                }),
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(err.to_string().contains("read_file /nonexistent"), "{err}");
        drop(client);
        server.join().unwrap();
    }
}
