//! The training loop: seeded shuffling and dropout, AdamW with warmup and linear decay, gradient
//! clipping, dev evaluation every epoch keeping the best model, a time budget, and resumable
//! checkpoints.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use corpus::Document;
use nn::{AdamW, AdamWConfig, EncoderConfig, LinearSchedule, Mode};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Metric, TrainConfig};
use tagging::{TagScheme, TagSet};
use crate::model::{Model, TaggerSettings};
use progress::Progress;
use crate::subword::Subwords;

/// Dev scores of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DevScores {
    pub token_f1: f64,
    pub strict_f1: f64,
    /// A stacked model's guide weight that these scores were reached with (picked on dev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide_weight: Option<f32>,
    /// The `O` penalty these scores were reached with (picked on dev; `tune_o_penalty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o_penalty: Option<f32>,
}

impl DevScores {
    /// The score `metric` names.
    pub fn by(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Strict => self.strict_f1,
            Metric::Token => self.token_f1,
        }
    }
}

/// One finished (or budget-cut) epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub steps: usize,
    pub mean_loss: f64,
    pub dev: Option<DevScores>,
    /// Training minutes at the end of the epoch (counted across resumes).
    pub minutes: f64,
}

/// What a run did; also written to `training.json` next to the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub epochs_completed: usize,
    pub steps: u64,
    pub best_epoch: Option<usize>,
    pub best_dev: Option<DevScores>,
    pub history: Vec<EpochRecord>,
    pub minutes: f64,
    /// Real (non-padding) sub-word tokens per second of training steps.
    pub tokens_per_sec: f64,
    pub num_params: usize,
    pub train_windows: usize,
    /// Stopped by `max_minutes` before all epochs.
    pub budget_exhausted: bool,
    /// The learning-rate schedule was shortened to fit `max_minutes` at some point (fitted from the
    /// measured speed): the model then depends on the machine's speed and load, even where every
    /// epoch ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schedule_fitted_to_budget: bool,
    /// Stopped because the progress reporter asked to ([`Progress::stop_requested`]: a simulated kill); resumable.
    pub interrupted: bool,
    /// With `guide_seed_candidates` > 1: each candidate guide's seed and dev token F1 (the best
    /// is the kept guide).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guide_seed_candidates: Vec<(u64, f64)>,
    /// With `boundaries`: the span-boundary model's training and what it did on dev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<BoundaryOutcome>,
    /// Documents labelled by a first tagger and trained on besides the gold ones ([`self_train`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub silver_documents: usize,
    /// With [`self_train`]: the first tagger's run, whose tags the silver documents carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_tagger: Option<Box<TrainSummary>>,
    /// An ensemble's members' runs (`ensemble.members` > 1); `best_dev` is then the vote's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<TrainSummary>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The span-boundary model trained after the encoder (`TrainConfig::boundaries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundaryOutcome {
    pub training: tagging::BoundarySummary,
    /// The kept epoch's dev scores without and with it (none without dev).
    pub dev_without: Option<DevScores>,
    pub dev_with: Option<DevScores>,
    /// Whether it is in the model: dev `select_metric` did not fall with it (always, without dev).
    pub kept: bool,
    /// The whole step: learning it and the dev check (not in `TrainSummary::minutes`).
    #[serde(default)]
    pub seconds: f64,
}

/// Resumable position of a run, saved in `checkpoint/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    dropout_word_pos: u128,
    elapsed_secs: f64,
    step_secs: f64,
    tokens: u64,
    epoch_loss_sum: f64,
    best: Option<f64>,
    best_epoch: Option<usize>,
    best_dev: Option<DevScores>,
    history: Vec<EpochRecord>,
    /// Steps of the learning-rate schedule once fitted to the time budget ([`fit_schedule`]).
    #[serde(default)]
    schedule_total: Option<u64>,
    #[serde(default)]
    schedule_warmup: Option<u64>,
    /// See [`TrainSummary::schedule_fitted_to_budget`].
    #[serde(default)]
    schedule_shortened: bool,
    /// See [`TrainSummary::guide_seed_candidates`].
    #[serde(default)]
    guide_seed_candidates: Vec<(u64, f64)>,
    /// See [`TrainSummary::silver_documents`]: a resumed run must train on as many.
    #[serde(default)]
    silver_documents: usize,
}

/// Warmup steps: `warmup_ratio` of the schedule, but at least `warmup_min_steps` (at most half
/// the schedule). A post-LayerNorm encoder from scratch warmed up in a dozen steps falls into
/// predicting `O` everywhere and does not leave it (a 200-document synthetic corpus, 41 steps an
/// epoch: 12 warmup steps gave dev F1 0.06 after 3 epochs, 62 gave 0.60 after 2).
fn warmup_steps(cfg: &TrainConfig, total: u64) -> u64 {
    let by_ratio = (cfg.optimizer.warmup_ratio * total as f64).round() as u64;
    by_ratio.max(cfg.optimizer.warmup_min_steps.min(total / 2))
}

/// Steps after which the schedule is first fitted to the time budget (speed measured by then).
const FIT_AFTER_STEPS: u64 = 10;

/// Dev evaluation and checkpointing are assumed to add this fraction to an epoch's step time
/// until the first epoch has measured them.
const EVAL_ALLOWANCE: f64 = 0.15;

/// The schedule length (in steps) that a time budget affords: whole epochs, at least the one
/// under way (`done_steps` is inside it), at most the configured `total`. `secs_per_epoch` is
/// the measured (or estimated) cost of one epoch, evaluation included; `remaining_secs` is
/// what is left of the budget now, at `done_steps`.
pub fn fit_schedule(total: u64, steps_per_epoch: u64, done_steps: u64, secs_per_epoch: f64, remaining_secs: f64) -> u64 {
    let spe = steps_per_epoch.max(1);
    let epochs_done_or_started = done_steps.div_ceil(spe).max(1);
    // Time left for the rest of the current epoch, then whole epochs.
    let left_in_epoch = (epochs_done_or_started * spe - done_steps) as f64 / spe as f64 * secs_per_epoch;
    let more = ((remaining_secs - left_in_epoch) / secs_per_epoch.max(1e-9)).floor().max(0.0) as u64;
    ((epochs_done_or_started + more) * spe).min(total).max(spe.min(total))
}

#[derive(Serialize)]
struct TrainingJson<'a> {
    config: &'a TrainConfig,
    summary: &'a TrainSummary,
}

/// `out_dir/training.json`: the settings and what the run did; written last, so that its presence
/// marks a finished run ([`finished_run`]).
fn write_training_json(out_dir: &Path, cfg: &TrainConfig, summary: &TrainSummary) -> Result<()> {
    let json = serde_json::to_string_pretty(&TrainingJson { config: cfg, summary })?;
    fsutil::atomic_write(&out_dir.join("training.json"), json.as_bytes())?;
    Ok(())
}

/// Trains a tagger on `train`, picks the best epoch on `dev` (by `cfg.select_metric`; the last
/// epoch when `dev` is empty) and writes it to `out_dir` (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `labels.json`, `training.json`). `out_dir/checkpoint` holds the resumable
/// state; a run started again with the same settings continues from it.
pub fn train(
    cfg: &TrainConfig,
    train: &[Document],
    dev: &[Document],
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    train_with_silver(cfg, train, &[], dev, out_dir, progress)
}

/// Self-training on `unlabelled` (their own spans ignored): a first tagger trained with `cfg` on
/// `train` labels them, and the final tagger, written to `out_dir`, trains on `train` (with its
/// surrogate copies) and these. One round, as `perceptron::self_training_documents`. The first
/// tagger lives in `out_dir/self-training/first` until the final one is written, so a killed
/// run resumes without training it again.
pub fn self_train(
    cfg: &TrainConfig,
    train: &[Document],
    dev: &[Document],
    unlabelled: &[Document],
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    let bare = perceptron::unlabelled_documents(train, unlabelled)?;
    ensure!(!bare.is_empty(), "self-training was asked for, but the unlabelled corpus holds no document");
    let work = out_dir.join("self-training");
    let first_dir = work.join("first");
    let first_summary = match finished_run(cfg, &first_dir)? {
        Some(s) => {
            progress.println("self-training: the first tagger is already trained");
            s
        }
        None => {
            progress.println(&format!("self-training: a first tagger on the {} gold documents", train.len()));
            train_with_silver(cfg, train, &[], dev, &first_dir, progress)?
        }
    };
    if first_summary.interrupted {
        return Ok(first_summary);
    }
    let first = crate::tagger::load_tagger(&first_dir, None)?;
    let (silver, _) = crate::tagger::predict_each(first.as_ref(), &bare, crate::tagger::default_jobs(), progress)?;
    progress.finish();
    progress.println(&format!(
        "self-training: the first tagger labelled {} documents ({} spans); the final tagger trains on them too",
        silver.len(),
        silver.iter().map(|d| d.spans.len()).sum::<usize>()
    ));
    let mut summary = train_with_silver(cfg, train, &silver, dev, out_dir, progress)?;
    if !summary.interrupted {
        summary.first_tagger = Some(Box::new(first_summary));
        write_training_json(out_dir, cfg, &summary)?;
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    Ok(summary)
}

/// The summary of a finished run of `cfg` in `dir` (its `training.json`, written last), if any;
/// an error if the run there had other settings.
fn finished_run(cfg: &TrainConfig, dir: &Path) -> Result<Option<TrainSummary>> {
    #[derive(Deserialize)]
    struct Saved {
        config: TrainConfig,
        summary: TrainSummary,
    }
    let path = dir.join("training.json");
    let Ok(s) = std::fs::read_to_string(&path) else { return Ok(None) };
    let saved: Saved = serde_json::from_str(&s).with_context(|| format!("{}", path.display()))?;
    if !saved.config.same_run(cfg) {
        bail!("{} holds a model trained with other settings; use another --out or remove it", dir.display());
    }
    Ok(Some(saved.summary))
}

/// [`train`] on `train` (and its surrogate copies) plus `silver`: documents labelled by another
/// tagger, which get no copies and do not count in the corpus size that picks them. With more
/// than one `ensemble` member, each member trains in `out_dir/member-I` on seed `seed + I` (a
/// finished member is not trained again) and `best_dev` is the members' vote's.
pub fn train_with_silver(
    cfg: &TrainConfig,
    train: &[Document],
    silver: &[Document],
    dev: &[Document],
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    let members = cfg.ensemble.members_for(train.len());
    if members <= 1 {
        return train_one(cfg, train, silver, dev, out_dir, progress);
    }
    let mut runs = Vec::with_capacity(members);
    for i in 0..members {
        let mut member = cfg.clone();
        member.seed = cfg.seed.wrapping_add(i as u64);
        member.ensemble.members = Some(1);
        let dir = crate::ensemble::Ensemble::member_dir(out_dir, i);
        let s = match finished_run(&member, &dir)? {
            Some(s) => s,
            None => {
                progress.println(&format!("ensemble member {} of {members} (seed {})", i + 1, member.seed));
                train_one(&member, train, silver, dev, &dir, progress)?
            }
        };
        if s.interrupted {
            return Ok(s);
        }
        runs.push(s);
    }
    crate::ensemble::Ensemble::write_manifest(out_dir, members)?;
    let best_dev = if dev.is_empty() {
        None
    } else {
        let vote = crate::ensemble::Ensemble::load(out_dir, None, nn::Precision::F32)?;
        Some(scores(dev, &tagging::Tagger::predict(&vote, dev)?)?)
    };
    if let Some(d) = &best_dev {
        progress.println(&format!("ensemble of {members}: dev token F1 {:.4} strict F1 {:.4}", d.token_f1, d.strict_f1));
    }
    let summary = TrainSummary {
        epochs_completed: runs.iter().map(|r| r.epochs_completed).max().unwrap_or(0),
        steps: runs.iter().map(|r| r.steps).sum(),
        best_epoch: None,
        best_dev,
        history: Vec::new(),
        minutes: runs.iter().map(|r| r.minutes).sum(),
        tokens_per_sec: runs.iter().map(|r| r.tokens_per_sec).sum::<f64>() / members as f64,
        num_params: runs.iter().map(|r| r.num_params).sum(),
        train_windows: runs[0].train_windows,
        budget_exhausted: runs.iter().any(|r| r.budget_exhausted),
        schedule_fitted_to_budget: runs.iter().any(|r| r.schedule_fitted_to_budget),
        interrupted: false,
        guide_seed_candidates: Vec::new(),
        boundaries: None,
        silver_documents: silver.len(),
        first_tagger: None,
        members: runs,
    };
    write_training_json(out_dir, cfg, &summary)?;
    Ok(summary)
}

/// One model ([`train_with_silver`] without an ensemble).
fn train_one(
    cfg: &TrainConfig,
    train: &[Document],
    silver: &[Document],
    dev: &[Document],
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<TrainSummary> {
    cfg.augment.check("augment").map_err(anyhow::Error::msg)?;
    let copies = cfg.augment.copies_for(train.len());
    let epochs = cfg.optimizer.epochs_for(copies);
    let mut docs = training_documents(cfg, train)?;
    if !silver.is_empty() {
        docs.to_mut().extend_from_slice(silver);
    }
    let train = &*docs;
    ensure!(cfg.optimizer.batch_size > 0 && cfg.windows.size > 0 && cfg.optimizer.epochs > 0, "optimizer.batch_size, windows.size and optimizer.epochs must be positive");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ckpt = out_dir.join("checkpoint");
    let resuming = cfg.checkpoint.resume && nn::checkpoint::recover_dir(&ckpt)? && ckpt.join("state.json").exists();

    // Guide training (stacking) counts towards the time budget.
    let guide_started = Instant::now();
    // The guide's out-of-fold tags of `train`, when training the guide already gave them.
    let mut guide_inputs: Option<Vec<Document>> = None;
    let (mut model, mut state) = if resuming {
        let saved: TrainConfig = serde_json::from_str(&std::fs::read_to_string(ckpt.join("training.json"))?)
            .context("checkpoint/training.json")?;
        if !saved.same_run(cfg) {
            bail!("{} holds a checkpoint of a run with other settings; use another --out or disable resume", ckpt.display());
        }
        let model = Model::load(&ckpt)?;
        let state: State = serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json"))?)?;
        if state.silver_documents != silver.len() {
            bail!("{} holds a checkpoint of a run on {} self-training documents, not {}; use another --out or disable resume", ckpt.display(), state.silver_documents, silver.len());
        }
        (model, state)
    } else {
        let state = State {
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            dropout_word_pos: 0,
            elapsed_secs: 0.0,
            step_secs: 0.0,
            tokens: 0,
            epoch_loss_sum: 0.0,
            best: None,
            best_epoch: None,
            best_dev: None,
            history: Vec::new(),
            schedule_total: None,
            schedule_warmup: None,
            schedule_shortened: false,
            guide_seed_candidates: Vec::new(),
            silver_documents: silver.len(),
        };
        if cfg.guide.folds > 0 {
            start_guide(cfg, false, progress)?;
        }
        let (model, guide) = build_model(cfg, train, dev, progress)?;
        guide_inputs = guide.inputs;
        (model, State { guide_seed_candidates: guide.seed_candidates, ..state })
    };

    // The guide's tags for the training documents, each from a tagger that did not see it.
    let jackknifed = if model.settings.guide {
        let j = match guide_inputs {
            Some(j) => j,
            None => {
                // Resuming (the kept guide is in the checkpoint; its inputs are recomputed, seeded),
                // or plain jackknifed inputs after a fresh guide, whose training counted in this
                // stage already: the jackknife goes on counting in it.
                if resuming {
                    start_guide(cfg, true, progress)?;
                }
                if stacked_inputs(cfg)? {
                    train_guide_with_inputs(cfg, train, dev, progress)?.1.inputs.expect("a stacked guide's out-of-fold tags")
                } else {
                    jackknife_guide(cfg, train, progress)?
                }
            }
        };
        progress.finish();
        for (seed, f1) in &state.guide_seed_candidates {
            progress.println(&format!("guide on seed {seed}: dev token F1 {f1:.4}"));
        }
        progress.println(&format!("guide tags ready ({:.0} s)", guide_started.elapsed().as_secs_f64()));
        Some(j)
    } else {
        None
    };
    state.elapsed_secs += guide_started.elapsed().as_secs_f64();
    ensure!(
        !cfg.decoding.boundaries || jackknifed.is_some(),
        "boundaries learn from the guide's jackknifed tags: set guide.folds (e.g. 5) too, or drop decoding.boundaries"
    );
    let mut examples = model.encode_guided(train, jackknifed.as_deref(), cfg.windows.train_stride, true);
    examples.retain(|e| !e.first.is_empty());
    ensure!(!examples.is_empty(), "no training windows (empty training corpus?)");
    let steps_per_epoch = examples.len().div_ceil(cfg.optimizer.batch_size);
    let total = (steps_per_epoch * epochs) as u64;
    // With a time budget, the schedule is shortened to the whole epochs the budget affords, so the
    // learning rate has decayed when the budget stops training rather than being cut at its peak.
    let mut schedule = LinearSchedule {
        peak: cfg.peak_lr(),
        warmup: state.schedule_warmup.unwrap_or(warmup_steps(cfg, total)),
        total: state.schedule_total.unwrap_or(total),
    };
    let adam = AdamWConfig { lr: cfg.peak_lr(), weight_decay: cfg.optimizer.weight_decay, ..Default::default() };
    let vars = model.params.vars();
    let mut opt = AdamW::new(vars.clone(), adam, nn::optim::default_decay)?;
    let head_scale = cfg.head_lr() / cfg.peak_lr();
    opt.set_lr_scale(|name| if crate::model::TASK_PARAM_PREFIXES.iter().any(|p| name.starts_with(p)) { head_scale } else { 1.0 });
    if resuming {
        opt.load(&ckpt.join("optimizer.safetensors"))?;
        opt.step = state.global_step;
    }
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    dropout_rng.set_word_pos(state.dropout_word_pos);

    let mut summary = TrainSummary {
        epochs_completed: state.epoch,
        steps: state.global_step,
        best_epoch: state.best_epoch,
        best_dev: state.best_dev,
        history: state.history.clone(),
        minutes: state.elapsed_secs / 60.0,
        tokens_per_sec: 0.0,
        num_params: model.params.num_params(),
        train_windows: examples.len(),
        budget_exhausted: false,
        schedule_fitted_to_budget: false,
        interrupted: false,
        guide_seed_candidates: state.guide_seed_candidates.clone(),
        boundaries: None,
        silver_documents: silver.len(),
        first_tagger: None,
        members: Vec::new(),
    };
    progress.start("training", (epochs * steps_per_epoch) as u64);
    if resuming {
        progress.inc((state.epoch * steps_per_epoch + state.step_in_epoch) as u64);
        progress.println(&format!("resuming at epoch {} step {}", state.epoch + 1, state.step_in_epoch));
    }
    progress.println(&format!("{} parameters, {} training windows, {steps_per_epoch} steps/epoch", summary.num_params, examples.len()));
    if epochs != cfg.optimizer.epochs {
        progress.println(&format!("{epochs} epochs: with {copies} surrogate copies an epoch passes each document {} times", copies + 1));
    }

    let session = Instant::now();
    let base_elapsed = state.elapsed_secs;
    let mut last_ckpt = Instant::now();
    let budget_secs = cfg.optimizer.max_minutes.map(|m| m * 60.0);
    'epochs: while state.epoch < epochs {
        let epoch = state.epoch;
        let mut order: Vec<usize> = (0..examples.len()).collect();
        // Each epoch's order depends only on (seed, epoch), so a resumed epoch replays it.
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let mut stop = false;
        while state.step_in_epoch < steps_per_epoch {
            let s = state.step_in_epoch;
            let idx = &order[s * cfg.optimizer.batch_size..((s + 1) * cfg.optimizer.batch_size).min(order.len())];
            let exs: Vec<_> = idx.iter().map(|&i| &examples[i]).collect();
            let t0 = Instant::now();
            let batch = model.batch(&exs)?;
            let loss = model.loss(&batch, &mut Mode::Train(&mut dropout_rng))?;
            let grads = loss.backward()?;
            let (_, scale) = nn::clip_scale(&grads, &vars, cfg.optimizer.max_grad_norm)?;
            let lr = schedule.lr(state.global_step);
            opt.step(&grads, lr, scale)?;
            let loss_v = loss.to_scalar::<f32>()? as f64;
            ensure!(loss_v.is_finite(), "loss became {loss_v} at step {}", state.global_step);
            state.step_secs += t0.elapsed().as_secs_f64();
            state.tokens += batch.tokens as u64;
            state.epoch_loss_sum += loss_v;
            state.global_step += 1;
            state.step_in_epoch += 1;
            state.elapsed_secs = base_elapsed + session.elapsed().as_secs_f64();
            if let (Some(b), None) = (budget_secs, state.schedule_total) {
                if state.global_step >= FIT_AFTER_STEPS.min(total) {
                    let per_epoch = state.step_secs / state.global_step as f64 * steps_per_epoch as f64 * (1.0 + EVAL_ALLOWANCE);
                    let fitted = fit_schedule(total, steps_per_epoch as u64, state.global_step, per_epoch, b - state.elapsed_secs);
                    // Warmup keeps its length in steps (at most half the fitted schedule): shortening
                    // it with the schedule is what sent small runs into the all-`O` plateau.
                    schedule.total = fitted;
                    schedule.warmup = schedule.warmup.min(fitted / 2).max(state.global_step.min(schedule.warmup));
                    state.schedule_total = Some(fitted);
                    state.schedule_shortened |= fitted < total;
                    state.schedule_warmup = Some(schedule.warmup);
                }
            }
            let tps = state.tokens as f64 / state.step_secs.max(1e-9);
            progress.inc(1);
            progress.message(&format!("epoch {} loss {loss_v:.4} lr {lr:.2e} {tps:.0} tok/s", epoch + 1));
            let over_budget = budget_secs.is_some_and(|b| state.elapsed_secs >= b);
            if progress.stop_requested() {
                state.dropout_word_pos = dropout_rng.get_word_pos();
                save_checkpoint(&ckpt, &model, &opt, &state, cfg)?;
                summary.interrupted = true;
                break 'epochs;
            }
            if over_budget {
                summary.budget_exhausted = true;
                stop = true;
                break;
            }
            if last_ckpt.elapsed().as_secs_f64() >= cfg.checkpoint.minutes * 60.0 && state.step_in_epoch < steps_per_epoch {
                state.dropout_word_pos = dropout_rng.get_word_pos();
                save_checkpoint(&ckpt, &model, &opt, &state, cfg)?;
                last_ckpt = Instant::now();
            }
        }
        // End of epoch (or budget cut): evaluate, keep the best, checkpoint.
        let dev_scores = if dev.is_empty() { None } else { Some(evaluate_tuned(&mut model, dev, cfg.select_metric, cfg.decoding.tune_o_penalty)?) };
        let value = dev_scores.map(|d| d.by(cfg.select_metric));
        let improved = match (value, state.best) {
            (None, _) => true,
            (Some(v), Some(b)) => v > b,
            (Some(_), None) => true,
        };
        if improved {
            state.best = value;
            state.best_epoch = Some(epoch);
            state.best_dev = dev_scores;
            model.save(out_dir)?;
        }
        let record = EpochRecord {
            epoch,
            steps: state.step_in_epoch,
            mean_loss: state.epoch_loss_sum / state.step_in_epoch.max(1) as f64,
            dev: dev_scores,
            minutes: (base_elapsed + session.elapsed().as_secs_f64()) / 60.0,
        };
        progress.println(&epoch_line(&record, improved));
        let epoch_secs = record.minutes * 60.0 - state.history.last().map_or(base_elapsed.min(record.minutes * 60.0), |r| r.minutes * 60.0);
        state.history.push(record);
        if let Some(b) = budget_secs {
            // Refit with the measured cost of a whole epoch (evaluation included).
            let done = state.global_step;
            let refit = fit_schedule(total, steps_per_epoch as u64, done, epoch_secs.max(1e-3), b - state.elapsed_secs);
            schedule.total = refit.max(done);
            state.schedule_total = Some(schedule.total);
            state.schedule_shortened |= schedule.total < total;
            state.schedule_warmup = Some(schedule.warmup);
            if done >= schedule.total {
                stop = true; // the budget affords no further epoch
                summary.budget_exhausted = state.epoch + 1 < epochs;
            }
        }
        state.epoch += 1;
        state.step_in_epoch = 0;
        state.epoch_loss_sum = 0.0;
        state.elapsed_secs = base_elapsed + session.elapsed().as_secs_f64();
        state.dropout_word_pos = dropout_rng.get_word_pos();
        save_checkpoint(&ckpt, &model, &opt, &state, cfg)?;
        last_ckpt = Instant::now();
        if stop {
            break;
        }
    }

    summary.epochs_completed = state.epoch;
    summary.steps = state.global_step;
    summary.best_epoch = state.best_epoch;
    summary.best_dev = state.best_dev;
    summary.history = state.history.clone();
    summary.minutes = state.elapsed_secs / 60.0;
    summary.tokens_per_sec = state.tokens as f64 / state.step_secs.max(1e-9);
    summary.schedule_fitted_to_budget = state.schedule_shortened;
    if !summary.interrupted && cfg.decoding.boundaries {
        let jackknifed = jackknifed.as_deref().expect("checked before training");
        let outcome = train_boundaries(cfg, train, jackknifed, dev, out_dir)?;
        progress.println(&boundary_line(&outcome, cfg.select_metric));
        summary.boundaries = Some(outcome);
    }
    if !summary.interrupted {
        write_training_json(out_dir, cfg, &summary)?;
        progress.finish();
    }
    Ok(summary)
}

/// The documents a run with `cfg` trains on: `train` and, with `augment`, its surrogate copies
/// (seeded by the run's seed, in the language of the guide's word lists or of the text).
pub fn training_documents<'a>(cfg: &TrainConfig, train: &'a [Document]) -> Result<std::borrow::Cow<'a, [Document]>> {
    let copies = cfg.augment.copies_for(train.len());
    if copies == 0 {
        return Ok(std::borrow::Cow::Borrowed(train));
    }
    let a = &cfg.augment;
    Ok(std::borrow::Cow::Owned(augmented(train, copies, cfg.seed, cfg.guide.perceptron.language, &a.label_map()?, a.surrogates)?))
}

/// `train` and `copies` surrogate copies of each of its documents, in `language`'s surrogates
/// (detected from the text when `None`), with `labels` saying each label's surrogate kind and
/// `source` where names and places come from: what `ner train` and `ner train-perceptron` both
/// train on.
pub fn augmented(
    train: &[Document],
    copies: usize,
    seed: u64,
    language: Option<lang::Language>,
    labels: &deid::LabelMap,
    source: deid::SurrogateSource,
) -> Result<Vec<Document>> {
    let language = language.map_or_else(|| deid::augment::surrogate_language_of(train), deid::augment::surrogate_language);
    let added = deid::augment::surrogate_copies(train, copies, seed, language, labels, source)
        .context("augment: rewriting the training documents with surrogates")?;
    Ok(train.iter().cloned().chain(added).collect())
}

/// Adds a span-boundary model to a stacked model (`model_dir`, trained with `cfg` on `train`),
/// replacing any it has: the guide's jackknifed tags are recomputed as training made them
/// (seeded), and the model is kept in `model_dir` when dev `select_metric` does not fall with it.
pub fn add_boundaries(cfg: &TrainConfig, train: &[Document], dev: &[Document], model_dir: &Path) -> Result<BoundaryOutcome> {
    let train = &*training_documents(cfg, train)?;
    let jackknifed = if stacked_inputs(cfg)? {
        train_guide_with_inputs(cfg, train, dev, &progress::Silent)?.1.inputs.expect("a stacked guide's out-of-fold tags")
    } else {
        jackknife_guide(cfg, train, &progress::Silent)?
    };
    train_boundaries(cfg, train, &jackknifed, dev, model_dir)
}

/// The span-boundary model of a finished run: trained on the guide's jackknifed tags of `train`,
/// scored on `dev` with the kept model (in `out_dir`), and saved there when dev `select_metric`
/// does not fall with it.
fn train_boundaries(cfg: &TrainConfig, train: &[Document], jackknifed: &[Document], dev: &[Document], out_dir: &Path) -> Result<BoundaryOutcome> {
    let t0 = Instant::now();
    let bcfg = tagging::BoundaryConfig { seed: cfg.seed, ..Default::default() };
    let (boundaries, training) = tagging::train_boundaries(&bcfg, train, jackknifed)?;
    // The model is scored without any boundary model it holds; a new one replaces it (or none
    // does, when dev falls with the new one).
    crate::model::remove_if_present(&out_dir.join(tagging::BOUNDARY_FILE))?;
    let model = Model::load(out_dir)?;
    let (dev_without, dev_with) = if dev.is_empty() {
        (None, None)
    } else {
        let pred = model.predict(dev)?;
        let picked = |s: DevScores| DevScores { guide_weight: model.settings.guide.then_some(model.settings.guide_weight), o_penalty: cfg.decoding.tune_o_penalty.then_some(model.settings.o_penalty), ..s };
        (Some(picked(scores(dev, &pred)?)), Some(picked(scores(dev, &boundaries.apply_all(&pred))?)))
    };
    let kept = match (&dev_without, &dev_with) {
        (Some(a), Some(b)) => b.by(cfg.select_metric) >= a.by(cfg.select_metric),
        _ => true,
    };
    if kept {
        boundaries.save(out_dir)?;
    }
    Ok(BoundaryOutcome { training, dev_without, dev_with, kept, seconds: t0.elapsed().as_secs_f64() })
}

/// Predicts `dev` and scores it with the project's scorer (`eval`), so the model is picked by the
/// numbers that are reported.
pub fn evaluate(model: &Model, dev: &[Document]) -> Result<DevScores> {
    let pred = model.predict(dev)?;
    scores(dev, &pred)
}

fn scores(dev: &[Document], pred: &[Document]) -> Result<DevScores> {
    let r = eval::evaluate(dev, pred).map_err(|e| anyhow::anyhow!(e))?;
    Ok(DevScores { token_f1: r.token.micro.f1, strict_f1: r.entity_strict.micro.f1, guide_weight: None, o_penalty: None })
}

/// [`evaluate`] after picking the decoding settings on `dev` by `metric`
/// ([`Model::tune_decoding`]: a stacked model's guide weight, and with `tune_o_penalty` the `O`
/// penalty); they are set in `model`.
pub fn evaluate_tuned(model: &mut Model, dev: &[Document], metric: Metric, tune_o_penalty: bool) -> Result<DevScores> {
    if !(tune_o_penalty || model.settings.guide && model.guide.is_some()) {
        return evaluate(model, dev);
    }
    let seen = std::cell::RefCell::new(Vec::new());
    let tried = model.tune_decoding(dev, tune_o_penalty, |pred| {
        let s = scores(dev, pred)?;
        seen.borrow_mut().push(s);
        Ok(s.by(metric))
    })?;
    let (w, p) = (model.settings.guide_weight, model.settings.o_penalty);
    let i = tried.iter().position(|t| t.guide_weight == w && t.o_penalty == p).expect("the picked settings are among those tried");
    let guide_weight = (model.settings.guide && model.guide.is_some()).then_some(w);
    let o_penalty = tune_o_penalty.then_some(p);
    Ok(DevScores { guide_weight, o_penalty, ..seen.into_inner()[i] })
}

fn save_checkpoint(dir: &Path, model: &Model, opt: &AdamW, state: &State, cfg: &TrainConfig) -> Result<()> {
    nn::checkpoint::atomic_dir(dir, |tmp| {
        model.save(tmp)?;
        opt.save(&tmp.join("optimizer.safetensors"))?;
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        std::fs::write(tmp.join("training.json"), serde_json::to_string_pretty(cfg)?)?;
        Ok(())
    })
}

/// A plain (single, unstacked) guide perceptron's settings, on the first of the guide's feature
/// sets; the rest (language, tag scheme, O penalty, feature cut-off) as `guide.perceptron` says.
fn guide_config(cfg: &TrainConfig, epochs: usize) -> Result<perceptron::PerceptronConfig> {
    let Some(&first) = cfg.guide.perceptron.feature_sets.first() else {
        bail!("guide.perceptron.feature_sets is empty: give at least one feature set (e.g. [{}])", perceptron::FEATURE_SET);
    };
    Ok(perceptron::PerceptronConfig {
        epochs,
        seed: cfg.seed,
        feature_sets: vec![first],
        members: 1,
        stack_folds: 0,
        seed_candidates: 1,
        boundaries: false,
        ..cfg.guide.perceptron.clone()
    })
}

/// What training the kept guide gave besides the guide.
struct GuideTraining {
    /// Its own out-of-fold tags of `train`, with stacked guide inputs.
    inputs: Option<Vec<Document>>,
    /// See [`TrainSummary::guide_seed_candidates`].
    seed_candidates: Vec<(u64, f64)>,
}

/// The guide perceptron kept in the model: trained on all of `train`, its epoch (and seed, with
/// candidates) picked on `dev`.
fn train_guide(cfg: &TrainConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(perceptron::Perceptron, GuideTraining)> {
    let (p, summary) = perceptron::train(&kept_guide_config(cfg)?, train, dev, None, progress)?;
    Ok((p, GuideTraining { inputs: None, seed_candidates: summary.seed_candidates }))
}

/// The settings of the guide kept in the model: `guide.perceptron` as given, on this run's seed.
fn kept_guide_config(cfg: &TrainConfig) -> Result<perceptron::PerceptronConfig> {
    ensure!(cfg.guide.perceptron.epochs > 0, "guide.perceptron.epochs must be positive");
    guide_config(cfg, cfg.guide.perceptron.epochs)?; // the feature sets are checked there
    Ok(perceptron::PerceptronConfig { seed: cfg.seed, members: cfg.guide.perceptron.members.max(1), ..cfg.guide.perceptron.clone() })
}

/// Whether the encoder trains on the stacked guide's out-of-fold tags (see
/// `TrainConfig::guide::stacked_inputs`).
fn stacked_inputs(cfg: &TrainConfig) -> Result<bool> {
    ensure!(
        !cfg.guide.stacked_inputs || cfg.guide.perceptron.stack_folds > 0,
        "guide.stacked_inputs needs a stacked guide: set guide.perceptron.stack_folds (e.g. 5) too"
    );
    ensure!(
        !cfg.guide.stacked_inputs || cfg.guide.perceptron.feature_sets.len() <= 1,
        "guide.stacked_inputs takes one stacked guide's out-of-fold tags, not a committee's: give one guide feature set, or drop guide.stacked_inputs"
    );
    Ok(cfg.guide.stacked_inputs)
}

/// The kept stacked guide and its own out-of-fold tags of `train` over `cfg.guide.folds` folds.
fn train_guide_with_inputs(cfg: &TrainConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(perceptron::Perceptron, GuideTraining)> {
    ensure!(cfg.guide.folds >= 2, "guide.folds must be 0 (off) or at least 2");
    let (p, summary, oof) = perceptron::train_stacked_with_out_of_fold(&kept_guide_config(cfg)?, cfg.guide.folds, train, dev, progress)?;
    Ok((p, GuideTraining { inputs: Some(oof), seed_candidates: summary.seed_candidates }))
}

/// Predictions of `train` by `cfg.guide.folds` perceptrons, each trained on the other folds for
/// `cfg.guide.perceptron.epochs` epochs; in the order of `train`.
fn jackknife_guide(cfg: &TrainConfig, train: &[Document], progress: &dyn Progress) -> Result<Vec<Document>> {
    ensure!(cfg.guide.folds >= 2, "guide.folds must be 0 (off) or at least 2");
    perceptron::jackknife(
        &guide_config(cfg, cfg.guide.perceptron.epochs)?,
        cfg.guide.folds,
        train,
        &[],
        |p, d| p.predict(std::slice::from_ref(d)).pop().expect("one prediction per document"),
        progress,
    )
}

/// Says that the guide perceptron and its jackknife folds are being trained and starts their
/// progress stage, counted in perceptron epochs ([`guide_planned_epochs`]).
fn start_guide(cfg: &TrainConfig, resuming: bool, progress: &dyn Progress) -> Result<()> {
    let candidates = cfg.guide.perceptron.seed_candidates;
    let seeds = if candidates > 1 { format!(" (on {candidates} seeds, the best on dev kept)") } else { String::new() };
    progress.println(&format!("training the guide perceptron{seeds} and its {} jackknife folds", cfg.guide.folds));
    progress.start("guide perceptron epochs", guide_planned_epochs(cfg, resuming)?);
    Ok(())
}

/// An epoch's line: its loss, and its dev scores with the decoding settings picked with them.
fn epoch_line(record: &EpochRecord, improved: bool) -> String {
    let dev = match record.dev {
        Some(d) => {
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
    format!("epoch {} loss {:.4} {dev}{} ({:.1} min)", record.epoch + 1, record.mean_loss, if improved { " *best*" } else { "" }, record.minutes)
}

/// What the span-boundary model learned from and whether dev kept it.
fn boundary_line(outcome: &BoundaryOutcome, metric: Metric) -> String {
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
    format!("boundary model: learned from {} entities, {} of them misplaced{dev} ({:.0} s)", t.examples, t.misplaced, outcome.seconds)
}

/// Perceptron epochs of the guide's training (the kept guide, unless `resuming` with it in the
/// checkpoint, and the encoder's input tags): the length of its progress bar.
fn guide_planned_epochs(cfg: &TrainConfig, resuming: bool) -> Result<u64> {
    if stacked_inputs(cfg)? {
        return Ok(perceptron::planned_epochs_with_out_of_fold(&kept_guide_config(cfg)?, cfg.guide.folds));
    }
    let kept = if resuming { 0 } else { perceptron::planned_epochs(&kept_guide_config(cfg)?) };
    Ok(kept + cfg.guide.folds as u64 * perceptron::planned_epochs(&guide_config(cfg, cfg.guide.perceptron.epochs)?))
}

/// A fresh model: from scratch (vocabulary trained on `train`) or from an HF checkpoint, and what
/// training its guide gave besides it.
fn build_model(cfg: &TrainConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(Model, GuideTraining)> {
    let labels = TagSet::from_documents(train, TagScheme::Bio);
    ensure!(labels.len() > 1, "the training documents have no annotated spans");
    let (guide, trained) = if cfg.guide.folds == 0 {
        (None, GuideTraining { inputs: None, seed_candidates: Vec::new() })
    } else {
        let (g, t) = if stacked_inputs(cfg)? { train_guide_with_inputs(cfg, train, dev, progress)? } else { train_guide(cfg, train, dev, progress)? };
        (Some(g), t)
    };
    let settings = TaggerSettings {
        window: cfg.windows.size,
        stride: cfg.windows.predict_stride,
        max_subwords_per_word: cfg.windows.max_subwords_per_word,
        shape_buckets: cfg.encoder.shape_buckets,
        word_buckets: cfg.encoder.word_buckets,
        affix_buckets: cfg.encoder.affix_buckets,
        guide: guide.is_some(),
        ..TaggerSettings::default()
    };
    // A registry model name (`multilingual-e5-small`) is fetched on first use.
    match cfg.encoder.init.as_deref().map(models::resolve).transpose()? {
        None => {
            let d = cfg.dims();
            let words: Vec<String> = train
                .iter()
                .flat_map(|doc| {
                    let chars: Vec<char> = doc.text.chars().collect();
                    corpus::tokenize::tokenize_chars(&chars)
                        .into_iter()
                        .map(|t| chars[t.start..t.end].iter().collect::<String>())
                        .collect::<Vec<_>>()
                })
                .collect();
            let subwords = Subwords::train(words.iter().map(|s| s.as_str()), d.vocab_size)?;
            let mut c = EncoderConfig::bert(subwords.vocab_size(), d.hidden_size, d.num_layers, d.num_heads, d.intermediate_size);
            c.max_position_embeddings = cfg.encoder.max_position_embeddings;
            c.hidden_dropout_prob = cfg.encoder.dropout;
            c.attention_probs_dropout_prob = cfg.encoder.attention_dropout;
            c.pad_token_id = subwords.pad;
            let mut model = Model::new(c, settings, labels, subwords, cfg.seed, false)?;
            model.transitions = Some(model.labels.transition_log_probs(train));
            model.guide = guide;
            Ok((model, trained))
        }
        Some(dir) => {
            let mut c = EncoderConfig::from_file(&dir.join("config.json"))?;
            for k in ["id2label", "label2id", "architectures", "synthdeid"] {
                c.extra.remove(k);
            }
            c.hidden_dropout_prob = cfg.encoder.dropout;
            c.attention_probs_dropout_prob = cfg.encoder.attention_dropout;
            let subwords = Subwords::from_file(&dir.join("tokenizer.json"))?;
            let prefix = c.hf_prefix();
            let mut model = Model::new(c, settings, labels, subwords, cfg.seed, true)?;
            model.transitions = Some(model.labels.transition_log_probs(train));
            model.guide = guide;
            let weights = dir.join("model.safetensors");
            ensure!(weights.exists(), "{} not found (only safetensors checkpoints load)", weights.display());
            let report = model.params.load(&weights, |n| nn::hf_rename(n, prefix))?;
            let missing: Vec<_> = report
                .missing
                .iter()
                .filter(|n| !crate::model::TASK_PARAM_PREFIXES.iter().any(|p| n.starts_with(p)))
                .collect();
            ensure!(missing.is_empty(), "{}: encoder weights missing: {missing:?}", weights.display());
            Ok((model, trained))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fit_schedule, warmup_steps};
    use crate::TrainConfig;

    #[test]
    fn warmup_has_a_floor_in_steps() {
        let mut cfg = TrainConfig::default();
        cfg.optimizer.warmup_ratio = 0.1;
        cfg.optimizer.warmup_min_steps = 100;
        assert_eq!(warmup_steps(&cfg, 2000), 200); // the ratio wins
        assert_eq!(warmup_steps(&cfg, 600), 100); // the floor wins
        assert_eq!(warmup_steps(&cfg, 120), 60); // at most half the schedule
        let mut off = cfg.clone();
        off.optimizer.warmup_min_steps = 0;
        assert_eq!(warmup_steps(&off, 120), 12);
    }

    #[test]
    fn schedule_fits_whole_epochs_into_the_budget() {
        // 10 epochs of 100 steps configured; 60 s an epoch; 10 steps done (6 s of epoch 1 spent).
        // 300 s left: the rest of epoch 1 (54 s), then 4 whole epochs (240 s).
        assert_eq!(fit_schedule(1000, 100, 10, 60.0, 300.0), 500);
        // Plenty of time: the configured length.
        assert_eq!(fit_schedule(1000, 100, 10, 60.0, 1e6), 1000);
        // No time at all: still the epoch under way.
        assert_eq!(fit_schedule(1000, 100, 10, 60.0, 0.0), 100);
        // At an epoch boundary (after 3 epochs), 125 s left: 2 more epochs.
        assert_eq!(fit_schedule(1000, 100, 300, 60.0, 125.0), 500);
        // Fewer configured steps than one epoch.
        assert_eq!(fit_schedule(50, 100, 10, 60.0, 0.0), 50);
    }
}
