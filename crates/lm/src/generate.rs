//! Batched sampling from a decoder with a KV cache.
//!
//! Each sample draws from its own RNG, seeded by (seed, prompt id, sample index), and padding is
//! masked out exactly (its attention weight is 0), so a sample's text does not depend on the
//! batch it was drawn in. Sequences that finish leave the batch (their cache rows are dropped),
//! so long samples do not make short ones pay.

use anyhow::Result;
use candle_core::Tensor;
use corpus::Document;
use nn::Mode;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::GenerateConfig;
use crate::data::Boundaries;
use crate::layers::causal_bias;
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
    /// The decoding weights' precision ([`DecoderGenerator::set_precision`]).
    precision: nn::Precision,
    /// The output layer cut to some tokens ([`DecoderGenerator::restrict_vocabulary`]).
    subset: Option<OutputSubset>,
}

/// The rows of the output layer for a sorted set of token ids: logits over those ids only.
struct OutputSubset {
    ids: Vec<u32>,
    /// `[ids, hidden]`, packed for inference on the CPU.
    head: SubsetHead,
}

enum SubsetHead {
    Packed(nn::infer::PackedLinear),
    Plain(Tensor),
}

/// One sequence being generated.
struct Row {
    item: usize,
    rng: ChaCha8Rng,
    pad: usize,
    /// New tokens this row may add.
    limit: usize,
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
        Ok(DecoderGenerator { model, tokenizer, boundaries, stop, min_new: 0, precision: nn::Precision::F32, subset: None })
    }

    /// Decodes with the weights packed at `precision` (see [`Decoder::pack`]); f32, the
    /// default, keeps the training path's GEMMs and so its exact outputs.
    pub fn set_precision(&mut self, precision: nn::Precision) -> Result<()> {
        if precision != nn::Precision::F32 {
            self.model.pack(precision)?;
        }
        self.precision = precision;
        if let Some(s) = self.subset.take() {
            self.restrict_vocabulary(&s.ids)?;
        }
        Ok(())
    }

    /// Samples draw only from `ids` and the stop ids: the output layer keeps those rows (a
    /// product with a few thousand rows instead of the whole vocabulary: Gemma's 262,144 make its
    /// output layer the largest product of a decoding step) and the sampler sees their logits
    /// only, in id order. The same draw as from the whole vocabulary with every other logit at
    /// −∞ (up to the rounding of a smaller product).
    pub fn restrict_vocabulary(&mut self, ids: &[u32]) -> Result<()> {
        let vocab = self.model.config.vocab_size();
        let mut ids: Vec<u32> = ids.iter().chain(&self.stop).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            anyhow::bail!("token id {bad} is outside the model's vocabulary of {vocab}");
        }
        let Some(weight) = self.model.output_weight() else {
            anyhow::bail!("this model's output layer has a bias or an adapter: its vocabulary cannot be restricted")
        };
        let rows = Tensor::new(ids.as_slice(), weight.device())?;
        let sub = weight.index_select(&rows, 0)?.to_dtype(candle_core::DType::F32)?;
        let head = if sub.device().is_cpu() {
            SubsetHead::Packed(nn::infer::PackedLinear::from_weight(&sub, None, self.precision)?)
        } else {
            SubsetHead::Plain(sub.to_dtype(weight.dtype())?)
        };
        self.subset = Some(OutputSubset { ids, head });
        Ok(())
    }

    /// Tokens a sample may draw when the vocabulary is restricted.
    pub fn vocabulary_size(&self) -> usize {
        self.subset.as_ref().map_or(self.model.config.vocab_size(), |s| s.ids.len())
    }

    /// Logits of the last hidden states `[rows, hidden]`: over the whole vocabulary, or over the
    /// restricted ids (column `i` is token `ids[i]`).
    fn step_logits(&self, h: &Tensor) -> Result<Tensor> {
        match &self.subset {
            None => self.model.logits(h),
            Some(s) => {
                let logits = match &s.head {
                    SubsetHead::Packed(p) => p.forward_tensor(h)?,
                    SubsetHead::Plain(w) => h.matmul(&w.t()?)?,
                };
                self.model.cap_logits(logits)
            }
        }
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

    /// Generates the samples `items` (prompt index, sample index) in batches of
    /// `cfg.batch_size` and hands each batch's documents to `on_batch` as they finish, with the
    /// number of new tokens of each. A sample's text depends on its prompt, its seed and the
    /// settings only, never on which other items are asked for: so a resumed run that asks only
    /// for the samples still missing gets the same ones.
    pub fn generate_items(
        &self,
        prompts: &[Prompt],
        items: &[(usize, usize)],
        cfg: &GenerateConfig,
        mut on_batch: impl FnMut(Vec<(usize, usize, Document, usize)>) -> Result<()>,
    ) -> Result<()> {
        let encoded: Vec<Vec<u32>> = prompts.iter().map(|p| self.prompt_ids(&p.text)).collect::<Result<_>>()?;
        // Items sorted by prompt length, so that batches need little padding.
        let mut items = items.to_vec();
        items.sort_by_key(|&(p, _)| encoded[p].len());
        for chunk in items.chunks(cfg.batch_size.max(1)) {
            let seqs: Vec<(&[u32], u64)> =
                chunk.iter().map(|&(p, s)| (encoded[p].as_slice(), sample_seed(cfg.seed, &prompts[p].id, s))).collect();
            let news = self.generate_ids(&seqs, cfg.max_new_tokens, &cfg.sampling)?;
            let mut done = Vec::with_capacity(chunk.len());
            for (&(p, s), new) in chunk.iter().zip(news) {
                let text = format!("{}{}", prompts[p].text, self.tokenizer.decode(&new)?);
                done.push((p, s, Document { id: sample_id(&prompts[p].id, s), text, spans: Vec::new() }, new.len()));
            }
            on_batch(done)?;
        }
        Ok(())
    }

    /// Core loop: continues each prompt (`ids`, rng seed) by at most `max_new` tokens, stopping
    /// at a stop token (not included) or at the model's maximum length. Returns the new ids.
    pub fn generate_ids(&self, seqs: &[(&[u32], u64)], max_new: usize, sampling: &SamplingConfig) -> Result<Vec<Vec<u32>>> {
        let dev = self.model.params.device().clone();
        let dtype = self.model.params.dtype();
        let max_pos = self.model.config.max_positions();
        let mut done: Vec<Option<Vec<u32>>> = vec![None; seqs.len()];
        // Each row's own budget: max_new, cut where its positions would leave the model's table.
        // It depends on the row only, never on the batch.
        let limit = |ids: &[u32]| max_new.min(max_pos.saturating_sub(ids.len()));
        let live: Vec<usize> = (0..seqs.len()).filter(|&i| !seqs[i].0.is_empty() && limit(seqs[i].0) > 0).collect();
        for (i, d) in done.iter_mut().enumerate() {
            if !live.contains(&i) {
                *d = Some(Vec::new());
            }
        }
        if live.is_empty() {
            return Ok(done.into_iter().map(|d| d.unwrap_or_default()).collect());
        }
        let b = live.len();
        let t0 = live.iter().map(|&i| seqs[i].0.len()).max().unwrap();
        let max_len = t0 + live.iter().map(|&i| limit(seqs[i].0)).max().unwrap();
        let mut rows: Vec<Row> = live
            .iter()
            .map(|&i| {
                let (ids, seed) = seqs[i];
                Row { item: i, rng: ChaCha8Rng::seed_from_u64(seed), pad: t0 - ids.len(), limit: limit(ids), new: Vec::new() }
            })
            .collect();
        // Prefill, left-padded; padded positions repeat position 0 and are masked as keys.
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
        let mut cache = self.model.new_cache(b, max_len)?;
        let mut mode = Mode::Eval;
        let h = self.model.forward(&ids, &positions, Some(&bias), Some(&mut cache), &mut mode)?;
        let mut logits = self.step_logits(&h.narrow(1, t0 - 1, 1)?.squeeze(1)?)?;
        // Column of each stop id among the logits (its id without a restricted vocabulary).
        let stop_cols: Vec<usize> = match &self.subset {
            None => self.stop.iter().map(|&s| s as usize).collect(),
            Some(sub) => self.stop.iter().filter_map(|s| sub.ids.binary_search(s).ok()).collect(),
        };
        let token_of = |col: usize| -> u32 { self.subset.as_ref().map_or(col as u32, |sub| sub.ids[col]) };
        loop {
            // Rows sample in parallel; each uses only its own rng.
            let toks: Vec<u32> = with_host_rows(&logits, |l, vocab| {
                rows.par_iter_mut()
                    .zip(l.par_chunks(vocab))
                    .map(|(r, l)| {
                        let col = if r.new.len() < self.min_new {
                            let mut l = l.to_vec();
                            for &s in &stop_cols {
                                if let Some(x) = l.get_mut(s) {
                                    *x = f32::NEG_INFINITY;
                                }
                            }
                            sample(&l, sampling, Walk::IdOrder, &mut r.rng)
                        } else {
                            sample(l, sampling, Walk::IdOrder, &mut r.rng)
                        };
                        token_of(col)
                    })
                    .collect()
            })?;
            let mut keep = Vec::with_capacity(rows.len());
            let mut next = Vec::with_capacity(rows.len());
            for (i, (mut r, tok)) in std::mem::take(&mut rows).into_iter().zip(toks).enumerate() {
                let stop = self.stop.binary_search(&tok).is_ok();
                if !stop {
                    r.new.push(tok);
                }
                if stop || r.new.len() >= r.limit {
                    done[r.item] = Some(std::mem::take(&mut r.new));
                } else {
                    keep.push(i as u32);
                    next.push(tok);
                    rows.push(r);
                }
            }
            if rows.is_empty() {
                break;
            }
            if keep.len() < l_len(&logits)? {
                cache.select_rows(&Tensor::new(keep.as_slice(), &dev)?)?;
            }
            let past = cache.len();
            let n = rows.len();
            let ids = Tensor::from_vec(next, (n, 1), &dev)?;
            let positions = Tensor::from_vec(rows.iter().map(|r| (past - r.pad) as u32).collect::<Vec<_>>(), (n, 1), &dev)?;
            let pads: Vec<usize> = rows.iter().map(|r| r.pad).collect();
            // One new query sees every cached key, so without padding there is nothing to mask.
            let bias = if pads.iter().any(|&p| p > 0) { Some(causal_bias(&pads, past, 1, &dev, dtype)?) } else { None };
            let h = self.model.forward(&ids, &positions, bias.as_ref(), Some(&mut cache), &mut mode)?;
            logits = self.step_logits(&h.squeeze(1)?)?;
        }
        Ok(done.into_iter().map(|d| d.unwrap_or_default()).collect())
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

fn l_len(logits: &Tensor) -> Result<usize> {
    Ok(logits.dim(0)?)
}
