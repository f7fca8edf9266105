//! Query logging that outside input cannot turn into a log flood.
//!
//! `dns.log_queries = N` (0, the default, is off) logs one line per query — client,
//! name, type and how it was answered — at most `N` per second on average, with a
//! burst of `N` (a token bucket refilled continuously). Queries beyond that are
//! counted, not logged; the count is reported as one line, `query log: suppressed K
//! queries`, before the next line that gets through, or by [`QueryLog::flush`], which
//! the server calls once a second, so a flood that stops is still accounted for.
//!
//! The bucket sits behind a mutex: a few nanoseconds per query, and only when
//! logging is on (the resolver holds `None` otherwise).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use hickory_proto::op::{Query, ResponseCode};

/// Where the lines go: the `log` crate in the daemon, a vector in tests.
pub type Sink = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

/// A rate-limited query log.
pub struct QueryLog {
    per_sec: u32,
    bucket: Mutex<Bucket>,
    sink: Sink,
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLog")
            .field("per_sec", &self.per_sec)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl QueryLog {
    /// A log of at most `per_sec` lines a second into the `log` crate (info); `None`
    /// when `per_sec` is 0 (off).
    pub fn new(per_sec: u32) -> Option<Self> {
        Self::with_sink(per_sec, Instant::now(), Box::new(|l| log::info!("{l}")))
    }

    /// Like [`QueryLog::new`], writing to `sink`, with the bucket full at `now`.
    pub fn with_sink(per_sec: u32, now: Instant, sink: Sink) -> Option<Self> {
        (per_sec > 0).then(|| Self {
            per_sec,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(per_sec),
                last: now,
                suppressed: 0,
            }),
            sink,
        })
    }

    /// Lines a second at most.
    pub fn per_sec(&self) -> u32 {
        self.per_sec
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let secs = now.saturating_duration_since(b.last).as_secs_f64();
        let rate = f64::from(self.per_sec);
        b.tokens = (b.tokens + secs * rate).min(rate);
        b.last = now;
    }

    fn summary(&self, b: &mut Bucket) {
        if b.suppressed > 0 {
            (self.sink)(&format!("query log: suppressed {} queries", b.suppressed));
            b.suppressed = 0;
        }
    }

    /// Log that `client` asked `q` and got `outcome` (e.g. `cached NOERROR`), if the
    /// rate allows; otherwise count it.
    pub fn query(&self, client: IpAddr, q: &Query, outcome: &dyn std::fmt::Display) {
        self.query_at(Instant::now(), client, q, outcome);
    }

    /// [`QueryLog::query`] at time `now`.
    pub fn query_at(
        &self,
        now: Instant,
        client: IpAddr,
        q: &Query,
        outcome: &dyn std::fmt::Display,
    ) {
        let mut b = self.bucket.lock().expect("query log lock");
        self.refill(&mut b, now);
        if b.tokens < 1.0 {
            b.suppressed += 1;
            return;
        }
        b.tokens -= 1.0;
        self.summary(&mut b);
        (self.sink)(&format!(
            "query {client}: {} {} {}: {outcome}",
            q.name, q.query_class, q.query_type
        ));
    }

    /// Report queries suppressed so far (called once a second by the server).
    pub fn flush(&self) {
        let mut b = self.bucket.lock().expect("query log lock");
        self.summary(&mut b);
    }
}

/// The mnemonic dig prints for `rcode` (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_name(rcode: ResponseCode) -> String {
    let name = match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        other => return format!("RCODE{}", u16::from(other)),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn collecting(per_sec: u32, now: Instant) -> (QueryLog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let log = QueryLog::with_sink(
            per_sec,
            now,
            Box::new(move |s| l.lock().unwrap().push(s.to_owned())),
        )
        .unwrap();
        (log, lines)
    }

    #[test]
    fn off_by_default() {
        assert!(QueryLog::new(0).is_none());
    }

    #[test]
    fn rcodes_are_named_like_dig() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::BADCOOKIE), "RCODE23");
    }

    #[test]
    fn logs_up_to_the_rate_then_summarises() {
        let t0 = Instant::now();
        let (log, lines) = collecting(5, t0);
        let q = Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::A);
        let client: IpAddr = "10.0.0.7".parse().unwrap();
        // 100 queries within the same instant: the burst of 5 is logged.
        for _ in 0..100 {
            log.query_at(t0, client, &q, &"cached NOERROR");
        }
        assert_eq!(lines.lock().unwrap().len(), 5);
        assert_eq!(
            lines.lock().unwrap()[0],
            "query 10.0.0.7: example.com. IN A: cached NOERROR"
        );
        // Half a second later 2.5 tokens have come back: the summary, then two
        // lines, then counting again.
        let t1 = t0 + Duration::from_millis(500);
        for _ in 0..10 {
            log.query_at(t1, client, &q, &"forwarded NXDOMAIN");
        }
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 8, "{got:#?}");
        assert_eq!(got[5], "query log: suppressed 95 queries");
        assert!(got[6].ends_with("forwarded NXDOMAIN"));
        // The flood stops: the next flush reports the rest, and only once.
        log.flush();
        log.flush();
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 9);
        assert_eq!(got[8], "query log: suppressed 8 queries");
        // Tokens never exceed the burst, however long it was quiet.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..20 {
            log.query_at(t2, client, &q, &"local NOERROR");
        }
        assert_eq!(lines.lock().unwrap().len(), 9 + 5);
    }
}
