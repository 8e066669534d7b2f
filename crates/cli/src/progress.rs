//! A progress line on standard error for long runs (`perf`, `consume -e` of a large
//! topic, `groups reset-offsets`): drawn only when standard error is a terminal, so
//! pipes and logs get nothing of it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(200);

/// One progress line: `<label>: <done>[/<total>] (<rate>/s)`.
#[derive(Debug)]
pub(crate) struct Progress {
    label: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A line for `label`, shown only when standard error is a terminal.
    pub(crate) fn new(label: &'static str, total: Option<u64>) -> Self {
        Self::shown_if(std::io::stderr().is_terminal(), label, total)
    }

    /// Like [`new`](Self::new), shown only when `show` is also true (`consume` shows
    /// it only when its records do not go to the same terminal).
    pub(crate) fn shown_if(show: bool, label: &'static str, total: Option<u64>) -> Self {
        Progress {
            label,
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            enabled: show && std::io::stderr().is_terminal(),
        }
    }

    /// Counts `n` more units done; redraws when the last drawing is old enough.
    pub(crate) fn inc(&mut self, n: u64) {
        self.done += n;
        if !self.enabled || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", self.line());
        let _ = err.flush();
    }

    /// Clears the line.
    pub(crate) fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
        self.enabled = false;
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        match self.total {
            Some(total) => format!("{}: {}/{total} ({rate:.0}/s)", self.label, self.done),
            None => format!("{}: {} ({rate:.0}/s)", self.label, self.done),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_against_the_total() {
        let mut p = Progress::shown_if(false, "records", Some(10));
        p.inc(3);
        p.inc(4);
        assert!(p.line().starts_with("records: 7/10 ("), "{}", p.line());
        let mut p = Progress::shown_if(false, "records", None);
        p.inc(5);
        assert!(p.line().starts_with("records: 5 ("), "{}", p.line());
    }
}
