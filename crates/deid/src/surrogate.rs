//! The surrogate generator: keyed, consistent, and checked against the originals it must not reproduce.
//!
//! How a surrogate is chosen:
//! * Each replaceable *component* (a name part, a city, a street name, an identifier's letters and digits,
//!   ...) is normalised (lower case, accents folded, whitespace collapsed; identifiers: letters and digits
//!   only) and the surrogate for it is drawn from a ChaCha20 stream seeded with
//!   HMAC-SHA256(key, class, normalised original, attempt). The same original therefore gets the same
//!   surrogate everywhere the same key is used, and the choice cannot be guessed without the key.
//! * A candidate is rejected, and the next attempt drawn, when it equals the original, when it equals or
//!   contains (on word boundaries) an original of the current document (whole strings and name parts) or a
//!   string registered with [`Surrogator::forbid`] (e.g. a whole corpus's PHI), or when it is already the
//!   surrogate of a different original of the same class in the same document (and, while the vocabulary
//!   allows, in the whole run), so two patients never merge into one.
//! * The whole surrogate of a span is checked again: it must differ from the original, equal no forbidden
//!   string, and contain no original of its document. Kept parts (a street type, `Hospital Universitario`)
//!   are not held to the corpus-wide forbidden set, only generated parts are. Dates and ages, which are
//!   computed rather than drawn, are only kept from equalling an original of their own document (unless
//!   `Options::strict`).
//! * The first accepted surrogate of each component is remembered for the life of the `Surrogator`, so the
//!   mapping stays consistent across documents even where a retry was needed. If a remembered surrogate
//!   collides with an original of a later document, a new one is drawn and counted in
//!   `Stats::consistency_breaks`.
//! * Case style (lower / UPPER / Title) and layout (separators, number widths) come from the original
//!   occurrence, so `GARCÍA` and `García` get the same surrogate written the same way as the original.

use std::collections::{HashMap, HashSet};

use aho_corasick::AhoCorasick;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::age::shift_age;
use crate::date::{shift_date, soft_shift};
use crate::fpe::{canonical_alnum, id_canonical, phone_canonical, postal_canonical, random_like, render_alnum};
use crate::keyed::Keyed;
use crate::labels::Kind;
use crate::text::{apply_case, bounded_at, case_style, contains_word, fold_word, loose_norm, CaseStyle};
use crate::vocab::{self, given_gender, Gender, Language, Vocab};
use crate::{DateShift, Options};

/// What happened to one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Replaced by `[LABEL]`.
    Redacted,
    /// Replaced by the mask character.
    Masked,
    /// Replaced by a realistic surrogate of its kind.
    Surrogate,
    /// Kept as written (a recognised sex marker or kinship word of a keep kind).
    Kept,
    /// Replaced by a format-preserving random string (letters → letters, digits → digits): unknown labels,
    /// the `other` kind, and values a kind's generator could not parse (e.g. a date it does not understand).
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    GivenF,
    GivenM,
    Surname,
    Initial,
    City,
    Province,
    Region,
    Country,
    StreetName,
    /// The first part of a German compound street name ("Goethe" of "Goethestraße").
    StreetStem,
    StreetWord,
    OrgPlace,
    OrgName,
    Profession,
    Email,
    Id,
    Phone,
    Fax,
    Postal,
    Kin,
}

impl Class {
    fn tag(self) -> &'static [u8] {
        match self {
            Class::GivenF => b"given-f",
            Class::GivenM => b"given-m",
            Class::Surname => b"surname",
            Class::Initial => b"initial",
            Class::City => b"city",
            Class::Province => b"province",
            Class::Region => b"region",
            Class::Country => b"country",
            Class::StreetName => b"street-name",
            Class::StreetStem => b"street-stem",
            Class::StreetWord => b"street-word",
            Class::OrgPlace => b"org-place",
            Class::OrgName => b"org-name",
            Class::Profession => b"profession",
            Class::Email => b"email",
            Class::Id => b"id",
            Class::Phone => b"phone",
            Class::Fax => b"fax",
            Class::Postal => b"postal",
            Class::Kin => b"kin",
        }
    }
    /// Whether two different originals of this class must get different surrogates.
    fn injective(self) -> bool {
        !matches!(self, Class::Initial | Class::Kin | Class::StreetWord | Class::OrgPlace)
    }
    /// Whether candidates are checked against forbidden strings here (format-preserving classes are checked
    /// once written into the original's layout, by the whole-span check).
    fn component_checked(self) -> bool {
        !matches!(self, Class::Id | Class::Phone | Class::Fax | Class::Postal)
    }
}

/// Result of a kind's generator for one span.
enum Gen {
    Candidate(String),
    /// A computed value (a shifted date or age): checked like dates and ages (see `whole_ok`).
    Value(String),
    /// The value has no form this generator understands: use the generic replacement.
    Unparsed,
}

const ATTEMPTS: u32 = 64;
const INJECTIVE_ATTEMPTS: u32 = 56;
const RUN_INJECTIVE_ATTEMPTS: u32 = 16;
const SALTS: u32 = 8;

/// Counters the de-identifier reads after each document.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub consistency_breaks: usize,
    pub dates_unparsed: usize,
}

/// Holds the key, the vocabularies, the consistency memory and the forbidden strings. Use one per corpus
/// (or per run) so that the same original maps to the same surrogate in every document.
pub struct Surrogator {
    opts: Options,
    keyed: Keyed,
    vocab: &'static Vocab,
    cache: HashMap<(Class, String), String>,
    /// Surrogate → the original it was first given to, over the whole run and in the current document.
    used: HashMap<(Class, String), String>,
    doc_used: HashMap<(Class, String), String>,
    /// Forbidden whole strings (normalised).
    global: HashSet<String>,
    global_ac: Option<(AhoCorasick, Vec<String>)>,
    ac_dirty: bool,
    /// Originals and name parts of the current document (normalised), sorted and deduplicated, and an
    /// automaton over them: a candidate is checked in time linear in its length, not in their number
    /// (a scan of the list made one document with N names take O(N²)).
    doc_forbidden: Vec<String>,
    doc_ac: Option<AhoCorasick>,
    /// Strings no whole surrogate may contain on word boundaries (normalised; see
    /// [`Surrogator::forbid_within`]), and their automaton once built.
    within: Vec<String>,
    within_ac: Option<AhoCorasick>,
    date_offset: i64,
    age_delta: i64,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Surrogator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key, the mapping or the forbidden strings (they are PHI).
        f.debug_struct("Surrogator")
            .field("language", &self.opts.language)
            .field("remembered", &self.cache.len())
            .field("forbidden", &self.global.len())
            .finish_non_exhaustive()
    }
}

/// Whether `hay` contains one of `pats` (the automaton's patterns, in its order) on word boundaries.
/// Overlapping matches are all tried, so a bounded occurrence is found even next to an unbounded one.
fn contains_any_word(ac: &AhoCorasick, pats: &[String], hay: &str) -> bool {
    ac.find_overlapping_iter(hay).any(|m| {
        let p = &pats[m.pattern().as_usize()];
        let (first, last) = (p.chars().next().unwrap_or(' '), p.chars().next_back().unwrap_or(' '));
        bounded_at(hay, first, last, m.start(), m.end())
    })
}

/// Strings of one original that a surrogate of the same document must not reproduce: the whole
/// (normalised), and for person names each name part of two letters or more.
pub(crate) fn forbidden_forms(kind: Option<Kind>, text: &str) -> Vec<String> {
    let mut v = Vec::new();
    let whole = loose_norm(text);
    if whole.is_empty() {
        return v;
    }
    if matches!(kind, Some(Kind::Name) | Some(Kind::Relative)) {
        for part in whole.split(|c: char| c.is_whitespace() || c == '-') {
            let core = part.trim_matches(|c: char| !c.is_alphanumeric());
            if core.chars().filter(|c| c.is_alphabetic()).count() >= 2
                && !vocab::is_name_particle(core)
                && !vocab::is_name_title(core)
                && !vocab::is_kinship_word(core)
            {
                v.push(core.to_string());
            }
        }
    }
    v.push(whole);
    v
}

/// Where surrogate names, places and hospital names are drawn from: the language's built-in lists,
/// or those lists widened with the corpus's own strings ([`CorpusVocab`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurrogateSource {
    #[default]
    Lists,
    Corpus,
}

impl SurrogateSource {
    pub fn is_lists(&self) -> bool {
        *self == SurrogateSource::Lists
    }
}

/// Strings taken from an annotated corpus to widen the surrogate lists ([`Surrogator::widen_vocab`]): a
/// few hundred built-in names and places make every surrogate one of them, and a model trained on such
/// text learns those words, not the shape of a name (it stops a name at the first surname it has not
/// seen). Each list holds distinct strings in corpus order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpusVocab {
    /// Parts of person names that are not known given names, titles or particles.
    pub surnames: Vec<String>,
    /// Places without digits (cities, provinces, regions).
    pub cities: Vec<String>,
    /// The distinctive part of hospital names (after "Hospital Universitario", not after "de").
    pub hospital_names: Vec<String>,
}

impl CorpusVocab {
    /// From the spans of `docs`, their kinds from `labels`. A candidate is kept only where
    /// `allowed(candidate)` holds: the caller's privacy filter (hardening keeps none that shares a
    /// rare word with a training PHI string).
    pub fn from_documents(docs: &[corpus::Document], labels: &crate::LabelMap, language: Language, allowed: impl Fn(&str) -> bool) -> Self {
        let mut out = CorpusVocab::default();
        let mut seen: [HashSet<String>; 3] = Default::default();
        let mut add = |list: usize, s: &str, out: &mut CorpusVocab| {
            if allowed(s) && seen[list].insert(loose_norm(s)) {
                [&mut out.surnames, &mut out.cities, &mut out.hospital_names][list].push(s.to_string());
            }
        };
        let capitalised = |w: &str| w.chars().next().is_some_and(char::is_uppercase);
        // Words the corpus also writes outside its spans ("Servicio", "Médico", "Email" after a name the
        // annotator ran on) are ordinary words: as surrogate names they would teach a tagger to run on too.
        // (Places of several words keep theirs: "Buenos Aires", "Ciudad Real".)
        let ordinary = ordinary_words(docs);
        let has_ordinary = |s: &str| {
            s.split(|c: char| !c.is_alphabetic())
                .map(fold_word)
                .any(|w| w.chars().count() >= 3 && !vocab::is_name_particle(&w) && ordinary.contains(&w))
        };
        for d in docs {
            let idx = corpus::CharIndex::new(&d.text);
            for sp in &d.spans {
                if sp.start >= sp.end || sp.end > idx.len() {
                    continue;
                }
                let (_, core, _) = split_padding(idx.slice(&d.text, sp.start, sp.end));
                match labels.effective_kind(&sp.label) {
                    Some(Kind::Name) => {
                        for (is_sep, piece) in split_keep(core, |c| c.is_whitespace() || c == '-') {
                            let w = piece.trim_matches(|c: char| !c.is_alphabetic());
                            let folded = fold_word(w);
                            if !is_sep
                                && capitalised(w)
                                && w.chars().count() >= 3
                                && w.chars().all(char::is_alphabetic)
                                && !vocab::is_name_particle(&folded)
                                && !vocab::is_name_title(&folded)
                                && given_gender(&folded).is_none()
                                && !has_ordinary(w)
                            {
                                add(0, w, &mut out);
                            }
                        }
                    }
                    Some(Kind::Territory | Kind::City) => {
                        let words = core.split_whitespace().count();
                        if capitalised(core) && (1..=4).contains(&words) && core.chars().filter(|c| c.is_alphabetic()).count() >= 3 && !core.chars().any(|c| c.is_ascii_digit()) && (words > 1 || !has_ordinary(core)) {
                            add(1, core.trim_end_matches(['.', ',', ';', ':']), &mut out);
                        }
                    }
                    Some(Kind::Hospital) => {
                        let pieces = split_keep(core, char::is_whitespace);
                        let rest_at = org_rest_at(Kind::Hospital, &pieces, language == Language::De);
                        // After a connector ("Hospital de | Murcia") the rest is a place, drawn from the cities.
                        if rest_at > 0 && rest_at < pieces.len() && !is_org_connector(&last_prefix_word(&pieces, rest_at)) {
                            let rest: String = pieces[rest_at..].iter().map(|(_, p)| *p).collect();
                            let rest = rest.trim_end_matches(['.', ',', ';', ':']);
                            if capitalised(rest) && !rest.chars().any(|c| c.is_ascii_digit()) {
                                add(2, rest, &mut out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// The PHI strings of a corpus and, for each word in them, how many of its documents have it in their
/// PHI: what [`CorpusVocab`] is filtered against when hardening a synthetic corpus.
#[derive(Debug, Default)]
pub struct PhiWords {
    strings: HashSet<String>,
    word_documents: HashMap<String, usize>,
}

impl PhiWords {
    pub fn of(docs: &[corpus::Document]) -> Self {
        let mut p = PhiWords::default();
        for d in docs {
            let idx = corpus::CharIndex::new(&d.text);
            let mut words = HashSet::new();
            for sp in d.spans.iter().filter(|sp| sp.start < sp.end && sp.end <= idx.len()) {
                let norm = loose_norm(idx.slice(&d.text, sp.start, sp.end));
                words.extend(Self::words(&norm).map(str::to_string));
                p.strings.insert(norm);
            }
            for w in words {
                *p.word_documents.entry(w).or_default() += 1;
            }
        }
        p
    }

    fn words(norm: &str) -> impl Iterator<Item = &str> {
        norm.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 2)
    }

    /// Whether `s` is one of the PHI strings, or has a word that is in the PHI of fewer than
    /// `common` documents (`common` = 0: of any document), which could point at those documents.
    pub fn points_at(&self, s: &str, common: usize) -> bool {
        let norm = loose_norm(s);
        self.strings.contains(&norm)
            || Self::words(&norm).any(|w| self.word_documents.get(w).is_some_and(|&n| common == 0 || n < common))
    }
}

impl Surrogator {
    pub fn new(options: Options) -> Self {
        let keyed = match &options.key {
            Some(k) => Keyed::from_key(k),
            None => Keyed::from_seed(options.seed),
        };
        let vocab = vocab::vocab(options.language);
        let mut s = Surrogator {
            opts: options,
            keyed,
            vocab,
            cache: HashMap::new(),
            used: HashMap::new(),
            doc_used: HashMap::new(),
            global: HashSet::new(),
            global_ac: None,
            ac_dirty: false,
            doc_forbidden: Vec::new(),
            doc_ac: None,
            within: Vec::new(),
            within_ac: None,
            date_offset: 0,
            age_delta: 0,
            counters: Counters::default(),
        };
        s.set_scope("");
        s
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Adds `extra`'s strings to the lists this surrogator draws names, places and hospital names
    /// from (each once; strings already on a list are skipped). The widened lists live for the rest
    /// of the process: call it once per corpus, not per document.
    pub fn widen_vocab(&mut self, extra: &CorpusVocab) {
        fn widen(list: &mut Vec<&'static str>, extra: &[String]) {
            let mut have: HashSet<String> = list.iter().map(|s| loose_norm(s)).collect();
            for s in extra {
                if have.insert(loose_norm(s)) {
                    list.push(Box::leak(s.clone().into_boxed_str()));
                }
            }
        }
        let mut v = self.vocab.clone();
        widen(&mut v.surnames, &extra.surnames);
        widen(&mut v.cities, &extra.cities);
        widen(&mut v.hospital_names, &extra.hospital_names);
        self.vocab = Box::leak(Box::new(v));
    }

    /// The lists surrogates are drawn from (widened ones included).
    pub fn vocab(&self) -> &'static Vocab {
        self.vocab
    }

    /// Draws from `vocab` (another surrogator's widened lists, without widening them again).
    pub fn set_vocab(&mut self, vocab: &'static Vocab) {
        self.vocab = vocab;
    }

    /// Registers strings that no surrogate may equal, and that no generated part of a surrogate (a name,
    /// a city, a street name) may contain on word boundaries; e.g. every PHI string of a training corpus
    /// before hardening a synthetic one. Matching is on the normalised form (case and accents ignored).
    pub fn forbid<I, S>(&mut self, strings: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for s in strings {
            let n = loose_norm(s.as_ref());
            if !n.is_empty() && self.global.insert(n) {
                self.ac_dirty = true;
            }
        }
    }

    /// Registers strings that no whole surrogate may contain on word boundaries, kept parts included:
    /// a kept "Hospital" and a drawn "Virgen de la Salud" must not make up a training document's
    /// "Hospital Virgen de la Salud". For identifying multi-word strings (generic words that a kept
    /// part may be on their own would forbid every surrogate keeping them).
    pub fn forbid_within<I, S>(&mut self, strings: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.within.extend(strings.into_iter().map(|s| loose_norm(s.as_ref())).filter(|s| !s.is_empty()));
        self.within.sort();
        self.within.dedup();
        self.within_ac = AhoCorasick::new(&self.within).ok();
    }

    /// Forbids the PHI strings of a document's spans (whole strings), except the kept values of keep kinds
    /// (sex markers, kinship words), which are not replaced anyway. (Name *parts* are only forbidden within
    /// their own document: a surname of one document may be the surrogate of another's, which reveals
    /// nothing, while a whole original string never reappears.)
    pub fn forbid_document_originals(&mut self, doc: &corpus::Document) {
        let idx = corpus::CharIndex::new(&doc.text);
        for s in &doc.spans {
            if s.start >= s.end || s.end > idx.len() {
                continue;
            }
            let kind = self.opts.labels.effective_kind(&s.label);
            let text = idx.slice(&doc.text, s.start, s.end);
            if kind.is_some_and(|k| self.opts.labels.keeps(k) && self.keepable(k, text)) {
                continue;
            }
            self.forbid([text]);
        }
    }

    /// Number of distinct forbidden whole strings (registered with [`Surrogator::forbid`] or
    /// [`Surrogator::forbid_document_originals`]).
    pub fn forbidden_len(&self) -> usize {
        self.global.len()
    }

    /// The date-shift scope of a document under the options: its id, its patient's key, or one scope for
    /// the whole corpus.
    pub fn scope_of<'a>(&'a self, doc_id: &'a str) -> &'a str {
        match &self.opts.date_shift {
            DateShift::PerDocument => doc_id,
            DateShift::PerCorpus => "",
            DateShift::PerPatient(m) => m.get(doc_id).map(String::as_str).unwrap_or(doc_id),
        }
    }

    /// The number of days the dates of a scope are shifted by: ±(365·y + m) with y ∈ {1, 2} and
    /// m ∈ [31, 330], so every date, even a bare year or month, changes. **Secret**: knowing it undoes the
    /// shift; do not print it.
    pub fn date_offset_days(&self, scope: &str) -> i64 {
        let x = self.keyed.u64(&[b"date-offset", scope.as_bytes()]);
        let sign = if x & 1 == 0 { 1 } else { -1 };
        let years = 1 + ((x >> 1) & 1) as i64;
        let extra = 31 + ((x >> 2) % 300) as i64;
        sign * (365 * years + extra)
    }

    /// The amount ages of a scope move by, in their own unit: one of −2, −1, +1, +2.
    pub fn age_delta(&self, scope: &str) -> i64 {
        [-2, -1, 1, 2][(self.keyed.u64(&[b"age-delta", scope.as_bytes()]) % 4) as usize]
    }

    fn set_scope(&mut self, scope: &str) {
        self.date_offset = self.date_offset_days(scope);
        self.age_delta = self.age_delta(scope);
    }

    /// Starts a document: sets its date/age scope and its forbidden originals.
    pub(crate) fn begin_document<'t>(&mut self, doc_id: &str, originals: impl Iterator<Item = (&'t str, &'t str)>) {
        let scope = self.scope_of(doc_id).to_string();
        self.set_scope(&scope);
        let mut f: Vec<String> = Vec::new();
        for (label, text) in originals {
            let kind = self.opts.labels.effective_kind(label);
            if kind.is_some_and(|k| self.opts.labels.keeps(k) && self.keepable(k, text)) {
                continue;
            }
            f.extend(forbidden_forms(kind, text));
        }
        f.sort();
        f.dedup();
        self.doc_ac = if f.is_empty() { None } else { AhoCorasick::new(&f).ok() };
        self.doc_forbidden = f;
        self.doc_used.clear();
        if self.ac_dirty {
            let pats: Vec<String> = self.global.iter().cloned().collect();
            self.global_ac = AhoCorasick::new(&pats).ok().map(|ac| (ac, pats));
            self.ac_dirty = false;
        }
    }

    // ----- checks -------------------------------------------------------------------------------------

    /// A generated component (name part, city, street name, ...): not a forbidden string, and containing
    /// no forbidden string, nor any original or name part of the current document, on word boundaries.
    fn component_ok(&self, cand: &str) -> bool {
        let n = loose_norm(cand);
        if self.global.contains(&n) || self.contains_doc_original(&n) {
            return false;
        }
        if let Some((ac, pats)) = &self.global_ac {
            if contains_any_word(ac, pats, &n) {
                return false;
            }
        }
        true
    }

    /// Whether the normalised `n` contains an original or name part of the current document on word
    /// boundaries (one automaton pass).
    fn contains_doc_original(&self, n: &str) -> bool {
        match &self.doc_ac {
            Some(ac) => contains_any_word(ac, &self.doc_forbidden, n),
            // No automaton (none to build, or it could not be built): the plain scan.
            None => self.doc_forbidden.iter().any(|f| contains_word(n, f)),
        }
    }

    /// A whole surrogate: differs from the original; for dates and ages, equals no original of the document
    /// (nor of the forbidden set in strict mode); otherwise equals no forbidden string and contains no
    /// original of the document.
    fn whole_ok(&self, cand: &str, original: &str, value: bool) -> bool {
        if cand == original {
            return false;
        }
        let n = loose_norm(cand);
        if n.is_empty() {
            return false;
        }
        if value {
            return !(self.doc_forbidden.binary_search(&n).is_ok() || (self.opts.strict && self.global.contains(&n)));
        }
        n != loose_norm(original)
            && !self.global.contains(&n)
            && !self.contains_doc_original(&n)
            && !match &self.within_ac {
                Some(ac) => contains_any_word(ac, &self.within, &n),
                None => self.within.iter().any(|w| contains_word(&n, w)),
            }
    }

    // ----- the consistent keyed choice ---------------------------------------------------------------

    /// The surrogate of one component: remembered if seen before (salt 0), else drawn with retries.
    fn choose(
        &mut self,
        class: Class,
        norm: &str,
        salt: u32,
        gen: &mut dyn FnMut(&mut ChaCha20Rng, u32) -> Option<String>,
    ) -> Option<String> {
        let key = (class, norm.to_string());
        if salt == 0 {
            if let Some(c) = self.cache.get(&key).cloned() {
                let cn = if class.component_checked() { loose_norm(&c) } else { c.clone() };
                let taken_here =
                    class.injective() && self.doc_used.get(&(class, cn.clone())).is_some_and(|o| o != norm);
                if !taken_here && (!class.component_checked() || self.component_ok(&c)) {
                    if class.injective() {
                        self.doc_used.insert((class, cn), norm.to_string());
                    }
                    return Some(c);
                }
                self.counters.consistency_breaks += 1;
            }
        }
        for attempt in 0..ATTEMPTS {
            let mut rng = self.keyed.rng(&[class.tag(), norm.as_bytes(), &salt.to_le_bytes(), &attempt.to_le_bytes()]);
            let Some(c) = gen(&mut rng, attempt) else { continue };
            let cn = if class.component_checked() { loose_norm(&c) } else { c.clone() };
            if cn == norm || cn.is_empty() {
                continue;
            }
            let used_key = (class, cn);
            // The cheap look-ups before the forbidden-string scan (each check only rejects, so their order
            // changes nothing but the time): once a document has used up a vocabulary, most draws fail here.
            if class.injective() && attempt < INJECTIVE_ATTEMPTS {
                // Two originals of one document never share a surrogate; over the whole run they do not
                // either, as long as the first attempts find an unused one (vocabularies are finite).
                if self.doc_used.get(&used_key).is_some_and(|o| o != norm) {
                    continue;
                }
                if attempt < RUN_INJECTIVE_ATTEMPTS && self.used.get(&used_key).is_some_and(|o| o != norm) {
                    continue;
                }
            }
            if class.component_checked() && !self.component_ok(&c) {
                continue;
            }
            if class.injective() {
                self.used.entry(used_key.clone()).or_insert_with(|| norm.to_string());
                self.doc_used.insert(used_key, norm.to_string());
            }
            if salt == 0 {
                self.cache.insert(key, c.clone());
            }
            return Some(c);
        }
        None
    }

    // ----- entry point ------------------------------------------------------------------------------

    /// Whether a value of a keep kind is one of the ordinary words that are kept.
    fn keepable(&self, kind: Kind, text: &str) -> bool {
        let words: Vec<String> = loose_norm(text)
            .split(|c: char| c.is_whitespace() || c == '-' || c == ',')
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return false;
        }
        match kind {
            Kind::Sex => vocab::is_sex_word(&loose_norm(text)) || words.iter().all(|w| vocab::is_sex_word(w)),
            Kind::Relative => words.iter().all(|w| vocab::is_kinship_word(w) || vocab::is_sex_word(w)),
            // Any other kind marked keep (e.g. countries, which HIPAA Safe Harbor does not count as
            // identifiers) stays as written.
            _ => true,
        }
    }

    /// The replacement of one span in surrogate mode.
    pub(crate) fn replace(&mut self, label: &str, original: &str) -> (String, Outcome) {
        let kind = self.opts.labels.effective_kind(label);
        let Some(kind) = kind else {
            return (self.generic(None, label, original), Outcome::Generic);
        };
        if self.opts.labels.keeps(kind) && self.keepable(kind, original) {
            return (original.to_string(), Outcome::Kept);
        }
        for salt in 0..SALTS {
            let (c, value) = match self.generate(kind, original, salt) {
                Gen::Candidate(c) => (c, false),
                Gen::Value(c) => (c, true),
                Gen::Unparsed => break,
            };
            if self.whole_ok(&c, original, value) {
                if salt > 0 {
                    self.counters.consistency_breaks += 1;
                }
                return (c, Outcome::Surrogate);
            }
        }
        if kind == Kind::Date {
            self.counters.dates_unparsed += 1;
        }
        (self.generic(Some(kind), label, original), Outcome::Generic)
    }

    /// Format-preserving random replacement, keyed by the normalised original. Dates first try the soft
    /// shift (years moved by the document's offset, month names rotated). Never returns the original: the
    /// last resort is a mask, then `[LABEL]`.
    fn generic(&mut self, kind: Option<Kind>, label: &str, original: &str) -> String {
        let norm = loose_norm(original);
        for attempt in 0u32..16 {
            let mut rng = self.keyed.rng(&[b"generic", norm.as_bytes(), &attempt.to_le_bytes()]);
            let c = if kind == Some(Kind::Date) && attempt < 8 {
                let extra = [0, 1, -1, 2, -2, 3, -3, 4][attempt as usize];
                let s = soft_shift(original, self.date_offset, extra, self.opts.language, |t| random_like(&mut rng, t));
                if s == original {
                    random_like(&mut rng, original)
                } else {
                    s
                }
            } else {
                random_like(&mut rng, original)
            };
            if self.whole_ok(&c, original, kind.is_some_and(Kind::is_value)) {
                return c;
            }
        }
        let masked: String = original.chars().map(|c| if c.is_whitespace() { c } else { '*' }).collect();
        if masked != original {
            masked
        } else {
            format!("[{label}]")
        }
    }

    fn generate(&mut self, kind: Kind, original: &str, salt: u32) -> Gen {
        let (lead, core, trail) = split_padding(original);
        if core.is_empty() {
            return Gen::Unparsed;
        }
        let g = match kind {
            Kind::Name => self.gen_name(core, salt),
            Kind::Street => self.gen_street(core, salt),
            Kind::Territory => {
                if core.chars().any(|c| c.is_ascii_digit()) {
                    self.gen_format(Class::Postal, core, salt)
                } else {
                    self.gen_place(core, salt)
                }
            }
            Kind::City => self.gen_place(core, salt),
            Kind::PostalCode => self.gen_format(Class::Postal, core, salt),
            Kind::Country => {
                let v = self.vocab;
                self.pick_list(Class::Country, core, salt, &v.countries)
            }
            Kind::Profession => {
                let v = self.vocab;
                self.pick_list(Class::Profession, core, salt, &v.professions)
            }
            Kind::Hospital | Kind::Institution | Kind::HealthCenter => self.gen_org(kind, core, salt),
            // A name written where an e-mail address was expected is replaced as a name.
            Kind::Email if !core.contains('@') && core.chars().any(char::is_uppercase) => self.gen_name(core, salt),
            Kind::Email => self.gen_email(core, salt),
            Kind::Phone => self.gen_format(Class::Phone, core, salt),
            Kind::Fax => self.gen_format(Class::Fax, core, salt),
            Kind::Id => self.gen_format(Class::Id, core, salt),
            Kind::Age => {
                let d = self.age_delta;
                let alt = [d, -d, d + d.signum(), -(d + d.signum()), 2 * d + d.signum(), -(2 * d + d.signum())];
                let delta = alt[(salt as usize) % alt.len()] * (1 + salt as i64 / alt.len() as i64);
                shift_age(core, delta).map_or(Gen::Unparsed, Gen::Value)
            }
            Kind::Date => {
                let s = salt as i64;
                let off = self.date_offset + self.date_offset.signum() * s * (31 + s);
                shift_date(core, off, self.opts.language).map_or(Gen::Unparsed, Gen::Value)
            }
            Kind::Sex => self.gen_sex(core),
            Kind::Relative => {
                let words: Vec<String> = loose_norm(core)
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
                    .map(str::to_string)
                    .collect();
                let kin_or_age = |w: &String| {
                    vocab::is_kinship_word(w)
                        || vocab::is_sex_word(w)
                        || crate::age::is_unit_word(w)
                        || crate::age::is_number_word(w)
                };
                let has_number =
                    core.chars().any(|c| c.is_ascii_digit()) || words.iter().any(|w| crate::age::is_number_word(w));
                if words.iter().all(kin_or_age) && has_number && !self.keepable(Kind::Relative, core) {
                    // "madre de 34 años", "2 sobrinos": kinship words kept, the number moved like an age.
                    let d = self.age_delta * (1 + salt as i64);
                    shift_age(core, d).map_or(Gen::Unparsed, Gen::Value)
                } else if self.keepable(Kind::Relative, core) {
                    self.gen_kin(core, salt)
                } else if core.chars().any(char::is_uppercase) {
                    self.gen_name(core, salt)
                } else {
                    Gen::Unparsed
                }
            }
            Kind::Other => Gen::Unparsed,
        };
        match g {
            Gen::Candidate(c) => Gen::Candidate(format!("{lead}{c}{trail}")),
            Gen::Value(c) => Gen::Value(format!("{lead}{c}{trail}")),
            Gen::Unparsed => Gen::Unparsed,
        }
    }

    // ----- generators -------------------------------------------------------------------------------

    fn pick_list(&mut self, class: Class, core: &str, salt: u32, list: &'static [&'static str]) -> Gen {
        if list.is_empty() {
            return Gen::Unparsed;
        }
        let norm = loose_norm(core);
        match self.choose(class, &norm, salt, &mut |rng, _| Some(list[rng.random_range(0..list.len())].to_string())) {
            Some(c) => Gen::Candidate(apply_case(&c, case_style(core))),
            None => Gen::Unparsed,
        }
    }

    /// One given name or surname (or initial) token, with its leading/trailing punctuation.
    fn name_token(&mut self, tok: &str, salt: u32) -> Option<String> {
        let start = tok.find(|c: char| c.is_alphabetic()).unwrap_or(tok.len());
        let mut end = tok
            .rfind(|c: char| c.is_alphabetic())
            .map(|i| i + tok[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(start);
        // The combining marks of a decomposed last letter (`Jose\u{301}`) belong to the name, not to
        // its trailing punctuation: replaced with it, never left on the surrogate.
        end += tok[end..].chars().take_while(|c| crate::text::is_combining_mark(*c)).map(char::len_utf8).sum::<usize>();
        if start >= end {
            return Some(tok.to_string());
        }
        let (lead, core, trail) = (&tok[..start], &tok[start..end], &tok[end..]);
        let folded = fold_word(core);
        let letters = core.chars().filter(|c| c.is_alphabetic()).count();
        if vocab::is_name_particle(&folded) || vocab::is_name_title(folded.trim_end_matches('.')) {
            return Some(tok.to_string());
        }
        let v = self.vocab;
        if letters <= 2 && (tok.contains('.') || core.contains(['ª', 'º']) || letters == 1) {
            // An initial: replace its first letter, keep the rest ("M.ª" → "L.ª").
            let first = core.chars().next()?;
            let key = fold_word(&first.to_string());
            let c = self.choose(Class::Initial, &key, salt, &mut |rng, _| {
                let pool = b"ABCDEFGHIJLMNOPRSTV";
                Some((pool[rng.random_range(0..pool.len())] as char).to_string())
            })?;
            let c = c.chars().next()?;
            let c = crate::text::char_in_case_of(c, first);
            return Some(format!("{lead}{c}{}{trail}", &core[first.len_utf8()..]));
        }
        let (class, list): (Class, &'static [&'static str]) = match given_gender(&folded) {
            Some(Gender::Female) => (Class::GivenF, &v.given_female),
            Some(Gender::Male) => (Class::GivenM, &v.given_male),
            None => (Class::Surname, &v.surnames),
        };
        let surnames: &'static [&'static str] = &v.surnames;
        let c = self.choose(class, &folded, salt, &mut |rng, attempt| {
            Some(if attempt < 24 || list.is_empty() {
                list[rng.random_range(0..list.len())].to_string()
            } else if attempt < 44 && class == Class::Surname {
                let a = surnames[rng.random_range(0..surnames.len())];
                let b = surnames[rng.random_range(0..surnames.len())];
                format!("{a}-{b}")
            } else {
                syllable_word(rng)
            })
        })?;
        Some(format!("{lead}{}{trail}", apply_case(&c, case_style(core))))
    }

    fn gen_name(&mut self, core: &str, salt: u32) -> Gen {
        let mut out = String::with_capacity(core.len() + 8);
        for (is_sep, piece) in split_keep(core, |c| c.is_whitespace() || c == '-') {
            if is_sep {
                out.push_str(piece);
            } else {
                match self.name_token(piece, salt) {
                    Some(t) => out.push_str(&t),
                    None => return Gen::Unparsed,
                }
            }
        }
        Gen::Candidate(out)
    }

    fn gen_place(&mut self, core: &str, salt: u32) -> Gen {
        let v = self.vocab;
        let norm = loose_norm(core);
        let in_list = |l: &[&str]| l.iter().any(|x| loose_norm(x) == norm);
        let (class, list): (Class, &'static [&'static str]) = if !v.provinces.is_empty() && in_list(&v.provinces) {
            (Class::Province, &v.provinces)
        } else if !v.regions.is_empty() && in_list(&v.regions) {
            (Class::Region, &v.regions)
        } else {
            (Class::City, &v.cities)
        };
        let lang = self.opts.language;
        match self.choose(class, &norm, salt, &mut |rng, attempt| {
            Some(if attempt < 40 { list[rng.random_range(0..list.len())].to_string() } else { made_up_town(rng, lang) })
        }) {
            Some(c) => Gen::Candidate(apply_case(&c, case_style(core))),
            None => Gen::Unparsed,
        }
    }

    fn gen_format(&mut self, class: Class, core: &str, salt: u32) -> Gen {
        let canon = canonical_alnum(core);
        let digits = canon.chars().filter(|c| c.is_ascii_digit()).count();
        let enough = match class {
            Class::Phone | Class::Fax => digits >= 3,
            _ => digits >= 1,
        };
        if !enough {
            return Gen::Unparsed;
        }
        let c = self.choose(class, &canon, salt, &mut |rng, _| {
            Some(match class {
                Class::Phone | Class::Fax => phone_canonical(rng, &canon),
                Class::Postal => postal_canonical(rng, &canon),
                _ => id_canonical(rng, &canon),
            })
        });
        match c {
            Some(c) => Gen::Candidate(render_alnum(core, &c)),
            None => Gen::Unparsed,
        }
    }

    fn gen_street(&mut self, core: &str, salt: u32) -> Gen {
        #[derive(PartialEq, Clone, Copy, Debug)]
        enum T {
            Sep,
            Keep,
            Particle,
            Name,
            Number,
        }
        let lang = self.opts.language;
        let pieces: Vec<(bool, &str)> = split_keep(core, char::is_whitespace);
        let mut kinds: Vec<T> = Vec::with_capacity(pieces.len());
        let mut seen_type_or_name = false;
        for &(is_sep, p) in &pieces {
            if is_sep {
                kinds.push(T::Sep);
                continue;
            }
            let bare = p.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '(' | ')' | '"' | '«' | '»'));
            let f = fold_word(bare);
            let f_stripped = f.trim_end_matches(['.', ',']);
            let after_name = kinds.iter().rev().find(|k| **k != T::Sep) == Some(&T::Name);
            let t = if p.chars().any(|c| c.is_ascii_digit()) {
                T::Number
            } else if after_name
                && !bare.is_empty()
                && bare.trim_end_matches(['.', ',']).chars().all(|c| matches!(c, 'I' | 'V' | 'X' | 'L'))
            {
                // "Carlos V", "Pío XII": a regnal number belongs to the name.
                T::Name
            } else if !seen_type_or_name
                && (vocab::is_street_type(f_stripped) || vocab::is_street_type(f_stripped.trim_end_matches('/')))
            {
                T::Keep
            } else if seen_type_or_name && lang != Language::Es && vocab::is_street_type(f_stripped) {
                // "Baker Street", "Main Rd": the type word follows the name in English.
                T::Keep
            } else if f_stripped == "s/n" || f_stripped == "sn" {
                T::Keep
            } else if vocab::is_name_particle(f_stripped) {
                T::Particle
            } else if seen_type_or_name
                && (vocab::is_address_word(f_stripped) || f_stripped.chars().filter(|c| c.is_alphabetic()).count() <= 2)
            {
                // "bajo", "dcha", "Esc.", a door letter: layout, not place.
                T::Keep
            } else {
                T::Name
            };
            if t == T::Name || t == T::Keep {
                seen_type_or_name = true;
            }
            kinds.push(t);
        }
        // The street name: the first run of name words (particles allowed inside), ending at a number, a
        // kept word, or a word followed by a comma.
        let Some(first) = kinds.iter().position(|t| *t == T::Name) else {
            if !kinds.contains(&T::Number) {
                return Gen::Unparsed;
            }
            return self.street_numbers_only(
                core,
                &pieces,
                &kinds.iter().map(|t| *t == T::Number).collect::<Vec<_>>(),
                salt,
            );
        };
        let mut last = first;
        let mut i = first;
        while i < pieces.len() {
            match kinds[i] {
                T::Name => {
                    last = i;
                    if pieces[i].1.ends_with([',', ';']) {
                        break;
                    }
                }
                T::Sep | T::Particle => {}
                _ => break,
            }
            i += 1;
        }
        // Articles right before the name ("c/ del Abedul") are replaced along with it.
        let mut art = first;
        // German keeps its articles ("Platz der Einheit"): the name that replaces is chosen to fit them.
        while lang != Language::De && art >= 2 && kinds[art - 1] == T::Sep && kinds[art - 2] == T::Particle {
            art -= 2;
        }
        let had_article = art < first;
        let run_text: String = pieces[art..=last].iter().map(|(_, p)| *p).collect();
        let trailing_punct: String = {
            let t = run_text.trim_end_matches([',', ';']);
            run_text[t.len()..].to_string()
        };
        let run_core = run_text.trim_end_matches([',', ';']);
        let norm =
            loose_norm(pieces[first..=last].iter().map(|(_, p)| *p).collect::<String>().trim_end_matches([',', ';']));
        let v = self.vocab;
        let list: &'static [&'static str] = &v.street_names;
        let street = if lang == Language::De {
            let next = kinds[last + 1..].iter().zip(&pieces[last + 1..]).find(|(k, _)| **k != T::Sep);
            let type_after = next.is_some_and(|(k, (_, p))| *k == T::Keep && is_street_type_word(p));
            let type_before = kinds[..first].contains(&T::Keep);
            let after_der = first >= 2 && kinds[first - 2] == T::Particle && fold_word(pieces[first - 2].1) == "der";
            let ctx = if type_after {
                DeStreet::BeforeType
            } else if type_before {
                DeStreet::AfterType { after_der }
            } else {
                DeStreet::Whole
            };
            match self.de_street_name(run_core, &norm, ctx, salt) {
                Some(s) => s,
                None => return Gen::Unparsed,
            }
        } else {
            let Some(name) = self.choose(Class::StreetName, &norm, salt, &mut |rng, attempt| {
                Some(if attempt < 32 {
                    list[rng.random_range(0..list.len())].to_string()
                } else {
                    person_street(rng, v, lang)
                })
            }) else {
                return Gen::Unparsed;
            };
            let name = if had_article { name } else { strip_article(&name).to_string() };
            apply_case(&name, case_style(run_core))
        };
        // Rebuild: prefix, new name, then the rest with numbers re-drawn and further name words replaced.
        let mut out = String::new();
        for (_, p) in &pieces[..art] {
            out.push_str(p);
        }
        out.push_str(&street);
        out.push_str(&trailing_punct);
        let whole_norm = loose_norm(core);
        let mut rng = self.keyed.rng(&[b"street-numbers", whole_norm.as_bytes(), &salt.to_le_bytes()]);
        // German street names are whole compounds ("Lindenstraße"): a later name run there (the town after
        // the postcode) becomes a town.
        let words: &'static [&'static str] =
            if lang == Language::De { &self.vocab.cities } else { &self.vocab.street_names };
        // Later runs of name words (a neighbourhood, "esquina San Eloy") are replaced run by run.
        let mut j = last + 1;
        while j < pieces.len() {
            let p = pieces[j].1;
            match kinds[j] {
                T::Number => out.push_str(&random_like_digits(&mut rng, p)),
                T::Name => {
                    let mut end_run = j;
                    let mut k = j;
                    while k < pieces.len() && matches!(kinds[k], T::Name | T::Sep | T::Particle) {
                        if kinds[k] == T::Name {
                            end_run = k;
                            if pieces[k].1.ends_with([',', ';', '.']) {
                                break;
                            }
                        }
                        k += 1;
                    }
                    let run: String = pieces[j..=end_run].iter().map(|(_, p)| *p).collect();
                    let start = run.find(|c: char| c.is_alphabetic()).unwrap_or(0);
                    let end = run
                        .rfind(|c: char| c.is_alphabetic())
                        .map(|i| i + run[i..].chars().next().map_or(1, char::len_utf8))
                        .unwrap_or(run.len());
                    let w = &run[start..end];
                    let Some(c) = self.choose(Class::StreetWord, &loose_norm(w), salt, &mut |rng, _| {
                        Some(strip_article(words[rng.random_range(0..words.len())]).to_string())
                    }) else {
                        return Gen::Unparsed;
                    };
                    out.push_str(&run[..start]);
                    out.push_str(&apply_case(&c, case_style(w)));
                    out.push_str(&run[end..]);
                    j = end_run;
                }
                _ => out.push_str(p),
            }
            j += 1;
        }
        Gen::Candidate(out)
    }

    /// The new name of a German street's name run, fitted to where its type word is: a compound keeps its
    /// type ending ("Goethestraße" → "Lindenstraße", "Hauptstr." → "Birkenstr.", "Kaiser-Wilhelm-Straße" →
    /// "Anna-Schmidt-Straße"); before a separate type word an invariant adjective ("Berliner | Straße"); after
    /// one a noun or surname ("Platz der | Einheit"); otherwise a whole street name of the list ("Am Markt").
    fn de_street_name(&mut self, run: &str, norm: &str, ctx: DeStreet, salt: u32) -> Option<String> {
        let v = self.vocab;
        let lang = self.opts.language;
        if let Some(pos) = de_street_suffix(run) {
            let (stem, suffix) = run.split_at(pos);
            let (stem, hyphen) = match stem.strip_suffix('-') {
                Some(s) => (s, "-"),
                None => (stem, ""),
            };
            let person = stem.contains('-');
            let stems = de_street_stems();
            let surnames: &'static [&'static str] = &v.surnames;
            let (given_f, given_m): (&'static [&'static str], &'static [&'static str]) = (&v.given_female, &v.given_male);
            let key = loose_norm(stem);
            let c = self.choose(Class::StreetStem, &key, salt, &mut |rng, attempt| {
                let sur = surnames[rng.random_range(0..surnames.len())];
                Some(if person {
                    let g = if rng.random_bool(0.5) { given_f } else { given_m };
                    format!("{}-{sur}", g[rng.random_range(0..g.len())])
                } else if attempt < 24 && !stems.is_empty() {
                    stems[rng.random_range(0..stems.len())].to_string()
                } else {
                    sur.to_string()
                })
            })?;
            return Some(format!("{}{hyphen}{suffix}", apply_case(&c, case_style(stem))));
        }
        let list: &'static [&'static str] = match ctx {
            DeStreet::BeforeType => &DE_STREET_ADJECTIVES,
            DeStreet::AfterType { after_der: true } => &DE_STREET_NOUNS_F,
            DeStreet::AfterType { after_der: false } => &v.surnames,
            DeStreet::Whole => &v.street_names,
        };
        let c = self.choose(Class::StreetName, norm, salt, &mut |rng, attempt| {
            Some(if attempt < 32 || ctx != DeStreet::Whole {
                list[rng.random_range(0..list.len())].to_string()
            } else {
                person_street(rng, v, lang)
            })
        })?;
        Some(apply_case(&c, case_style(run)))
    }

    /// A street with no name word ("Apartado 23"): only the numbers change.
    fn street_numbers_only(&mut self, core: &str, pieces: &[(bool, &str)], is_num: &[bool], salt: u32) -> Gen {
        let mut rng = self.keyed.rng(&[b"street-numbers", loose_norm(core).as_bytes(), &salt.to_le_bytes()]);
        Gen::Candidate(
            pieces
                .iter()
                .zip(is_num)
                .map(|((_, p), n)| if *n { random_like_digits(&mut rng, p) } else { p.to_string() })
                .collect(),
        )
    }

    fn gen_org(&mut self, kind: Kind, core: &str, salt: u32) -> Gen {
        let german = self.opts.language == Language::De;
        if german {
            if let Some(g) = self.de_hyphen_org(kind, core, salt) {
                return g;
            }
        }
        let pieces = split_keep(core, char::is_whitespace);
        let rest_at = org_rest_at(kind, &pieces, german);
        let lang = self.opts.language;
        let v = self.vocab;
        let norm = loose_norm(core);
        // Salts 4+ (or a name made only of type words): a whole new name from templates.
        if rest_at == pieces.len() || salt >= 4 {
            let templates: Vec<String> = match kind {
                Kind::Hospital => match lang {
                    Language::Es => vec![
                        "Hospital {h}".into(),
                        "Hospital General de {city}".into(),
                        "Clínica {h}".into(),
                        "Hospital Comarcal de {city}".into(),
                    ],
                    Language::En => vec!["{h} Hospital".into(), "{city} General Hospital".into()],
                    Language::Sv => vec!["{h} sjukhus".into(), "{city} lasarett".into()],
                    Language::De => vec![
                        "Klinikum {city}".into(),
                        "{saint}-Krankenhaus".into(),
                        "Krankenhaus {h}".into(),
                        "Kreiskrankenhaus {city}".into(),
                    ],
                },
                Kind::HealthCenter => match lang {
                    Language::Es => vec![
                        "Centro de Salud {hc}".into(),
                        "Centro de Salud de {city}".into(),
                        "Consultorio de {city}".into(),
                    ],
                    Language::En => vec!["{hc} Health Centre".into(), "{city} Medical Practice".into()],
                    Language::Sv => vec!["Vårdcentralen {hc}".into(), "{city} vårdcentral".into()],
                    Language::De => vec![
                        "Praxis Dr. {surname}".into(),
                        "MVZ {city}".into(),
                        "Gemeinschaftspraxis {hc}".into(),
                    ],
                },
                _ => v
                    .institution_templates
                    .iter()
                    .map(|s| s.to_string())
                    .chain(v.companies.iter().map(|s| s.to_string()))
                    .collect(),
            };
            let c = self.choose(Class::OrgName, &norm, salt, &mut |rng, _| {
                let t = &templates[rng.random_range(0..templates.len())];
                Some(fill_template(t, v, rng))
            });
            return match c {
                Some(c) => Gen::Candidate(if case_style(core) == CaseStyle::Upper { c.to_uppercase() } else { c }),
                None => Gen::Unparsed,
            };
        }
        let prefix: String = pieces[..rest_at].iter().map(|(_, p)| *p).collect();
        let rest: String = pieces[rest_at..].iter().map(|(_, p)| *p).collect();
        let last_prefix_word = last_prefix_word(&pieces, rest_at);
        let connector = is_org_connector(&last_prefix_word);
        let rest_norm = loose_norm(&rest);
        // German puts the town straight after the type word ("Klinikum Stuttgart", "MVZ Bonn"), and a
        // doctor's surname after the titles ("Praxis Dr. | Weber").
        let after_title = german && vocab::is_name_title(last_prefix_word.trim_end_matches('.'));
        let town = german
            && rest_at > 0
            && Language::ALL.iter().any(|l| vocab::vocab(*l).cities.iter().any(|c| loose_norm(c) == rest_norm));
        let cities: &'static [&'static str] = &v.cities;
        let c = if connector || town || (kind == Kind::Institution && rest_at == 0) {
            if rest_at == 0 {
                // A bare brand name: an invented company.
                let companies: &'static [&'static str] = &v.companies;
                self.choose(Class::OrgName, &rest_norm, salt, &mut |rng, _| {
                    Some(companies[rng.random_range(0..companies.len())].to_string())
                })
            } else {
                self.choose(Class::OrgPlace, &rest_norm, salt, &mut |rng, attempt| {
                    Some(if attempt < 40 {
                        cities[rng.random_range(0..cities.len())].to_string()
                    } else {
                        made_up_town(rng, lang)
                    })
                })
            }
        } else {
            let list: &'static [&'static str] = match kind {
                _ if after_title => &v.surnames,
                Kind::Hospital => &v.hospital_names,
                Kind::HealthCenter => &v.health_center_names,
                _ => &v.surnames,
            };
            let surnames: &'static [&'static str] = &v.surnames;
            self.choose(Class::OrgName, &rest_norm, salt, &mut |rng, attempt| {
                Some(if attempt < 32 {
                    list[rng.random_range(0..list.len())].to_string()
                } else {
                    format!(
                        "{} {}",
                        match lang {
                            Language::Es => "Doctor",
                            Language::De => "Dr.",
                            _ => "Dr",
                        },
                        surnames[rng.random_range(0..surnames.len())]
                    )
                })
            })
        };
        match c {
            Some(c) => Gen::Candidate(format!("{prefix}{}", apply_case(&c, case_style(&rest)))),
            None => Gen::Unparsed,
        }
    }

    /// German names whose type word closes the last word after a hyphen ("St. Marien-Krankenhaus",
    /// "Elisabeth-Klinik", "Müller-Praxis"): the part before the hyphen is replaced, the type word kept.
    fn de_hyphen_org(&mut self, kind: Kind, core: &str, salt: u32) -> Option<Gen> {
        if !matches!(kind, Kind::Hospital | Kind::HealthCenter) {
            return None;
        }
        let word_start = core.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let h = word_start + core[word_start..].rfind('-')?;
        let (head, tail) = (&core[..h], &core[h..]);
        let tail_word = fold_word(tail.trim_matches(|c: char| !c.is_alphanumeric()));
        if de_org_type_suffix(kind, &tail_word) != Some(0) || head.chars().filter(|c| c.is_alphabetic()).count() < 2 {
            return None;
        }
        let v = self.vocab;
        let (gf, gm, sur): (&'static [&'static str], &'static [&'static str], &'static [&'static str]) =
            (&v.given_female, &v.given_male, &v.surnames);
        let c = self.choose(Class::OrgName, &loose_norm(head), salt, &mut |rng, _| {
            Some(if kind == Kind::Hospital {
                let g = if rng.random_bool(0.5) { gf } else { gm };
                format!("St. {}", g[rng.random_range(0..g.len())])
            } else {
                sur[rng.random_range(0..sur.len())].to_string()
            })
        });
        Some(match c {
            Some(c) => Gen::Candidate(format!("{}{tail}", apply_case(&c, case_style(head)))),
            None => Gen::Unparsed,
        })
    }

    fn gen_email(&mut self, core: &str, salt: u32) -> Gen {
        let Some(at) = core.rfind('@') else { return Gen::Unparsed };
        let (local, domain) = (&core[..at], &core[at + 1..]);
        if local.is_empty() || domain.is_empty() {
            return Gen::Unparsed;
        }
        let v = self.vocab;
        let lang = self.opts.language;
        let sep = ['.', '_', '-'].into_iter().find(|c| local.contains(*c));
        let ndigits = local.chars().filter(|c| c.is_ascii_digit()).count().min(4);
        let dom_l = domain.to_lowercase();
        let public = Language::ALL.iter().any(|l| vocab::vocab(*l).email_domains.contains(&dom_l.as_str()));
        let tld = match dom_l.rsplit_once('.') {
            Some((_, t)) if !t.is_empty() && t.len() <= 4 && t.chars().all(|c| c.is_ascii_alphabetic()) => {
                t.to_string()
            }
            _ => match lang {
                Language::Sv => "se",
                Language::En => "com",
                Language::De => "de",
                Language::Es => "es",
            }
            .to_string(),
        };
        let norm = loose_norm(core);
        let c = self.choose(Class::Email, &norm, salt, &mut |rng, _| {
            let g = if rng.random_bool(0.5) { &v.given_female } else { &v.given_male };
            let given = slug_for(lang, g[rng.random_range(0..g.len())], "ana");
            let sur = slug_for(lang, v.surnames[rng.random_range(0..v.surnames.len())], "ruiz");
            let mut l = match sep {
                Some(s) => format!("{given}{s}{sur}"),
                None => format!("{}{sur}", &given[..1]),
            };
            for _ in 0..ndigits {
                l.push(char::from(b'0' + rng.random_range(0..10u8)));
            }
            let d = if public {
                v.email_domains[rng.random_range(0..v.email_domains.len())].to_string()
            } else {
                let pre = match lang {
                    Language::Es => ["hospital", "salud", "clinica", "hsp", "sanidad"],
                    Language::En => ["health", "hospital", "clinic", "med", "nhs"],
                    Language::Sv => ["vard", "sjukhus", "halsa", "region", "lasarett"],
                    Language::De => ["klinikum", "krankenhaus", "praxis", "klinik", "mvz"],
                };
                let city = slug_for(lang, v.cities[rng.random_range(0..v.cities.len())], "centro");
                format!("{}{city}.{tld}", pre[rng.random_range(0..pre.len())])
            };
            Some(format!("{l}@{d}"))
        });
        match c {
            Some(c) => Gen::Candidate(if case_style(core) == CaseStyle::Upper { c.to_uppercase() } else { c }),
            None => Gen::Unparsed,
        }
    }

    fn gen_sex(&mut self, core: &str) -> Gen {
        let n = loose_norm(core);
        let Some(p) = vocab::sex_partner(&n) else { return Gen::Unparsed };
        // German writes m / w (männlich / weiblich): "m" pairs with "w", not the Spanish "h".
        let p = if self.opts.language == Language::De && n == "m" { "w" } else { p };
        let p = match p {
            "mannlich" => "männlich",
            "madchen" => "mädchen",
            "varon" => "varón",
            "nino" => "niño",
            "nina" => "niña",
            "senor" => "señor",
            "senora" => "señora",
            "recien nacido" => "recién nacido",
            "recien nacida" => "recién nacida",
            "bebe" => "bebé",
            x => x,
        };
        let style = if core.chars().count() == 1 { CaseStyle::Upper } else { case_style(core) };
        Gen::Candidate(apply_case(p, style))
    }

    fn gen_kin(&mut self, core: &str, salt: u32) -> Gen {
        let mut out = String::new();
        let mut changed = false;
        for (is_sep, p) in split_keep(core, char::is_whitespace) {
            if is_sep {
                out.push_str(p);
                continue;
            }
            let f = fold_word(p);
            let fem = vocab::KIN_FEMALE_ES.iter().any(|k| fold_word(k) == f);
            let masc = vocab::KIN_MALE_ES.iter().any(|k| fold_word(k) == f);
            if !(fem || masc) {
                out.push_str(p);
                continue;
            }
            let list: &'static [&'static str] = if fem { &vocab::KIN_FEMALE_ES } else { &vocab::KIN_MALE_ES };
            match self
                .choose(Class::Kin, &f, salt, &mut |rng, _| Some(list[rng.random_range(0..list.len())].to_string()))
            {
                Some(c) => {
                    out.push_str(&apply_case(&c, case_style(p)));
                    changed = true;
                }
                None => return Gen::Unparsed,
            }
        }
        if changed {
            Gen::Candidate(out)
        } else {
            Gen::Unparsed
        }
    }
}

// ----- small helpers ------------------------------------------------------------------------------------

/// Leading and trailing whitespace kept around the core.
fn split_padding(s: &str) -> (&str, &str, &str) {
    let core = s.trim();
    let lead = &s[..s.len() - s.trim_start().len()];
    let trail = &s[lead.len() + core.len()..];
    (lead, core, trail)
}

/// Splits into alternating separator / non-separator pieces: `(is_separator, piece)`.
pub(crate) fn split_keep(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur: Option<bool> = None;
    for (i, c) in s.char_indices() {
        let k = is_sep(c);
        if cur != Some(k) {
            if let Some(ck) = cur {
                out.push((ck, &s[start..i]));
            }
            start = i;
            cur = Some(k);
        }
    }
    if let Some(ck) = cur {
        out.push((ck, &s[start..]));
    }
    out
}

fn strip_article(s: &str) -> &str {
    for a in ["de los ", "de las ", "de la ", "del ", "de "] {
        if let Some(r) = s.strip_prefix(a) {
            return r;
        }
    }
    s
}

/// Digits of a piece re-drawn (first digit of a run non-zero if it was), letters and signs kept.
fn random_like_digits(rng: &mut ChaCha20Rng, p: &str) -> String {
    let mut prev_digit = false;
    p.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                let nz = !prev_digit && c != '0';
                prev_digit = true;
                char::from(b'0' + rng.random_range(if nz { 1 } else { 0 }..10u8))
            } else {
                prev_digit = false;
                c
            }
        })
        .collect()
}

/// The e-mail form of a name or town: German spells umlauts and ß out (ae, oe, ue, ss) as addresses do.
fn slug_for(lang: Language, s: &str, fallback: &str) -> String {
    if lang == Language::De {
        let t: String = s
            .chars()
            .flat_map(|c| match c {
                'ä' | 'Ä' => "ae".chars().collect::<Vec<_>>(),
                'ö' | 'Ö' => "oe".chars().collect(),
                'ü' | 'Ü' => "ue".chars().collect(),
                'ß' => "ss".chars().collect(),
                c => vec![c],
            })
            .collect();
        ascii_slug_or(&t, fallback)
    } else {
        ascii_slug_or(s, fallback)
    }
}

/// Where a German street name sits relative to its type word, which decides what replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeStreet {
    /// "Berliner | Straße": an invariant adjective.
    BeforeType,
    /// "Platz der | Einheit", "Allee | Müller": a noun after "der", else a surname.
    AfterType { after_der: bool },
    /// "Am Markt", "Zeil": a whole street name.
    Whole,
}

// German street adjectives that agree with every type word (Straße, Weg, Platz, Ufer).
const DE_STREET_ADJECTIVES: [&str; 20] = [
    "Berliner",
    "Hamburger",
    "Frankfurter",
    "Kölner",
    "Münchner",
    "Dresdner",
    "Leipziger",
    "Bremer",
    "Mainzer",
    "Bonner",
    "Stuttgarter",
    "Nürnberger",
    "Augsburger",
    "Lübecker",
    "Potsdamer",
    "Erfurter",
    "Kieler",
    "Rostocker",
    "Heidelberger",
    "Freiburger",
];

// Feminine nouns of "Platz der …" / "Straße der …" names.
const DE_STREET_NOUNS_F: [&str; 7] =
    ["Einheit", "Freiheit", "Republik", "Jugend", "Verfassung", "Freundschaft", "Partnerschaft"];

// Type words that close a German compound street name, longest spelling first where one ends another.
const DE_STREET_SUFFIXES: [&str; 19] = [
    "straße", "strasse", "str.", "str", "weg", "gasse", "allee", "platz", "ring", "damm", "ufer", "chaussee", "pfad",
    "steig", "stieg", "markt", "graben", "wall", "promenade",
];

/// Where the type word of a German compound street name starts in `name` ("Goethestraße", "Hauptstr.",
/// "Kaiser-Wilhelm-Straße", "Alte Bahnhofstr."): `None` when the name does not end in one or has less than
/// two letters before it (a bare "Markt" is a name, not a type word).
fn de_street_suffix(name: &str) -> Option<usize> {
    DE_STREET_SUFFIXES.iter().find_map(|suf| {
        let pos = ends_with_ci(name, suf)?;
        (name[..pos].chars().filter(|c| c.is_alphabetic()).count() >= 2
            && !name[..pos].ends_with(char::is_whitespace))
        .then_some(pos)
    })
}

/// Where `suffix` (lower case) starts at the end of `word`, compared case-insensitively.
fn ends_with_ci(word: &str, suffix: &str) -> Option<usize> {
    let mut chars = word.char_indices().rev();
    let mut pos = word.len();
    for sc in suffix.chars().rev() {
        let (i, c) = chars.next()?;
        if !c.to_lowercase().eq(std::iter::once(sc)) {
            return None;
        }
        pos = i;
    }
    Some(pos)
}

/// Whether a piece is a (separate) street-type word, punctuation and a final dot ignored.
fn is_street_type_word(p: &str) -> bool {
    let f = fold_word(p.trim_matches(|c: char| !c.is_alphanumeric()));
    vocab::is_street_type(&f)
}

/// Stems of the German compound street names ("Linden" of "Lindenstraße"), to build new compounds with.
fn de_street_stems() -> &'static [&'static str] {
    static S: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        vocab::vocab(Language::De)
            .street_names
            .iter()
            .filter(|n| !n.contains(char::is_whitespace))
            .filter_map(|n| de_street_suffix(n).map(|p| &n[..p]))
            .filter(|s| !s.ends_with('-'))
            .collect()
    })
}

/// Where a German hospital / practice type word ends a (folded) word: 0 for the type word itself
/// ("klinikum"), more for a compound ("kreiskrankenhaus"); `None` otherwise.
fn de_org_type_suffix(kind: Kind, folded: &str) -> Option<usize> {
    let suffixes: &[&str] = match kind {
        Kind::Hospital => &["krankenhaus", "klinikum", "kliniken", "klinik", "spital", "hospital"],
        Kind::HealthCenter => &["praxis", "versorgungszentrum", "gesundheitszentrum"],
        _ => return None,
    };
    suffixes.iter().find_map(|s| folded.strip_suffix(s).filter(|h| !h.contains('-')).map(str::len))
}

fn ascii_slug_or(s: &str, fallback: &str) -> String {
    let a = crate::text::ascii_slug(s);
    if a.is_empty() {
        fallback.to_string()
    } else {
        a
    }
}

/// Where the distinctive part of an organisation's name starts among its `split_keep` pieces: after
/// the leading type words ("Hospital General Universitario | Gregorio Marañón"), an article ending them
/// going with the name ("Hospital | La Princesa"); `pieces.len()` when the name is only type words.
fn org_rest_at(kind: Kind, pieces: &[(bool, &str)], german: bool) -> usize {
    // German names also open with compounds ("Kreiskrankenhaus", "Hausarztpraxis") and with the titles
    // of a practice's doctor ("Praxis Dr. med. | Weber").
    let is_type = |w: &str| {
        (match kind {
            Kind::Hospital => vocab::is_hospital_type(w),
            Kind::HealthCenter => vocab::is_health_center_type(w),
            _ => vocab::is_institution_type(w),
        }) || (german && (de_org_type_suffix(kind, w).is_some() || vocab::is_name_title(w.trim_end_matches('.'))))
    };
    let mut rest_at = pieces.len();
    for (i, (is_sep, p)) in pieces.iter().enumerate() {
        if *is_sep {
            continue;
        }
        let f = fold_word(p.trim_matches(|c: char| !c.is_alphanumeric() && c != '-'));
        if !is_type(&f) {
            rest_at = i;
            break;
        }
    }
    if rest_at < pieces.len() {
        if let Some(i) = (0..rest_at).rev().find(|&i| !pieces[i].0) {
            if matches!(fold_word(pieces[i].1).as_str(), "la" | "el" | "los" | "las" | "the") {
                rest_at = i;
            }
        }
    }
    rest_at
}

/// The last word (folded) of an organisation name's kept type words, before `rest_at` (empty: none).
fn last_prefix_word(pieces: &[(bool, &str)], rest_at: usize) -> String {
    pieces[..rest_at].iter().rev().find(|(sep, _)| !sep).map(|(_, p)| fold_word(p)).unwrap_or_default()
}

/// Whether the kept part ends in a connector, so that a place follows ("Hospital Comarcal de | Soria").
fn is_org_connector(last_prefix_word: &str) -> bool {
    matches!(last_prefix_word, "de" | "del" | "of" | "i" | "en")
}

/// Folded words (of two letters or more) written outside the spans of at least 3 documents of `docs`.
fn ordinary_words(docs: &[corpus::Document]) -> HashSet<String> {
    let mut documents: HashMap<String, usize> = HashMap::new();
    for d in docs {
        let chars: Vec<char> = d.text.chars().collect();
        let mut inside = vec![false; chars.len()];
        for sp in d.spans.iter().filter(|sp| sp.start < sp.end && sp.end <= chars.len()) {
            inside[sp.start..sp.end].iter_mut().for_each(|x| *x = true);
        }
        let outside: String = chars.iter().zip(&inside).map(|(&c, &i)| if i { ' ' } else { c }).collect();
        let words: HashSet<String> = outside.split(|c: char| !c.is_alphabetic()).filter(|w| w.chars().count() >= 2).map(fold_word).collect();
        for w in words {
            *documents.entry(w).or_default() += 1;
        }
    }
    documents.into_iter().filter(|&(_, n)| n >= 3).map(|(w, _)| w).collect()
}

/// A pronounceable made-up word of 2–3 syllables, capitalised (last-resort names).
fn syllable_word(rng: &mut ChaCha20Rng) -> String {
    const C: &[&str] = &["b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "ll", "ch"];
    const V: &[&str] = &["a", "e", "i", "o", "u"];
    const END: &[&str] = &["", "n", "s", "r", "l", "z"];
    let n = rng.random_range(2..=3);
    let mut w = String::new();
    for _ in 0..n {
        w.push_str(C[rng.random_range(0..C.len())]);
        w.push_str(V[rng.random_range(0..V.len())]);
    }
    w.push_str(END[rng.random_range(0..END.len())]);
    crate::text::capitalize_first(&w)
}

/// A street named after a (made-up) person: "de Julia Ortega", "del Doctor Vidal", "Anderssons väg".
fn person_street(rng: &mut ChaCha20Rng, v: &Vocab, lang: Language) -> String {
    let g = if rng.random_bool(0.5) { &v.given_female } else { &v.given_male };
    let given = g[rng.random_range(0..g.len())];
    let sur = v.surnames[rng.random_range(0..v.surnames.len())];
    match (lang, rng.random_range(0..3)) {
        (Language::Es, 0) => format!("del Doctor {sur}"),
        (Language::Es, 1) => format!("del Maestro {sur}"),
        (Language::Es, _) => format!("de {given} {sur}"),
        (Language::En, 0) => sur.to_string(),
        (Language::En, _) => format!("{given} {sur}"),
        (Language::Sv, 0) => format!("{sur}s väg"),
        (Language::Sv, _) => format!("{given} {sur}s gata"),
        (Language::De, 0) => format!("{sur}straße"),
        (Language::De, 1) => format!("{given}-{sur}-Straße"),
        (Language::De, _) => format!("{sur}weg"),
    }
}

/// A made-up town name of the language's usual shape (when the city list is exhausted).
fn made_up_town(rng: &mut ChaCha20Rng, lang: Language) -> String {
    match lang {
        Language::Es => {
            const P: &[&str] = &[
                "Villanueva",
                "Villar",
                "Torre",
                "Puebla",
                "Castillo",
                "Fuente",
                "Valle",
                "Navas",
                "Casas",
                "Aldea",
                "Mota",
                "Vega",
                "Cabeza",
                "Hoya",
                "Peña",
            ];
            const S: &[&str] = &[
                "la Sierra",
                "los Oteros",
                "Campos",
                "Arriba",
                "Abajo",
                "la Vega",
                "la Jara",
                "los Infantes",
                "la Reina",
                "los Caballeros",
                "Alcor",
                "Oca",
                "Riofrío",
                "Almenara",
                "Yuso",
                "Suso",
                "la Cañada",
            ];
            format!("{} de {}", P[rng.random_range(0..P.len())], S[rng.random_range(0..S.len())])
        }
        Language::En => {
            const S: &[&str] = &["ton", "field", "bury", "ford", "ham", "wick", "ley"];
            format!("{}{}", syllable_word(rng), S[rng.random_range(0..S.len())])
        }
        Language::Sv => {
            const S: &[&str] = &["by", "köping", "torp", "sund", "vik", "berga", "ås"];
            format!("{}{}", syllable_word(rng), S[rng.random_range(0..S.len())])
        }
        Language::De => {
            const S: &[&str] = &["dorf", "hausen", "heim", "berg", "feld", "stadt", "ingen", "bach"];
            format!("{}{}", syllable_word(rng), S[rng.random_range(0..S.len())])
        }
    }
}

fn fill_template(t: &str, v: &Vocab, rng: &mut ChaCha20Rng) -> String {
    let mut s = t.to_string();
    let pick = |rng: &mut ChaCha20Rng, l: &[&'static str], fb: &'static str| {
        if l.is_empty() {
            fb
        } else {
            l[rng.random_range(0..l.len())]
        }
    };
    if s.contains("{city}") {
        s = s.replace("{city}", pick(rng, &v.cities, "Centro"));
    }
    if s.contains("{surname}") {
        s = s.replace("{surname}", pick(rng, &v.surnames, "Ruiz"));
    }
    if s.contains("{given}") {
        let g = if rng.random_bool(0.5) { &v.given_female } else { &v.given_male };
        s = s.replace("{given}", pick(rng, g, "Ana"));
    }
    if s.contains("{hc}") {
        s = s.replace("{hc}", pick(rng, &v.health_center_names, "Centro"));
    }
    if s.contains("{saint}") {
        let g = if rng.random_bool(0.5) { &v.given_female } else { &v.given_male };
        s = s.replace("{saint}", &format!("St. {}", pick(rng, g, "Anna")));
    }
    if s.contains("{h}") {
        s = s.replace("{h}", pick(rng, &v.hospital_names, "Central"));
    }
    s
}
