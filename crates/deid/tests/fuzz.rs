//! Property-based fuzzing (proptest) of what reads untrusted input and what writes surrogates:
//! the BRAT, JSONL, CoNLL, i2b2 XML and UIMA CAS JSON readers, the word tokenizer and sentence splitter, and `deidentify`.
//! Invariants: no panic; offsets stay within the text, on character boundaries; every output span
//! lies on its text. CI runs a few hundred cases per target; a long run is
//! `PROPTEST_CASES=20000 cargo test --release -p deid --test fuzz` (BENCHMARKS.md).

use corpus::{read_corpus, Document, Format, ReadOptions, Span};
use proptest::prelude::*;

/// Text with the characters that break naive code: astral and combining characters, a BOM, CR,
/// tabs, NUL, right-to-left marks, and plenty of spaces and punctuation.
fn nasty_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("a".to_string()),
        Just("Ana".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\t".to_string()),
        Just(".".to_string()),
        Just(":".to_string()),
        Just("\u{feff}".to_string()),
        Just("e\u{301}".to_string()),
        Just("😀".to_string()),
        Just("\u{200f}".to_string()),
        Just("\0".to_string()),
        Just("3.4.2019".to_string()),
        Just("Dr. med.".to_string()),
        Just("ñ".to_string()),
        "[\\PC]{1,3}".prop_map(|s| s),
    ];
    proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

/// Lines of a `.ann` file: valid-looking `T` lines (offsets may be anything) and garbage.
fn ann_lines() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (0usize..60, 0usize..60, "[A-Z_]{1,8}", "[\\PC]{0,6}").prop_map(|(a, b, l, t)| format!("T1\t{l} {a} {b}\t{t}")),
        (1u8..9, 0usize..60, 0usize..60).prop_map(|(i, a, b)| format!("T{i}\tNOMBRE {a} {b}\tx")),
        (0usize..40, 0usize..40, 0usize..40, 0usize..40).prop_map(|(a, b, c, d)| format!("T2\tFECHAS {a} {b};{c} {d}\tx y")),
        Just("R1\tRel Arg1:T1 Arg2:T2".to_string()),
        Just("#1\tAnnotatorNotes T1\tnote".to_string()),
        "[\\PC\t]{0,20}".prop_map(|s| s),
    ];
    proptest::collection::vec(line, 0..6).prop_map(|v| v.join("\n"))
}

/// Every span of a read document lies in its text (by characters), in order, and slices cleanly.
fn check_documents(docs: &[Document]) {
    for d in docs {
        let n = d.text.chars().count();
        for s in &d.spans {
            assert!(s.start <= s.end && s.end <= n, "{}: span {}..{} outside {} characters", d.id, s.start, s.end, n);
            let _ = d.slice(s.start, s.end);
        }
    }
}

/// A child of an i2b2 file's `<TAGS>`: a span on the text (offsets clamped to it, its `text`
/// attribute the surface there), or markup as written.
#[derive(Debug, Clone)]
enum Tag {
    OnText { start: usize, len: usize, label: String },
    Raw(String),
}

/// `docs` written in `format` under `dir/out` and read back strictly.
fn written_and_read(dir: &std::path::Path, format: Format, docs: &[Document]) -> Vec<Document> {
    let out = dir.join("out");
    corpus::write_corpus(&out, Some(format), docs).unwrap();
    read_corpus(&out, Some(format), &ReadOptions::default()).unwrap()
}

/// Text as XML character data: the five predefined entities.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// 256 cases a target in CI; `PROPTEST_CASES` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn brat_reader(text in nasty_text(), ann in ann_lines(), offsets_only in any::<bool>(), skip in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.txt"), &text).unwrap();
        std::fs::write(dir.path().join("d.ann"), &ann).unwrap();
        let options = ReadOptions { offsets_only, skip_non_entity_lines: skip, ..ReadOptions::default() };
        if let Ok(docs) = read_corpus(dir.path(), Some(Format::Brat), &options) {
            if !offsets_only {
                check_documents(&docs);
                // Strict reading: every span's surface is in the text, so it round-trips.
                prop_assert_eq!(written_and_read(dir.path(), Format::Brat, &docs), docs);
            }
        }
    }

    #[test]
    fn jsonl_reader(lines in proptest::collection::vec(prop_oneof![
        (nasty_text(), 0usize..50, 0usize..50, "[A-Z]{1,5}").prop_map(|(t, a, b, l)| serde_json::json!({"id": "d", "text": t, "spans": [{"start": a, "end": b, "label": l}]}).to_string()),
        nasty_text().prop_map(|t| serde_json::json!({"id": t, "text": "x", "spans": []}).to_string()),
        "[\\PC]{0,30}".prop_map(|s| s),
        Just("{\"id\": \"a\", \"text\": \"b\", \"spans\": [{\"start\": -1, \"end\": 1e99, \"label\": null}]}".to_string()),
    ], 0..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Ok(docs) = read_corpus(&path, Some(Format::Jsonl), &ReadOptions::default()) {
            check_documents(&docs);
        }
    }

    #[test]
    fn conll_reader(lines in proptest::collection::vec(prop_oneof![
        ("[\\PC]{1,6}", prop_oneof![Just("O"), Just("B-X"), Just("I-X"), Just("I-Y"), Just("B-"), Just("Q")]).prop_map(|(t, g)| format!("{t}\t{g}")),
        Just(String::new()),
        Just("# doc_id = a".to_string()),
        Just("# doc_id = a".to_string()),
        "[\\PC\t ]{0,20}".prop_map(|s| s),
    ], 0..30)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.conll");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Ok(docs) = read_corpus(&path, Some(Format::Conll), &ReadOptions::default()) {
            check_documents(&docs);
        }
    }

    #[test]
    fn i2b2_reader(text in nasty_text(), cdata in any::<bool>(), tags in proptest::collection::vec(prop_oneof![
        8 => (0usize..40, 1usize..8, "[A-Z]{1,8}").prop_map(|(start, len, label)| Tag::OnText { start, len, label }),
        2 => (0usize..60, 0usize..60, "[A-Z]{0,8}", "[\\PC]{0,6}").prop_map(|(a, b, l, t)| Tag::Raw(format!("<NAME id=\"P0\" start=\"{a}\" end=\"{b}\" text=\"{}\" TYPE=\"{l}\" comment=\"\" />", xml_escape(&t)))),
        2 => (0usize..60, 0usize..60).prop_map(|(a, b)| Tag::Raw(format!("<DATE start=\"{a}\" end=\"{b}\" TYPE=\"DATE\"/>"))),
        1 => Just(Tag::Raw("<NAME start=\"x\" end=\"1\" TYPE=\"PATIENT\"/>".to_string())),
        1 => Just(Tag::Raw("<NAME start=\"0\" TYPE=\"PATIENT\">".to_string())),
        1 => Just(Tag::Raw("<!-- c -->".to_string())),
        1 => "[\\PC<>&\"=/!\\[\\]]{0,20}".prop_map(Tag::Raw),
    ], 0..5), cut in proptest::option::of(0usize..400), offsets_only in any::<bool>()) {
        // A well-formed file most of the time; markup garbage, wrong attributes and truncation the rest.
        let body = if cdata { format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>")) } else { xml_escape(&text) };
        let chars: Vec<char> = text.chars().collect();
        let tags: Vec<String> = tags
            .into_iter()
            .map(|t| match t {
                Tag::OnText { start, len, label } => {
                    let (a, b) = (start.min(chars.len()), (start + len).min(chars.len()));
                    let surface: String = chars[a..b].iter().collect();
                    format!("<NAME id=\"P0\" start=\"{a}\" end=\"{b}\" text=\"{}\" TYPE=\"{label}\" comment=\"\" />", xml_escape(&surface))
                }
                Tag::Raw(t) => t,
            })
            .collect();
        let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<deIdi2b2>\n<TEXT>{body}</TEXT>\n<TAGS>\n{}\n</TAGS>\n</deIdi2b2>\n", tags.join("\n"));
        if let Some(c) = cut {
            xml = xml.chars().take(c).collect();
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.xml"), &xml).unwrap();
        let options = ReadOptions { offsets_only, ..ReadOptions::default() };
        if let Ok(docs) = read_corpus(dir.path(), Some(Format::I2b2Xml), &options) {
            if !offsets_only {
                check_documents(&docs);
                prop_assert_eq!(written_and_read(dir.path(), Format::I2b2Xml, &docs), docs);
            }
        }
    }

    #[test]
    fn uima_reader(text in nasty_text(), unit in 0usize..4, fss in proptest::collection::vec(prop_oneof![
        6 => (0i64..40, 1i64..8, "[A-Za-z]{1,3}[A-Za-z ]{0,3}").prop_map(|(a, n, l)| serde_json::json!({"%ID": 4, "%TYPE": "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity", "@sofa": 1, "begin": a, "end": a + n, "value": l})),
        2 => (0i64..60, 0i64..60, "[A-Za-z ]{0,6}").prop_map(|(a, b, l)| serde_json::json!({"%ID": 5, "%TYPE": "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity", "@sofa": 1, "begin": a, "end": b, "value": l})),
        2 => (-5i64..60, 0i64..60).prop_map(|(a, b)| serde_json::json!({"%ID": 6, "%TYPE": "webanno.custom.Phi", "@sofa": 1, "begin": a, "end": b})),
        2 => (0i64..60, 0i64..60).prop_map(|(a, b)| serde_json::json!({"%ID": 7, "%TYPE": "de.tudarmstadt.ukp.dkpro.core.api.segmentation.type.Token", "@sofa": 1, "begin": a, "end": b})),
        2 => (0i64..60, 0i64..60).prop_map(|(a, b)| serde_json::json!({"%ID": 8, "%TYPE": "custom.Span", "@sofa": 2, "begin": a, "end": b, "label": "X"})),
        1 => Just(serde_json::json!({"%ID": 9, "%TYPE": "custom.Span", "begin": "3", "end": null, "label": 4})),
        1 => Just(serde_json::json!(["not", "a", "feature structure"])),
    ], 0..5), garbage in proptest::option::of("[\\PC{}\\[\\]\":,]{0,30}")) {
        let encoding = ["UTF-8", "UTF-16", "UTF-32", "EBCDIC"];
        let mut all = vec![serde_json::json!({"%ID": 1, "%TYPE": "uima.cas.Sofa", "sofaID": "_InitialView", "sofaString": text})];
        all.extend(fss);
        let content = match garbage {
            Some(g) => g,
            None => serde_json::json!({"%HEADER": {"%OFFSET_ENCODING": encoding[unit]}, "%FEATURE_STRUCTURES": all, "%VIEWS": {"_InitialView": {"%SOFA": 1}}}).to_string(),
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.json"), &content).unwrap();
        if let Ok(docs) = read_corpus(dir.path(), Some(Format::UimaJson), &ReadOptions::default()) {
            check_documents(&docs);
            prop_assert_eq!(written_and_read(dir.path(), Format::UimaJson, &docs), docs);
        }
    }

    #[test]
    fn tokenizer_and_sentences(text in nasty_text()) {
        let n = text.chars().count();
        let mut last = 0;
        for t in corpus::tokenize(&text) {
            prop_assert!(t.start >= last && t.start < t.end && t.end <= n, "token {}..{} after {} in {} characters", t.start, t.end, last, n);
            last = t.end;
        }
        let mut last = 0;
        for (a, b) in corpus::split_sentences(&text) {
            prop_assert!(a >= last && a <= b && b <= n, "sentence {}..{} after {} in {} characters", a, b, last, n);
            last = b;
        }
    }

    #[test]
    fn surrogates_keep_every_span_on_its_text(text in nasty_text(), cuts in proptest::collection::vec((0usize..80, 1usize..12, 0usize..8), 0..6), mode in 0u8..3, lang in 0usize..4) {
        let n = text.chars().count();
        let labels = ["NOMBRE_SUJETO_ASISTENCIA", "FECHAS", "EDAD_SUJETO_ASISTENCIA", "ID_SUJETO_ASISTENCIA", "CALLE", "SEXO_SUJETO_ASISTENCIA", "HOSPITAL", "CENTRO_SALUD"];
        // Non-overlapping spans inside the text.
        let mut spans: Vec<Span> = Vec::new();
        let mut next = 0;
        for (gap, len, l) in cuts {
            let start = next + gap;
            let end = (start + len).min(n);
            if start >= end {
                break;
            }
            spans.push(Span::new(start, end, labels[l].to_string()));
            next = end;
        }
        let doc = Document { id: "d".into(), text: text.clone(), spans };
        let mode = [deid::Mode::Surrogate, deid::Mode::Redact, deid::Mode::Mask][mode as usize];
        // Every language: German splits compound streets and hospital names at byte offsets of its own.
        let language = deid::Language::ALL[lang];
        let mut ctx = deid::Surrogator::new(deid::Options::default().with_key(b"fuzz".to_vec()).with_language(language));
        if let Ok(out) = deid::deidentify(&doc, mode, &mut ctx) {
            check_documents(std::slice::from_ref(&out.doc));
            prop_assert_eq!(out.doc.spans.len(), doc.spans.len());
            for m in &out.mapping {
                prop_assert!(m.new_start <= m.new_end && m.new_end <= out.doc.text.chars().count());
            }
        }
    }
}
