//! Drawing a token from a distribution: temperature, top-k, nucleus (top-p).

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

/// Samples an index from unnormalised log-probabilities `logits` (scores of candidate `i`).
///
/// Candidates are sorted by score (index breaks ties) so that the choice depends only on the
/// scores and the rng, never on hash or memory order.
pub fn sample_logits(logits: &[f32], cfg: &SamplingConfig, rng: &mut impl Rng) -> usize {
    if cfg.temperature <= 0.0 || logits.len() == 1 {
        return argmax(logits);
    }
    let t = cfg.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Softmax in f64 over the tempered scores.
    let mut cand: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l.is_finite())
        .map(|(i, &l)| (i, (((l - max) / t) as f64).exp()))
        .filter(|&(_, p)| p > 0.0)
        .collect();
    if cand.is_empty() {
        return argmax(logits);
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
            return i;
        }
        u -= p;
    }
    cand.last().unwrap().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_top_k_and_top_p() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        let greedy = SamplingConfig { temperature: 0.0, ..Default::default() };
        assert_eq!(sample_logits(&logits, &greedy, &mut rng), 1);
        let top1 = SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 };
        assert_eq!(sample_logits(&logits, &top1, &mut rng), 1);
        let top2 = SamplingConfig { temperature: 1.0, top_k: 2, top_p: 1.0 };
        for _ in 0..50 {
            assert!([1, 3].contains(&sample_logits(&logits, &top2, &mut rng)));
        }
        let nucleus = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.01 };
        assert_eq!(sample_logits(&logits, &nucleus, &mut rng), 1);
    }
}
