//! Progress reporting: the one interface through which long work (training, generation, a
//! pipeline's stages) says how far it is. Libraries report to a `&dyn Progress` and never draw
//! anything themselves; what shows it (a terminal bar with the time left, log lines, nothing) is
//! the caller's choice: the binary's is an indicatif bar. Reporting never changes what the work
//! computes. Every method has a default that does nothing, so an implementation overrides only
//! what it shows.

use std::sync::Arc;

/// Receives a piece of work's progress. Callable from the threads the work runs on (folds and
/// committee members train in parallel), hence `Sync` and `&self`. Messages never carry
/// document text.
pub trait Progress: Sync {
    /// A stage of `total` units (steps, epochs, documents) begins; it ends any unfinished one.
    fn start(&self, _stage: &str, _total: u64) {}

    /// `n` more units of the current stage are done.
    fn inc(&self, _n: u64) {}

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
