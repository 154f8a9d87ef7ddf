//! Membership inference from the released synthetic corpus alone: can an attacker who holds only
//! the synthetic text tell the generator's training documents (members) from real documents it
//! never saw (non-members)? Two attacks score each candidate document:
//!
//! * **n-gram coverage** (Hallinan et al., 2025): the share of the candidate's word n-grams that
//!   occur in the synthetic corpus;
//! * **n-gram model**: the mean log-probability of the candidate's words under an interpolated
//!   word trigram model fitted on the synthetic corpus.
//!
//! A higher score says "member". Reported per attack: ROC AUC (0.5: the attacker learns nothing)
//! with a seeded bootstrap 95% interval, and the true-positive rate at 1% and 0.1% false
//! positives (with few non-members the 0.1% point is "above every non-member").

use crate::ngram::ngram_hashes;
use corpus::{tokenize, Document};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// One attack's success.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attack {
    /// `ngram_coverage` or `ngram_model`.
    pub name: String,
    pub auc: f64,
    /// 95% bootstrap interval of the AUC (members and non-members resampled apart).
    pub auc_low: f64,
    pub auc_high: f64,
    pub tpr_at_1pct_fpr: f64,
    pub tpr_at_01pct_fpr: f64,
}

/// Membership inference against one set of members.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Membership {
    pub members: usize,
    pub non_members: usize,
    pub attacks: Vec<Attack>,
}

/// Runs both attacks: `members` (documents the generator trained on) against `non_members` (real
/// documents it never saw), with nothing but `synthetic` known to the attacker.
pub fn membership_inference(synthetic: &[Document], members: &[Document], non_members: &[Document], n: usize, bootstrap: usize, seed: u64) -> Membership {
    let synthetic_ngrams: HashSet<u64> = synthetic.iter().flat_map(|d| ngram_hashes(d, n)).collect();
    let coverage = |d: &Document| {
        let h = ngram_hashes(d, n);
        if h.is_empty() {
            0.0
        } else {
            h.iter().filter(|x| synthetic_ngrams.contains(x)).count() as f64 / h.len() as f64
        }
    };
    let model = TrigramModel::fit(synthetic);
    let mut attacks = Vec::new();
    for (name, score) in [("ngram_coverage", &coverage as &dyn Fn(&Document) -> f64), ("ngram_model", &|d: &Document| model.mean_log_prob(d))] {
        let m: Vec<f64> = members.iter().map(score).collect();
        let nm: Vec<f64> = non_members.iter().map(score).collect();
        attacks.push(evaluate_attack(name, &m, &nm, bootstrap, seed));
    }
    Membership { members: members.len(), non_members: non_members.len(), attacks }
}

/// AUC with its bootstrap interval and the TPR at low FPRs, from the two score lists.
pub fn evaluate_attack(name: &str, members: &[f64], non_members: &[f64], bootstrap: usize, seed: u64) -> Attack {
    let auc_value = auc(members, non_members);
    let (mut low, mut high) = (auc_value, auc_value);
    if bootstrap > 0 && !members.is_empty() && !non_members.is_empty() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draws: Vec<f64> = (0..bootstrap)
            .map(|_| {
                let m: Vec<f64> = (0..members.len()).map(|_| members[rng.random_range(0..members.len())]).collect();
                let nm: Vec<f64> = (0..non_members.len()).map(|_| non_members[rng.random_range(0..non_members.len())]).collect();
                auc(&m, &nm)
            })
            .collect();
        draws.sort_by(f64::total_cmp);
        let at = |q: f64| draws[((q * (draws.len() - 1) as f64).round() as usize).min(draws.len() - 1)];
        (low, high) = (at(0.025), at(0.975));
    }
    Attack {
        name: name.to_string(),
        auc: auc_value,
        auc_low: low,
        auc_high: high,
        tpr_at_1pct_fpr: tpr_at_fpr(members, non_members, 0.01),
        tpr_at_01pct_fpr: tpr_at_fpr(members, non_members, 0.001),
    }
}

/// ROC AUC: the probability that a random member scores above a random non-member (ties count
/// half), by ranks in O(n log n).
pub fn auc(members: &[f64], non_members: &[f64]) -> f64 {
    if members.is_empty() || non_members.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = members.iter().map(|&s| (s, true)).chain(non_members.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the members' ranks (1-based, ties given their mean rank).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (m, n) = (members.len() as f64, non_members.len() as f64);
    (rank_sum - m * (m + 1.0) / 2.0) / (m * n)
}

/// The share of members scoring above a threshold that at most `fpr` of the non-members exceed.
pub fn tpr_at_fpr(members: &[f64], non_members: &[f64], fpr: f64) -> f64 {
    if members.is_empty() || non_members.is_empty() {
        return f64::NAN;
    }
    let mut nm = non_members.to_vec();
    nm.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * nm.len() as f64).floor() as usize;
    let threshold = nm[allowed.min(nm.len() - 1)];
    members.iter().filter(|&&s| s > threshold).count() as f64 / members.len() as f64
}

/// An interpolated word trigram model (fixed weights; unseen words get a share of an open
/// vocabulary), enough to score how familiar a document's wording is to the synthetic corpus.
struct TrigramModel {
    uni: HashMap<u64, u32>,
    bi: HashMap<(u64, u64), u32>,
    tri: HashMap<(u64, u64, u64), u32>,
    total: f64,
    vocab: f64,
}

const START: u64 = 0x53_54_41_52_54;

fn word_hashes(doc: &Document) -> Vec<u64> {
    let chars: Vec<char> = doc.text.chars().collect();
    tokenize(&doc.text)
        .iter()
        .map(|t| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            chars[t.start..t.end].hash(&mut h);
            h.finish()
        })
        .collect()
}

impl TrigramModel {
    fn fit(docs: &[Document]) -> Self {
        let (mut uni, mut bi, mut tri) = (HashMap::new(), HashMap::new(), HashMap::new());
        let mut total = 0.0;
        for d in docs {
            let w = word_hashes(d);
            let (mut u, mut v) = (START, START);
            for &x in &w {
                *uni.entry(x).or_insert(0) += 1;
                *bi.entry((v, x)).or_insert(0) += 1;
                *tri.entry((u, v, x)).or_insert(0) += 1;
                total += 1.0;
                (u, v) = (v, x);
            }
        }
        let vocab = uni.len() as f64 + 1.0;
        TrigramModel { uni, bi, tri, total, vocab }
    }

    fn mean_log_prob(&self, doc: &Document) -> f64 {
        let w = word_hashes(doc);
        if w.is_empty() {
            return f64::NEG_INFINITY;
        }
        let count = |c: Option<&u32>| c.copied().unwrap_or(0) as f64;
        // History counts: how often a context was followed by anything (unigram counts of the
        // context word stand in for the bigram history; START contexts use the document count).
        let (mut u, mut v) = (START, START);
        let mut sum = 0.0;
        for &x in &w {
            let c_uv = self.bi.get(&(u, v)).copied().unwrap_or(0) as f64;
            let c_v = if v == START { 0.0 } else { count(self.uni.get(&v)) };
            let p3 = if c_uv > 0.0 { count(self.tri.get(&(u, v, x))) / c_uv } else { 0.0 };
            let p2 = if c_v > 0.0 { count(self.bi.get(&(v, x))) / c_v } else { 0.0 };
            let p1 = if self.total > 0.0 { count(self.uni.get(&x)) / self.total } else { 0.0 };
            let p = 0.5 * p3 + 0.3 * p2 + 0.15 * p1 + 0.05 / self.vocab;
            sum += p.ln();
            (u, v) = (v, x);
        }
        sum / w.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_the_pairwise_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let m: Vec<f64> = (0..rng.random_range(1..30)).map(|_| rng.random_range(0..6) as f64).collect();
            let n: Vec<f64> = (0..rng.random_range(1..30)).map(|_| rng.random_range(0..6) as f64).collect();
            let mut pairs = 0.0;
            for a in &m {
                for b in &n {
                    pairs += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
                }
            }
            let want = pairs / (m.len() * n.len()) as f64;
            assert!((auc(&m, &n) - want).abs() < 1e-12);
        }
    }

    #[test]
    fn tpr_at_fpr_counts_members_above_the_allowed_non_members() {
        let non: Vec<f64> = (0..100).map(|i| i as f64).collect();
        // 1% of 100: one non-member (99) may score above the threshold (98).
        assert_eq!(tpr_at_fpr(&[98.5, 99.5, 10.0, 120.0], &non, 0.01), 0.75);
        // 0.1%: none may; the threshold is the top non-member.
        assert_eq!(tpr_at_fpr(&[98.5, 99.5, 10.0, 120.0], &non, 0.001), 0.5);
    }
}
