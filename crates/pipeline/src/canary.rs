//! Canaries: made-up patient records planted in the generator's training documents, so that the
//! audit can measure what the generator gives away of a record it saw 1, 2, 4 or 8 times.
//!
//! A canary is a training document of the corpus itself (its template: the wording, the form) with
//! every PHI span replaced by a made-up surrogate that is no PHI string of the corpus, plus a
//! random reference code as its last line (a high-perplexity secret, as in "The Canary's Echo",
//! ICML 2025). As many reference canaries are made the same way and never planted: an attacker
//! who holds only the synthetic corpus should not tell the planted ones from them.

use anyhow::{anyhow, Result};
use corpus::Document;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// `[canaries]`: off unless `count > 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanarySection {
    /// Canaries planted in the generator's training documents (0: none).
    pub count: usize,
    /// How many times each is planted, in turn (canary i: `repetitions[i % len]`).
    pub repetitions: Vec<usize>,
}

impl Default for CanarySection {
    fn default() -> Self {
        CanarySection { count: 0, repetitions: vec![1, 2, 4, 8] }
    }
}

/// A made-up record; `repetitions` 0 for a reference canary (never planted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub doc: Document,
    pub secret: String,
    pub repetitions: usize,
}

/// `count` planted and `count` reference canaries made from distinct documents of `training`
/// (seeded), their PHI replaced by surrogates that are no PHI string of `training`.
pub fn make(training: &[Document], settings: &CanarySection, seed: u64) -> Result<Vec<Canary>> {
    if settings.count == 0 {
        return Ok(Vec::new());
    }
    if settings.repetitions.is_empty() || settings.repetitions.contains(&0) {
        return Err(anyhow!("canaries.repetitions: give one or more counts, each at least 1"));
    }
    let templates: Vec<&Document> = training.iter().filter(|d| !d.spans.is_empty()).collect();
    if templates.len() < 2 * settings.count {
        return Err(anyhow!(
            "canaries.count = {}: needs {} training documents with PHI to make the planted and reference canaries from, there are {}",
            settings.count,
            2 * settings.count,
            templates.len()
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xca7a_717e);
    let mut order: Vec<usize> = (0..templates.len()).collect();
    order.shuffle(&mut rng);
    let options = deid::Options { strict: true, ..deid::Options::default().with_key(format!("synthdeid-canary-{seed}").into_bytes()) };
    let mut ctx = deid::Surrogator::new(options);
    for d in training {
        ctx.forbid_document_originals(d);
    }
    let mut out = Vec::with_capacity(2 * settings.count);
    for (i, &t) in order.iter().take(2 * settings.count).enumerate() {
        let planted = i < settings.count;
        let id = if planted { format!("canary-{i:03}") } else { format!("canary-ref-{:03}", i - settings.count) };
        let template = Document { id: id.clone(), ..templates[t].clone() };
        let r = deid::deidentify(&template, deid::Mode::Surrogate, &mut ctx).map_err(|e| anyhow!("canary {id}: {e}"))?;
        let secret: String = (0..10).map(|_| b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)] as char).collect();
        let mut doc = r.doc;
        doc.text = format!("{}\nRef. {secret}", doc.text.trim_end());
        let repetitions = if planted { settings.repetitions[i % settings.repetitions.len()] } else { 0 };
        out.push(Canary { doc, secret, repetitions });
    }
    Ok(out)
}

/// The generator's training documents with the planted canaries added, each as many times as it
/// is planted (copies numbered), in a seeded order.
pub fn plant(training: &[Document], canaries: &[Canary], seed: u64) -> Vec<Document> {
    let mut out = training.to_vec();
    for c in canaries {
        for r in 0..c.repetitions {
            out.push(Document { id: format!("{}-copy{r}", c.doc.id), ..c.doc.clone() });
        }
    }
    out.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x91a7));
    out
}

/// What the synthetic corpus gives away of one canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryExposure {
    pub id: String,
    /// 0 for a reference canary.
    pub repetitions: usize,
    /// Its distinct PHI strings, and how many occur verbatim (on word boundaries) in the synthetic corpus.
    pub phi_strings: usize,
    pub phi_found: usize,
    /// Whether its secret reference code occurs in the synthetic corpus.
    pub secret_found: bool,
    /// The longest passage (characters) it shares with one synthetic document, and its share of the canary.
    pub longest_shared: usize,
    pub longest_shared_share: f64,
    /// Under the generator (white box): the secret's rank among [`LIKELIHOOD_CANDIDATES`] other
    /// codes of its form, by the likelihood of the canary's last words followed by each
    /// (1: the likeliest), and its exposure in bits, log2(candidates + 1) − log2(rank) ("The
    /// Secret Sharer", USENIX Security 2019); ties count half, so a model that cannot tell the
    /// codes apart ranks every one in the middle: about 1 bit for a code the model never saw,
    /// log2(candidates + 1) for one it gives away. None: no local generator to score with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likelihood_rank: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_bits: Option<f64>,
}

/// Exposure, per canary and per number of repetitions (reference canaries as 0), and membership
/// inference of the planted canaries against the reference ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    pub canaries: Vec<CanaryExposure>,
    /// Per repetitions: (repetitions, canaries, mean share of PHI strings found, secrets found, mean longest shared share).
    pub by_repetitions: Vec<RepetitionExposure>,
    pub membership: audit::Membership,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepetitionExposure {
    pub repetitions: usize,
    pub canaries: usize,
    pub phi_found_share: f64,
    pub secrets_found: usize,
    pub longest_shared_share: f64,
    /// Mean likelihood exposure (bits) of their secrets under the generator, when scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_exposure_bits: Option<f64>,
}

/// The other codes each canary's secret is ranked among by [`likelihood_ranks`].
pub const LIKELIHOOD_CANDIDATES: usize = 99;

/// Characters of a canary's text before its secret that the likelihood is conditioned on.
const LIKELIHOOD_CONTEXT_CHARS: usize = 300;

fn random_code(rng: &mut impl Rng) -> String {
    (0..10).map(|_| b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)] as char).collect()
}

/// Each canary's secret's rank (1: likeliest) among [`LIKELIHOOD_CANDIDATES`] random codes of
/// its form (seeded), by the generator's likelihood of the canary's last words before the code
/// followed by the code (`generator`: a model directory `lm` loads).
pub fn likelihood_ranks(canaries: &[Canary], generator: &std::path::Path, seed: u64) -> Result<Vec<f64>> {
    let mut groups = Vec::with_capacity(canaries.len());
    for (i, c) in canaries.iter().enumerate() {
        let at = c.doc.text.rfind("\nRef. ").ok_or_else(|| anyhow!("canary {}: no reference line", c.doc.id))?;
        let before: Vec<char> = c.doc.text[..at].chars().collect();
        let mut from = before.len().saturating_sub(LIKELIHOOD_CONTEXT_CHARS);
        // Start at a word.
        while from > 0 && from < before.len() && !before[from - 1].is_whitespace() {
            from += 1;
        }
        let context: String = before[from..].iter().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5ec7e7 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut codes = vec![c.secret.clone()];
        while codes.len() <= LIKELIHOOD_CANDIDATES {
            let code = random_code(&mut rng);
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        groups.push(codes.into_iter().enumerate().map(|(k, code)| Document::new(format!("{}-{k}", c.doc.id), format!("{context}\nRef. {code}"))).collect());
    }
    // Only the codes differ within a group: the shared context is not scored again.
    let nll = lm::shared_start_nlls(generator, &groups)?;
    Ok(nll
        .iter()
        .map(|scores| {
            let below = scores[1..].iter().filter(|&&x| x < scores[0]).count();
            let tied = scores[1..].iter().filter(|&&x| x == scores[0]).count();
            1.0 + below as f64 + tied as f64 / 2.0
        })
        .collect())
}

/// Exposure in bits of a secret ranked `rank` among `LIKELIHOOD_CANDIDATES + 1` codes.
pub fn exposure_bits(rank: f64) -> f64 {
    ((LIKELIHOOD_CANDIDATES + 1) as f64).log2() - rank.log2()
}

pub fn expose(canaries: &[Canary], synthetic: &[Document], n: usize, bootstrap: usize, seed: u64, ranks: Option<&[f64]>) -> CanaryReport {
    let automaton = audit::SuffixAutomaton::new(synthetic);
    // Each canary's distinct PHI strings, then its secret, all searched in one pass.
    let phi: Vec<Vec<String>> = canaries
        .iter()
        .map(|c| {
            let chars: Vec<char> = c.doc.text.chars().collect();
            let distinct: std::collections::BTreeSet<String> = c.doc.spans.iter().map(|s| chars[s.start..s.end].iter().collect()).collect();
            distinct.into_iter().collect()
        })
        .collect();
    // (canary, is its secret) for each searched string.
    let mut owner = Vec::new();
    let mut strings = Vec::new();
    for (i, (c, p)) in canaries.iter().zip(&phi).enumerate() {
        owner.extend(p.iter().map(|_| (i, false)).chain(std::iter::once((i, true))));
        strings.extend(p.iter().cloned().chain(std::iter::once(c.secret.clone())));
    }
    let mut hits = vec![0usize; canaries.len()];
    let mut secret_found = vec![false; canaries.len()];
    for k in audit::strings_found(&strings, synthetic) {
        match owner[k] {
            (i, true) => secret_found[i] = true,
            (i, false) => hits[i] += 1,
        }
    }
    let mut rows = Vec::with_capacity(canaries.len());
    for (i, c) in canaries.iter().enumerate() {
        let chars = c.doc.text.chars().count();
        let longest = automaton.longest_common(&c.doc.text).map_or(0, |m| m.0);
        rows.push(CanaryExposure {
            id: c.doc.id.clone(),
            repetitions: c.repetitions,
            phi_strings: phi[i].len(),
            phi_found: hits[i],
            secret_found: secret_found[i],
            longest_shared: longest,
            longest_shared_share: if chars == 0 { 0.0 } else { longest as f64 / chars as f64 },
            likelihood_rank: ranks.map(|r| r[i]),
            exposure_bits: ranks.map(|r| exposure_bits(r[i])),
        });
    }
    let mut levels: Vec<usize> = rows.iter().map(|r| r.repetitions).collect();
    levels.sort_unstable();
    levels.dedup();
    let by_repetitions = levels
        .into_iter()
        .map(|rep| {
            let rs: Vec<&CanaryExposure> = rows.iter().filter(|r| r.repetitions == rep).collect();
            let mean = |f: &dyn Fn(&CanaryExposure) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / rs.len().max(1) as f64;
            RepetitionExposure {
                repetitions: rep,
                canaries: rs.len(),
                phi_found_share: mean(&|r| if r.phi_strings == 0 { 0.0 } else { r.phi_found as f64 / r.phi_strings as f64 }),
                secrets_found: rs.iter().filter(|r| r.secret_found).count(),
                longest_shared_share: mean(&|r| r.longest_shared_share),
                mean_exposure_bits: ranks.map(|_| mean(&|r| r.exposure_bits.unwrap_or(0.0))),
            }
        })
        .collect();
    let planted: Vec<Document> = canaries.iter().filter(|c| c.repetitions > 0).map(|c| c.doc.clone()).collect();
    let reference: Vec<Document> = canaries.iter().filter(|c| c.repetitions == 0).map(|c| c.doc.clone()).collect();
    let membership = audit::membership_inference(synthetic, &planted, &reference, n, bootstrap, seed);
    CanaryReport { canaries: rows, by_repetitions, membership }
}
