//! Drawing a token from a distribution: temperature, top-k, nucleus (top-p). One sampler,
//! [`sample`], serves the decoders (a whole vocabulary of logits) and the n-gram model (the few
//! followers of a context); [`Walk`] is the one thing they do differently.

use nn::fused::exp_f32;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the next token is chosen. `temperature == 0` means greedy (argmax).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches `top_p` (1.0: all).
    pub top_p: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 }
    }
}

/// Index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// The order in which [`sample`]'s one uniform draw walks the kept tokens, and the arithmetic
/// that suits it. Both keep the same tokens (the `top_k` most likely, then the smallest most
/// likely set whose mass reaches `top_p`; lower index first on ties), but a draw lands on another
/// token in another order, so a generator keeps its walk for its samples to stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Most likely first, probabilities in f64, found by sorting the candidates, non-finite
    /// logits left out: for a few candidates (the n-gram model's followers of a context).
    MostLikelyFirst,
    /// Token ids in order, probabilities in f32 (summed in f64), the kept set found without
    /// sorting the vocabulary: for a decoder's logits over its whole vocabulary, where a full
    /// sort per token per row cost more than the forward pass. Without top-k, the nucleus is
    /// found by a histogram of the probabilities' bit patterns (two linear passes, then a sort of
    /// one bucket); with top-k, by repeated halving with `select_nth_unstable`.
    IdOrder,
}

/// Draws the index of one of `logits` (unnormalised log-probabilities): temperature, then top-k,
/// then the nucleus (the smallest set of most likely tokens whose mass reaches top-p), then one
/// uniform draw from `rng` walked over the kept tokens in `walk`'s order. Greedy (no draw) at
/// temperature 0 or with one candidate. Everything is a function of the logits and the rng alone,
/// never of hash or memory order.
pub fn sample(logits: &[f32], cfg: &SamplingConfig, walk: Walk, rng: &mut impl Rng) -> usize {
    if cfg.temperature <= 0.0 || logits.len() == 1 {
        return argmax(logits);
    }
    let t = cfg.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let drawn = match walk {
        Walk::MostLikelyFirst => most_likely_first(logits, max, t, cfg, rng),
        Walk::IdOrder if cfg.top_k == 0 || cfg.top_k >= logits.len() => id_order_nucleus(logits, max, t, cfg.top_p, rng),
        Walk::IdOrder => id_order_select(logits, max, t, cfg, rng),
    };
    drawn as usize
}

/// [`Walk::MostLikelyFirst`]: the candidates sorted by probability (index breaks ties), cut to
/// top-k and the nucleus, and walked in that order.
fn most_likely_first(logits: &[f32], max: f32, t: f32, cfg: &SamplingConfig, rng: &mut impl Rng) -> u32 {
    // Softmax in f64 over the tempered scores.
    let mut cand: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l.is_finite())
        .map(|(i, &l)| (i, (((l - max) / t) as f64).exp()))
        .filter(|&(_, p)| p > 0.0)
        .collect();
    if cand.is_empty() {
        return argmax(logits) as u32;
    }
    cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if cfg.top_k > 0 && cand.len() > cfg.top_k {
        cand.truncate(cfg.top_k);
    }
    let total: f64 = cand.iter().map(|c| c.1).sum();
    if cfg.top_p < 1.0 {
        // Keep tokens until the kept mass reaches top_p (at least one), like HF's TopPLogitsWarper.
        let mut acc = 0.0;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += c.1 / total;
            if acc >= cfg.top_p {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep.max(1));
    }
    let total: f64 = cand.iter().map(|c| c.1).sum();
    let mut u = rng.random::<f64>() * total;
    for &(i, p) in &cand {
        if u < p {
            return i as u32;
        }
        u -= p;
    }
    cand.last().unwrap().0 as u32
}

/// [`Walk::IdOrder`] with top-k: top-k, then nucleus, by selection.
fn id_order_select(logits: &[f32], max: f32, t: f32, cfg: &SamplingConfig, rng: &mut impl Rng) -> u32 {
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

/// [`Walk::IdOrder`] without top-k: nucleus sampling, the kept set is every token whose (probability, −id) is at
/// least the cut's, the cut being found in one bucket of a histogram over probability bits.
fn id_order_nucleus(logits: &[f32], max: f32, t: f32, top_p: f64, rng: &mut impl Rng) -> u32 {
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
fn draw(probs: &[f32], kept: impl Fn(usize, f32) -> bool, kept_mass: f64, rng: &mut impl Rng) -> Option<u32> {
    let mut u = rng.random::<f64>() * kept_mass;
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
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn greedy_top_k_and_top_p() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        for walk in [Walk::MostLikelyFirst, Walk::IdOrder] {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let greedy = SamplingConfig { temperature: 0.0, ..Default::default() };
            assert_eq!(sample(&logits, &greedy, walk, &mut rng), 1);
            let top1 = SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 };
            assert_eq!(sample(&logits, &top1, walk, &mut rng), 1);
            let top2 = SamplingConfig { temperature: 1.0, top_k: 2, top_p: 1.0 };
            for _ in 0..50 {
                assert!([1, 3].contains(&sample(&logits, &top2, walk, &mut rng)));
            }
            let nucleus = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.01 };
            assert_eq!(sample(&logits, &nucleus, walk, &mut rng), 1);
        }
    }

    /// The histogram nucleus and the selection nucleus keep the same tokens and so draw the same
    /// ones.
    #[test]
    fn histogram_and_selection_nucleus_agree() {
        let mut gen = ChaCha8Rng::seed_from_u64(42);
        for case in 0..200u64 {
            let n = 50 + (case as usize * 37) % 900;
            let spread = [0.1f32, 1.0, 5.0][case as usize % 3];
            let mut logits: Vec<f32> = (0..n).map(|_| gen.random::<f32>() * spread).collect();
            // Ties, which the id order must break the same way in both.
            logits[n / 2] = logits[0];
            let top_p = [0.5, 0.9, 0.95][case as usize % 3];
            let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p };
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (mut ra, mut rb) = (ChaCha8Rng::seed_from_u64(case), ChaCha8Rng::seed_from_u64(case));
            for _ in 0..5 {
                let a = id_order_nucleus(&logits, max, 1.0, top_p, &mut ra);
                assert_eq!(a, id_order_select(&logits, max, 1.0, &cfg, &mut rb), "case {case}");
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
            let t = sample(&logits, &cfg, Walk::IdOrder, &mut rng);
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
                seen.insert(sample(&big, &cfg, Walk::IdOrder, &mut rng));
            }
            assert_eq!(seen.into_iter().collect::<Vec<_>>(), allowed, "top_p {top_p}");
        }
        let k1 = SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 };
        assert_eq!(sample(&big, &k1, Walk::IdOrder, &mut rng), 2);
    }
}
