//! Progress reporting hook.
//!
//! The fetcher does not draw anything itself: the CLI decides between a TTY bar and
//! plain log lines. Work is reported as a sequence of steps (`start` .. `advance`* ..
//! `finish`); downloads count bytes, extraction counts archive bytes.

/// Receives progress of one step at a time (steps never overlap).
pub trait Progress {
    /// A new step begins; `total` is in the unit `advance` uses, when known.
    fn start(&self, what: &str, total: Option<u64>);
    /// `n` more units of the current step are done.
    fn advance(&self, n: u64);
    /// The current step is done.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
