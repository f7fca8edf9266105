//! The two clocks init reports: `CLOCK_BOOTTIME` for the boot markers ("ready in
//! X.XXs" counts from kernel start, suspend included) and `CLOCK_MONOTONIC` for the
//! agent log stamps.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

fn read(clock: ClockId) -> Duration {
    // These clocks cannot fail on Linux; a zero reading is a harmless fallback.
    clock_gettime(clock).map(Duration::from).unwrap_or_default()
}

/// Time since the kernel started.
pub fn boottime() -> Duration {
    read(ClockId::CLOCK_BOOTTIME)
}

/// Monotonic time, as used in `/var/log/hearth/<agent>.log`.
pub fn monotonic() -> Duration {
    read(ClockId::CLOCK_MONOTONIC)
}

/// `12.345` (seconds.millis), the log stamp format.
pub fn stamp(t: Duration) -> String {
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}
