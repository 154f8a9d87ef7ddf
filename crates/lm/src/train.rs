//! Domain adaptation: causal-LM training over packed blocks, from scratch, full fine-tuning or
//! LoRA, with AdamW, warmup + linear decay, clipping, gradient accumulation, dev perplexity each
//! epoch, best-model keeping, a wall-time budget, and resume from atomic checkpoints.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use corpus::Document;
use nn::{AdamW, AdamWConfig, LinearSchedule, Mode, Params};
use progress::Progress;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::{blocks, encode_stream, epoch_order, Boundaries};
use crate::models::{Decoder, ModelConfig};
use crate::ngram::NgramModel;
use crate::tokenizer::{LmTokenizer, EOD_TOKEN};

/// Name of the training record written next to the model (config, boundaries, history).
pub const TRAIN_RECORD: &str = "lm_train.json";
const CHECKPOINT: &str = "checkpoint";

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// Mean training loss (nats per token) over the epoch's optimizer steps.
    pub train_loss: f64,
    pub dev_perplexity: f64,
    /// Whether the epoch ran to its end (false: stopped by the time budget).
    pub complete: bool,
}

/// What [`train`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainReport {
    pub epochs: Vec<EpochReport>,
    pub best_dev_perplexity: f64,
    pub steps: u64,
    /// Training tokens per second over this run (this process only).
    pub tokens_per_sec: f64,
    /// False when the time budget stopped training early (run again with a larger budget to resume).
    pub finished: bool,
    pub parameters: usize,
    pub trainable_parameters: usize,
}

/// Written next to the model: what it was trained with and how document boundaries look.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainRecord {
    pub config: TrainConfig,
    /// `None`: no start token (see [`Boundaries::start`]).
    pub start_token: Option<u32>,
    pub end_token: u32,
    pub report: TrainReport,
}

/// The resumable state (in `checkpoint/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The config with `max_minutes` cleared: a resumed run must match it.
    fingerprint: String,
    epoch: usize,
    micro: usize,
    step: u64,
    report: TrainReport,
    epoch_loss_sum: f64,
    epoch_loss_n: usize,
    /// Seconds this training has run, over every process that resumed it: `max_minutes` bounds
    /// the total, so a run killed and resumed trains as long as one left alone.
    #[serde(default)]
    elapsed_secs: f64,
}

fn fingerprint(cfg: &TrainConfig) -> String {
    let mut c = cfg.clone();
    c.max_minutes = None;
    serde_json::to_string(&c).unwrap_or_default()
}

/// Trains a generator on `train_docs`, selecting by perplexity on `dev_docs`, into `out`.
///
/// `out` then holds an HF-layout model (`config.json`, `model.safetensors`, `tokenizer.json`) or
/// LoRA adapters in PEFT layout (`adapter_config.json`, `adapter_model.safetensors`), or an n-gram
/// model, plus [`TRAIN_RECORD`]. A killed run resumes from `out/checkpoint` when called again
/// with the same config; `max_minutes` bounds its time over all resumes, and a run it stopped
/// resumes when called with a larger one. Optimizer steps and each epoch's dev
/// perplexity are reported to `progress`.
pub fn train(cfg: &TrainConfig, train_docs: &[Document], dev_docs: &[Document], out: &Path, progress: &dyn Progress) -> Result<TrainReport> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if cfg.generator == "ngram" {
        return train_ngram(cfg, train_docs, dev_docs, out);
    }
    let t_start = Instant::now();
    let dev = nn::device();
    let ckpt = out.join(CHECKPOINT);
    nn::checkpoint::recover_dir(&ckpt)?;
    let state: Option<State> = match std::fs::read_to_string(ckpt.join("state.json")) {
        Ok(s) => Some(serde_json::from_str(&s).context("checkpoint/state.json")?),
        Err(_) => None,
    };
    if state.is_none() {
        // A finished run of the same config: nothing to do (the pipeline reruns stages freely).
        if let Ok(s) = std::fs::read_to_string(out.join(TRAIN_RECORD)) {
            if let Ok(r) = serde_json::from_str::<TrainRecord>(&s) {
                if r.report.finished && fingerprint(&r.config) == fingerprint(cfg) {
                    return Ok(r.report);
                }
            }
        }
    }
    if let Some(s) = &state {
        if s.fingerprint != fingerprint(cfg) {
            bail!("{} holds a checkpoint of a run with another config; use another --out or delete it", out.display());
        }
        // Stopped by the same budget before, its best model saved: it stays stopped (a larger
        // budget resumes it).
        if cfg.max_minutes.is_some_and(|m| s.elapsed_secs >= m * 60.0) && out.join(TRAIN_RECORD).exists() {
            return Ok(s.report.clone());
        }
    }
    let base_elapsed = state.as_ref().map_or(0.0, |s| s.elapsed_secs);
    // A registry model name (`gemma-3-270m`) is fetched on first use.
    let init = cfg.init.as_deref().map(models::resolve).transpose()?;
    // Tokenizer and document boundaries.
    let tok_path = out.join("tokenizer.json");
    let tokenizer = match &init {
        Some(init) => crate::tokenizer::load_from_dir(init)?,
        None if state.is_some() && tok_path.exists() => LmTokenizer::load(&tok_path)?,
        None => LmTokenizer::train_bpe(train_docs.iter().map(|d| d.text.as_str()), cfg.vocab_size())?,
    };
    tokenizer.save(&tok_path)?;
    let (mut model, boundaries) = match &init {
        Some(init) => {
            let dropout = cfg.dims.dropout;
            let model = Decoder::load_with(init, &dev, |c| {
                if let Some(p) = dropout {
                    c.set_dropout(p)
                }
            })?;
            let b = boundaries_in(init, &model.config, &tokenizer)?;
            (model, b)
        }
        None => {
            let eod = tokenizer.token_id(EOD_TOKEN).context("trained tokenizer lacks the end-of-document token")?;
            let mc = cfg.model_config(tokenizer.vocab_size(), eod, eod)?;
            (Decoder::new(&mc, &dev, cfg.seed)?, Boundaries { start: Some(eod), end: eod })
        }
    };
    let lora = cfg.lora.rank > 0;
    if lora && init.is_none() {
        bail!("LoRA needs a base model (--init)");
    }
    let adapters: Option<Params> = if lora { Some(model.add_lora(&cfg.lora, cfg.seed)?) } else { None };
    let trainable: &Params = adapters.as_ref().unwrap_or(&model.params);
    let vars = trainable.vars();

    // Data.
    let train_stream = encode_stream(&tokenizer, train_docs, boundaries)?;
    let train_blocks = blocks(&train_stream, cfg.block_size, false, boundaries.lead());
    let dev_blocks = crate::data::spread(blocks(&encode_stream(&tokenizer, dev_docs, boundaries)?, cfg.block_size, true, boundaries.lead()), cfg.dev_max_tokens);
    if train_blocks.is_empty() {
        bail!("the training text ({} tokens) is shorter than one block of {}", train_stream.len(), cfg.block_size + 1);
    }
    let bs = cfg.batch_size.max(1);
    let accum = cfg.grad_accum.max(1);
    let micro_per_epoch = train_blocks.len().div_ceil(bs);
    let steps_per_epoch = micro_per_epoch.div_ceil(accum) as u64;
    let total_steps = steps_per_epoch * cfg.epochs as u64;
    let schedule = LinearSchedule { peak: cfg.lr, warmup: (cfg.warmup_ratio * total_steps as f64).round() as u64, total: total_steps };
    let mut opt = AdamW::new(
        vars.clone(),
        AdamWConfig { lr: cfg.lr, weight_decay: cfg.weight_decay, ..Default::default() },
        // Decay matrices only: not biases, norms (nanoGPT's rule; HF names of norms vary).
        |name| trainable.get(name).map(|v| v.rank() >= 2).unwrap_or(false),
    )?;

    let (mut epoch, mut micro, mut report, mut loss_sum, mut loss_n) = (0, 0, TrainReport::default(), 0.0, 0);
    if let Some(s) = state {
        trainable.load(&ckpt.join("model.safetensors"), |n| Some(n.to_string()))?;
        opt.load(&ckpt.join("optimizer.safetensors"))?;
        opt.step = s.step;
        (epoch, micro, report, loss_sum, loss_n) = (s.epoch, s.micro, s.report, s.epoch_loss_sum, s.epoch_loss_n);
        tracing::info!("resuming at epoch {epoch}, micro-batch {micro}, step {}", s.step);
    }
    if report.best_dev_perplexity == 0.0 {
        report.best_dev_perplexity = f64::MAX;
    }
    report.parameters = model.params.num_params() + adapters.as_ref().map(|a| a.num_params()).unwrap_or(0);
    report.trainable_parameters = trainable.num_params();
    let record = |report: &TrainReport| TrainRecord { config: cfg.clone(), start_token: boundaries.start, end_token: boundaries.end, report: report.clone() };
    let save_best = |model: &Decoder, report: &TrainReport| -> Result<()> {
        match &adapters {
            Some(a) => crate::lora::save_adapter(out, a, &cfg.lora, &model.config, init.as_ref().unwrap())?,
            None => model.save(out)?,
        }
        Ok(fsutil::atomic_write(&out.join(TRAIN_RECORD), serde_json::to_string_pretty(&record(report))?.as_bytes())?)
    };
    let save_ckpt = |opt: &AdamW, epoch: usize, micro: usize, report: &TrainReport, ls: f64, ln: usize| -> Result<()> {
        let elapsed_secs = base_elapsed + t_start.elapsed().as_secs_f64();
        let state = State { fingerprint: fingerprint(cfg), epoch, micro, step: opt.step, report: report.clone(), epoch_loss_sum: ls, epoch_loss_n: ln, elapsed_secs };
        nn::checkpoint::atomic_dir(&ckpt, |tmp| {
            trainable.save(&tmp.join("model.safetensors"))?;
            opt.save(&tmp.join("optimizer.safetensors"))?;
            std::fs::write(tmp.join("state.json"), serde_json::to_string(&state)?)?;
            Ok(())
        })
    };

    if cfg.epochs == 0 {
        // Not adapted (an ablation's baseline): the starting model itself is the output, LoRA
        // adapters at their zero update included.
        report.best_dev_perplexity = eval_perplexity(&model, &dev_blocks, bs, &dev)?;
        report.finished = true;
        save_best(&model, &report)?;
        return Ok(report);
    }
    let deadline = cfg.max_minutes.map(|m| t_start + std::time::Duration::from_secs_f64((m * 60.0 - base_elapsed).max(0.0)));
    let mut last_ckpt = Instant::now();
    let mut tokens_seen = 0usize;
    // Training time only (dev evaluation excluded), for the tokens/s report.
    let mut train_secs = 0.0;
    let mut t_loop = Instant::now();
    progress.start("training steps", total_steps);
    progress.inc(opt.step);
    let mut acc: Option<GradStore> = None;
    let mut acc_loss = 0.0;
    let mut stopped = false;
    while epoch < cfg.epochs {
        let order = epoch_order(train_blocks.len(), cfg.seed, epoch);
        while micro < micro_per_epoch {
            let rows: Vec<&Vec<u32>> = order[micro * bs..((micro + 1) * bs).min(order.len())].iter().map(|&i| &train_blocks[i]).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(crate::prompts::splitmix64(cfg.seed ^ ((epoch * micro_per_epoch + micro) as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)));
            let loss = batch_loss(&model, &rows, &dev, &mut Mode::Train(&mut rng))?;
            acc_loss += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? / accum as f64;
            let grads = trainable_grads((loss / accum as f64)?.backward()?, &vars);
            acc = Some(match acc.take() {
                None => grads,
                Some(a) => add_grads(a, grads, &vars)?,
            });
            tokens_seen += rows.len() * cfg.block_size;
            micro += 1;
            if micro % accum == 0 || micro == micro_per_epoch {
                let g = acc.take().unwrap();
                let (_, scale) = nn::clip_scale(&g, &vars, cfg.max_grad_norm)?;
                let lr = schedule.lr(opt.step);
                opt.step(&g, lr, scale)?;
                loss_sum += acc_loss;
                loss_n += 1;
                let tps = tokens_seen as f64 / (train_secs + t_loop.elapsed().as_secs_f64());
                progress.inc(1);
                progress.message(&format!("epoch {} loss {:.3} lr {:.2e} {:.0} tok/s", epoch + 1, acc_loss, lr, tps));
                acc_loss = 0.0;
                let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                if out_of_time {
                    stopped = true;
                    break;
                }
                if last_ckpt.elapsed().as_secs_f64() >= cfg.checkpoint_minutes * 60.0 {
                    report.steps = opt.step;
                    save_ckpt(&opt, epoch, micro, &report, loss_sum, loss_n)?;
                    last_ckpt = Instant::now();
                }
            }
        }
        // End of epoch (or of the time budget): dev perplexity, best model, checkpoint.
        train_secs += t_loop.elapsed().as_secs_f64();
        let ppl = eval_perplexity(&model, &dev_blocks, bs, &dev)?;
        let complete = !stopped;
        report.epochs.push(EpochReport { epoch: epoch + 1, train_loss: loss_sum / loss_n.max(1) as f64, dev_perplexity: ppl, complete });
        report.steps = opt.step;
        report.tokens_per_sec = tokens_seen as f64 / train_secs.max(1e-9);
        let line = format!("epoch {}{}: train loss {:.4}, dev perplexity {:.3}", epoch + 1, if complete { "" } else { " (partial)" }, loss_sum / loss_n.max(1) as f64, ppl);
        progress.println(&line);
        if ppl < report.best_dev_perplexity || !out.join("config.json").exists() && !out.join(crate::lora::ADAPTER_CONFIG).exists() {
            report.best_dev_perplexity = report.best_dev_perplexity.min(ppl);
            save_best(&model, &report)?;
        }
        if stopped {
            save_ckpt(&opt, epoch, micro, &report, loss_sum, loss_n)?;
            break;
        }
        epoch += 1;
        micro = 0;
        t_loop = Instant::now();
        (loss_sum, loss_n) = (0.0, 0);
        save_ckpt(&opt, epoch, micro, &report, loss_sum, loss_n)?;
        last_ckpt = Instant::now();
    }
    progress.finish();
    report.finished = !stopped;
    // Keep the record current (the best model's files are untouched).
    fsutil::atomic_write(&out.join(TRAIN_RECORD), serde_json::to_string_pretty(&record(&report))?.as_bytes())?;
    if report.finished {
        std::fs::remove_dir_all(&ckpt).ok();
    }
    let _ = &mut model;
    Ok(report)
}

/// The document framing of the model in `dir`: a model trained here records it in its
/// [`TRAIN_RECORD`]; any other uses its own (see [`boundaries_of`]).
pub fn boundaries_in(dir: &Path, config: &ModelConfig, tok: &LmTokenizer) -> Result<Boundaries> {
    match std::fs::read_to_string(dir.join(TRAIN_RECORD)) {
        Ok(s) => {
            let r: TrainRecord = serde_json::from_str(&s).with_context(|| format!("{}", dir.join(TRAIN_RECORD).display()))?;
            Ok(Boundaries { start: r.start_token, end: r.end_token })
        }
        Err(_) => boundaries_of(config, tok),
    }
}

/// Start/end tokens of a pretrained model: its `eos` id (else the tokenizer's usual names) ends
/// documents; its `bos` id starts them only if its own tokenizer puts BOS before a text, as
/// the model saw in training (Gemma, Llama: yes; Qwen2: no).
pub fn boundaries_of(config: &ModelConfig, tok: &LmTokenizer) -> Result<Boundaries> {
    let end = config
        .eos_ids()
        .first()
        .copied()
        .or_else(|| ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"].iter().find_map(|t| tok.token_id(t)))
        .context("the model has no end-of-sequence token")?;
    let start = config.bos_id().filter(|&bos| tok.adds_bos(bos));
    Ok(Boundaries { start, end })
}

/// Keeps only the gradients of `vars`, detached.
///
/// A leaf's gradient from `backward` still carries the op graph it was computed from (candle
/// detaches only the gradients it propagates further), so it references the whole forward pass.
/// An optimizer that folds it into its moments would chain every step's graph to the next one
/// and leak gigabytes per step; detaching here cuts that, and drops the intermediate gradients
/// at once instead of keeping them through gradient accumulation.
pub fn trainable_grads(mut grads: GradStore, vars: &[(String, Var)]) -> GradStore {
    let mut out = GradStore::default();
    for (_, v) in vars {
        if let Some(g) = grads.remove(v.as_tensor()) {
            out.insert(v.as_tensor(), g.detach());
        }
    }
    out
}

fn add_grads(mut a: GradStore, b: GradStore, vars: &[(String, Var)]) -> Result<GradStore> {
    for (_, v) in vars {
        let t = v.as_tensor();
        if let Some(gb) = b.get(t) {
            let sum = match a.get(t) {
                Some(ga) => (ga + gb)?,
                None => gb.clone(),
            };
            a.insert(t, sum);
        }
    }
    Ok(a)
}

/// Mean next-token cross-entropy of equal-length blocks (inputs `blk[..n-1]`, targets `blk[1..]`).
/// On the CPU the output layer and the loss are one op ([`nn::linear_ce`]): the batch's logits
/// are never held whole.
pub fn batch_loss(model: &Decoder, rows: &[&Vec<u32>], dev: &Device, mode: &mut Mode) -> Result<Tensor> {
    loss_of_rows(model, rows, dev, mode, true)
}

/// [`batch_loss`] with `grads` false: outside the autograd graph (evaluation).
fn loss_of_rows(model: &Decoder, rows: &[&Vec<u32>], dev: &Device, mode: &mut Mode, grads: bool) -> Result<Tensor> {
    let (inputs, targets) = split_rows(rows, dev)?;
    let hidden = model.forward_full(&inputs, mode)?;
    let (b, t, h) = hidden.dims3()?;
    let x = hidden.reshape((b * t, h))?;
    match model.head_weight() {
        Some((w, cap)) if nn::linear_ce::usable(&x, w) => nn::linear_ce::linear_cross_entropy(&x, w, &targets.to_vec1()?, cap, grads),
        _ => {
            let logits = model.logits(&x)?;
            let loss = crate::loss::cross_entropy(&logits, &targets)?;
            Ok(if grads { loss } else { loss.detach() })
        }
    }
}

/// [`batch_loss`] with the batch's logits materialised, then the loss: what the fused op is
/// checked against, and the baseline of `bench`'s LoRA measurements.
pub fn batch_loss_materialized(model: &Decoder, rows: &[&Vec<u32>], dev: &Device, mode: &mut Mode) -> Result<Tensor> {
    let (inputs, targets) = split_rows(rows, dev)?;
    let logits = model.forward_logits(&inputs, mode)?;
    let v = logits.dim(D::Minus1)?;
    crate::loss::cross_entropy(&logits.reshape(((), v))?, &targets)
}

fn split_rows(rows: &[&Vec<u32>], dev: &Device) -> Result<(Tensor, Tensor)> {
    let t = rows[0].len() - 1;
    let mut inp = Vec::with_capacity(rows.len() * t);
    let mut tgt = Vec::with_capacity(rows.len() * t);
    for r in rows {
        if r.len() != t + 1 {
            bail!("rows of one batch must have equal length");
        }
        inp.extend_from_slice(&r[..t]);
        tgt.extend_from_slice(&r[1..]);
    }
    Ok((Tensor::from_vec(inp, (rows.len(), t), dev)?, Tensor::from_vec(tgt, rows.len() * t, dev)?))
}

/// Summed next-token negative log-likelihood (nats) of each of equal-length blocks.
pub fn row_nlls(model: &Decoder, rows: &[&Vec<u32>], dev: &Device) -> Result<Vec<f64>> {
    row_nlls_from(model, rows, 0, dev)
}

/// [`row_nlls`] without the first `skip` predictions of each row (those of tokens 1..=skip): the
/// vocabulary head, the costliest product with a large vocabulary, runs on the rest only.
pub fn row_nlls_from(model: &Decoder, rows: &[&Vec<u32>], skip: usize, dev: &Device) -> Result<Vec<f64>> {
    let (inputs, targets) = split_rows(rows, dev)?;
    let (b, t) = inputs.dims2()?;
    if skip >= t {
        bail!("cannot skip {skip} of {t} predictions");
    }
    let positions = Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?;
    let bias = crate::layers::causal_bias(&[0], 0, t, dev, model.params.dtype())?;
    let hidden = model.forward(&inputs, &positions, Some(&bias), None, &mut Mode::Eval)?;
    let n = t - skip;
    let targets = targets.reshape((b, t))?.narrow(1, skip, n)?.contiguous()?.reshape(b * n)?;
    summed_target_nlls(model, &hidden.narrow(1, skip, n)?, &targets)
}

/// Each row's summed NLL of `targets` (`[rows × positions]` u32) after `hidden` `[rows, positions,
/// hidden]`. On the CPU the output layer and the loss are one op ([`nn::linear_ce`]): a batch of
/// 8 × 1,024 positions over Gemma's vocabulary would hold 8.6 GB of logits.
fn summed_target_nlls(model: &Decoder, hidden: &Tensor, targets: &Tensor) -> Result<Vec<f64>> {
    let (b, n, h) = hidden.dims3()?;
    let x = hidden.reshape((b * n, h))?;
    if let Some((w, cap)) = model.head_weight().filter(|(w, _)| nn::linear_ce::usable(&x, w)) {
        let nlls = nn::linear_ce::linear_row_nlls(&x, w, &targets.to_vec1()?, cap)?;
        return Ok(nlls.chunks(n).map(|row| row.iter().sum()).collect());
    }
    let logits = model.logits(hidden)?;
    let v = logits.dim(D::Minus1)?;
    let logp = candle_nn::ops::log_softmax(&logits.reshape((b * n, v))?, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.reshape((b, n))?;
    let sums: Vec<f32> = picked.sum(1)?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(sums.into_iter().map(|s| -(s as f64)).collect())
}

/// [`row_nlls_from`] with `skip` = `shared` − 1 for rows that all begin with the same `shared`
/// tokens (a canary's context with each candidate code), each at least one token longer: the
/// shared start runs through the model once and its keys and values serve every row, so only
/// the rows' own tokens run each time. Rows of one length batch together, `batch` at a time.
pub fn shared_prefix_row_nlls(model: &Decoder, rows: &[&Vec<u32>], shared: usize, batch: usize, dev: &Device) -> Result<Vec<f64>> {
    if shared == 0 || rows.iter().any(|r| r.len() <= shared || r[..shared] != rows[0][..shared]) {
        bail!("rows must share their first {shared} tokens and go on past them");
    }
    let dtype = model.params.dtype();
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut cache = model.new_cache(1, longest)?;
    let ids = Tensor::new(&rows[0][..shared], dev)?.unsqueeze(0)?;
    let positions = Tensor::arange(0u32, shared as u32, dev)?.unsqueeze(0)?;
    let bias = crate::layers::causal_bias(&[0], 0, shared, dev, dtype)?;
    let hidden = model.forward(&ids, &positions, Some(&bias), Some(&mut cache), &mut Mode::Eval)?;
    // The last shared position predicts every row's first own token.
    let last = model.logits(&hidden.narrow(1, shared - 1, 1)?.squeeze(1)?)?;
    let first: Vec<f32> = candle_nn::ops::log_softmax(&last, D::Minus1)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?;
    let mut out: Vec<f64> = rows.iter().map(|r| -(first[r[shared] as usize] as f64)).collect();
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        by_len.entry(r.len()).or_default().push(i);
    }
    for (&len, members) in &by_len {
        // Inputs: the own tokens but the last; targets: the own tokens but the first.
        let t = len - 1 - shared;
        if t == 0 {
            continue;
        }
        for chunk in members.chunks(batch.max(1)) {
            let b = chunk.len();
            let mut c = cache.clone();
            c.select_rows(&Tensor::zeros(b, DType::U32, dev)?)?;
            let ids: Vec<u32> = chunk.iter().flat_map(|&i| rows[i][shared..len - 1].iter().copied()).collect();
            let targets: Vec<u32> = chunk.iter().flat_map(|&i| rows[i][shared + 1..].iter().copied()).collect();
            let positions = Tensor::arange(shared as u32, (len - 1) as u32, dev)?.unsqueeze(0)?;
            let bias = crate::layers::causal_bias(&[0], shared, t, dev, dtype)?;
            let hidden = model.forward(&Tensor::from_vec(ids, (b, t), dev)?, &positions, Some(&bias), Some(&mut c), &mut Mode::Eval)?;
            let nlls = summed_target_nlls(model, &hidden, &Tensor::from_vec(targets, b * t, dev)?)?;
            for (&i, nll) in chunk.iter().zip(nlls) {
                out[i] += nll;
            }
        }
    }
    Ok(out)
}

/// Total negative log-likelihood (nats) and number of predicted tokens over blocks.
pub fn eval_nll(model: &Decoder, blocks: &[Vec<u32>], batch: usize, dev: &Device) -> Result<(f64, usize)> {
    let (mut nll, mut n) = (0.0, 0);
    // Blocks of one length batch together (all but the tail block are full).
    let mut by_len: std::collections::BTreeMap<usize, Vec<&Vec<u32>>> = Default::default();
    for b in blocks.iter().filter(|b| b.len() >= 2) {
        by_len.entry(b.len()).or_default().push(b);
    }
    for rows in by_len.values() {
        for chunk in rows.chunks(batch.max(1)) {
            let loss = loss_of_rows(model, chunk, dev, &mut Mode::Eval, false)?;
            let count = chunk.len() * (chunk[0].len() - 1);
            nll += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * count as f64;
            n += count;
        }
    }
    Ok((nll, n))
}

/// `exp(mean NLL)` per predicted token.
pub fn eval_perplexity(model: &Decoder, blocks: &[Vec<u32>], batch: usize, dev: &Device) -> Result<f64> {
    let (nll, n) = eval_nll(model, blocks, batch, dev)?;
    Ok((nll / n.max(1) as f64).exp())
}

fn train_ngram(cfg: &TrainConfig, train_docs: &[Document], dev_docs: &[Document], out: &Path) -> Result<TrainReport> {
    let model = NgramModel::train(train_docs, &cfg.ngram)?;
    model.save(out)?;
    let ppl = model.perplexity(dev_docs);
    let report = TrainReport {
        epochs: vec![EpochReport { epoch: 1, train_loss: 0.0, dev_perplexity: ppl, complete: true }],
        best_dev_perplexity: ppl,
        finished: true,
        ..Default::default()
    };
    fsutil::atomic_write(
        &out.join(TRAIN_RECORD),
        serde_json::to_string_pretty(&TrainRecord { config: cfg.clone(), start_token: Some(0), end_token: 1, report: report.clone() })?.as_bytes(),
    )?;
    Ok(report)
}
