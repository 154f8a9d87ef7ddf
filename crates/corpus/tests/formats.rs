//! Format round-trips on random documents, and hand-made bad inputs with the exact error each
//! must give.

use corpus::{read_corpus, write_corpus, Document, Format, OverlapPolicy, ReadOptions, Span};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const ALPHABET: &[char] = &[
    'a', 'b', 'Z', 'ñ', 'é', 'Ü', '0', '7', ' ', ' ', ' ', '\n', '.', ',', '-', '/', '@', '\u{feff}', '😀', 'ç', 'º', '\t',
];

fn random_doc(rng: &mut ChaCha8Rng, i: usize) -> Document {
    let len = rng.random_range(0..120);
    let mut text: String = (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect();
    if rng.random_bool(0.2) {
        text.insert(0, '\u{feff}');
    }
    let n = text.chars().count();
    let mut spans: Vec<Span> = Vec::new();
    let mut pos = 0;
    while n > 0 && pos < n {
        let start = pos + rng.random_range(0..10);
        let end = start + rng.random_range(1..8);
        if end > n {
            break;
        }
        spans.push(Span::new(start, end, ["NAME", "DATE", "ID_X"][rng.random_range(0..3)]));
        pos = end + rng.random_range(0..3);
    }
    Document { id: format!("doc-{i:03}"), text, spans }
}

#[test]
fn random_documents_round_trip_through_jsonl_and_brat() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let docs: Vec<Document> = (0..300).map(|i| random_doc(&mut rng, i)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("a.jsonl");
    write_corpus(&jsonl, None, &docs).unwrap();
    assert_eq!(read_corpus(&jsonl, None, &ReadOptions::default()).unwrap(), docs);
    let brat = tmp.path().join("brat");
    write_corpus(&brat, None, &docs).unwrap();
    assert_eq!(read_corpus(&brat, Some(Format::Brat), &ReadOptions::default()).unwrap(), docs);
}

#[test]
fn conll_round_trip_keeps_tokens_and_labels() {
    // Token-aligned spans survive CoNLL export and import with the same labels and surfaces.
    let docs = vec![
        Document {
            id: "a".into(),
            text: "Nombre: Ana García.\nNHC: 12345. Vive en Madrid con su madre.".into(),
            spans: vec![Span::new(8, 18, "NOMBRE"), Span::new(25, 30, "ID"), Span::new(40, 46, "TERRITORIO")],
        },
        Document { id: "b".into(), text: "".into(), spans: vec![] },
    ];
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.conll");
    write_corpus(&path, None, &docs).unwrap();
    let back = read_corpus(&path, None, &ReadOptions::default()).unwrap();
    assert_eq!(back.len(), 2);
    let surfaces = |d: &Document| d.spans.iter().map(|s| (s.label.clone(), d.slice(s.start, s.end).to_string())).collect::<Vec<_>>();
    assert_eq!(
        surfaces(&back[0]),
        [("NOMBRE".into(), "Ana García".into()), ("ID".into(), "12345".into()), ("TERRITORIO".into(), "Madrid".into())]
    );
    assert_eq!(back[0].text, "Nombre : Ana García .\nNHC : 12345 . Vive en Madrid con su madre .");
}

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// Reads a one-document BRAT directory and returns the error message.
fn brat_error(txt: &[u8], ann: &str, opts: &ReadOptions) -> String {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "d.txt", txt);
    write(tmp.path(), "d.ann", ann.as_bytes());
    let err = read_corpus(tmp.path(), None, opts).unwrap_err();
    assert!(err.path.ends_with("d.ann") || err.path.ends_with("d.txt"), "{err}");
    format!("{}:{}", err.line.map(|l| l.to_string()).unwrap_or_default(), err.message)
}

#[test]
fn bad_brat_inputs_give_exact_errors() {
    let o = ReadOptions::default();
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 3\tAna\nT2\tX 4 20\tvive", &o),
        "2:T2: span X 4..20 ends after the text, which has 8 characters (offsets count Unicode characters, a BOM included)"
    );
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 3\tEva", &o),
        "1:T1: the .ann text (3 chars) is not the .txt text at 0..3 (3 chars); the offsets must count Unicode characters, with a BOM as character 0"
    );
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 3;4 8\tAna vive", &o),
        "1:T1: discontinuous span (NOMBRE 0 3;4 8) is not supported; split it into one T line per fragment"
    );
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 3\tAna\nR1\tRel Arg1:T1 Arg2:T1", &o),
        "2:a relation line: synthdeid reads only text-bound `T` lines (pass --skip-non-entity-lines to skip such lines with a warning)"
    );
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 8\tAna vive\nT2\tX 4 8\tvive", &o),
        "2:span X 4..8 overlaps span NOMBRE 0..8; BIO tagging cannot hold overlapping spans (fix the annotation, or pass --overlaps keep-first to keep the earlier, longer span)"
    );
    assert_eq!(brat_error(b"Ana vive", "T1\tNOMBRE 0 x\tAna", &o), "1:T1: offset \"x\" is not a non-negative integer");
    assert_eq!(brat_error(b"Ana vive", "T1\tNOMBRE 3 3\t", &o), "1:T1: span NOMBRE 3..3 is empty or reversed: start must be smaller than end");
    assert_eq!(
        brat_error(b"Ana\n\xff vive", "", &o),
        "2:not valid UTF-8 (byte 1 of the line); re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
    );
    // BOM is character 0: "Ana" is at 1..4.
    assert_eq!(
        brat_error("\u{feff}Ana vive".as_bytes(), "T1\tNOMBRE 0 3\tAna", &o),
        "1:T1: the .ann text (3 chars) is not the .txt text at 0..3 (3 chars); the offsets must count Unicode characters, with a BOM as character 0"
    );
}

#[test]
fn lenient_options_turn_errors_into_warnings_not_silence() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "d.txt", "\u{feff}Ana vive".as_bytes());
    write(tmp.path(), "d.ann", b"T1\tNOMBRE 1 4\tAna\n#1\tAnnotatorNotes T1\tok\nT2\tNOMBRE 1 9\tAna vive\n");
    let opts = ReadOptions { overlaps: OverlapPolicy::KeepFirst, skip_non_entity_lines: true, ann_only: false, offsets_only: false };
    let loaded = corpus::format::read_corpus_report(tmp.path(), None, &opts).unwrap();
    assert_eq!(loaded.documents[0].spans, [Span::new(1, 9, "NOMBRE")]);
    let msgs: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].ends_with("d.ann:2: a note line: synthdeid reads only text-bound `T` lines; skipped"), "{}", msgs[0]);
    assert!(msgs[1].ends_with("d.ann:1: span NOMBRE 1..4 overlaps span NOMBRE 1..9; BIO tagging cannot hold overlapping spans (dropped it, kept the earlier, longer span)"), "{}", msgs[1]);
}

#[test]
fn missing_pairs_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.txt", b"x");
    write(tmp.path(), "a.ann", b"");
    write(tmp.path(), "b.txt", b"y");
    let err = read_corpus(tmp.path(), Some(Format::Brat), &ReadOptions::default()).unwrap_err();
    assert!(err.path.ends_with("b.txt"));
    assert_eq!(err.message, "no b.ann beside it: add an empty .ann if the document has no PHI, or read the directory with --from text");
    std::fs::remove_file(tmp.path().join("b.txt")).unwrap();
    write(tmp.path(), "c.ann", b"");
    let err = read_corpus(tmp.path(), None, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.message, "no c.txt beside it: every .ann needs the text its offsets point into");
    let ok = read_corpus(tmp.path(), None, &ReadOptions { ann_only: true, ..Default::default() }).unwrap();
    assert_eq!(ok.len(), 2);
}

#[test]
fn bad_jsonl_inputs_give_exact_errors_without_quoting_text() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.jsonl");
    let cases: [(&str, &str); 6] = [
        ("{\"id\":\"a\",\"text\":\"Ana\"}\n{\"id\":\"a\",\"text\":\"B\"}", "2: document id \"a\" already used on line 1; ids must be unique"),
        ("{\"id\":\"a\",\"text\":\"Ana\",\"spans\":[{\"start\":0,\"end\":9,\"label\":\"N\"}]}", "1: span N 0..9 ends after the text, which has 3 characters (offsets count Unicode characters, a BOM included)"),
        ("{\"id\":\"a\",\"text\":\"Ana\",\"spans\":[{\"start\":0,\"end\":2,\"label\":\"N\"},{\"start\":1,\"end\":3,\"label\":\"M\"}]}", "1: span M 1..3 overlaps span N 0..2; BIO tagging cannot hold overlapping spans (fix the annotation, or pass --overlaps keep-first to keep the earlier, longer span)"),
        ("{\"id\":\"a\"}", "1: not a document (missing field `text`, column 10): expected {\"id\": ..., \"text\": ..., \"spans\": [{\"start\", \"end\", \"label\"}]}"),
        ("{\"id\":\"a\",\"text\":7}", "1: not a document (a field has the wrong type or value, column 18): expected {\"id\": ..., \"text\": ..., \"spans\": [{\"start\", \"end\", \"label\"}]}"),
        ("{\"id\":\"a/b\",\"text\":\"x\"}", "1: document id \"a/b\" cannot be a file name: use a non-empty id without '/', '\\', tabs or newlines"),
    ];
    for (content, expected) in cases {
        std::fs::write(&p, content).unwrap();
        let err = read_corpus(&p, None, &ReadOptions::default()).unwrap_err();
        assert_eq!(format!("{}: {}", err.line.unwrap(), err.message), expected);
    }
    // A secret value in a wrong-typed field is never echoed.
    std::fs::write(&p, "{\"id\":\"a\",\"text\":\"x\",\"spans\":\"SECRET-PHI\"}").unwrap();
    assert!(!read_corpus(&p, None, &ReadOptions::default()).unwrap_err().to_string().contains("SECRET"));
}

/// Issue 25, case 1: a misspelt key (`"span"` for `"spans"`, `"lable"` for `"label"`) used to load
/// as a document without spans, so its PHI passed through `convert` and `deid --spans-from-input`.
#[test]
fn issue25_case1_jsonl_unknown_keys_are_refused_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.jsonl");
    let good = "{\"id\":\"a\",\"text\":\"Ana\",\"spans\":[{\"start\":0,\"end\":3,\"label\":\"N\"}]}";
    std::fs::write(&p, format!("{good}\n{{\"id\":\"b\",\"text\":\"Eva SECRET\",\"span\":[{{\"start\":0,\"end\":3,\"label\":\"N\"}}]}}\n")).unwrap();
    let err = read_corpus(&p, None, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.path, p);
    assert_eq!(err.line, Some(2));
    assert!(err.message.contains("unknown field `span`"), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
    std::fs::write(&p, "{\"id\":\"b\",\"text\":\"Eva\",\"spans\":[{\"start\":0,\"end\":3,\"lable\":\"N\"}]}\n").unwrap();
    let err = read_corpus(&p, None, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.line, Some(1));
    assert!(err.message.contains("`lable`"), "{err}");
    // Without unknown keys, a line without "spans" is still a document without PHI (generated text).
    std::fs::write(&p, format!("{good}\n{{\"id\":\"b\",\"text\":\"Eva\"}}\n")).unwrap();
    let docs = read_corpus(&p, None, &ReadOptions::default()).unwrap();
    assert_eq!((docs[0].spans.len(), docs[1].spans.len()), (1, 0));
}

// Issue 25, cases 2 and 6 (private files 0600, no temporary file left by a failed write): the
// atomic writer's own tests, crates/fsutil/tests/atomic.rs.

/// Issue 25, case 6: a CoNLL line with three tab-separated fields silently lost the middle one (which may
/// be part of the token); now an error naming file and line.
#[test]
fn issue25_case6_conll_line_with_three_fields_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.conll");
    for (content, line, expected) in [
        ("# doc_id = a\nAna\tB-NOMBRE\nMaría\tX\tI-NOMBRE\n", 3, "found 3 tab-separated column(s)"),
        ("Ana B-NOMBRE\nMaría POS I-NOMBRE\n", 2, "found 3 column(s)"),
        ("Ana\t\n", 1, "the token or the tag is empty"),
        ("Ana\n", 1, "found 1 column(s)"),
    ] {
        std::fs::write(&p, content).unwrap();
        let err = read_corpus(&p, None, &ReadOptions::default()).unwrap_err();
        assert_eq!((err.path.as_path(), err.line), (p.as_path(), Some(line)), "{err}");
        assert!(err.message.contains(expected), "{err}");
        assert!(!err.message.contains("María"), "{err}");
    }
    // Two columns, by tab (a token may then hold a space) or by spaces: read as before.
    std::fs::write(&p, "Ana\tB-NOMBRE\nde la Cruz\tI-NOMBRE\nvive\tO\n").unwrap();
    let d = read_corpus(&p, None, &ReadOptions::default()).unwrap();
    assert_eq!((d[0].text.as_str(), d[0].spans.clone()), ("Ana de la Cruz vive", vec![Span::new(0, 14, "NOMBRE")]));
}

/// Issue 25, case 6: duplicate BRAT `T` ids were accepted silently; an `.ann` that is a directory (or a
/// FIFO) got "no X.ann beside it".
#[test]
fn issue25_case6_brat_duplicate_ids_and_non_file_ann_are_named() {
    let o = ReadOptions::default();
    assert_eq!(
        brat_error(b"Ana vive", "T1\tNOMBRE 0 3\tAna\nT1\tX 4 8\tvive", &o),
        "2:T1: id already used on line 1; each T id must be unique in its .ann (renumber the annotations)"
    );
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "d.txt", b"Ana");
    std::fs::create_dir(tmp.path().join("d.ann")).unwrap();
    let err = read_corpus(tmp.path(), Some(Format::Brat), &o).unwrap_err();
    assert!(err.path.ends_with("d.ann"), "{err}");
    assert!(err.message.starts_with("is a directory, not a file"), "{err}");
    #[cfg(unix)]
    {
        std::fs::remove_dir(tmp.path().join("d.ann")).unwrap();
        let fifo = tmp.path().join("d.ann");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let err = read_corpus(tmp.path(), Some(Format::Brat), &o).unwrap_err();
        assert!(err.message.starts_with("is a FIFO (named pipe), not a file"), "{err}");
    }
    // And a .txt that is a directory beside an .ann.
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "e.ann", b"");
    std::fs::create_dir(tmp.path().join("e.txt")).unwrap();
    let err = read_corpus(tmp.path(), None, &o).unwrap_err();
    assert!(err.path.ends_with("e.txt") && err.message.starts_with("is a directory, not a file"), "{err}");
}

/// Issue 25, case 7: predictions are read by offsets only (`offsets_only`), as the official MEDDOCAN
/// script reads them: a surface text that differs from the text (whitespace normalised by a system), an
/// empty span and a repeated T id are warnings naming file and line, not errors, and the spans are kept.
/// Gold (the default options) stays strict.
#[test]
fn issue25_case7_offsets_only_reading_keeps_what_the_official_script_scores() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "d.txt", "Ana  García vive\nen Madrid".as_bytes());
    write(tmp.path(), "d.ann", "T1\tNOMBRE 0 11\tAna García\nT2\tX 12 12\t\nT2\tTERRITORIO 20 26\tMadrid\nT3\tX 30 40\tSECRET\n".as_bytes());
    let strict = read_corpus(tmp.path(), None, &ReadOptions::default()).unwrap_err();
    assert_eq!(strict.line, Some(1), "{strict}");
    let opts = ReadOptions { offsets_only: true, overlaps: OverlapPolicy::Allow, ..Default::default() };
    let loaded = corpus::format::read_corpus_report(tmp.path(), None, &opts).unwrap();
    assert_eq!(
        loaded.documents[0].spans,
        [Span::new(0, 11, "NOMBRE"), Span::new(12, 12, "X"), Span::new(20, 26, "TERRITORIO"), Span::new(30, 40, "X")]
    );
    let msgs: Vec<String> = loaded.warnings.iter().map(|w| format!("{}: {}", w.line.unwrap(), w.message)).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs[0].starts_with("1: T1: the .ann text (10 chars) is not the .txt text at 0..11 (11 chars); scored by its offsets"), "{}", msgs[0]);
    assert!(msgs[1].starts_with("2: T2: span X 12..12 is empty or reversed") && msgs[1].ends_with("as the official MEDDOCAN script does"), "{}", msgs[1]);
    assert!(msgs[2].starts_with("3: T2: id already used on line 2"), "{}", msgs[2]);
    assert!(msgs[3].starts_with("4: T3: span X 30..40 ends after the text"), "{}", msgs[3]);
    assert!(msgs.iter().all(|m| !m.contains("García") && !m.contains("SECRET") && !m.contains("Madrid")));
    // .ann only (no text): an empty span is a warning too; a missing label stays an error.
    let ann_only = tempfile::tempdir().unwrap();
    write(ann_only.path(), "e.ann", b"T1\tX 5 5\t\n");
    let opts = ReadOptions { ann_only: true, ..opts };
    let loaded = corpus::format::read_corpus_report(ann_only.path(), None, &opts).unwrap();
    assert_eq!((loaded.documents[0].spans.len(), loaded.warnings.len()), (1, 1));
    write(ann_only.path(), "e.ann", b"T1\t 5 6\t\n");
    assert!(read_corpus(ann_only.path(), None, &opts).is_err());
    // JSONL predictions: the same.
    let p = tmp.path().join("p.jsonl");
    std::fs::write(&p, "{\"id\":\"d\",\"text\":\"Ana\",\"spans\":[{\"start\":2,\"end\":2,\"label\":\"X\"}]}\n").unwrap();
    assert!(read_corpus(&p, None, &ReadOptions::default()).is_err());
    let loaded = corpus::format::read_corpus_report(&p, None, &opts).unwrap();
    assert_eq!((loaded.documents[0].spans.len(), loaded.warnings.len()), (1, 1));
}
