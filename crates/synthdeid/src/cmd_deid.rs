//! `deid`: find PHI with a trained model (or take the input's own spans) and redact, mask or
//! replace it with consistent surrogates.

use crate::corpus_args::ReadArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use corpus::{write_corpus, Document};
use std::io::Read;
use std::path::{Path, PathBuf};

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
#[command(after_long_help = "Surrogates: names keep their number of parts, gender and capitalisation; streets keep their type \
word and number layout; IDs keep length, digit/letter positions and separators (valid DNI/NIE letters); dates move by \
one secret offset per document (or per input with --date-shift per-corpus) and keep their written format; ages move \
by a small amount in their own unit; e-mails, phones, hospitals, countries, professions get fakes of the same kind. \
The same original always gets the same surrogate; an HMAC of --key decides (without a key, one derived from --seed: \
reproducible but NOT secret). A replaced span never gets an original PHI string of the input back, but some values \
are kept by design: sex markers (H, M, varón, mujer) and kinship words (madre, hijo) stay as written (the label map's \
keep kinds, see --labels).\n\n\
Output: the new text and the new spans (so the de-identified corpus is itself annotated): BRAT directory or JSONL by \
--out's path; from stdin without --out, the text goes to stdout. --mapping-out writes original → replacement (PHI!) \
for users who must be able to reverse it; it is off by default.")]
pub struct DeidArgs {
    /// A trained NER model directory (transformer or perceptron, e.g. a run's stages/annotator-*/model): finds the PHI.
    #[arg(long, required_unless_present = "spans_from_input", conflicts_with = "spans_from_input")]
    pub model: Option<PathBuf>,
    /// With --model: documents predicted at a time (default: one per core); the spans do not depend on it.
    #[arg(long, value_name = "N", requires = "model")]
    pub jobs: Option<usize>,
    /// With --model: the encoder's number format in prediction, f32 or bf16 (see `ner predict --help`).
    #[arg(long, default_value = "f32", value_name = "P")]
    pub precision: ner::Precision,
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
    /// Surrogate language: es, en, sv, de (default: detected from the input's text; English's lists where it is
    /// none of them).
    #[arg(long)]
    pub language: Option<String>,
    /// Label → surrogate-kind map (TOML); default: MEDDOCAN's 22 labels (crates/deid/data/labels_meddocan.toml). Labels
    /// the map does not list get a kind guessed from their name (NAME_DOCTOR → name, DATUM → date; the summary names
    /// each guess); `[surrogate] guess_unknown = false` in the map turns that off.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Write the mapping (original span → replacement) as JSONL. Contains PHI: created mode 0600, and never
    /// the --out or --input path nor inside the --out directory.
    #[arg(long)]
    pub mapping_out: Option<PathBuf>,
    /// Replace an existing --out: a non-empty file, or a directory holding documents (its older .txt/.ann
    /// files are removed so that only the new corpus remains). Without it such an --out is refused.
    #[arg(long)]
    pub force: bool,
    /// Only shard I of N (I from 0) of the input documents; `synthdeid merge` joins the N outputs into the unsharded one.
    /// Surrogates stay consistent across shards: each shard reads every document's spans (so with surrogates it needs
    /// --spans-from-input; with --model, use --mode redact/mask or annotate first).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<corpus::shard::Shard>,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn deid(a: DeidArgs) -> Result<()> {
    if a.key.as_deref() == Some("") {
        bail!("--key (or SYNTHDEID_KEY) is empty: an empty key is no secret; give a long random key (e.g. from `openssl rand -hex 32`), or leave the key out for the seed's reproducible, non-secret one");
    }
    check_outputs(&a)?;
    let started = std::time::Instant::now();
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
    let shard = a.shard.unwrap_or_default();
    let surrogates = matches!(a.mode, ModeArg::Surrogate);
    if !shard.is_whole() && from_stdin {
        bail!("--shard needs an --input corpus (stdin is one document)");
    }
    if !shard.is_whole() && surrogates && a.model.is_some() {
        bail!(
            "--shard with --model and surrogates: consistent surrogates need every document's PHI spans (the same original gets \
             the same surrogate in every shard, and no original of the input comes back), which the model would have to find in \
             all documents; annotate the input first (the annotations merged with `synthdeid merge`), then run \
             `deid --spans-from-input --shard {shard}` (fast), or use --mode redact or mask (per document)"
        );
    }
    // Redact and mask are per document: a shard handles its own. Surrogates see every document
    // (cheap without a model) and the shard's are written.
    let written = shard.range(docs.len());
    let docs = if surrogates { docs } else { docs[written.clone()].to_vec() };
    let written = if surrogates { written } else { 0..docs.len() };
    // With a model: each document's prediction and, below, its rewrite, timed (single-note latency).
    let mut latencies = None;
    let jobs = a.jobs.unwrap_or_else(ner::default_jobs).max(1);
    let docs = if let Some(model_dir) = &a.model {
        let model = ner::load_tagger_at(model_dir, None, a.precision).with_context(|| format!("loading the NER model {}", model_dir.display()))?;
        let (pred, l) = ner::predict_each(model.as_ref(), &docs, jobs, &crate::bars::Bars::new())?;
        latencies = Some(l);
        pred
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
    // Detected from the text unless given; too little text to tell falls back to English's lists, and says so.
    let (language, how) = match &a.language {
        Some(l) => (l.parse().map_err(|e| anyhow!("--language: {e}"))?, ""),
        None => {
            let detected = lang::detect(docs.iter().map(|d| d.text.as_str()));
            let how = if detected == lang::Language::Other { " (not detected: too little text or another language; --language sets it)" } else { " (detected; --language sets it)" };
            (deid::augment::surrogate_language(detected), how)
        }
    };
    let mut options = deid::Options::default().with_seed(a.seed).with_language(language);
    if let Some(k) = &a.key {
        options = options.with_key(k.as_bytes().to_vec());
    }
    if let Some(f) = &a.key_file {
        let key = std::fs::read(f).with_context(|| format!("--key-file {}", f.display()))?;
        if key.iter().all(|b| b.is_ascii_whitespace()) {
            bail!("--key-file {}: the file is empty (or only whitespace): an empty key is no secret; put a long random key in it", f.display());
        }
        options = options.with_key(key);
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
    let (out_docs, mapping, stats) = deid::deidentify_corpus_each(&docs, mode, &options, |i, took| {
        if let Some(l) = latencies.as_mut() {
            l.add(i, took);
        }
    })
    .map_err(|e| anyhow!(e))?;
    let (out_docs, mapping) = if written.len() == out_docs.len() {
        (out_docs, mapping)
    } else {
        let ids: std::collections::HashSet<&str> = out_docs[written.clone()].iter().map(|d| d.id.as_str()).collect();
        let mapping: Vec<_> = mapping.into_iter().filter(|m| ids.contains(m.doc_id.as_str())).collect();
        (out_docs[written.clone()].to_vec(), mapping)
    };
    let secs = t0.elapsed().as_secs_f64();
    match &a.out {
        Some(p) => {
            write_corpus(p, None, &out_docs).map_err(|e| anyhow!(e))?;
            if a.force && p.is_dir() {
                remove_older_documents(p, &out_docs)?;
            }
        }
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
        fsutil::atomic_write_private(p, s.as_bytes()).map_err(|e| anyhow!(e))?;
    }
    if !shard.is_whole() {
        eprintln!("shard {shard}: wrote {} document(s){}", out_docs.len(), if surrogates { format!(" of the {} read for consistent surrogates", docs.len()) } else { String::new() });
    }
    // Label names and kinds only: no document text.
    let guessed = if stats.guessed_kinds.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = stats.guessed_kinds.iter().map(|(l, g)| format!("{l}→{} ({})", g.kind, g.spans)).collect();
        format!("; guessed kinds: {}", list.join(", "))
    };
    // Redact and mask write no surrogate: no language to name.
    let language_line = if surrogates { format!("; surrogate language: {}{how}", language.as_str()) } else { String::new() };
    eprintln!(
        "de-identified {} document(s), {} span(s) in {:.2} s ({:.0} documents/s){language_line}; dates not parsed (digits replaced): {}; unknown labels: {}{guessed}",
        stats.documents,
        stats.spans,
        secs,
        stats.documents as f64 / secs.max(1e-9),
        stats.dates_unparsed,
        stats.unknown_labels.len()
    );
    if let Some(l) = &latencies {
        eprintln!("speed: {}", l.line("documents", &at_a_time("prediction + rewrite", jobs), started.elapsed()));
    }
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

/// The path as the file system resolves it: canonical where it exists, else its canonical parent
/// joined with its name (so `o.jsonl`, `./o.jsonl` and `dir/../o.jsonl` compare equal).
fn resolved(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (parent.canonicalize(), p.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// Refuses outputs that would overwrite the input, mix with older documents, or put the mapping
/// (PHI in clear) over or inside the de-identified corpus. Runs before anything is read or written.
fn check_outputs(a: &DeidArgs) -> Result<()> {
    let input = a.input.as_deref().map(resolved);
    if let Some(m) = &a.mapping_out {
        let rm = resolved(m);
        if let Some(o) = &a.out {
            let ro = resolved(o);
            if rm == ro {
                bail!("--mapping-out {} is the --out path: the mapping holds the originals in clear and would replace the de-identified corpus; give it another path, outside the output", m.display());
            }
            if corpus::Format::for_output(o) == corpus::Format::Brat && rm.starts_with(&ro) {
                bail!("--mapping-out {} lies inside the --out directory {}: the mapping holds the originals in clear and would travel with the de-identified corpus; write it outside", m.display(), o.display());
            }
        }
        if input.as_ref().is_some_and(|i| rm == *i) {
            bail!("--mapping-out {} is the --input: it would overwrite the input; give it another path", m.display());
        }
    }
    let Some(o) = &a.out else { return Ok(()) };
    let ro = resolved(o);
    if let Some(i) = &input {
        if ro == *i {
            bail!("--out {} is the --input: de-identifying would overwrite the original documents; write to another path", o.display());
        }
        let doc_file = i.extension().is_some_and(|x| x == "txt" || x == "ann");
        if corpus::Format::for_output(o) == corpus::Format::Brat && doc_file && i.parent() == Some(ro.as_path()) {
            bail!("--input {} lies in the --out directory {}: the output would overwrite or mix with it; write to another directory", a.input.as_ref().unwrap().display(), o.display());
        }
    }
    if a.force {
        return Ok(());
    }
    if o.is_dir() {
        let has_docs = std::fs::read_dir(o)
            .with_context(|| format!("--out {}: cannot list the directory", o.display()))?
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "txt" || x == "ann"));
        if has_docs {
            bail!("--out {} already holds documents (.txt/.ann): the new ones would mix with them; choose an empty or new directory, or pass --force to replace them", o.display());
        }
    } else if o.is_file() && std::fs::metadata(o).map(|m| m.len() > 0).unwrap_or(false) {
        bail!("--out {} already exists: choose a new path, or pass --force to replace it", o.display());
    } else if o.exists() && !o.is_file() {
        bail!("--out {} exists and is neither a file nor a directory; choose another path", o.display());
    }
    Ok(())
}

/// With --force on an existing BRAT directory: removes the .txt/.ann files of documents this run did not write.
fn remove_older_documents(dir: &Path, docs: &[Document]) -> Result<()> {
    let ids: std::collections::HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let mut removed = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("--out {}: cannot list the directory", dir.display()))? {
        let p = e?.path();
        let doc_file = p.is_file() && p.extension().is_some_and(|x| x == "txt" || x == "ann");
        if doc_file && p.file_stem().is_some_and(|s| !ids.contains(s.to_string_lossy().as_ref())) {
            std::fs::remove_file(&p).with_context(|| format!("--force: cannot remove the older {}", p.display()))?;
            removed += 1;
        }
    }
    if removed > 0 {
        eprintln!("--force: removed {removed} older .txt/.ann file(s) from {}", dir.display());
    }
    Ok(())
}

/// What a speed line's latency covers, and how many documents ran beside each other meanwhile.
pub(crate) fn at_a_time(what: &str, jobs: usize) -> String {
    if jobs > 1 {
        format!("{what}, {jobs} documents at a time")
    } else {
        what.to_string()
    }
}
