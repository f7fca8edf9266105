//! Forwarding to the upstream servers: UDP first (a fresh socket, so a random source
//! port, and a random ID per query), TCP when the UDP answer is truncated, and
//! failover across the upstreams in order, starting at the last one that answered.
//!
//! An upstream that times out, fails, or answers SERVFAIL/REFUSED makes the next one
//! be asked; if every one fails, the last SERVFAIL/REFUSED answer (or an error) is
//! returned.
//!
//! The list can be replaced while queries are in flight ([`Forwarder::set_upstreams`],
//! for upstreams learned on the WAN): each query works on the list it started with.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// The EDNS payload size we offer upstream and to clients (the DNS flag day value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Why an upstream gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream DNS servers are configured")]
    NoUpstreams,
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {upstream}: no answer within {timeout:?}")]
    Timeout {
        upstream: SocketAddr,
        timeout: Duration,
    },
    #[error("upstream {upstream}: undecodable answer: {reason}")]
    Decode {
        upstream: SocketAddr,
        reason: String,
    },
}

/// The upstreams and which one to ask first.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    first: AtomicUsize,
    timeout: Duration,
}

fn io(upstream: SocketAddr) -> impl FnOnce(std::io::Error) -> ForwardError {
    move |source| ForwardError::Io { upstream, source }
}

impl Forwarder {
    /// Forward to `upstreams`, waiting `timeout` for each.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            upstreams: RwLock::new(Arc::new(upstreams)),
            first: AtomicUsize::new(0),
            timeout,
        }
    }

    /// The upstreams, in configured order.
    pub fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.upstreams.read().expect("upstreams lock").clone()
    }

    /// Replace the upstreams; the next query starts with the first of them.
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        *self.upstreams.write().expect("upstreams lock") = Arc::new(upstreams);
        self.first.store(0, Ordering::Relaxed);
    }

    /// Resolve `query` upstream.
    pub async fn resolve(&self, query: &Query) -> Result<Message, ForwardError> {
        let upstreams = self.upstreams();
        let n = upstreams.len();
        if n == 0 {
            return Err(ForwardError::NoUpstreams);
        }
        // `first` may index a longer list that was just replaced.
        let start = self.first.load(Ordering::Relaxed) % n;
        let mut failed_answer = None;
        let mut last_err = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let upstream = upstreams[idx];
            match self.ask(upstream, query).await {
                Ok(m)
                    if !matches!(
                        m.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    if idx != start {
                        log::info!("DNS upstream {upstream} answers; preferring it now");
                        self.first.store(idx, Ordering::Relaxed);
                    }
                    return Ok(m);
                }
                Ok(m) => {
                    log::debug!(
                        "upstream {upstream}: {} for {}",
                        m.metadata.response_code,
                        query.name
                    );
                    failed_answer = Some(m);
                }
                Err(e) => {
                    log::debug!("{e}");
                    last_err = Some(e);
                }
            }
        }
        match (failed_answer, last_err) {
            (Some(m), _) => Ok(m),
            (None, Some(e)) => Err(e),
            (None, None) => Err(ForwardError::NoUpstreams),
        }
    }

    async fn ask(&self, upstream: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
        let id = msg.metadata.id;
        let bytes = msg.to_vec().map_err(|e| ForwardError::Decode {
            upstream,
            reason: e.to_string(),
        })?;
        let answer = timeout(self.timeout, Self::udp(upstream, &bytes, id, query))
            .await
            .map_err(|_| ForwardError::Timeout {
                upstream,
                timeout: self.timeout,
            })??;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
        log::debug!(
            "upstream {upstream}: truncated answer for {}; retrying over TCP",
            query.name
        );
        timeout(self.timeout, Self::tcp(upstream, &bytes, id, query))
            .await
            .map_err(|_| ForwardError::Timeout {
                upstream,
                timeout: self.timeout,
            })?
    }

    fn matches(m: &Message, id: u16, query: &Query) -> bool {
        m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
            && m.queries.len() == 1
            && m.queries[0].name == query.name
            && m.queries[0].query_type == query.query_type
            && m.queries[0].query_class == query.query_class
    }

    async fn udp(
        upstream: SocketAddr,
        bytes: &[u8],
        id: u16,
        query: &Query,
    ) -> Result<Message, ForwardError> {
        let local: SocketAddr = match upstream {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local).await.map_err(io(upstream))?;
        sock.connect(upstream).await.map_err(io(upstream))?;
        sock.send(bytes).await.map_err(io(upstream))?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = sock.recv(&mut buf).await.map_err(io(upstream))?;
            // Anything else (late answers, spoofing attempts) is ignored.
            if let Ok(m) = Message::from_vec(&buf[..n]) {
                if Self::matches(&m, id, query) {
                    return Ok(m);
                }
            }
        }
    }

    async fn tcp(
        upstream: SocketAddr,
        bytes: &[u8],
        id: u16,
        query: &Query,
    ) -> Result<Message, ForwardError> {
        let mut s = TcpStream::connect(upstream).await.map_err(io(upstream))?;
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(bytes.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
        s.write_all(&out).await.map_err(io(upstream))?;
        let n = s.read_u16().await.map_err(io(upstream))?;
        let mut buf = vec![0u8; usize::from(n)];
        s.read_exact(&mut buf).await.map_err(io(upstream))?;
        let m = Message::from_vec(&buf).map_err(|e| ForwardError::Decode {
            upstream,
            reason: e.to_string(),
        })?;
        if !Self::matches(&m, id, query) {
            return Err(ForwardError::Decode {
                upstream,
                reason: "the answer is for another question".into(),
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_can_be_replaced() {
        let f = Forwarder::new(vec!["10.0.0.1:53".parse().unwrap()], Duration::from_secs(1));
        let before = f.upstreams();
        f.set_upstreams(vec!["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(*before, vec!["10.0.0.1:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(
            *f.upstreams(),
            vec!["192.0.2.53:53".parse::<SocketAddr>().unwrap()]
        );
        f.set_upstreams(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let q = Query::query(
            "x.example.".parse().unwrap(),
            hickory_proto::rr::RecordType::A,
        );
        assert!(matches!(
            rt.block_on(f.resolve(&q)),
            Err(ForwardError::NoUpstreams)
        ));
    }
}
