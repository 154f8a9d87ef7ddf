//! i2b2 2014 XML and INCEpTION / UIMA CAS JSON readers on hand-made fixtures (made-up notes, no real
//! data): character offsets over non-ASCII text, CDATA, entities, UTF-16 → character conversion, round
//! trips through their own writers, and errors that name the file but never quote the text.

use corpus::{read_corpus, write_corpus, Document, Format, ReadOptions};
use std::path::{Path, PathBuf};

fn fixtures(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(sub)
}

fn read(path: &Path, format: Option<Format>) -> Vec<Document> {
    read_corpus(path, format, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// (label, surface) of every span.
fn surfaces(d: &Document) -> Vec<(String, String)> {
    d.spans.iter().map(|s| (s.label.clone(), d.slice(s.start, s.end).to_string())).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn i2b2_xml_reads_cdata_entities_and_character_offsets() {
    let docs = read(&fixtures("i2b2"), None);
    assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["note-cdata", "note-entities"]);
    let cdata = &docs[0];
    // The CDATA content is the text, its leading line break and `<`, `&` included.
    assert!(cdata.text.starts_with("\nRecord date: 2091-03-14\n"));
    assert!(cdata.text.contains("<ext. 12> & ask"));
    assert_eq!(
        surfaces(cdata),
        pairs(&[
            ("DATE", "2091-03-14"),
            ("PATIENT", "John Smith"),
            ("AGE", "67"),
            ("DOCTOR", "Ana Núñez"),
            ("HOSPITAL", "St. Mary's Hospital"),
            ("CITY", "Springfield"),
            ("PHONE", "555-123-4567"),
            ("PATIENT", "Zoë"),
            ("MEDICALRECORD", "12345678"),
        ])
    );
    let ent = &docs[1];
    // `&amp;`, `&lt;`, `&gt;` and `&#214;` are decoded, and offsets count the decoded characters.
    assert!(ent.text.starts_with("Patientin Jürgen & Söhne GmbH <Betriebsarzt>: Frau Öztürk,"));
    assert_eq!(
        surfaces(ent),
        pairs(&[
            ("ORGANIZATION", "Jürgen & Söhne GmbH"),
            ("PATIENT", "Öztürk"),
            ("DATE", "03.04.1950"),
            ("STREET", "Hauptstr. 5"),
            ("ZIP", "80331"),
            ("CITY", "München"),
        ])
    );
    // One file alone, detected from its extension, gives the same document.
    assert_eq!(read(&fixtures("i2b2/note-entities.xml"), None), vec![ent.clone()]);
}

#[test]
fn i2b2_xml_round_trips_through_its_writer_and_jsonl() {
    let docs = read(&fixtures("i2b2"), Some(Format::I2b2Xml));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("xml");
    write_corpus(&out, Some(Format::I2b2Xml), &docs).unwrap();
    assert_eq!(Format::detect(&out).unwrap(), Format::I2b2Xml);
    assert_eq!(read(&out, None), docs);
    let jsonl = tmp.path().join("c.jsonl");
    write_corpus(&jsonl, None, &docs).unwrap();
    assert_eq!(read(&jsonl, None), docs);
    // Any text survives: `]]>` inside the note, a CR, astral characters.
    let odd = vec![Document {
        id: "odd".into(),
        text: "a ]]> b\r\n😀 Zoë \"x\" & <y>".into(),
        spans: vec![corpus::Span::new(10, 13, "PATIENT"), corpus::Span::new(14, 17, "X_Y")],
    }];
    let out2 = tmp.path().join("odd");
    write_corpus(&out2, Some(Format::I2b2Xml), &odd).unwrap();
    assert_eq!(read(&out2, Some(Format::I2b2Xml)), odd);
}

#[test]
fn uima_json_converts_utf16_offsets_to_characters() {
    let docs = read(&fixtures("uima"), None);
    assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["anteckning-utf8", "befund-emoji"]);
    let emoji = &docs[1];
    // Two astral characters (two UTF-16 code units each) come before the first span: read as code
    // units the offsets would land two characters late.
    assert!(emoji.text.starts_with("Befund 😀🏥: Pat. Ingrid"));
    assert_eq!(emoji.spans[0].start, 16);
    assert_eq!(
        surfaces(emoji),
        pairs(&[
            ("PATIENT", "Ingrid Åkesson"),
            ("IDNUM", "19121212-1212"),
            ("DATE", "3.4.2019"),
            // A custom layer's `label` feature, and a custom layer without a label (its type name).
            ("HOSPITAL", "Klinikum Nord"),
            ("DOCTOR", "Jörg Weiß"),
        ])
    );
    // `%HEADER: {%OFFSET_ENCODING: UTF-8}`: the offsets are bytes.
    assert_eq!(
        surfaces(&docs[0]),
        pairs(&[("PATIENT", "Åsa Öberg"), ("IDNUM", "121212-1212"), ("PHONE", "070-123 45 67"), ("CITY", "Göteborg")])
    );
}

#[test]
fn uima_json_round_trips_through_its_writer() {
    let docs = read(&fixtures("uima"), Some(Format::UimaJson));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cas");
    write_corpus(&out, Some(Format::UimaJson), &docs).unwrap();
    assert_eq!(Format::detect(&out).unwrap(), Format::UimaJson);
    assert_eq!(read(&out, None), docs);
    // The written offsets are UTF-16 code units, as UIMA and INCEpTION read them.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("befund-emoji.json")).unwrap()).unwrap();
    assert_eq!(v["%FEATURE_STRUCTURES"][1]["begin"], 18);
    assert_eq!(v["%FEATURE_STRUCTURES"][1]["value"], "PATIENT");
}

/// Writes `content` to `dir/name` and returns the error reading it gives.
fn error_of(dir: &Path, name: &str, content: &str, format: Option<Format>) -> corpus::CorpusError {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    read_corpus(&p, format, &ReadOptions::default()).expect_err("bad input must be an error")
}

#[test]
fn bad_i2b2_files_name_file_line_and_element_never_the_text() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let head = "<?xml version=\"1.0\"?>\n<deIdi2b2>\n<TEXT><![CDATA[Frau Ingrid Weiß kam.]]></TEXT>\n<TAGS>\n";

    let e = error_of(d, "cut.xml", "<?xml version=\"1.0\"?>\n<deIdi2b2>\n<TEXT><![CDATA[Frau Ingrid Weiß kam.\n", None);
    assert!(e.path.ends_with("cut.xml") && e.line == Some(3), "{e}");
    assert!(e.message.contains("CDATA") && e.message.contains("never closed"), "{e}");

    // Offsets in bytes: the text attribute does not match.
    let e = error_of(d, "bytes.xml", &format!("{head}<NAME id=\"P0\" start=\"5\" end=\"17\" text=\"Ingrid Weiß\" TYPE=\"PATIENT\"/>\n</TAGS>\n</deIdi2b2>\n"), None);
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("<NAME id P0>") && e.message.contains("characters"), "{e}");

    let e = error_of(d, "range.xml", &format!("{head}<NAME id=\"P0\" start=\"5\" end=\"99\" TYPE=\"PATIENT\"/>\n</TAGS>\n</deIdi2b2>\n"), None);
    assert!(e.line == Some(5) && e.message.contains("ends after the text"), "{e}");

    let e = error_of(d, "notype.xml", &format!("{head}<NAME id=\"P0\" start=\"5\" end=\"16\"/>\n</TAGS>\n</deIdi2b2>\n"), None);
    assert!(e.line == Some(5) && e.message.contains("TYPE"), "{e}");

    let e = error_of(d, "mismatch.xml", &format!("{head}<NAME id=\"P0\" start=\"5\" end=\"16\" TYPE=\"PATIENT\">\n</TAGS>\n</deIdi2b2>\n"), None);
    assert!(e.message.contains("not well-formed"), "{e}");

    let e = error_of(d, "inline.xml", "<r>\n<TEXT>Frau <PHI TYPE=\"NAME\">Ingrid Weiß</PHI> kam.</TEXT>\n</r>\n", None);
    assert!(e.line == Some(2) && e.message.contains("markup inside <TEXT>"), "{e}");

    let e = error_of(d, "entity.xml", "<r>\n<TEXT>Frau Ingrid &weiss; kam.</TEXT>\n</r>\n", None);
    assert!(e.line == Some(2) && e.message.contains("entity"), "{e}");

    let e = error_of(d, "notext.xml", "<r><TAGS/></r>\n", None);
    assert!(e.message.contains("no <TEXT>"), "{e}");

    let e = error_of(d, "overlap.xml", &format!("{head}<NAME id=\"P0\" start=\"5\" end=\"16\" TYPE=\"PATIENT\"/>\n<NAME id=\"P1\" start=\"12\" end=\"16\" TYPE=\"PATIENT\"/>\n</TAGS>\n</deIdi2b2>\n"), None);
    assert!(e.line == Some(6) && e.message.contains("overlaps"), "{e}");

    for name in ["cut.xml", "bytes.xml", "range.xml", "notype.xml", "mismatch.xml", "inline.xml", "entity.xml", "overlap.xml"] {
        let e = read_corpus(&d.join(name), Some(Format::I2b2Xml), &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        for word in ["Ingrid", "Weiß", "Frau", "weiss"] {
            assert!(!e.contains(word), "error quotes document text: {e}");
        }
    }
}

#[test]
fn bad_uima_files_name_file_and_feature_structure_never_the_text() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sofa = r#"{"%ID": 1, "%TYPE": "uima.cas.Sofa", "sofaID": "_InitialView", "sofaString": "😀 Ingrid Weiß"}"#;
    let ne = |b: u64, e: u64| {
        format!(r#"{{"%ID": 7, "%TYPE": "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity", "@sofa": 1, "begin": {b}, "end": {e}, "value": "PATIENT"}}"#)
    };
    let cas = |fs: &str| format!("{{\"%TYPES\": {{}}, \"%FEATURE_STRUCTURES\": [{sofa}, {fs}], \"%VIEWS\": {{}}}}");

    // Good: begin 3 (after the emoji's two code units and a space) is character 2.
    let p = d.join("ok.json");
    std::fs::write(&p, cas(&ne(3, 9))).unwrap();
    let doc = &read(&p, None)[0];
    assert_eq!((doc.spans[0].start, doc.spans[0].end), (2, 8));

    let e = error_of(d, "half.json", &cas(&ne(1, 9)), None);
    assert!(e.message.contains("%ID 7") && e.message.contains("inside a character"), "{e}");

    let e = error_of(d, "far.json", &cas(&ne(3, 99)), None);
    assert!(e.message.contains("%ID 7") && e.message.contains("after the text"), "{e}");

    let e = error_of(d, "syntax.json", "{\"%FEATURE_STRUCTURES\": [\n{\"sofaString\": \"Ingrid Weiß\",,}\n]}", None);
    assert_eq!(e.line, Some(2), "{e}");

    let e = error_of(d, "legacy.json", r#"{"_context": {}, "_views": {}, "_referenced_fss": {}}"#, None);
    assert!(e.message.contains("legacy"), "{e}");

    let e = error_of(d, "other.json", r#"{"id": "x", "text": "Ingrid Weiß"}"#, None);
    assert!(e.message.contains("%FEATURE_STRUCTURES"), "{e}");

    let e = error_of(d, "enc.json", &cas(&ne(3, 9)).replacen('{', "{\"%HEADER\": {\"%OFFSET_ENCODING\": \"EBCDIC\"}, ", 1), None);
    assert!(e.message.contains("OFFSET_ENCODING"), "{e}");

    for name in ["half.json", "far.json", "syntax.json", "legacy.json", "other.json", "enc.json"] {
        let e = read_corpus(&d.join(name), Some(Format::UimaJson), &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        assert!(!e.contains("Ingrid") && !e.contains("Weiß"), "error quotes document text: {e}");
    }
}

#[test]
fn format_names_and_detection() {
    assert_eq!(Format::parse("i2b2"), Some(Format::I2b2Xml));
    assert_eq!(Format::parse("inception"), Some(Format::UimaJson));
    assert_eq!(Format::parse("json"), Some(Format::Jsonl));
    assert_eq!(Format::detect(&fixtures("i2b2")).unwrap(), Format::I2b2Xml);
    assert_eq!(Format::detect(&fixtures("uima/befund-emoji.json")).unwrap(), Format::UimaJson);
    // Writing keeps its old rule: a .json path is no JSONL name, so a directory is written.
    assert_eq!(Format::for_output(Path::new("x.json")), Format::Brat);
}
