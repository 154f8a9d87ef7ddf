//! De-identifies the MEDDOCAN dev split from its gold spans and checks alignment and leakage. Fails naming the
//! path where the corpus is not next to the repository (`../shared/data/meddocan`). Prints counts only,
//! never text.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use corpus::{CharIndex, Document};
use deid::{deidentify_corpus, leak_report, leaked_strings, Kind, LabelMap, Mode, Options, Outcome};

fn meddocan_dir(split: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/meddocan").join(split)
}

fn load(split: &str) -> Vec<Document> {
    let dir = meddocan_dir(split);
    assert!(dir.is_dir(), "{} not found: this test reads MEDDOCAN there (`../shared` beside the repository, as in CI)", dir.display());
    // No reader of its own: a regression in the corpus crate's BRAT reader should fail here too.
    corpus::read_corpus(&dir, Some(corpus::Format::Brat), &corpus::ReadOptions::default())
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
}

fn word_bounded(hay: &str, needle: &str) -> bool {
    let (Some(f), Some(l)) = (needle.chars().next(), needle.chars().next_back()) else { return false };
    hay.match_indices(needle).any(|(i, m)| {
        let left = !f.is_alphanumeric() || hay[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let right = !l.is_alphanumeric() || hay[i + m.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        left && right
    })
}

#[test]
fn meddocan_dev_gold_spans_deidentified_without_leaks() {
    // DEID_SMOKE_SPLIT=train|test runs the same checks on another split.
    let split = std::env::var("DEID_SMOKE_SPLIT").unwrap_or_else(|_| "dev".to_string());
    let docs = load(&split);
    assert!(docs.len() >= 100, "the split has its documents");
    let labels = LabelMap::meddocan();
    let t0 = Instant::now();
    let (out, mapping, stats) =
        deidentify_corpus(&docs, Mode::Surrogate, &Options::default().with_key("smoke-test")).expect("deidentify");
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "meddocan {split}: {} documents, {} spans in {secs:.2}s ({:.0} docs/s)",
        stats.documents,
        stats.spans,
        docs.len() as f64 / secs
    );
    assert_eq!(out.len(), docs.len());
    assert!(stats.unknown_labels.is_empty(), "every MEDDOCAN label is mapped");

    // 1. Alignment: every new span's text is its replacement, and the text between spans is unchanged.
    let mut by_doc: HashMap<&str, Vec<&deid::MappingEntry>> = HashMap::new();
    for m in &mapping {
        by_doc.entry(m.doc_id.as_str()).or_default().push(m);
    }
    for (o, n) in docs.iter().zip(&out) {
        let ms = by_doc.remove(o.id.as_str()).unwrap_or_default();
        assert_eq!(ms.len(), o.spans.len());
        assert_eq!(n.spans.len(), o.spans.len());
        let ni = CharIndex::new(&n.text);
        let oi = CharIndex::new(&o.text);
        let mut rebuilt = String::new();
        let mut cursor = 0;
        for (s, m) in n.spans.iter().zip(&ms) {
            assert_eq!(s.label, m.label);
            assert_eq!(ni.slice(&n.text, s.start, s.end), m.replacement, "span aligned in {}", o.id);
            assert_eq!(oi.slice(&o.text, m.start, m.end), m.original);
            rebuilt.push_str(ni.slice(&n.text, cursor, s.start));
            rebuilt.push_str(&m.original);
            cursor = s.end;
        }
        rebuilt.push_str(ni.slice(&n.text, cursor, ni.len()));
        assert!(rebuilt == o.text, "text outside spans unchanged in {}", o.id);
        for m in &ms {
            if m.outcome != Outcome::Kept {
                assert_ne!(m.replacement, m.original, "surrogate equals original in {} ({})", o.id, m.label);
            }
        }
    }

    // 2. Leakage through replaced spans. For each document, a gold string leaks through the replacement
    // when it occurs (word-bounded) inside the text of one of the document's new spans. Excluded from the
    // assertion, and reported instead:
    //  * kept values (sex markers such as "H"/"M"/"varón", kinship words such as "madre"): kept by design;
    //  * dates and ages: computed values (a shift of the whole document), so a shifted date or age can
    //    legitimately equal another date or age of the same document ("70 años" → "72 años" when the
    //    patient is also "72 años" elsewhere); they are only kept from equalling an original outright;
    //  * strings that also stand in the original text outside any span (an un-annotated mention, or a
    //    common word): the annotation, not the replacement, lets them through.
    let mut strict_leaks: BTreeMap<String, usize> = BTreeMap::new();
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    let mut mapping_by_doc: HashMap<&str, Vec<&deid::MappingEntry>> = HashMap::new();
    for m in &mapping {
        mapping_by_doc.entry(m.doc_id.as_str()).or_default().push(m);
    }
    for o in &docs {
        let ms = &mapping_by_doc[o.id.as_str()];
        let oi = CharIndex::new(&o.text);
        // Original text with every span blanked out, to find strings that also occur outside spans.
        let mut outside = String::new();
        let mut cur = 0;
        for s in &o.spans {
            outside.push_str(oi.slice(&o.text, cur, s.start.max(cur)));
            outside.push('\u{0}');
            cur = cur.max(s.end);
        }
        outside.push_str(oi.slice(&o.text, cur, oi.len()));
        let kept: HashSet<&str> =
            ms.iter().filter(|m| m.outcome == Outcome::Kept).map(|m| m.original.as_str()).collect();
        let replacements: Vec<&str> = ms.iter().map(|m| m.replacement.as_str()).collect();
        let mut seen = HashSet::new();
        for m in ms {
            if !seen.insert((m.label.as_str(), m.original.as_str())) || m.original.trim().is_empty() {
                continue;
            }
            let leaked = replacements.iter().any(|r| word_bounded(r, &m.original));
            if !leaked {
                continue;
            }
            let kind = labels.kind_of(&m.label);
            let excused = m.outcome == Outcome::Kept
                || kept.contains(m.original.as_str())
                || kind.is_some_and(Kind::is_value)
                || word_bounded(&outside, &m.original);
            *if excused { reported.entry(m.label.clone()) } else { strict_leaks.entry(m.label.clone()) }
                .or_default() += 1;
        }
    }
    eprintln!("leaks through replacements excused (kept / dates & ages / also outside spans), per label: {reported:?}");
    eprintln!("unparsed dates: {}, consistency breaks: {}", stats.dates_unparsed, stats.consistency_breaks);
    let generic: BTreeMap<&str, usize> =
        stats.by_label.iter().filter(|(_, s)| s.generic > 0).map(|(l, s)| (l.as_str(), s.generic)).collect();
    eprintln!("generic (format-preserving) replacements per label: {generic:?}");
    let report = leak_report(&docs, &out).expect("leak report");
    let summary: BTreeMap<&str, (usize, usize, usize, usize)> =
        report.iter().map(|(l, r)| (l.as_str(), (r.distinct, r.leaked, r.via_replacement, r.outside_only))).collect();
    eprintln!("per-document leak report (distinct, leaked, via replacement, outside only): {summary:?}");
    let corpus_wide = leaked_strings(&docs, &out);
    eprintln!("corpus-wide distinct gold strings found anywhere in the output: {corpus_wide:?}");
    assert!(strict_leaks.is_empty(), "gold PHI leaked through replaced spans: {strict_leaks:?}");
    // Dates the parser cannot read are rare in MEDDOCAN; most get a real shift.
    let dates = &stats.by_label["FECHAS"];
    assert!(
        dates.surrogate as f64 >= 0.97 * dates.spans as f64,
        "dates parsed: {} of {}",
        dates.surrogate,
        dates.spans
    );
    // Names, streets, places, IDs ... get realistic surrogates, not the generic fallback.
    for l in [
        "NOMBRE_SUJETO_ASISTENCIA",
        "NOMBRE_PERSONAL_SANITARIO",
        "CALLE",
        "TERRITORIO",
        "PAIS",
        "HOSPITAL",
        "CORREO_ELECTRONICO",
    ] {
        let s = &stats.by_label[l];
        assert!(s.surrogate as f64 >= 0.98 * s.spans as f64, "{l}: {} of {} realistic", s.surrogate, s.spans);
    }
}
