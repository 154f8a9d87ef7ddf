//! Progress reporting: the one interface through which long work (training, generation, a
//! pipeline's stages) says how far it is. Libraries report to a `&dyn Progress` and never draw
//! anything themselves; what shows it (a terminal bar with the time left, log lines, nothing) is
//! the caller's choice: the binary's is an indicatif bar. Reporting never changes what the work
//! computes. Every method has a default that does nothing, so an implementation overrides only
//! what it shows. [`Latencies`] times items one at a time and says, in one line at the end, how
//! many per second and how long one took (p50 / p95 / max).

use std::sync::Arc;
use std::time::Duration;

/// Receives a piece of work's progress. Callable from the threads the work runs on (folds and
/// committee members train in parallel), hence `Sync` and `&self`. Messages never carry
/// document text.
pub trait Progress: Sync {
    /// A stage of `total` units (steps, epochs, documents) begins; it ends any unfinished one.
    fn start(&self, _stage: &str, _total: u64) {}

    /// `n` more units of the current stage are done.
    fn inc(&self, _n: u64) {}

    /// `n` units found done by an earlier run (a resumed stage's finished parts): they advance the
    /// count but took no time now, so an estimate of the time left leaves them out of its pace.
    fn skip(&self, n: u64) {
        self.inc(n)
    }

    /// The current state beside the bar (loss, learning rate, speed), replaced by the next one.
    fn message(&self, _msg: &str) {}

    /// A line of its own that stays (an epoch's dev scores, what was picked on dev).
    fn println(&self, _line: &str) {}

    /// The current stage is over.
    fn finish(&self) {}

    /// Whether the work should stop at its next resumable point, writing its checkpoint first
    /// (as if killed there, but cleanly). Resumable training loops ask after every step.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// Prints the lines that stay ([`Progress::println`]) on stderr, and nothing else: for tools
/// without a bar (benchmarks, logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

impl Progress for Lines {
    fn println(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// A progress reporter kept in options structs (cloneable, `Debug`, silent by default).
#[derive(Clone)]
pub struct Handle(pub Arc<dyn Progress + Send>);

impl Handle {
    pub fn new(p: impl Progress + Send + 'static) -> Self {
        Handle(Arc::new(p))
    }
}

impl Default for Handle {
    fn default() -> Self {
        Handle::new(Silent)
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("progress::Handle")
    }
}

impl std::ops::Deref for Handle {
    type Target = dyn Progress + Send;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// Per-item wall times (documents through a model, one at a time) and the one summary line a run
/// prints at its end. Holds durations only, never what was timed, so the line carries no text.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    ms: Vec<f64>,
}

/// What [`Latencies::summary`] reports, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies { ms: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, took: Duration) {
        self.ms.push(took.as_secs_f64() * 1e3);
    }

    /// Adds `took` to item `i`'s time (work done for it in a later pass, e.g. its rewrite after
    /// its prediction), pushing zeros up to `i` if needed.
    pub fn add(&mut self, i: usize, took: Duration) {
        if self.ms.len() <= i {
            self.ms.resize(i + 1, 0.0);
        }
        self.ms[i] += took.as_secs_f64() * 1e3;
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    /// Count, p50, p95 and max; `None` without items.
    pub fn summary(&self) -> Option<LatencySummary> {
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        Some(LatencySummary {
            count: sorted.len(),
            p50_ms: percentile(&sorted, 0.5)?,
            p95_ms: percentile(&sorted, 0.95)?,
            max_ms: *sorted.last()?,
        })
    }

    /// `N documents in W s wall (R documents/s); per document (WHAT): p50 …, p95 …, max … ms`,
    /// with `wall` the whole run's time, so the rate is what a user plans with.
    pub fn line(&self, unit: &str, what: &str, wall: Duration) -> String {
        let secs = wall.as_secs_f64();
        let head = format!("{} {unit} in {secs:.1} s wall ({:.2} {unit}/s)", self.len(), self.len() as f64 / secs.max(1e-9));
        match self.summary() {
            Some(s) => format!("{head}; per {} ({what}): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms", unit.trim_end_matches('s'), s.p50_ms, s.p95_ms, s.max_ms),
            None => head,
        }
    }
}

/// The `p` quantile (0 ≤ p ≤ 1) of ascending `sorted` values: the value at index
/// round((n − 1)·p), a value that occurred (no interpolation); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * p.clamp(0.0, 1.0)).round() as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_values_that_occurred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0)); // index round(49.5) = 50
        assert_eq!(percentile(&v, 0.95), Some(95.0)); // index round(94.05) = 94
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_sorts_and_line_names_counts_and_times_only() {
        let mut l = Latencies::with_capacity(4);
        for ms in [30, 10, 40, 20] {
            l.push(Duration::from_millis(ms));
        }
        l.add(1, Duration::from_millis(5)); // 10 → 15
        let s = l.summary().unwrap();
        assert_eq!((s.count, s.max_ms), (4, 40.0));
        assert!((s.p50_ms - 30.0).abs() < 1e-9, "{s:?}"); // sorted 15 20 30 40, index round(1.5) = 2
        let line = l.line("documents", "prediction", Duration::from_secs(2));
        assert_eq!(line, "4 documents in 2.0 s wall (2.00 documents/s); per document (prediction): p50 30.0 ms, p95 40.0 ms, max 40.0 ms");
        assert!(Latencies::default().summary().is_none());
        assert_eq!(Latencies::default().line("documents", "x", Duration::from_secs(1)), "0 documents in 1.0 s wall (0.00 documents/s)");
    }
}
