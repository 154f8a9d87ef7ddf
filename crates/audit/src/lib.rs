//! Privacy audit of a synthetic corpus against the documents its generator was trained on.
//!
//! Three measures, because the first one alone hides what matters:
//!
//! * **n-gram recall** (the paper's measure): the share of the synthetic corpus's word n-grams
//!   (n = 5) that occur anywhere in the training text. Compared with the same number for real
//!   held-out documents, it says whether the generator copies more than real language overlaps.
//! * **leaked PHI strings**: per label, how many distinct gold PHI strings of the training set
//!   reappear verbatim (on word boundaries) in the synthetic text. A generator can have low n-gram
//!   recall and still reproduce most patient IDs and e-mail addresses it saw; with held-out real
//!   documents as a baseline, one sees which strings are simply common (`España`, `H`).
//! * **nearest documents**: for each synthetic document the longest substring it shares with any
//!   training document (a suffix automaton over the training text), the worst ones listed.
//!
//! Nothing here prints; document text enters the result only where the caller asks for examples.

mod leak;
mod ngram;
mod nearest;

pub use leak::{leaked_phi, LabelLeak, Leakage};
pub use nearest::{nearest_documents, NearestMatch, SuffixAutomaton};
pub use ngram::{ngram_recall, NgramRecall};

use corpus::Document;
use serde::{Deserialize, Serialize};

/// Settings of an audit (a section of the pipeline config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// n of the n-gram recall (the paper: 5).
    pub ngram: usize,
    /// How many closest synthetic documents to list.
    pub nearest: usize,
    /// How many of those to show side by side with their training document (text!). 0 by default:
    /// showing text is the user's decision.
    pub show_examples: usize,
    /// Characters of context around a shown shared substring.
    pub example_context: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { ngram: 5, nearest: 10, show_examples: 0, example_context: 80 }
    }
}

/// A shared passage shown side by side (only when `show_examples > 0`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub synthetic_id: String,
    pub training_id: String,
    pub shared: String,
    pub synthetic_context: String,
    pub training_context: String,
}

/// Everything the audit measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditReport {
    pub config: AuditConfig,
    pub synthetic_documents: usize,
    pub training_documents: usize,
    pub ngram_recall: NgramRecall,
    /// The same measure for real documents the generator never saw (if given): the baseline.
    pub ngram_recall_heldout: Option<NgramRecall>,
    pub leakage: Leakage,
    /// Training PHI strings that appear in real held-out documents (if given): the baseline.
    pub leakage_heldout: Option<Leakage>,
    pub nearest: Vec<NearestMatch>,
    pub examples: Vec<Example>,
}

impl AuditConfig {
    /// Refuses settings that cannot be measured (an n-gram order of 0), naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.ngram == 0 {
            return Err(format!("ngram = 0: {}", ngram::ORDER_ZERO));
        }
        Ok(())
    }
}

/// Audits `synthetic` against `training`; `heldout` (real documents unseen by the generator, e.g.
/// the test split) gives the baselines.
///
/// # Panics
/// If `config` fails [`AuditConfig::check`] (callers check configs when they load them); use
/// [`try_audit`] to get the error instead.
pub fn audit(synthetic: &[Document], training: &[Document], heldout: Option<&[Document]>, config: &AuditConfig) -> AuditReport {
    try_audit(synthetic, training, heldout, config).unwrap_or_else(|e| panic!("audit config: {e}"))
}

/// [`audit`], with an invalid config an error instead of a panic.
pub fn try_audit(synthetic: &[Document], training: &[Document], heldout: Option<&[Document]>, config: &AuditConfig) -> Result<AuditReport, String> {
    config.check()?;
    let automaton = SuffixAutomaton::new(training);
    let nearest = nearest_documents(&automaton, synthetic, config.nearest.max(config.show_examples));
    let examples = nearest
        .iter()
        .take(config.show_examples)
        .map(|m| example(m, synthetic, training, config.example_context))
        .collect();
    Ok(AuditReport {
        config: config.clone(),
        synthetic_documents: synthetic.len(),
        training_documents: training.len(),
        ngram_recall: ngram_recall(synthetic, training, config.ngram)?,
        ngram_recall_heldout: heldout.map(|h| ngram_recall(h, training, config.ngram)).transpose()?,
        leakage: leaked_phi(training, synthetic),
        leakage_heldout: heldout.map(|h| leaked_phi(training, h)),
        nearest: nearest.into_iter().take(config.nearest).collect(),
        examples,
    })
}

fn example(m: &NearestMatch, synthetic: &[Document], training: &[Document], ctx: usize) -> Example {
    let around = |text: &str, start: usize, end: usize| -> String {
        let chars: Vec<char> = text.chars().collect();
        let a = start.saturating_sub(ctx);
        let b = (end + ctx).min(chars.len());
        format!("…{}[[{}]]{}…", chars[a..start].iter().collect::<String>(), chars[start..end].iter().collect::<String>(), chars[end..b].iter().collect::<String>())
    };
    let syn = synthetic.iter().find(|d| d.id == m.synthetic_id).expect("match names a synthetic document");
    let tr = training.iter().find(|d| d.id == m.training_id).expect("match names a training document");
    let shared: String = syn.text.chars().skip(m.synthetic_start).take(m.length).collect();
    Example {
        synthetic_id: m.synthetic_id.clone(),
        training_id: m.training_id.clone(),
        shared,
        synthetic_context: around(&syn.text, m.synthetic_start, m.synthetic_start + m.length),
        training_context: around(&tr.text, m.training_start, m.training_start + m.length),
    }
}
