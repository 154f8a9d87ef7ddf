//! Surrogate augmentation: each annotated document rewritten into new copies with other names,
//! dates, places and numbers (its spans kept, moved to the new text), so that a tagger trained on
//! few documents sees each context with many fillers instead of memorising one.

use std::collections::{BTreeMap, BTreeSet};

use corpus::split::COPY_MARK;
use corpus::{CharIndex, Document};
use sha2::{Digest, Sha256};

use crate::{deidentify, deidentify_corpus, CorpusVocab, DeidError, LabelMap, Language, Mode, Options, SurrogateSource, Surrogator};

/// `copies` surrogate rewrites of every document of `docs`, copy by copy (`{id}~copy1` for each
/// document, then `~copy2`, …), not including the originals. Each copy draws from its own key
/// derived from `seed` (same seed, same copies). Spans whose label has a kind (listed in `labels`
/// or guessed from its name, `LabelMap::effective_kind`) get surrogates and never an original PHI
/// string of `docs`; spans of a label with no kind get another mention of the same label from
/// `docs` (mention replacement), since deid's shape-keeping random letters for them teach a tagger
/// nothing (MEDDOCAN with opaque label names: BENCHMARKS.md, issue 24).
///
/// `source`: [`SurrogateSource::Corpus`] widens the surrogate lists with the strings of `docs`
/// ([`CorpusVocab`]) and lets a copy take another document's string (never one of its own
/// document's), so the copies carry names as varied as the corpus's rather than a few hundred.
pub fn surrogate_copies(
    docs: &[Document],
    copies: usize,
    seed: u64,
    language: Language,
    labels: &LabelMap,
    source: SurrogateSource,
) -> Result<Vec<Document>, DeidError> {
    let pools = unknown_label_mentions(docs, labels);
    let mut out = Vec::with_capacity(docs.len() * copies);
    let mut widened = None;
    for c in 1..=copies {
        // Distinct seeds per copy; the multiplier keeps seed s copy 2 away from seed s + 1 copy 1.
        let copy_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64);
        let options = Options { labels: labels.clone(), ..Options::default() }.with_seed(copy_seed).with_language(language);
        let rewritten = match source {
            SurrogateSource::Lists => deidentify_corpus(docs, Mode::Surrogate, &options)?.0,
            SurrogateSource::Corpus => {
                let mut ctx = Surrogator::new(options);
                match widened {
                    Some(v) => ctx.set_vocab(v),
                    None => {
                        ctx.widen_vocab(&CorpusVocab::from_documents(docs, labels, language, |_| true));
                        widened = Some(ctx.vocab());
                    }
                }
                docs.iter().map(|d| deidentify(d, Mode::Surrogate, &mut ctx).map(|r| r.doc)).collect::<Result<Vec<_>, _>>()?
            }
        };
        for (original, mut d) in docs.iter().zip(rewritten) {
            if !pools.is_empty() {
                d = replace_mentions(original, &d, &pools, copy_seed);
            }
            d.id = format!("{}{COPY_MARK}{c}", d.id);
            out.push(d);
        }
    }
    Ok(out)
}

/// How many copies to add to a corpus of `documents` gold documents when the user does not say:
/// enough to bring small corpora towards [`AUTO_TARGET_DOCUMENTS`] documents' worth, at most 16
/// (each copy costs its training time again; 16 beat 8 on 25 MEDDOCAN documents, BENCHMARKS.md),
/// none from 251 documents on.
pub fn auto_copies(documents: usize) -> usize {
    copies_towards(documents, AUTO_TARGET_DOCUMENTS)
}

/// The corpus size [`auto_copies`] fills small corpora towards.
const AUTO_TARGET_DOCUMENTS: usize = 500;

/// The most copies [`copies_towards`] gives.
const MAX_COPIES: usize = 16;

/// Copies of each of `documents` documents that bring the corpus to about `target` documents'
/// worth (⌊target / documents⌋ − 1, at most [`MAX_COPIES`]): none once it holds half of them.
pub fn copies_towards(documents: usize, target: usize) -> usize {
    (target / documents.max(1)).saturating_sub(1).min(MAX_COPIES)
}

/// The surrogate vocabulary for text in `language`: its own where deid has one, else English's.
pub fn surrogate_language(language: lang::Language) -> Language {
    match language {
        lang::Language::Es => Language::Es,
        lang::Language::Sv => Language::Sv,
        lang::Language::De => Language::De,
        _ => Language::En,
    }
}

/// The surrogate vocabulary for `docs`, by the language their text is written in.
pub fn surrogate_language_of(docs: &[Document]) -> Language {
    surrogate_language(lang::detect(docs.iter().map(|d| d.text.as_str())))
}

/// The distinct mentions (sorted) of each label of `docs` that has no surrogate kind.
fn unknown_label_mentions(docs: &[Document], labels: &LabelMap) -> BTreeMap<String, Vec<String>> {
    let mut pools: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in docs {
        let index = CharIndex::new(&d.text);
        for s in d.spans.iter().filter(|s| labels.effective_kind(&s.label).is_none()) {
            pools.entry(s.label.clone()).or_default().insert(index.slice(&d.text, s.start, s.end).to_string());
        }
    }
    pools.into_iter().map(|(l, m)| (l, m.into_iter().collect())).collect()
}

/// `copy` (the surrogate rewrite of `original`, spans in the same order) with every span of a
/// label in `pools` holding another mention of its label, drawn by `seed`, the document and the
/// original string (one original, one replacement within a document, as deid keeps names consistent).
fn replace_mentions(original: &Document, copy: &Document, pools: &BTreeMap<String, Vec<String>>, seed: u64) -> Document {
    debug_assert!(original.spans.iter().map(|s| &s.label).eq(copy.spans.iter().map(|s| &s.label)));
    let (originals, copied) = (CharIndex::new(&original.text), CharIndex::new(&copy.text));
    let (mut text, mut spans, mut at, mut len) = (String::with_capacity(copy.text.len()), Vec::with_capacity(copy.spans.len()), 0, 0);
    for (o, s) in original.spans.iter().zip(&copy.spans) {
        text.push_str(copied.slice(&copy.text, at, s.start));
        let start = len + s.start - at;
        let filler = match pools.get(&s.label) {
            Some(pool) => {
                let was = originals.slice(&original.text, o.start, o.end);
                let others: Vec<&String> = pool.iter().filter(|m| *m != was).collect();
                if others.is_empty() {
                    was
                } else {
                    let h = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(original.id.as_bytes()).chain_update([0]).chain_update(was.as_bytes()).finalize();
                    let r = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
                    others[(r % others.len() as u64) as usize].as_str()
                }
            }
            None => copied.slice(&copy.text, s.start, s.end),
        };
        text.push_str(filler);
        len = start + filler.chars().count();
        spans.push(corpus::Span::new(start, len, s.label.clone()));
        at = s.end;
    }
    text.push_str(copied.slice(&copy.text, at, copied.len()));
    Document { id: copy.id.clone(), text, spans }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corpus::Span;

    fn doc() -> Document {
        let text = "Paciente: Juan García López, 45 años. Ingreso el 12/03/2019 en Madrid.";
        let span = |s: &str, label: &str| {
            let start = text[..text.find(s).unwrap()].chars().count();
            Span::new(start, start + s.chars().count(), label)
        };
        Document {
            id: "d1".into(),
            text: text.into(),
            spans: vec![span("Juan García López", "NOMBRE_SUJETO_ASISTENCIA"), span("12/03/2019", "FECHAS"), span("Madrid", "TERRITORIO")],
        }
    }

    #[test]
    fn labels_without_a_kind_get_other_mentions_of_their_label() {
        let relabel = |d: Document, id: &str| Document { id: id.into(), spans: d.spans.into_iter().map(|s| Span { label: if s.label == "FECHAS" { s.label } else { format!("Q{}", s.label.len()) }, ..s }).collect(), ..d };
        let mut other = doc();
        other.text = other.text.replace("Juan García López", "Ana Ruiz").replace("Madrid", "Soria");
        other.spans = vec![Span::new(10, 18, "NOMBRE_SUJETO_ASISTENCIA"), Span::new(40, 50, "FECHAS"), Span::new(54, 59, "TERRITORIO")];
        let docs = [relabel(doc(), "d1"), relabel(other, "d2")];
        let mut labels = LabelMap::meddocan();
        labels.set_guess(false);
        let copies = surrogate_copies(&docs, 2, 3, Language::Es, &labels, SurrogateSource::Lists).unwrap();
        let text = |d: &Document, s: &Span| CharIndex::new(&d.text).slice(&d.text, s.start, s.end).to_string();
        for (c, d) in copies.iter().zip(docs.iter().cycle()) {
            assert_eq!(c.spans.iter().map(|s| &s.label).collect::<Vec<_>>(), d.spans.iter().map(|s| &s.label).collect::<Vec<_>>());
            let mentions: Vec<String> = c.spans.iter().map(|s| text(c, s)).collect();
            // Opaque labels swap mentions between the two documents; dates still get surrogates.
            let (this, that) = if d.id == "d1" { (["Juan García López", "Madrid"], ["Ana Ruiz", "Soria"]) } else { (["Ana Ruiz", "Soria"], ["Juan García López", "Madrid"]) };
            assert_eq!([mentions[0].as_str(), mentions[2].as_str()], that, "{this:?}");
            assert_ne!(mentions[1], text(d, &d.spans[1]));
            assert!(c.text.starts_with("Paciente: ") && c.text.contains(" años. Ingreso el "));
        }
    }

    #[test]
    fn auto_copies_fall_with_corpus_size() {
        let got: Vec<usize> = [1, 25, 50, 100, 125, 200, 250, 251, 475, 5000].iter().map(|&n| auto_copies(n)).collect();
        assert_eq!(got, [16, 16, 9, 4, 3, 1, 1, 0, 0, 0]);
        // A synthetic corpus filled towards 2,000 documents: 500 → 3 copies, 1,000 → 1, 2,000 → none.
        let towards: Vec<usize> = [500, 999, 1000, 1001, 2000, 4000].iter().map(|&n| copies_towards(n, 2000)).collect();
        assert_eq!(towards, [3, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn copies_keep_labels_and_context_change_fillers_and_are_seeded() {
        let d = doc();
        let a = surrogate_copies(std::slice::from_ref(&d), 3, 7, Language::Es, &LabelMap::meddocan(), SurrogateSource::Lists).unwrap();
        assert_eq!(a.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1~copy1", "d1~copy2", "d1~copy3"]);
        for c in &a {
            assert_eq!(c.spans.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), d.spans.iter().map(|s| s.label.as_str()).collect::<Vec<_>>());
            assert!(c.text.starts_with("Paciente: ") && c.text.contains(" años. Ingreso el "));
            for (s, o) in c.spans.iter().zip(&d.spans) {
                let new: String = c.text.chars().skip(s.start).take(s.end - s.start).collect();
                let old: String = d.text.chars().skip(o.start).take(o.end - o.start).collect();
                assert_ne!(new, old, "a copy kept an original PHI string");
            }
        }
        assert_ne!(a[0].text, a[1].text);
        assert_eq!(a, surrogate_copies(std::slice::from_ref(&d), 3, 7, Language::Es, &LabelMap::meddocan(), SurrogateSource::Lists).unwrap());
        assert_ne!(a, surrogate_copies(&[d], 3, 8, Language::Es, &LabelMap::meddocan(), SurrogateSource::Lists).unwrap());
    }

    /// `SurrogateSource::Corpus`: the copies draw surnames from the corpus too (another document's,
    /// never their own document's), seeded like the lists' copies.
    #[test]
    fn corpus_surrogates_take_other_documents_strings_and_are_seeded() {
        let docs: Vec<Document> = (0..40)
            .map(|i| {
                let surname = format!("Zurb{}{}", (b'a' + (i / 26) as u8) as char, (b'a' + (i % 26) as u8) as char);
                let text = format!("Paciente: Pedro {surname}. Fin.");
                Document { id: format!("d{i}"), spans: vec![Span::new(10, 10 + 6 + surname.chars().count(), "NOMBRE_SUJETO_ASISTENCIA")], text }
            })
            .collect();
        let run = |seed| surrogate_copies(&docs, 2, seed, Language::Es, &LabelMap::meddocan(), SurrogateSource::Corpus).unwrap();
        let a = run(7);
        let mut from_corpus = 0;
        for (c, d) in a.iter().zip(docs.iter().cycle()) {
            let name: String = c.text.chars().skip(c.spans[0].start).take(c.spans[0].end - c.spans[0].start).collect();
            let own: String = d.text.chars().skip(d.spans[0].start).take(d.spans[0].end - d.spans[0].start).collect();
            assert_ne!(name.split(' ').last(), own.split(' ').last(), "{}: its own document's surname", c.id);
            from_corpus += name.contains("Zurb") as usize;
        }
        assert!(from_corpus > 0, "no copy drew a corpus surname");
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
    }
}
