//! Batched sampling from a decoder with a KV cache.
//!
//! Each sample draws from its own RNG, seeded by (seed, prompt id, sample index), and padding is
//! masked out exactly (its attention weight is 0), so a sample's text does not depend on the
//! batch it was drawn in. Sequences that finish leave the batch (their cache rows are dropped)
//! and the next prompts take their places (continuous batching), so the batch stays full while
//! samples of unequal lengths run.

use anyhow::Result;
use candle_core::Tensor;
use corpus::Document;
use nn::Mode;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::GenerateConfig;
use crate::data::Boundaries;
use crate::layers::{causal_bias, KvCache};
use crate::models::Decoder;
use crate::prompts::{sample_id, sample_seed, Prompt};
use crate::sampling::{sample, SamplingConfig, Walk};
use crate::tokenizer::LmTokenizer;

/// A decoder ready to sample: model (frozen), tokenizer and document boundaries.
pub struct DecoderGenerator {
    pub model: Decoder,
    pub tokenizer: LmTokenizer,
    pub boundaries: Boundaries,
    /// Ids that end a sample (the end-of-document token and the config's `eos_token_id`s).
    pub stop: Vec<u32>,
    /// Stop ids cannot be drawn before a sample has this many new tokens (HF's `min_new_tokens`).
    pub min_new: usize,
}

/// One sequence being generated.
struct Row {
    item: usize,
    rng: ChaCha8Rng,
    pad: usize,
    /// New tokens this row may add.
    limit: usize,
    /// The cache column after its last possible token.
    end: usize,
    new: Vec<u32>,
}

impl DecoderGenerator {
    /// Freezes the model and lays its weights out for decoding (see [`Decoder::prepare_decoding`]).
    pub fn new(mut model: Decoder, tokenizer: LmTokenizer, boundaries: Boundaries) -> Result<Self> {
        model.freeze()?;
        model.prepare_decoding()?;
        let mut stop = model.config.eos_ids();
        stop.push(boundaries.end);
        stop.sort_unstable();
        stop.dedup();
        Ok(DecoderGenerator { model, tokenizer, boundaries, stop, min_new: 0 })
    }

    /// Prompt ids: the document-start token (if the model has one), then the prompt text's tokens.
    pub fn prompt_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.boundaries.start.into_iter().collect();
        ids.extend(self.tokenizer.encode(text)?);
        Ok(ids)
    }

    /// Generates `samples_per_prompt` documents per prompt (ids `{prompt}__s{NNN}`, in prompt
    /// order), each being its prompt text followed by the decoded continuation.
    pub fn generate(&self, prompts: &[Prompt], cfg: &GenerateConfig) -> Result<Vec<Document>> {
        let n = cfg.samples_per_prompt;
        let items: Vec<(usize, usize)> = (0..prompts.len()).flat_map(|p| (0..n).map(move |s| (p, s))).collect();
        let mut out: Vec<Option<Document>> = vec![None; prompts.len() * n];
        self.generate_items(prompts, &items, cfg, |done| {
            for (p, s, doc, _) in done {
                out[p * n + s] = Some(doc);
            }
            Ok(())
        })?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Generates the samples `items` (prompt index, sample index), `cfg.batch_size` at a time,
    /// and hands each document to `on_batch` as it finishes, with its number of new tokens. A
    /// sample's text depends on its prompt, its seed and the settings only, never on which other
    /// items are asked for: so a resumed run that asks only for the samples still missing gets
    /// the same ones.
    pub fn generate_items(
        &self,
        prompts: &[Prompt],
        items: &[(usize, usize)],
        cfg: &GenerateConfig,
        mut on_batch: impl FnMut(Vec<(usize, usize, Document, usize)>) -> Result<()>,
    ) -> Result<()> {
        let encoded: Vec<Vec<u32>> = prompts.iter().map(|p| self.prompt_ids(&p.text)).collect::<Result<_>>()?;
        // Items by prompt length, so that a prompt joining the batch finds room before the
        // cached columns (see `generate_stream`).
        let mut items = items.to_vec();
        items.sort_by_key(|&(p, _)| encoded[p].len());
        let seqs: Vec<(&[u32], u64)> =
            items.iter().map(|&(p, s)| (encoded[p].as_slice(), sample_seed(cfg.seed, &prompts[p].id, s))).collect();
        self.generate_stream(&seqs, cfg.batch_size, cfg.max_new_tokens, &cfg.sampling, |i, new| {
            let (p, s) = items[i];
            let text = format!("{}{}", prompts[p].text, self.tokenizer.decode(&new)?);
            on_batch(vec![(p, s, Document { id: sample_id(&prompts[p].id, s), text, spans: Vec::new() }, new.len())])
        })
    }

    /// Continues each prompt (`ids`, rng seed) by at most `max_new` tokens, stopping at a stop
    /// token (not included) or at the model's maximum length, all in one batch. Returns the new
    /// ids.
    pub fn generate_ids(&self, seqs: &[(&[u32], u64)], max_new: usize, sampling: &SamplingConfig) -> Result<Vec<Vec<u32>>> {
        let mut out = vec![Vec::new(); seqs.len()];
        self.generate_stream(seqs, seqs.len(), max_new, sampling, |i, new| {
            out[i] = new;
            Ok(())
        })?;
        Ok(out)
    }

    /// Core loop, continuous batching: at most `batch` sequences run at once; when one finishes
    /// (`on_done(index, new ids)`), the next waiting prompt is prefilled and joins the batch, its
    /// cached columns right-aligned with the others' (left padding, masked). A batch of samples
    /// of unequal lengths so stays full instead of running its longest sample nearly alone.
    pub fn generate_stream(
        &self,
        seqs: &[(&[u32], u64)],
        batch: usize,
        max_new: usize,
        sampling: &SamplingConfig,
        mut on_done: impl FnMut(usize, Vec<u32>) -> Result<()>,
    ) -> Result<()> {
        let dev = self.model.params.device().clone();
        let dtype = self.model.params.dtype();
        let batch = batch.max(1);
        let mut queue = std::collections::VecDeque::new();
        for (i, (ids, _)) in seqs.iter().enumerate() {
            if ids.is_empty() || self.limit(ids, max_new) == 0 {
                on_done(i, Vec::new())?;
            } else {
                queue.push_back(i);
            }
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut cache: Option<KvCache> = None;
        let mut logits: Option<Tensor> = None;
        let mut mode = Mode::Eval;
        loop {
            // Free places go to the next prompts that fit before the cached columns (a fresh
            // batch takes any).
            let past = if rows.is_empty() { 0 } else { cache.as_ref().map_or(0, |c| c.len()) };
            let mut take = Vec::new();
            while take.len() + rows.len() < batch {
                match queue.front() {
                    Some(&i) if rows.is_empty() || seqs[i].0.len() <= past => take.push(queue.pop_front().unwrap()),
                    _ => break,
                }
            }
            if !take.is_empty() {
                let (new_cache, new_logits, mut new_rows) = self.prefill(seqs, &take, max_new, rows.is_empty())?;
                if rows.is_empty() {
                    (cache, logits) = (Some(new_cache), Some(new_logits));
                } else {
                    let old = cache.take().unwrap();
                    // New rows end where the cached ones do; columns that every row pads go.
                    let shift = past - new_cache.len();
                    for r in &mut new_rows {
                        r.pad += shift;
                        r.end += shift;
                    }
                    let drop = rows.iter().chain(&new_rows).map(|r| r.pad).min().unwrap();
                    let width = rows.iter().chain(&new_rows).map(|r| r.end).max().unwrap() - drop;
                    cache = Some(old.join(drop, &new_cache, width)?);
                    for r in rows.iter_mut().chain(&mut new_rows) {
                        r.pad -= drop;
                        r.end -= drop;
                    }
                    logits = Some(Tensor::cat(&[logits.take().unwrap(), new_logits], 0)?);
                }
                rows.extend(new_rows);
            }
            if rows.is_empty() {
                return Ok(());
            }
            let (Some(c), Some(l)) = (cache.as_mut(), logits.as_ref()) else { unreachable!() };
            // Rows sample in parallel; each uses only its own rng.
            let toks: Vec<u32> = with_host_rows(l, |l, vocab| {
                rows.par_iter_mut()
                    .zip(l.par_chunks(vocab))
                    .map(|(r, l)| {
                        if r.new.len() < self.min_new {
                            let mut l = l.to_vec();
                            for &s in &self.stop {
                                if let Some(x) = l.get_mut(s as usize) {
                                    *x = f32::NEG_INFINITY;
                                }
                            }
                            sample(&l, sampling, Walk::IdOrder, &mut r.rng) as u32
                        } else {
                            sample(l, sampling, Walk::IdOrder, &mut r.rng) as u32
                        }
                    })
                    .collect()
            })?;
            let before = rows.len();
            let mut keep = Vec::with_capacity(before);
            let mut next = Vec::with_capacity(before);
            for (i, (mut r, tok)) in std::mem::take(&mut rows).into_iter().zip(toks).enumerate() {
                let stop = self.stop.binary_search(&tok).is_ok();
                if !stop {
                    r.new.push(tok);
                }
                if stop || r.new.len() >= r.limit {
                    on_done(r.item, std::mem::take(&mut r.new))?;
                } else {
                    keep.push(i as u32);
                    next.push(tok);
                    rows.push(r);
                }
            }
            if rows.is_empty() {
                continue;
            }
            if keep.len() < before {
                c.select_rows(&Tensor::new(keep.as_slice(), &dev)?)?;
            }
            let past = c.len();
            let n = rows.len();
            let ids = Tensor::from_vec(next, (n, 1), &dev)?;
            let positions = Tensor::from_vec(rows.iter().map(|r| (past - r.pad) as u32).collect::<Vec<_>>(), (n, 1), &dev)?;
            let pads: Vec<usize> = rows.iter().map(|r| r.pad).collect();
            // One new query sees every cached key, so without padding there is nothing to mask.
            let bias = if pads.iter().any(|&p| p > 0) { Some(causal_bias(&pads, past, 1, &dev, dtype)?) } else { None };
            let h = self.model.forward(&ids, &positions, bias.as_ref(), Some(c), &mut mode)?;
            logits = Some(self.model.logits(&h.squeeze(1)?)?);
        }
    }

    /// A row's own budget: max_new, cut where its positions would leave the model's table. It
    /// depends on the row only, never on the batch.
    fn limit(&self, ids: &[u32], max_new: usize) -> usize {
        max_new.min(self.model.config.max_positions().saturating_sub(ids.len()))
    }

    /// Runs the prompts `take` (indices into `seqs`, left-padded to the longest) through the
    /// model: their cache (room for their whole budgets when `room`, else the prompts only),
    /// the logits of each one's next token, and their rows.
    fn prefill(&self, seqs: &[(&[u32], u64)], take: &[usize], max_new: usize, room: bool) -> Result<(KvCache, Tensor, Vec<Row>)> {
        let dev = self.model.params.device().clone();
        let dtype = self.model.params.dtype();
        let b = take.len();
        let t0 = take.iter().map(|&i| seqs[i].0.len()).max().unwrap();
        let rows: Vec<Row> = take
            .iter()
            .map(|&i| {
                let (ids, seed) = seqs[i];
                let (pad, limit) = (t0 - ids.len(), self.limit(ids, max_new));
                Row { item: i, rng: ChaCha8Rng::seed_from_u64(seed), pad, limit, end: t0 + limit, new: Vec::new() }
            })
            .collect();
        // Padded positions repeat position 0 and are masked as keys.
        let mut flat = Vec::with_capacity(b * t0);
        let mut pos = Vec::with_capacity(b * t0);
        for r in &rows {
            let ids = seqs[r.item].0;
            flat.extend(std::iter::repeat_n(self.boundaries.start.unwrap_or(self.boundaries.end), r.pad).chain(ids.iter().copied()));
            pos.extend((0..t0).map(|i| i.saturating_sub(r.pad) as u32));
        }
        let ids = Tensor::from_vec(flat, (b, t0), &dev)?;
        let positions = Tensor::from_vec(pos, (b, t0), &dev)?;
        let pads: Vec<usize> = rows.iter().map(|r| r.pad).collect();
        let bias = causal_bias(&pads, 0, t0, &dev, dtype)?;
        let cap = if room { rows.iter().map(|r| r.end).max().unwrap() } else { t0 };
        let mut cache = self.model.new_cache(b, cap)?;
        let h = self.model.forward(&ids, &positions, Some(&bias), Some(&mut cache), &mut Mode::Eval)?;
        let logits = self.model.logits(&h.narrow(1, t0 - 1, 1)?.squeeze(1)?)?;
        Ok((cache, logits, rows))
    }
}

/// Runs `f` on the f32 logits `[rows, vocab]` as one host slice: read in place on the CPU (a
/// copy into a vector per row cost 1% of a decoding step), copied from other devices.
fn with_host_rows<R>(logits: &Tensor, f: impl FnOnce(&[f32], usize) -> R) -> Result<R> {
    let vocab = logits.dim(1)?;
    let logits = logits.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let (storage, layout) = logits.storage_and_layout();
    if let candle_core::Storage::Cpu(cpu) = &*storage {
        let all = cpu.as_slice::<f32>()?;
        let start = layout.start_offset();
        return Ok(f(&all[start..start + layout.shape().elem_count()], vocab));
    }
    drop(storage);
    Ok(f(&logits.flatten_all()?.to_vec1::<f32>()?, vocab))
}


