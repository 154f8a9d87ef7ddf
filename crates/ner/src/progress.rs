//! Training progress reporting: events, a silent sink, closures, and an indicatif bar.

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Metric;
use crate::train::{BoundaryOutcome, EpochRecord, TrainSummary};

/// What the training loop reports. Never carries document text.
#[derive(Debug)]
pub enum Event<'a> {
    /// Stacking: the guide perceptron and its jackknife folds are being trained (before `Start`).
    /// With `seed_candidates` > 1, the kept guide is the best on dev of that many seeds.
    /// `planned_epochs`: the single-perceptron epochs this takes, ticked by [`Progress::guide_ticker`].
    Guide { folds: usize, seed_candidates: usize, planned_epochs: u64 },
    /// ... and are done; each candidate guide's seed and dev token F1, with candidates.
    GuideDone { seconds: f64, seed_candidates: &'a [(u64, f64)] },
    Start { epochs: usize, steps_per_epoch: usize, num_params: usize, train_windows: usize, resumed_at: Option<(usize, usize)> },
    Step { epoch: usize, step: usize, steps_per_epoch: usize, loss: f64, lr: f64, tokens_per_sec: f64 },
    Checkpoint { epoch: usize, step: usize },
    EpochEnd { record: &'a EpochRecord, improved: bool },
    /// The span-boundary model is trained (`TrainConfig::boundaries`); `metric` decided whether it is kept.
    Boundaries { outcome: &'a BoundaryOutcome, metric: Metric },
    Done { summary: &'a TrainSummary },
}

/// Receives events; returning `false` from a `Step` stops training after writing a resumable
/// checkpoint (as if the process were killed there, but cleanly).
pub trait Progress {
    fn event(&mut self, event: &Event) -> bool;

    /// After [`Event::Guide`]: a function called once per finished perceptron epoch while the
    /// guide trains (from the threads that train its folds in parallel). None: not reported.
    fn guide_ticker(&mut self) -> Option<Box<dyn Fn() + Send + Sync>> {
        None
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn event(&mut self, _: &Event) -> bool {
        true
    }
}

impl<F: FnMut(&Event) -> bool> Progress for F {
    fn event(&mut self, event: &Event) -> bool {
        self(event)
    }
}

/// A terminal progress bar over `len` perceptron epochs (`perceptron::planned_epochs`), for
/// the guide here and for `ner train-perceptron`.
pub fn perceptron_epochs_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} perceptron epochs, eta {eta}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar
}

/// A terminal progress bar: loss, learning rate and tokens/s; one line per epoch with dev scores.
/// When stderr is not a terminal (logs), the bar is hidden and a line is printed every
/// `log_every` steps instead.
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    /// The guide's training, in perceptron epochs (before `bar`).
    guide: Option<ProgressBar>,
    steps: usize,
}

impl Bar {
    fn line(&self, s: String) {
        match self.bar.as_ref().or(self.guide.as_ref()) {
            Some(b) if !b.is_hidden() => b.println(s),
            _ => eprintln!("{s}"),
        }
    }
}

const LOG_EVERY: usize = 50;

impl Bar {
    pub fn new() -> Self {
        Bar::default()
    }
}

impl Progress for Bar {
    fn guide_ticker(&mut self) -> Option<Box<dyn Fn() + Send + Sync>> {
        let bar = self.guide.clone()?;
        Some(Box::new(move || bar.inc(1)))
    }

    fn event(&mut self, event: &Event) -> bool {
        match event {
            Event::Start { epochs, steps_per_epoch, num_params, train_windows, resumed_at } => {
                let bar = ProgressBar::new((epochs * steps_per_epoch) as u64);
                bar.set_style(
                    ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}")
                        .unwrap()
                        .progress_chars("=> "),
                );
                if let Some((e, s)) = resumed_at {
                    bar.set_position((e * steps_per_epoch + s) as u64);
                }
                self.bar = Some(bar);
                if let Some((e, s)) = resumed_at {
                    self.line(format!("resuming at epoch {} step {s}", e + 1));
                }
                self.line(format!("{num_params} parameters, {train_windows} training windows, {steps_per_epoch} steps/epoch"));
            }
            Event::Step { epoch, step, steps_per_epoch, loss, lr, tokens_per_sec } => {
                let msg = format!("epoch {} loss {loss:.4} lr {lr:.2e} {tokens_per_sec:.0} tok/s", epoch + 1);
                self.steps += 1;
                if let Some(b) = &self.bar {
                    b.inc(1);
                    if b.is_hidden() && self.steps.is_multiple_of(LOG_EVERY) {
                        eprintln!("step {step}/{steps_per_epoch} {msg}");
                    }
                    b.set_message(msg);
                }
            }
            Event::Checkpoint { .. } => {}
            Event::Guide { folds, seed_candidates, planned_epochs } => {
                let seeds = if *seed_candidates > 1 { format!(" (on {seed_candidates} seeds, the best on dev kept)") } else { String::new() };
                self.line(format!("training the guide perceptron{seeds} and its {folds} jackknife folds"));
                self.guide = Some(perceptron_epochs_bar(*planned_epochs));
            }
            Event::GuideDone { seconds, seed_candidates } => {
                if let Some(b) = self.guide.take() {
                    b.finish_and_clear();
                }
                for (seed, f1) in seed_candidates.iter() {
                    self.line(format!("guide on seed {seed}: dev token F1 {f1:.4}"));
                }
                self.line(format!("guide tags ready ({seconds:.0} s)"))
            }
            Event::EpochEnd { record, improved } => {
                let dev = match record.dev {
                    Some(d) => {
                        // The decoding settings picked on dev with these scores, where tuned.
                        let mut picked = Vec::new();
                        if let Some(w) = d.guide_weight {
                            picked.push(format!("guide weight {w:.3}"));
                        }
                        if let Some(p) = d.o_penalty {
                            picked.push(format!("O penalty {p:.2}"));
                        }
                        let picked = if picked.is_empty() { String::new() } else { format!(" ({})", picked.join(", ")) };
                        format!("dev token F1 {:.4} strict F1 {:.4}{picked}", d.token_f1, d.strict_f1)
                    }
                    None => "no dev set".into(),
                };
                let line = format!(
                    "epoch {} loss {:.4} {dev}{} ({:.1} min)",
                    record.epoch + 1,
                    record.mean_loss,
                    if *improved { " *best*" } else { "" },
                    record.minutes
                );
                self.line(line);
            }
            Event::Boundaries { outcome, metric } => {
                let t = &outcome.training;
                let dev = match (outcome.dev_without, outcome.dev_with) {
                    (Some(a), Some(b)) => format!(
                        "; dev token F1 {:.4} → {:.4}, strict F1 {:.4} → {:.4}: {} (by {})",
                        a.token_f1,
                        b.token_f1,
                        a.strict_f1,
                        b.strict_f1,
                        if outcome.kept { "kept" } else { "not kept" },
                        metric.name()
                    ),
                    _ => "; no dev set: kept".into(),
                };
                self.line(format!("boundary model: learned from {} entities, {} of them misplaced{dev} ({:.0} s)", t.examples, t.misplaced, outcome.seconds))
            }
            Event::Done { .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
        }
        true
    }
}
