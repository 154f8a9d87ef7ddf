//! Hand-made German, English and Swedish notes (made up, no real data; PHI spans: names, dates, IDs,
//! places, phone numbers) go through the checks `synthdeid stats` makes: no span starts or ends inside
//! a word token, and no sentence boundary cuts a span. What they hold: compounds and hyphenated names,
//! `Dr. med.`, `Prof. Dr.`, `z.B.`, `u.a.`, `bzw.`, `3. April 2019`, `3.4.2019`, `03.04.2019`, `4.5.`,
//! `14:30`, `Hauptstr. 5`, decimals `3,5`, phone numbers; `Mr.`, `Dr.`, `St.`, `e.g.`, `i.e.`,
//! `Jan. 3, 2019`; personnummer `19121212-1212`, `121212-1212`, `850630+1234`, `kl. 14.30`, `avd. 52`,
//! `bl.a.`, `t.ex.`, `16 jan. 2020`.

use corpus::stats::stats;
use corpus::{read_corpus, Document, ReadOptions};
use std::path::PathBuf;

fn load(lang: &str) -> Vec<Document> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/languages/{lang}.jsonl"));
    read_corpus(&p, None, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn check(lang: &str) {
    let docs = load(lang);
    assert!(docs.len() >= 3 && docs.iter().all(|d| d.spans.len() >= 10), "{lang}: a few notes with PHI each");
    let st = stats(&docs);
    // Made-up text, so the failures may be shown with their surface.
    let show = |refs: &[corpus::stats::SpanRef]| -> Vec<String> {
        refs.iter()
            .map(|r| {
                let d = docs.iter().find(|d| d.id == r.document).unwrap();
                format!("{} {} {}..{} {:?}", r.document, r.label, r.start, r.end, d.slice(r.start, r.end))
            })
            .collect()
    };
    assert_eq!(show(&st.spans_not_token_aligned), Vec::<String>::new(), "{lang}: spans not on token boundaries");
    assert_eq!(show(&st.spans_cut_by_sentences), Vec::<String>::new(), "{lang}: spans cut by the sentence splitter");
}

#[test]
fn german_notes_keep_spans_whole() {
    check("de");
}

#[test]
fn english_notes_keep_spans_whole() {
    check("en");
}

#[test]
fn swedish_notes_keep_spans_whole() {
    check("sv");
}
