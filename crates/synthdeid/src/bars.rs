//! How the commands show progress: an indicatif bar on stderr with the time left, or, when stderr
//! is not a terminal (a log file, a run under nohup), a line now and then that says where the
//! work is and how long it has left.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
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
    pace: Arc<Mutex<Pace>>,
}

/// The time left from the mean rate since the stage's first count. indicatif's own estimate
/// follows the last seconds only: a dev evaluation between epochs made it say hours, and a
/// resumed stage's jump to its checkpoint made it say minutes.
#[derive(Default)]
struct Pace {
    /// When the first count arrived and where it left the bar (a resume's jump, or step one).
    base: Option<(Instant, u64)>,
    /// Units found done ([`Progress::skip`]) since `base`: a resumed generation reaches its
    /// finished prompt documents one by one, between ones it writes.
    skipped: u64,
}

impl Pace {
    fn seen(&mut self, pos: u64) {
        if self.base.is_none() {
            self.base = Some((Instant::now(), pos));
        }
    }

    /// Before the first counted unit, skipped ones join the base when it is set.
    fn skipped(&mut self, n: u64) {
        if self.base.is_some() {
            self.skipped += n;
        }
    }

    fn left(&self, pos: u64, len: u64) -> Option<Duration> {
        let (t0, p0) = self.base?;
        let done = pos.checked_sub(p0 + self.skipped).filter(|&d| d > 0)?;
        Some(t0.elapsed().mul_f64(len.saturating_sub(pos) as f64 / done as f64))
    }
}

fn minutes(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("about {:.0} min left", d.as_secs_f64() / 60.0),
        None => "time left not known yet".to_string(),
    }
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State { bar: None, last_line: Instant::now(), pace: Arc::default() }),
        }
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

    /// `n` more units, done now or (`skipped`) found done by an earlier run.
    fn count(&self, n: u64, skipped: bool) {
        let mut s = self.state();
        let Some(bar) = s.bar.clone() else { return };
        bar.inc(n);
        let mut pace = s.pace.lock().unwrap_or_else(|e| e.into_inner());
        if skipped {
            pace.skipped(n);
        } else {
            pace.seen(bar.position());
        }
        let left = pace.left(bar.position(), bar.length().unwrap_or(0));
        drop(pace);
        if !self.terminal && s.last_line.elapsed() >= LOG_EVERY {
            let msg = bar.message();
            let msg = if msg.is_empty() { String::new() } else { format!(" ({msg})") };
            eprintln!("   {}/{} {}, {}{msg}", bar.position(), bar.length().unwrap_or(0), bar.prefix(), minutes(left));
            s.last_line = Instant::now();
        }
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
        let pace = Arc::new(Mutex::new(Pace::default()));
        let shown = pace.clone();
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {prefix}, {left} {msg}")
                .expect("a valid progress template")
                .with_key("left", move |st: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let left = shown.lock().unwrap_or_else(|e| e.into_inner()).left(st.pos(), st.len().unwrap_or(0));
                    let _ = w.write_str(&minutes(left));
                })
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        s.bar = Some(bar);
        s.pace = pace;
        s.last_line = Instant::now();
    }

    fn inc(&self, n: u64) {
        self.count(n, false)
    }

    fn skip(&self, n: u64) {
        self.count(n, true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_the_mean_pace_since_the_first_count() {
        let mut p = Pace::default();
        assert_eq!(p.left(0, 10), None);
        // A resumed stage jumps to its checkpoint first: that jump took no time and is not pace.
        p.seen(6);
        assert_eq!(p.left(6, 10), None);
        p.base = Some((Instant::now() - Duration::from_secs(100), 6));
        // 2 counts in 100 s, 2 to go: 100 s, however the 100 s were spread (a long pause included).
        let left = p.left(8, 10).unwrap().as_secs_f64();
        assert!((99.0..102.0).contains(&left), "{left}");
        assert_eq!(p.left(10, 10).unwrap(), Duration::ZERO);
        assert_eq!(minutes(None), "time left not known yet");
        assert_eq!(minutes(Some(Duration::from_secs(170))), "about 3 min left");
    }

    #[test]
    fn units_found_done_are_not_pace() {
        // A resumed generation: 3 prompt documents found done, then 1 written, 1 found, 1 written.
        let mut p = Pace::default();
        p.skipped(3);
        assert_eq!(p.left(3, 10), None);
        p.seen(4);
        p.skipped(1);
        p.base = Some((Instant::now() - Duration::from_secs(100), 4));
        // Written since the base: 1 of the 2 counts (the other was found) in 100 s; 4 to go: 400 s.
        let left = p.left(6, 10).unwrap().as_secs_f64();
        assert!((399.0..405.0).contains(&left), "{left}");
    }
}
