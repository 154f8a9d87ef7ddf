//! Packing documents into fixed-length blocks for causal-LM training and evaluation.

use anyhow::Result;
use corpus::Document;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::tokenizer::LmTokenizer;

/// Which ids mark document boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundaries {
    /// Put before every document (and before every prompt at generation time); `None` for
    /// models whose tokenizer adds no BOS (Qwen2: a leading `<|endoftext|>` multiplies its
    /// perplexity on a Spanish sentence from 33 to 336).
    pub start: Option<u32>,
    /// Put after every document; generation stops when it is drawn.
    pub end: u32,
}

impl Boundaries {
    /// Token stream of documents: `start doc end start doc end ...`. When start and end are the
    /// same token (GPT-2's `<|endoftext|>`), one token separates two documents, not two; without
    /// a start token, `doc end doc end ...`.
    /// The token a block cut out of the stream must start with: models with a BOS distinct
    /// from their EOS (Gemma, Llama) break down without it at position 0 (Gemma-3-270M on 50
    /// MEDDOCAN dev documents in blocks of 256: perplexity per token 166 without, see
    /// BENCHMARKS.md). GPT-2-style models (start = end) and models without BOS need none.
    pub fn lead(&self) -> Option<u32> {
        self.start.filter(|&s| s != self.end)
    }

    pub fn stream(&self, docs: &[Vec<u32>]) -> Vec<u32> {
        let mut s = Vec::with_capacity(docs.iter().map(|d| d.len() + 2).sum());
        for d in docs {
            if let Some(start) = self.start.filter(|&t| t != self.end || s.is_empty()) {
                s.push(start);
            }
            s.extend_from_slice(d);
            s.push(self.end);
        }
        s
    }
}

/// Encodes the texts of `docs` and packs them into one stream (see [`Boundaries::stream`]).
pub fn encode_stream(tok: &LmTokenizer, docs: &[Document], b: Boundaries) -> Result<Vec<u32>> {
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    Ok(b.stream(&tok.encode_batch(&texts)?))
}

/// Cuts a stream into blocks of `block + 1` tokens that overlap by one, so that inputs
/// (`blk[..block]`) and targets (`blk[1..]`) cover every token but the first exactly once. With
/// `keep_tail`, the shorter last block is kept (evaluation); otherwise it is dropped (training
/// batches are rectangular). With a `lead` token (see [`Boundaries::lead`]), a block that starts
/// inside a document gets it in place of its first input: its first target is then predicted
/// from the lead alone, and every token is still a target exactly once.
pub fn blocks(stream: &[u32], block: usize, keep_tail: bool, lead: Option<u32>) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < stream.len() {
        let end = (i + block + 1).min(stream.len());
        if end - i < block + 1 && !keep_tail {
            break;
        }
        let mut row = stream[i..end].to_vec();
        if let Some(l) = lead {
            row[0] = l;
        }
        out.push(row);
        i += block;
    }
    out
}

/// At most `max_tokens` worth of `blocks` (0: all), evenly spaced so that every part of the
/// input is represented; deterministic.
pub fn spread(blocks: Vec<Vec<u32>>, max_tokens: usize) -> Vec<Vec<u32>> {
    let per = blocks.first().map_or(1, |b| b.len().saturating_sub(1).max(1));
    let keep = max_tokens.div_ceil(per);
    if max_tokens == 0 || keep >= blocks.len() {
        return blocks;
    }
    let n = blocks.len();
    let picks: Vec<usize> = (0..keep).map(|i| i * n / keep).collect();
    let mut it = picks.into_iter().peekable();
    blocks.into_iter().enumerate().filter_map(|(j, b)| if it.peek() == Some(&j) { it.next(); Some(b) } else { None }).collect()
}

/// The order of training blocks in `epoch`: a seeded shuffle, so a resumed run sees the same
/// order.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(crate::prompts::splitmix64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9)));
    idx.shuffle(&mut rng);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_evenly_spaced_blocks() {
        let b: Vec<Vec<u32>> = (0..10u32).map(|i| vec![i; 5]).collect();
        assert_eq!(spread(b.clone(), 0), b);
        assert_eq!(spread(b.clone(), 1000), b);
        let kept: Vec<u32> = spread(b.clone(), 12).iter().map(|r| r[0]).collect();
        assert_eq!(kept, vec![0, 3, 6]);
        assert_eq!(spread(b, 4).len(), 1);
    }

    #[test]
    fn packing_covers_every_token_once() {
        let b = Boundaries { start: Some(0), end: 0 };
        let s = b.stream(&[vec![5, 6], vec![7]]);
        assert_eq!(s, vec![0, 5, 6, 0, 7, 0]);
        let bl = blocks(&s, 2, true, None);
        assert_eq!(bl, vec![vec![0, 5, 6], vec![6, 0, 7], vec![7, 0]]);
        let targets: usize = bl.iter().map(|b| b.len() - 1).sum();
        assert_eq!(targets, s.len() - 1);
        assert_eq!(blocks(&s, 2, false, None).len(), 2);
        // A lead token replaces the first input of every block (a no-op where it is already there).
        let b4 = Boundaries { start: Some(1), end: 2 };
        assert_eq!(b4.lead(), Some(1));
        assert_eq!(Boundaries { start: Some(0), end: 0 }.lead(), None);
        let s4 = b4.stream(&[vec![5, 6, 7, 8]]);
        assert_eq!(blocks(&s4, 3, true, b4.lead()), vec![vec![1, 5, 6, 7], vec![1, 8, 2]]);
        let b2 = Boundaries { start: Some(1), end: 2 };
        assert_eq!(b2.stream(&[vec![5], vec![7]]), vec![1, 5, 2, 1, 7, 2]);
        let b3 = Boundaries { start: None, end: 2 };
        assert_eq!(b3.stream(&[vec![5], vec![7]]), vec![5, 2, 7, 2]);
        let o = epoch_order(10, 3, 1);
        assert_eq!(o, epoch_order(10, 3, 1));
        assert_ne!(o, epoch_order(10, 3, 2));
    }
}
