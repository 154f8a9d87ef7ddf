//! `deid`: find PHI with a trained model (or take the input's own spans) and redact, mask or
//! replace it with consistent surrogates.

use crate::corpus_args::ReadArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use corpus::{write_corpus, Document};
use std::io::Read;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// Each PHI span becomes `[LABEL]`.
    Redact,
    /// Each PHI character becomes `*` (whitespace kept): same length, same layout.
    Mask,
    /// Each PHI span becomes a realistic fake of its kind, consistent within the run (and across runs with --key).
    Surrogate,
}

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum DateShiftArg {
    /// One secret offset per document.
    #[default]
    PerDocument,
    /// One secret offset for the whole input (intervals across documents kept).
    PerCorpus,
}

#[derive(Args)]
#[command(after_help = "Surrogates: names keep their number of parts, gender and capitalisation; streets keep their type \
word and number layout; IDs keep length, digit/letter positions and separators (valid DNI/NIE letters); dates move by \
one secret offset per document (or per input with --date-shift per-corpus) and keep their written format; ages move \
by a small amount in their own unit; e-mails, phones, hospitals, countries, professions get fakes of the same kind. \
The same original always gets the same surrogate; an HMAC of --key decides (without a key, one derived from --seed: \
reproducible but NOT secret). A surrogate never equals an original PHI string of the input.\n\n\
Output: the new text and the new spans (so the de-identified corpus is itself annotated): BRAT directory or JSONL by \
--out's path; from stdin without --out, the text goes to stdout. --mapping-out writes original → replacement (PHI!) \
for users who must be able to reverse it; it is off by default.")]
pub struct DeidArgs {
    /// A trained NER model directory (transformer or perceptron, e.g. a run's stages/annotator-*/model): finds the PHI.
    #[arg(long, required_unless_present = "spans_from_input", conflicts_with = "spans_from_input")]
    pub model: Option<PathBuf>,
    /// Use the spans already annotated in the input (BRAT/JSONL) instead of a model: pseudonymise a gold corpus.
    #[arg(long)]
    pub spans_from_input: bool,
    /// Input: a BRAT or text directory, a .jsonl/.conll file, or a plain .txt file; stdin when absent.
    #[arg(long)]
    pub input: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ModeArg::Surrogate)]
    pub mode: ModeArg,
    /// Output: a directory (BRAT) or a .jsonl file; without it, stdout (text for stdin input, JSONL otherwise).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Secret key for consistent surrogates across runs (prefer --key-file or SYNTHDEID_KEY: shell history keeps flags).
    #[arg(long, env = "SYNTHDEID_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// File whose bytes are the key.
    #[arg(long, conflicts_with = "key")]
    pub key_file: Option<PathBuf>,
    /// Seed of the (non-secret) key used when no key is given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DateShiftArg::PerDocument)]
    pub date_shift: DateShiftArg,
    /// Surrogate language: es, en, sv.
    #[arg(long, default_value = "es")]
    pub language: String,
    /// Label → surrogate-kind map (TOML); default: MEDDOCAN's 22 labels (crates/deid/data/labels_meddocan.toml).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Write the mapping (original span → replacement) as JSONL. Contains PHI.
    #[arg(long)]
    pub mapping_out: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn deid(a: DeidArgs) -> Result<()> {
    let from_stdin = a.input.is_none();
    let docs: Vec<Document> = match &a.input {
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading stdin (is it UTF-8?)")?;
            vec![Document::new("stdin", text)]
        }
        Some(p) if a.spans_from_input && is_plain_text(p, &a.read) => {
            bail!(
                "{}: --spans-from-input needs annotated input (a BRAT directory with .ann files, a .jsonl or a .conll file), \
                 but this is plain text without spans: nothing would be replaced and the PHI would pass through; \
                 give the annotations, or find the PHI with --model",
                p.display()
            );
        }
        Some(p) if p.is_file() && p.extension().is_some_and(|e| e == "txt") => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read as UTF-8 text", p.display()))?;
            let id = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
            vec![Document::new(id, text)]
        }
        Some(p) => a.read.read(p)?,
    };
    let docs = if let Some(model_dir) = &a.model {
        let model = pipeline::run::NerModel::load(model_dir, None).with_context(|| format!("loading the NER model {}", model_dir.display()))?;
        model.predict(&docs)?
    } else {
        if from_stdin {
            bail!("--spans-from-input needs an annotated --input (BRAT directory or JSONL)");
        }
        if !docs.is_empty() && docs.iter().all(|d| d.spans.is_empty()) {
            bail!(
                "{}: --spans-from-input found no span in any of its {} document(s): nothing would be replaced and the PHI \
                 would pass through; annotate the input (or check the JSONL key \"spans\" and the .ann files), or find the PHI with --model",
                a.input.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                docs.len()
            );
        }
        docs
    };
    let mut options = deid::Options::default().with_seed(a.seed).with_language(a.language.parse().map_err(|e| anyhow!("--language: {e}"))?);
    if let Some(k) = &a.key {
        options = options.with_key(k.as_bytes().to_vec());
    }
    if let Some(f) = &a.key_file {
        options = options.with_key(std::fs::read(f).with_context(|| format!("--key-file {}", f.display()))?);
    }
    if let Some(l) = &a.labels {
        options = options.with_labels(deid::LabelMap::from_path(l).map_err(|e| anyhow!("--labels {}: {e}", l.display()))?);
    }
    if matches!(a.date_shift, DateShiftArg::PerCorpus) {
        options = options.with_date_shift(deid::DateShift::PerCorpus);
    }
    let mode = match a.mode {
        ModeArg::Redact => deid::Mode::Redact,
        ModeArg::Mask => deid::Mode::Mask,
        ModeArg::Surrogate => deid::Mode::Surrogate,
    };
    let t0 = std::time::Instant::now();
    let (out_docs, mapping, stats) = deid::deidentify_corpus(&docs, mode, &options).map_err(|e| anyhow!(e))?;
    let secs = t0.elapsed().as_secs_f64();
    match &a.out {
        Some(p) => write_corpus(p, None, &out_docs).map_err(|e| anyhow!(e))?,
        None if from_stdin => print!("{}", out_docs[0].text),
        None => {
            for d in &out_docs {
                println!("{}", serde_json::to_string(d)?);
            }
        }
    }
    if let Some(p) = &a.mapping_out {
        let mut s = String::new();
        for m in &mapping {
            s.push_str(&serde_json::to_string(m)?);
            s.push('\n');
        }
        corpus::format::atomic_write(p, s.as_bytes()).map_err(|e| anyhow!(e))?;
    }
    eprintln!(
        "de-identified {} document(s), {} span(s) in {:.2} s ({:.0} documents/s); dates not parsed (digits replaced): {}; unknown labels: {}",
        stats.documents,
        stats.spans,
        secs,
        stats.documents as f64 / secs.max(1e-9),
        stats.dates_unparsed,
        stats.unknown_labels.len()
    );
    Ok(())
}

/// Input that can hold no spans: a `.txt` file, `--from text`, or a directory of `.txt` files only.
fn is_plain_text(p: &std::path::Path, read: &ReadArgs) -> bool {
    if let Some(f) = read.from {
        return matches!(f, crate::corpus_args::FormatArg::Text);
    }
    if p.is_file() {
        return p.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    }
    p.is_dir() && matches!(corpus::Format::detect(p), Ok(corpus::Format::Text))
}
