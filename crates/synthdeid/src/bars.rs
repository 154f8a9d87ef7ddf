//! How the commands show progress: an indicatif bar on stderr with the time left, or, when stderr
//! is not a terminal (a log file, a run under nohup), a line now and then that says where the
//! work is and how long it has left.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use progress::Progress;

/// Without a terminal: at most a line this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One bar at a time: a stage that starts ends the one before.
pub struct Bars {
    terminal: bool,
    state: Mutex<State>,
}

struct State {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Bars {
    pub fn new() -> Self {
        Bars { terminal: std::io::stderr().is_terminal(), state: Mutex::new(State { bar: None, last_line: Instant::now() }) }
    }

    /// A bar when `show`, else nothing at all.
    pub fn or_silent(show: bool) -> Box<dyn Progress + Send> {
        if show {
            Box::new(Bars::new())
        } else {
            Box::new(progress::Silent)
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64) {
        let mut s = self.state();
        if let Some(b) = s.bar.take() {
            b.finish_and_clear();
        }
        // Without a terminal the bar only counts (its rate gives the time left) and draws nothing.
        let target = if self.terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {prefix}, eta {eta} {msg}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        s.bar = Some(bar);
        s.last_line = Instant::now();
    }

    fn inc(&self, n: u64) {
        let mut s = self.state();
        let Some(bar) = s.bar.clone() else { return };
        bar.inc(n);
        if !self.terminal && s.last_line.elapsed() >= LOG_EVERY {
            let msg = bar.message();
            let msg = if msg.is_empty() { String::new() } else { format!(" ({msg})") };
            eprintln!(
                "   {}/{} {}, about {:.0} min left{msg}",
                bar.position(),
                bar.length().unwrap_or(0),
                bar.prefix(),
                bar.eta().as_secs_f64() / 60.0
            );
            s.last_line = Instant::now();
        }
    }

    fn message(&self, msg: &str) {
        if let Some(bar) = &self.state().bar {
            bar.set_message(msg.to_string());
        }
    }

    fn println(&self, line: &str) {
        match &self.state().bar {
            Some(bar) if self.terminal => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.state().bar.take() {
            bar.finish_and_clear();
        }
    }
}
