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
use crate::sampling::{argmax, SamplingConfig};
use nn::fused::exp_f32;
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
        let bar = crate::train::progress_bar(items.len() as u64, cfg.progress);
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
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
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
        let mut logits = self.model.logits(&h.narrow(1, t0 - 1, 1)?.squeeze(1)?)?;
        loop {
            // Rows sample in parallel; each uses only its own rng.
            let toks: Vec<u32> = with_host_rows(&logits, |l, vocab| {
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
                            sample(&l, sampling, &mut r.rng)
                        } else {
                            sample(l, sampling, &mut r.rng)
                        }
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
            logits = self.model.logits(&h.squeeze(1)?)?;
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

/// Draws a token from one row of logits: temperature, then top-k, then the nucleus (the
/// smallest set of most likely tokens whose mass reaches top-p), then one draw.
///
/// The nucleus is found without sorting the vocabulary (with a flat distribution it can hold
/// most of a 32k vocabulary, and a full sort per token per row cost more than the forward pass):
/// without top-k, by a histogram of the probabilities' bit patterns (two linear passes, then a
/// sort of one bucket); with top-k, by repeated halving with `select_nth_unstable`. The draw
/// scans kept tokens in id order. Everything is a function of the logits and the rng alone.
pub fn sample(logits: &[f32], cfg: &SamplingConfig, rng: &mut ChaCha8Rng) -> u32 {
    if cfg.temperature <= 0.0 {
        return argmax(logits) as u32;
    }
    let t = cfg.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if cfg.top_k == 0 || cfg.top_k >= logits.len() {
        return sample_nucleus(logits, max, t, cfg.top_p, rng);
    }
    sample_select(logits, max, t, cfg, rng)
}

/// Top-k, then nucleus, by selection.
fn sample_select(logits: &[f32], max: f32, t: f32, cfg: &SamplingConfig, rng: &mut ChaCha8Rng) -> u32 {
    // Unnormalised probabilities in f32 (sums are taken in f64). Each candidate is one u64 key,
    // probability bits inverted in the high half, token id in the low half, so that ascending
    // keys are "most likely first, lower id first on ties" and selection compares plain integers
    // instead of looking probabilities up through an index.
    let probs = unnormalised_probs(logits, max, t);
    let mut keys: Vec<u64> = probs.iter().enumerate().map(|(i, p)| (u64::from(!p.to_bits()) << 32) | i as u64).collect();
    let prob = |key: u64| f64::from(probs[(key & 0xffff_ffff) as usize]);
    if cfg.top_k > 0 && cfg.top_k < keys.len() {
        keys.select_nth_unstable(cfg.top_k - 1);
        keys.truncate(cfg.top_k);
    }
    let mass = |s: &[u64]| s.iter().map(|&k| prob(k)).sum::<f64>();
    let mut keep = keys.len();
    if cfg.top_p < 1.0 {
        // The smallest most-likely prefix whose mass reaches top_p: bisect with selections
        // (expected linear time), sorting only the last short range.
        let mut target = cfg.top_p * mass(&keys);
        let (mut lo, mut hi) = (0, keys.len());
        loop {
            if hi - lo <= 64 {
                keys[lo..hi].sort_unstable();
                keep = hi;
                for (j, &key) in keys.iter().enumerate().take(hi).skip(lo) {
                    target -= prob(key);
                    if target <= 0.0 {
                        keep = j + 1;
                        break;
                    }
                }
                break;
            }
            let mid = lo + (hi - lo) / 2;
            keys[lo..hi].select_nth_unstable(mid - lo);
            let m = mass(&keys[lo..mid]);
            if m >= target {
                hi = mid;
            } else {
                target -= m;
                lo = mid;
            }
        }
    }
    let kept = &keys[..keep.max(1)];
    // Walk the kept tokens in id order, so the draw does not depend on the selection's order.
    let mut mask = vec![false; probs.len()];
    for &k in kept {
        mask[(k & 0xffff_ffff) as usize] = true;
    }
    let first = (kept[0] & 0xffff_ffff) as u32;
    draw(&probs, |i, _| mask[i], mass(kept), rng).unwrap_or(first)
}

/// Histogram buckets: probabilities lie in [0, 1], whose patterns' top 12 bits are at most
/// 0x3f8 (1.0); a NaN shares the last bucket.
const BUCKETS: usize = 1024;
const SUB_BUCKETS: usize = 4096;

/// Bucket of a probability: the top 12 bits of its f32 pattern (sign, exponent, 3 mantissa
/// bits). For non-negative floats the bit pattern orders like the value, so buckets do too.
fn bucket(bits: u32) -> usize {
    ((bits >> 20) as usize).min(BUCKETS - 1)
}

/// The next 12 bits of a probability's pattern, below [`bucket`]'s.
fn sub_bucket(bits: u32) -> usize {
    ((bits >> 8) & 0xfff) as usize
}

/// Nucleus sampling without top-k: the kept set is every token whose (probability, −id) is at
/// least the cut's, the cut being found in one bucket of a histogram over probability bits.
fn sample_nucleus(logits: &[f32], max: f32, t: f32, top_p: f64, rng: &mut ChaCha8Rng) -> u32 {
    let probs = unnormalised_probs(logits, max, t);
    let mut mass = [0f64; BUCKETS];
    for &p in &probs {
        mass[bucket(p.to_bits())] += f64::from(p);
    }
    let total: f64 = mass.iter().sum();
    // (bits, id) of the least likely kept token; everything ordered at or above it is kept.
    let mut cut = (0u32, u32::MAX);
    let mut kept_mass = total;
    if top_p < 1.0 {
        let target = top_p * total;
        let mut above = 0.0;
        if let Some(b) = (0..BUCKETS).rev().find(|&b| {
            let hit = mass[b] > 0.0 && above + mass[b] >= target;
            if !hit {
                above += mass[b];
            }
            hit
        }) {
            // The cut lies in bucket b, which with a flat distribution holds thousands of
            // tokens: gather its members (without a branch: the index is always written, the
            // count moves on a match), split them again on the next 12 bits of the pattern, and
            // order only the sub-bucket where the cut falls: most likely first, lower id first.
            let mut members = vec![0u32; probs.len()];
            let mut n = 0;
            for (i, &p) in probs.iter().enumerate() {
                members[n] = i as u32;
                n += usize::from(bucket(p.to_bits()) == b);
            }
            members.truncate(n);
            let bits = |i: u32| probs[i as usize].to_bits();
            let mut sub = vec![0f64; SUB_BUCKETS];
            for &i in &members {
                sub[sub_bucket(bits(i))] += f64::from(probs[i as usize]);
            }
            // Summed in another order than mass[b], the sub-buckets may fall short of the target
            // by a rounding error: the cut is then at the bucket's least likely token.
            let lowest = (0..SUB_BUCKETS).find(|&s| sub[s] > 0.0);
            if let Some(s) = (0..SUB_BUCKETS).rev().find(|&s| {
                let hit = sub[s] > 0.0 && (above + sub[s] >= target || Some(s) == lowest);
                if !hit {
                    above += sub[s];
                }
                hit
            }) {
                let mut last: Vec<(u32, u32)> = members.iter().filter(|&&i| sub_bucket(bits(i)) == s).map(|&i| (bits(i), i)).collect();
                last.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
                let mut acc = above;
                for &(b, id) in &last {
                    acc += f64::from(f32::from_bits(b));
                    cut = (b, id);
                    if acc >= target {
                        break;
                    }
                }
                kept_mass = acc;
            }
        }
    }
    let kept = |i: usize, p: f32| {
        let bits = p.to_bits();
        bits > cut.0 || (bits == cut.0 && i as u32 <= cut.1)
    };
    draw(&probs, kept, kept_mass, rng).unwrap_or_else(|| argmax(logits) as u32)
}

/// `e^((l − max) / t)` for every logit: the unnormalised probabilities (at most 1).
fn unnormalised_probs(logits: &[f32], max: f32, t: f32) -> Vec<f32> {
    // A product with 1/t (a division per token cost a third of this pass).
    let inv_t = 1.0 / t;
    logits.iter().map(|&l| exp_f32((l - max) * inv_t)).collect()
}

/// Ids per block of [`draw`].
const DRAW_BLOCK: usize = 256;

/// Draws one kept token, token `i` with probability `probs[i] / kept_mass`, walking the ids in
/// order: `u` uniform in [0, kept_mass), minus each kept probability until it falls below one.
/// Whole blocks are skipped by their kept mass (summed in four independent running sums), so
/// the walk is not one long chain of dependent subtractions. `None` when nothing is kept; when
/// rounding leaves `u` above the kept mass, the last kept token.
fn draw(probs: &[f32], kept: impl Fn(usize, f32) -> bool, kept_mass: f64, rng: &mut ChaCha8Rng) -> Option<u32> {
    let mut u = rand::Rng::random::<f64>(rng) * kept_mass;
    for (c, block) in probs.chunks(DRAW_BLOCK).enumerate() {
        let base = c * DRAW_BLOCK;
        let mut part = [0f64; 4];
        for (j, &p) in block.iter().enumerate() {
            part[j % 4] += if kept(base + j, p) { f64::from(p) } else { 0.0 };
        }
        let m = (part[0] + part[1]) + (part[2] + part[3]);
        if u >= m {
            u -= m;
            continue;
        }
        for (j, &p) in block.iter().enumerate() {
            if kept(base + j, p) {
                if u < f64::from(p) {
                    return Some((base + j) as u32);
                }
                u -= f64::from(p);
            }
        }
    }
    probs.iter().enumerate().rev().find(|&(i, &p)| kept(i, p)).map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The histogram nucleus and the selection nucleus keep the same tokens and so draw the same
    /// ones.
    #[test]
    fn histogram_and_selection_nucleus_agree() {
        let mut gen = ChaCha8Rng::seed_from_u64(42);
        for case in 0..200u64 {
            let n = 50 + (case as usize * 37) % 900;
            let spread = [0.1f32, 1.0, 5.0][case as usize % 3];
            let mut logits: Vec<f32> = (0..n).map(|_| rand::Rng::random::<f32>(&mut gen) * spread).collect();
            // Ties, which the id order must break the same way in both.
            logits[n / 2] = logits[0];
            let top_p = [0.5, 0.9, 0.95][case as usize % 3];
            let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p };
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (mut ra, mut rb) = (ChaCha8Rng::seed_from_u64(case), ChaCha8Rng::seed_from_u64(case));
            for _ in 0..5 {
                let a = sample_nucleus(&logits, max, 1.0, top_p, &mut ra);
                assert_eq!(a, sample_select(&logits, max, 1.0, &cfg, &mut rb), "case {case}");
            }
        }
    }

    /// Draws follow the kept probabilities: over a vocabulary of several draw blocks, with
    /// probabilities that differ by block, each block's share of 40,000 draws is within 4
    /// standard deviations of its expected share, and the cut tokens are never drawn.
    #[test]
    fn draws_follow_the_kept_probabilities() {
        let n = 3 * DRAW_BLOCK + 100;
        let logits: Vec<f32> = (0..n).map(|i| [0.0f32, 1.0, -1.0, 2.0][i / DRAW_BLOCK] + (i % 7) as f32 * 0.1).collect();
        let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.9 };
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let probs: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
        // The kept set by sorting (most likely first, lower id first).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| probs[b].partial_cmp(&probs[a]).unwrap().then(a.cmp(&b)));
        let total: f64 = probs.iter().sum();
        let mut kept = vec![false; n];
        let mut acc = 0.0;
        for &i in &order {
            kept[i] = true;
            acc += probs[i];
            if acc >= 0.9 * total {
                break;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            let t = sample(&logits, &cfg, &mut rng) as usize;
            assert!(kept[t], "token {t} was cut from the nucleus");
            counts[t / DRAW_BLOCK] += 1;
        }
        for (b, &c) in counts.iter().enumerate() {
            let share = (0..n).filter(|&i| kept[i] && i / DRAW_BLOCK == b).map(|i| probs[i]).sum::<f64>() / acc;
            let sd = (share * (1.0 - share) / draws as f64).sqrt();
            let got = c as f64 / draws as f64;
            assert!((got - share).abs() <= 4.0 * sd + 1e-12, "block {b}: {got} drawn, {share} expected");
        }
    }

    #[test]
    fn nucleus_keeps_the_smallest_top_set() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (ids 2, 0, 3, 1). Each top-p sits clear of a cumulative
        // mass (0.5, 0.8, 0.95): at exactly 0.5 the 300 near-zero tokens and f32 rounding decide.
        let logits: Vec<f32> = [0.3f32, 0.05, 0.5, 0.15].iter().map(|p| p.ln()).collect();
        let mut big: Vec<f32> = logits.clone();
        big.extend(std::iter::repeat_n(-30.0, 300));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (top_p, allowed) in [(0.49, vec![2]), (0.79, vec![0, 2]), (0.9, vec![0, 2, 3])] {
            let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p };
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..200 {
                seen.insert(sample(&big, &cfg, &mut rng));
            }
            assert_eq!(seen.into_iter().collect::<Vec<_>>(), allowed, "top_p {top_p}");
        }
        let k1 = SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 };
        assert_eq!(sample(&big, &k1, &mut rng), 2);
    }
}
