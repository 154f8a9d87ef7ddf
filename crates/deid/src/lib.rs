//! De-identification of annotated documents.
//!
//! Given a [`corpus::Document`] and its PHI spans (gold, or predicted by a model), [`deidentify`] writes a
//! new document in one of three [`Mode`]s, with new spans whose character offsets are exact in the new
//! text, and a [`MappingEntry`] per span (original → replacement). The library prints nothing; the
//! mapping holds PHI and is for callers who must be able to reverse the process.
//!
//! * [`Mode::Redact`]: each span becomes `[LABEL]`.
//! * [`Mode::Mask`]: each span becomes the mask character (`*` by default) once per character, **except
//!   whitespace, which is kept** (so the number of words and line breaks stays the same and tokenisers see
//!   the same token count; the length of each word is the only thing left).
//! * [`Mode::Surrogate`]: each span becomes a realistic fake of its [`Kind`] (see [`labels`] and
//!   `data/labels_meddocan.toml`), chosen by HMAC-SHA256 under a key so that the same original always gets
//!   the same surrogate, a different key gives different surrogates, and no surrogate equals its original.
//!   Dates move by one offset per document (or patient, or corpus) so intervals are kept; ages move by a
//!   small per-document amount; identifiers keep their format; sex markers and kinship words are kept (a
//!   label-map option). See [`surrogate`] for the details of the choice.
//!
//! What surrogate mode does per kind (MEDDOCAN labels in brackets):
//!
//! | Kind | Surrogate |
//! |---|---|
//! | `name` (NOMBRE_*) | each part: a given name of the same gender (if the part is a known given name) or a surname; particles (`de la`), titles (`Dr.`) kept; initials (`M.`, `Mª`) get another letter; number of parts, hyphens and capitalisation (ALL CAPS, lower, Title) kept |
//! | `street` (CALLE) | type word (`c/`, `Calle`, `Avda.`, `Street`) and layout words (`bajo`, `dcha`, `s/n`) kept; street name replaced; every number re-drawn with the same digit count |
//! | `territory` (TERRITORIO) | with digits: a postal code of the same layout (5 digits: valid province prefix 01–52); else a province for a province, a region for a region, otherwise a town |
//! | `country` (PAIS), `profession` (PROFESION) | another entry of the language's list, capitalisation kept |
//! | `hospital`, `institution`, `health_center` | leading type words kept (`Hospital Universitario`, `Centro de Salud`, `Facultad de`), the distinctive rest replaced (a saint / place / surname, or a town after `de`); bare brand names → invented company; names made only of type words → a whole template name |
//! | `email` | a fake `initial+surname` or `given.surname` local part (separator and digit count kept) at a public webmail domain, or at an invented institutional domain with the original's TLD |
//! | `phone`, `fax` | first digit kept, other digits random, separators kept |
//! | `id` (ID_*) | same length, digit/letter positions, separators and letter case; 8 digits + letter → valid DNI/NIF check letter; X/Y/Z + 7 digits + letter → valid NIE |
//! | `age` (EDAD) | the number (digits or Spanish words) moves by the document's delta (±1 or ±2 in its own unit), never below 1; unit kept (singular/plural fixed) |
//! | `date` (FECHAS) | shifted by the document's offset (±(1–2 years + 31–330 days)), written format kept; unparseable dates: years moved, months rotated, other digits random, counted |
//! | `sex` (SEXO) | kept (keep kind); if not kept: swapped (H↔M, varón↔mujer, niño↔niña) |
//! | `relative` (FAMILIARES) | kinship words kept (keep kind; else mapped to another kinship word of the same gender); numbers in them move like ages; a proper name written there is replaced as a name |
//! | `other` (OTROS), unknown labels | generic format-preserving letters → letters (vowel/consonant), digits → digits |
//!
//! A label the label map does not list gets the kind its name suggests ([`labels::guess_kind`]: `NAME_DOCTOR`
//! → name, `DATUM` → date, `Telefonnummer` → phone), counted per label in [`Stats::guessed_kinds`]; only a
//! label no rule recognises is unknown (generic replacement, [`Stats::unknown_labels`]).
//!
//! Anything a generator cannot handle falls back to the generic replacement ([`Outcome::Generic`]), which
//! is never equal to the original (a last resort masks it).
//!
//! Spans that touch are replaced independently. Overlapping spans are an error by default
//! ([`OverlapPolicy::Error`]); [`OverlapPolicy::Merge`] merges each group of overlapping spans into one
//! span covering them all, labelled like its longest member.

pub mod age;
pub mod augment;
pub mod date;
mod error;
pub mod fpe;
mod keyed;
pub mod labels;
pub mod leak;
pub mod surrogate;
mod text;
pub mod vocab;

use std::collections::{BTreeMap, HashMap};

use corpus::{CharIndex, Document, Span};
use serde::{Deserialize, Serialize};

pub use error::DeidError;
pub use labels::{guess_kind, Kind, LabelMap};
pub use leak::{leak_report, leaked_strings, LeakRow};
pub use surrogate::{CorpusVocab, Outcome, PhiWords, SurrogateSource, Surrogator};
pub use vocab::Language;

/// How each PHI span is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Redact,
    Mask,
    Surrogate,
}

impl std::str::FromStr for Mode {
    type Err = DeidError;
    fn from_str(s: &str) -> Result<Self, DeidError> {
        match s.to_ascii_lowercase().as_str() {
            "redact" => Ok(Mode::Redact),
            "mask" => Ok(Mode::Mask),
            "surrogate" | "pseudonymise" | "pseudonymize" => Ok(Mode::Surrogate),
            _ => Err(DeidError::Invalid(format!("unknown mode {s:?} (redact, mask, surrogate)"))),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Redact => "redact",
            Mode::Mask => "mask",
            Mode::Surrogate => "surrogate",
        })
    }
}

/// Which documents share one date offset (and one age delta).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DateShift {
    /// Each document gets its own offset (derived from the key and the document id).
    #[default]
    PerDocument,
    /// One offset for every document (derived from the key alone).
    PerCorpus,
    /// Documents of the same patient share an offset: document id → patient key. Documents missing from
    /// the map fall back to their own id.
    PerPatient(HashMap<String, String>),
}

/// What to do with overlapping spans (spans that only touch are always fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Stop with [`DeidError::Overlap`] naming both spans (offsets and labels only).
    #[default]
    Error,
    /// Merge each group of overlapping spans into one covering span, labelled like the longest member
    /// (the earliest on ties); counted in [`Stats::merged_overlaps`].
    Merge,
}

/// Options of a de-identification run; `Options::default()` is MEDDOCAN, Spanish, seed 0, no key.
#[derive(Clone)]
pub struct Options {
    /// Secret key for the HMAC that decides every surrogate. With the same key, the same original gets the
    /// same surrogate across runs and corpora. `None`: a key derived from `seed` (reproducible, **not
    /// secret**: anyone who knows the seed and this code can recompute the mapping).
    pub key: Option<Vec<u8>>,
    /// Seed of the per-run key when `key` is `None`.
    pub seed: u64,
    /// Language of the surrogate vocabularies and the default numeric date order.
    pub language: Language,
    /// Label → kind map (and which kinds keep recognised values).
    pub labels: LabelMap,
    pub date_shift: DateShift,
    pub overlap: OverlapPolicy,
    /// Character of [`Mode::Mask`].
    pub mask_char: char,
    /// In [`deidentify_corpus`], forbid every original PHI string of the corpus as a surrogate (so no
    /// surrogate reproduces any original of the input, not just of its own document). Default `true`.
    pub forbid_originals: bool,
    /// Also hold dates and ages to the forbidden set (they are otherwise only kept from equalling an
    /// original of their own document). Costs interval consistency where a shifted value collides; such
    /// re-draws are counted in [`Stats::consistency_breaks`]. Default `false`.
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key: None,
            seed: 0,
            language: Language::Es,
            labels: LabelMap::meddocan(),
            date_shift: DateShift::PerDocument,
            overlap: OverlapPolicy::Error,
            mask_char: '*',
            forbid_originals: true,
            strict: false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("seed", &self.seed)
            .field("language", &self.language)
            .field("labels", &self.labels)
            .field("date_shift", &self.date_shift)
            .field("overlap", &self.overlap)
            .field("mask_char", &self.mask_char)
            .field("forbid_originals", &self.forbid_originals)
            .field("strict", &self.strict)
            .finish()
    }
}

impl Options {
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_language(mut self, language: Language) -> Self {
        self.language = language;
        self
    }
    pub fn with_labels(mut self, labels: LabelMap) -> Self {
        self.labels = labels;
        self
    }
    pub fn with_date_shift(mut self, date_shift: DateShift) -> Self {
        self.date_shift = date_shift;
        self
    }
    pub fn with_overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.overlap = overlap;
        self
    }
}

/// One replaced span: where it was, what it said, and what replaced it. Holds PHI: write it only where the
/// user asked for a reversible mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingEntry {
    pub doc_id: String,
    pub label: String,
    /// The label map's kind, else the kind guessed from the label's name; `None` for labels neither knows.
    pub kind: Option<Kind>,
    /// Character offsets in the original text.
    pub start: usize,
    pub end: usize,
    pub original: String,
    /// Character offsets in the new text.
    pub new_start: usize,
    pub new_end: usize,
    pub replacement: String,
    pub outcome: Outcome,
}

/// Counts of one label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelStats {
    pub spans: usize,
    pub surrogate: usize,
    pub kept: usize,
    pub generic: usize,
    pub redacted: usize,
    pub masked: usize,
}

/// A label's guessed kind and how many spans were replaced as it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuessedKind {
    pub kind: Kind,
    pub spans: usize,
}

/// Counts of a run (no text in here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub documents: usize,
    pub spans: usize,
    pub by_label: BTreeMap<String, LabelStats>,
    /// Spans whose label is not in the label map and whose kind could not be guessed from its name (they got
    /// the generic replacement), per label.
    pub unknown_labels: BTreeMap<String, usize>,
    /// Spans whose label is not in the label map but whose kind was guessed from its name, per label: the
    /// kind and the number of spans. (Left out of the JSON when empty, as it is for fully mapped labels.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guessed_kinds: BTreeMap<String, GuessedKind>,
    /// Date spans the date parser did not understand (they got a format-preserving replacement: years
    /// moved, month names rotated, other digits random; never left unchanged).
    pub dates_unparsed: usize,
    /// Times a remembered or first-choice surrogate had to be re-drawn because it collided with an original
    /// (consistency or, for dates/ages, interval preservation was given up for that value).
    pub consistency_breaks: usize,
    /// Overlapping spans merged away under [`OverlapPolicy::Merge`].
    pub merged_overlaps: usize,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.documents += o.documents;
        self.spans += o.spans;
        for (l, s) in &o.by_label {
            let e = self.by_label.entry(l.clone()).or_default();
            e.spans += s.spans;
            e.surrogate += s.surrogate;
            e.kept += s.kept;
            e.generic += s.generic;
            e.redacted += s.redacted;
            e.masked += s.masked;
        }
        for (l, n) in &o.unknown_labels {
            *self.unknown_labels.entry(l.clone()).or_default() += n;
        }
        for (l, g) in &o.guessed_kinds {
            self.guessed_kinds.entry(l.clone()).or_insert(GuessedKind { kind: g.kind, spans: 0 }).spans += g.spans;
        }
        self.dates_unparsed += o.dates_unparsed;
        self.consistency_breaks += o.consistency_breaks;
        self.merged_overlaps += o.merged_overlaps;
    }
}

/// A de-identified document with its mapping and counts.
#[derive(Debug, Clone)]
pub struct Deidentified {
    /// New text; new spans (same labels, sorted) whose offsets are exact in the new text.
    pub doc: Document,
    pub mapping: Vec<MappingEntry>,
    pub stats: Stats,
}

/// Validates, sorts and (under [`OverlapPolicy::Merge`]) merges a document's spans.
fn prepare_spans(doc: &Document, len: usize, policy: OverlapPolicy) -> Result<(Vec<Span>, usize), DeidError> {
    let mut spans = doc.spans.clone();
    for s in &spans {
        if s.start >= s.end {
            return Err(DeidError::EmptySpan {
                doc: doc.id.clone(),
                start: s.start,
                end: s.end,
                label: s.label.clone(),
            });
        }
        if s.end > len {
            return Err(DeidError::SpanOutOfRange {
                doc: doc.id.clone(),
                start: s.start,
                end: s.end,
                label: s.label.clone(),
                len,
            });
        }
    }
    spans.sort_by(|a, b| (a.start, b.end, &a.label).cmp(&(b.start, a.end, &b.label)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    let mut merged = 0;
    for s in spans {
        if let Some(last) = out.last_mut() {
            if s.start < last.end {
                match policy {
                    OverlapPolicy::Error => {
                        return Err(DeidError::Overlap {
                            doc: doc.id.clone(),
                            a_start: last.start,
                            a_end: last.end,
                            a_label: last.label.clone(),
                            b_start: s.start,
                            b_end: s.end,
                            b_label: s.label.clone(),
                        })
                    }
                    OverlapPolicy::Merge => {
                        // `last` is the longest so far of its group (sorted by start, then longest first);
                        // keep its label unless the newcomer is strictly longer.
                        if s.len() > last.len() {
                            last.label = s.label.clone();
                        }
                        last.end = last.end.max(s.end);
                        merged += 1;
                        continue;
                    }
                }
            }
        }
        out.push(s);
    }
    Ok((out, merged))
}

fn mask(original: &str, c: char) -> String {
    original.chars().map(|x| if x.is_whitespace() { x } else { c }).collect()
}

/// De-identifies one document. In surrogate mode, `ctx` carries the key and the consistency memory; use
/// the same `Surrogator` for every document of a corpus. Redact and mask modes only read its options.
pub fn deidentify(doc: &Document, mode: Mode, ctx: &mut Surrogator) -> Result<Deidentified, DeidError> {
    let idx = CharIndex::new(&doc.text);
    let (spans, merged) = prepare_spans(doc, idx.len(), ctx.options().overlap)?;
    let text = doc.text.as_str();
    if mode == Mode::Surrogate {
        ctx.begin_document(&doc.id, spans.iter().map(|s| (s.label.as_str(), idx.slice(text, s.start, s.end))));
    }
    let before = ctx.counters;
    let mut stats = Stats { documents: 1, merged_overlaps: merged, ..Stats::default() };
    let mut out = String::with_capacity(text.len() + 16 * spans.len());
    let mut out_chars = 0usize;
    let mut cursor = 0usize;
    let mut new_spans = Vec::with_capacity(spans.len());
    let mut mapping = Vec::with_capacity(spans.len());
    for s in &spans {
        out.push_str(idx.slice(text, cursor, s.start));
        out_chars += s.start - cursor;
        let original = idx.slice(text, s.start, s.end);
        let known = ctx.options().labels.kind_of(&s.label);
        let kind = known.or_else(|| ctx.options().labels.effective_kind(&s.label));
        let (replacement, outcome) = match mode {
            Mode::Redact => (format!("[{}]", s.label), Outcome::Redacted),
            Mode::Mask => (mask(original, ctx.options().mask_char), Outcome::Masked),
            Mode::Surrogate => ctx.replace(&s.label, original),
        };
        let n = replacement.chars().count();
        out.push_str(&replacement);
        new_spans.push(Span::new(out_chars, out_chars + n, s.label.clone()));
        mapping.push(MappingEntry {
            doc_id: doc.id.clone(),
            label: s.label.clone(),
            kind,
            start: s.start,
            end: s.end,
            original: original.to_string(),
            new_start: out_chars,
            new_end: out_chars + n,
            replacement,
            outcome,
        });
        out_chars += n;
        cursor = s.end;
        stats.spans += 1;
        let ls = stats.by_label.entry(s.label.clone()).or_default();
        ls.spans += 1;
        match outcome {
            Outcome::Redacted => ls.redacted += 1,
            Outcome::Masked => ls.masked += 1,
            Outcome::Surrogate => ls.surrogate += 1,
            Outcome::Kept => ls.kept += 1,
            Outcome::Generic => ls.generic += 1,
        }
        match (known, kind) {
            (Some(_), _) => {}
            (None, Some(k)) => {
                stats.guessed_kinds.entry(s.label.clone()).or_insert(GuessedKind { kind: k, spans: 0 }).spans += 1
            }
            (None, None) => *stats.unknown_labels.entry(s.label.clone()).or_default() += 1,
        }
    }
    out.push_str(idx.slice(text, cursor, idx.len()));
    stats.dates_unparsed = ctx.counters.dates_unparsed - before.dates_unparsed;
    stats.consistency_breaks = ctx.counters.consistency_breaks - before.consistency_breaks;
    Ok(Deidentified { doc: Document { id: doc.id.clone(), text: out, spans: new_spans }, mapping, stats })
}

/// De-identifies a corpus with one [`Surrogator`] (consistent across documents). In surrogate mode with
/// `options.forbid_originals`, every original PHI string of the corpus is forbidden as a surrogate first.
/// (A caller that streams documents can do the same with [`Surrogator::forbid_document_originals`] or
/// [`Surrogator::forbid`] before calling [`deidentify`].)
pub fn deidentify_corpus(
    docs: &[Document],
    mode: Mode,
    options: &Options,
) -> Result<(Vec<Document>, Vec<MappingEntry>, Stats), DeidError> {
    deidentify_corpus_each(docs, mode, options, |_, _| {})
}

/// [`deidentify_corpus`], calling `each(i, took)` once document `i` is rewritten, with the time its
/// rewrite took (for per-document latency; the scan for originals before the first is in none).
pub fn deidentify_corpus_each(
    docs: &[Document],
    mode: Mode,
    options: &Options,
    mut each: impl FnMut(usize, std::time::Duration),
) -> Result<(Vec<Document>, Vec<MappingEntry>, Stats), DeidError> {
    let mut ctx = Surrogator::new(options.clone());
    if mode == Mode::Surrogate && options.forbid_originals {
        for d in docs {
            ctx.forbid_document_originals(d);
        }
    }
    let mut out = Vec::with_capacity(docs.len());
    let mut mapping = Vec::new();
    let mut stats = Stats::default();
    for (i, d) in docs.iter().enumerate() {
        let t = std::time::Instant::now();
        let r = deidentify(d, mode, &mut ctx)?;
        out.push(r.doc);
        mapping.extend(r.mapping);
        stats.merge(&r.stats);
        each(i, t.elapsed());
    }
    Ok((out, mapping, stats))
}
