//! Progress display for long steps (downloads, extraction): a bar on a terminal, one
//! log line per step otherwise (CI logs stay readable and greppable).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::debian::Progress;

/// Pick the display for stderr.
pub fn for_stderr() -> Box<dyn Progress + Sync> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::default())
    }
}

/// indicatif bars, one per step.
#[derive(Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::new(total);
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(what.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(n);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Plain `hearth: <step> ... done (N bytes, T s)` lines.
#[derive(Default)]
pub struct Lines {
    current: Mutex<Option<(String, u64, Instant)>>,
}

impl Progress for Lines {
    fn start(&self, what: &str, _total: Option<u64>) {
        if let Ok(mut slot) = self.current.lock() {
            *slot = Some((what.to_string(), 0, Instant::now()));
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(mut slot) = self.current.lock() {
            if let Some((_, done, _)) = slot.as_mut() {
                *done += n;
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.current.lock() {
            if let Some((what, done, started)) = slot.take() {
                eprintln!(
                    "hearth: {what}: done ({done} units, {:.1}s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
}
