//! `stats`, `convert`, `split`: corpus commands.

use crate::corpus_args::{FormatArg, ReadArgs};
use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};
use corpus::split::{k_fold, take_fraction, Purpose};
use corpus::{write_corpus, Document, Format};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(after_long_help = "Alignment: a tagger labels word tokens, so a span whose start or end falls inside a token \
cannot be predicted exactly. `stats` counts such spans (the goal is 0) and spans that the sentence splitter \
cuts, and lists them (document id and offsets, never text) with --list-misaligned.")]
pub struct StatsArgs {
    /// Corpus to describe (BRAT directory, .jsonl, .conll, or text directory).
    pub path: PathBuf,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// List misaligned and sentence-cut spans (document id, label, offsets).
    #[arg(long)]
    pub list_misaligned: bool,
}

pub fn stats(a: StatsArgs) -> Result<()> {
    let docs = a.read.read(&a.path)?;
    let st = corpus::stats::stats(&docs);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    println!("{}", a.path.display());
    println!("  documents            {:>10}", st.documents);
    println!("  documents with BOM   {:>10}", st.documents_with_bom);
    println!("  characters           {:>10}", st.characters);
    println!("  word tokens          {:>10}", st.tokens);
    println!("  sentences            {:>10}", st.sentences);
    println!("  PHI spans            {:>10}", st.spans);
    println!("  spans not on token boundaries {:>3}", st.spans_not_token_aligned.len());
    println!("  spans cut by sentence splits  {:>3}", st.spans_cut_by_sentences.len());
    if !st.spans_per_label.is_empty() {
        let width = st.spans_per_label.keys().map(|k| k.len()).max().unwrap_or(5).max(5);
        println!("\n  {:<width$}  {:>7}  {:>6}", "label", "spans", "share");
        let mut rows: Vec<_> = st.spans_per_label.iter().collect();
        rows.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        for (label, n) in rows {
            println!("  {label:<width$}  {n:>7}  {:>5.1}%", 100.0 * *n as f64 / st.spans as f64);
        }
    }
    if a.list_misaligned {
        for (what, list) in [("not token-aligned", &st.spans_not_token_aligned), ("cut by a sentence split", &st.spans_cut_by_sentences)] {
            for s in list {
                println!("  {what}: {} {} {}..{}", s.document, s.label, s.start, s.end);
            }
        }
    }
    Ok(())
}

#[derive(Args)]
#[command(after_long_help = "Formats come from the paths (a directory is BRAT, .jsonl is JSONL, .conll/.bio is CoNLL); \
--from/--to override. CoNLL export tags word tokens with BIO and writes `# doc_id = ID` before each \
document; importing CoNLL rebuilds texts from tokens (single spaces), so offsets change but labels and \
surfaces do not. Writes are atomic per file.")]
pub struct ConvertArgs {
    /// Corpus to read.
    pub input: PathBuf,
    /// Where to write (a directory for BRAT, text, i2b2 XML and UIMA JSON; a file for JSONL/CoNLL).
    pub output: PathBuf,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output format (default: from the output path).
    #[arg(long, value_enum)]
    pub to: Option<FormatArg>,
}

pub fn convert(a: ConvertArgs) -> Result<()> {
    let docs = a.read.read(&a.input)?;
    write(&a.output, a.to.map(Into::into), &docs)?;
    let spans: usize = docs.iter().map(|d| d.spans.len()).sum();
    eprintln!("wrote {} documents, {spans} spans to {}", docs.len(), a.output.display());
    Ok(())
}

fn write(path: &Path, format: Option<Format>, docs: &[Document]) -> Result<()> {
    write_corpus(path, format, docs).map_err(|e| anyhow!(e))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SplitKind {
    /// A data-ratio subset (the paper's 5% / 25% / 50% / 95%): OUT/subset and OUT/rest. Subsets of one
    /// seed are nested: the 5% set lies inside the 25% set.
    Subset,
    /// The paper's held-out prompt set: OUT/prompts (the ratio) and OUT/train (the rest).
    Prompts,
    /// k-fold cross-validation: OUT/fold-1/{train,test} … OUT/fold-K/{train,test}.
    Folds,
}

#[derive(Args)]
#[command(after_long_help = "Documents are ordered by SHA-256 of (seed, purpose, id): the same seed gives the same \
documents on any machine. Outputs keep the input format unless --to says otherwise.")]
pub struct SplitArgs {
    /// Corpus to split.
    pub input: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = SplitKind::Subset)]
    pub kind: SplitKind,
    /// Share of documents to take (subset, prompts), greater than 0 and at most 1.
    #[arg(long, default_value_t = 0.05)]
    pub ratio: f64,
    /// Number of folds (folds).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output format (default: the input's).
    #[arg(long, value_enum)]
    pub to: Option<FormatArg>,
}

pub fn split(a: SplitArgs) -> Result<()> {
    let docs = a.read.read(&a.input)?;
    let format: Format = match a.to {
        Some(f) => f.into(),
        None => match a.read.from {
            Some(f) => f.into(),
            None => Format::detect(&a.input).map_err(|e| anyhow!(e))?,
        },
    };
    let name = |base: &str| -> PathBuf {
        match format {
            Format::Jsonl => a.out.join(format!("{base}.jsonl")),
            Format::Conll => a.out.join(format!("{base}.conll")),
            Format::Brat | Format::Text | Format::I2b2Xml | Format::UimaJson => a.out.join(base),
        }
    };
    let sets: Vec<(String, Vec<Document>)> = match a.kind {
        SplitKind::Subset => {
            let (t, r) = take_fraction(&docs, a.ratio, a.seed, Purpose::Subset).map_err(|e| anyhow!("--ratio: {e}"))?;
            vec![("subset".into(), t), ("rest".into(), r)]
        }
        SplitKind::Prompts => {
            let (train, prompts) = corpus::split::prompt_split(&docs, a.ratio, a.seed).map_err(|e| anyhow!("--ratio: {e}"))?;
            vec![("prompts".into(), prompts), ("train".into(), train)]
        }
        SplitKind::Folds => {
            if a.folds < 2 {
                bail!("--folds {}: need at least 2 folds", a.folds);
            }
            k_fold(&docs, a.folds, a.seed)
                .map_err(|e| anyhow!("--folds: {e}"))?
                .into_iter()
                .enumerate()
                .flat_map(|(i, (train, test))| [(format!("fold-{}/train", i + 1), train), (format!("fold-{}/test", i + 1), test)])
                .collect()
        }
    };
    for (base, set) in &sets {
        write(&name(base), Some(format), set)?;
        eprintln!("{:>6} documents → {}", set.len(), name(base).display());
    }
    Ok(())
}
