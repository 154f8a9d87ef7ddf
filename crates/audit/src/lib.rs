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
//! * **template-aware recall**: the n-gram recall without the n-grams most training documents share
//!   (form headers, field names), which otherwise dominate it.
//! * **membership inference** from the synthetic corpus alone (n-gram coverage and an n-gram
//!   model), training documents against held-out ones: AUC and TPR at low FPR.
//! * **re-identification**: training documents several of whose own PHI strings reappear together
//!   in one synthetic document.
//!
//! Nothing here prints; document text enters the result only where the caller asks for examples.

mod leak;
mod mia;
mod ngram;
mod nearest;
mod reid;

pub use leak::{leaked_phi, strings_found, LabelLeak, Leakage, RarityLeak};
pub use mia::{auc, evaluate_attack, membership_inference, tpr_at_fpr, Attack, Membership};
pub use nearest::{nearest_documents, NearestMatch, SuffixAutomaton};
pub use ngram::{ngram_recall, ngram_recall_without_templates, NgramRecall};
pub use reid::{reidentification, Reidentification};

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
    /// Template n-grams: those in more than this share of the training documents, left out of
    /// the template-aware recall.
    pub template_share: f64,
    /// Bootstrap resamples for the membership-inference AUC interval (0: none).
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { ngram: 5, nearest: 10, show_examples: 0, example_context: 80, template_share: 0.1, bootstrap: 200, seed: 13 }
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
    /// n-gram recall without template n-grams (see [`AuditConfig::template_share`]).
    #[serde(default)]
    pub ngram_recall_templates_removed: Option<NgramRecall>,
    #[serde(default)]
    pub ngram_recall_templates_removed_heldout: Option<NgramRecall>,
    /// Training documents (members) against the held-out ones (non-members), attacker holding
    /// only the synthetic corpus; needs held-out documents.
    #[serde(default)]
    pub membership: Option<Membership>,
    #[serde(default)]
    pub reidentification: Option<Reidentification>,
    /// The same count for real held-out documents: how often unrelated notes repeat a training
    /// note's own strings by chance (dates, ages), the baseline.
    #[serde(default)]
    pub reidentification_heldout: Option<Reidentification>,
}

impl AuditConfig {
    /// Refuses settings that cannot be measured (an n-gram order of 0), naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.ngram == 0 {
            return Err(format!("ngram = 0: {}", ngram::ORDER_ZERO));
        }
        if !(self.template_share > 0.0 && self.template_share <= 1.0) {
            return Err(format!("template_share = {}: must be greater than 0 and at most 1", self.template_share));
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
        ngram_recall_templates_removed: Some(ngram_recall_without_templates(synthetic, training, config.ngram, config.template_share)?),
        ngram_recall_templates_removed_heldout: heldout.map(|h| ngram_recall_without_templates(h, training, config.ngram, config.template_share)).transpose()?,
        membership: heldout.filter(|h| !h.is_empty() && !training.is_empty()).map(|h| membership_inference(synthetic, training, h, config.ngram, config.bootstrap, config.seed)),
        reidentification: Some(reidentification(training, synthetic)),
        reidentification_heldout: heldout.map(|h| reidentification(training, h)),
    })
}

/// A measure of the audit as text: its name, its value for the synthetic corpus and for the
/// held-out baseline (`-` where there is none), and what it means in one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub measure: String,
    pub synthetic: String,
    pub baseline: String,
    pub meaning: String,
}

impl AuditReport {
    /// The measures beyond n-gram recall and per-label leakage, as rows for tables (the report's
    /// and the command line's).
    pub fn evidence_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let row = |measure: String, synthetic: String, baseline: String, meaning: &str| Row { measure, synthetic, baseline, meaning: meaning.to_string() };
        if let Some(t) = &self.ngram_recall_templates_removed {
            let held = self.ngram_recall_templates_removed_heldout.as_ref().map_or("-".to_string(), |h| format!("{:.4}", h.recall));
            rows.push(row(
                format!("{}-gram recall without template n-grams (in > {:.0}% of training documents)", t.n, 100.0 * self.config.template_share),
                format!("{:.4}", t.recall),
                held,
                "Copied wording once form headers and field names are set aside; compare with real unseen documents.",
            ));
        }
        let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        for (i, b) in self.leakage.by_rarity.iter().enumerate() {
            let held = self.leakage_heldout.as_ref().and_then(|h| h.by_rarity.get(i)).map_or("-".to_string(), |h| format!("{} of {} ({:.1}%)", h.leaked, h.distinct, pct(h.leaked, h.distinct)));
            rows.push(row(
                format!("training PHI strings found verbatim, strings in {} training document(s)", b.documents),
                format!("{} of {} ({:.1}%)", b.leaked, b.distinct, pct(b.leaked, b.distinct)),
                held,
                if b.documents == "1" { "Strings of one patient's note: each one found can point at that patient." } else { "Strings many notes share: finding them reveals little about anyone." },
            ));
        }
        if let Some(m) = &self.membership {
            for a in &m.attacks {
                let what = if a.name == "ngram_coverage" { "n-gram coverage" } else { "n-gram model" };
                rows.push(row(
                    format!("membership inference ({what}): AUC [95% interval]; TPR at 1% / 0.1% FPR"),
                    format!("{:.3} [{:.3}, {:.3}]; {:.3} / {:.3}", a.auc, a.auc_low, a.auc_high, a.tpr_at_1pct_fpr, a.tpr_at_01pct_fpr),
                    "0.5; 0.01 / 0.001".into(),
                    "How well an attacker holding only the synthetic corpus tells training notes from unseen ones (0.5: not at all).",
                ));
            }
        }
        if let Some(r) = &self.reidentification {
            rows.push(row(
                "training documents with ≥ 2 / ≥ 3 of their own PHI strings together in one synthetic document".into(),
                format!("{} / {} of {} (most: {})", r.linked_2, r.linked_3, r.with_own_phi, r.max_linked),
                self.reidentification_heldout.as_ref().map_or("-".to_string(), |h| format!("{} / {} (most: {})", h.linked_2, h.linked_3, h.max_linked)),
                "Strings of one patient repeated together (a name with a date, a place) can re-identify that patient.",
            ));
        }
        rows
    }
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
