//! Behaviour of the public API: modes, consistency, dates, IDs, offsets, unicode, span edge cases.

use std::collections::HashMap;

use corpus::{Document, Span};
use deid::date::days_from_civil;
use deid::fpe::is_valid_dni_or_nie;
use deid::{
    deidentify, deidentify_corpus, leak_report, leaked_strings, DateShift, DeidError, Kind, LabelMap, Mode, Options,
    Outcome, OverlapPolicy, Surrogator,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Builds a document from pieces: `(text, Some(label))` pieces become spans.
fn doc(id: &str, pieces: &[(&str, Option<&str>)]) -> Document {
    let mut text = String::new();
    let mut spans = Vec::new();
    let mut at = 0;
    for (t, l) in pieces {
        let n = t.chars().count();
        if let Some(l) = l {
            spans.push(Span::new(at, at + n, *l));
        }
        text.push_str(t);
        at += n;
    }
    Document { id: id.into(), text, spans }
}

fn chars(s: &str, a: usize, b: usize) -> String {
    s.chars().skip(a).take(b - a).collect()
}

/// Every new span's text equals its replacement, and putting the originals back gives the original text.
fn check_alignment(orig: &Document, out: &Document, mapping: &[deid::MappingEntry]) {
    assert_eq!(out.spans.len(), mapping.len());
    let n = out.text.chars().count();
    let mut rebuilt = String::new();
    let mut cursor = 0;
    for (s, m) in out.spans.iter().zip(mapping) {
        assert!(s.start <= s.end && s.end <= n);
        assert_eq!(s.label, m.label);
        assert_eq!((s.start, s.end), (m.new_start, m.new_end));
        assert_eq!(chars(&out.text, s.start, s.end), m.replacement, "span text equals replacement");
        assert_eq!(chars(&orig.text, m.start, m.end), m.original, "mapping original equals source text");
        rebuilt.push_str(&chars(&out.text, cursor, s.start));
        rebuilt.push_str(&m.original);
        cursor = s.end;
    }
    rebuilt.push_str(&chars(&out.text, cursor, n));
    assert_eq!(rebuilt, orig.text, "text outside spans unchanged and in order");
}

fn surrogate_of(d: &Document, ctx: &mut Surrogator) -> deid::Deidentified {
    let r = deidentify(d, Mode::Surrogate, ctx).expect("deidentify");
    check_alignment(d, &r.doc, &r.mapping);
    r
}

fn sample_doc(id: &str) -> Document {
    doc(
        id,
        &[
            ("Nombre: ", None),
            ("Ignacio Navarro Cuéllar", Some("NOMBRE_SUJETO_ASISTENCIA")),
            (". Domicilio: ", None),
            ("c/ del Abedul 5-7, 2º dcha", Some("CALLE")),
            (", ", None),
            ("28036", Some("TERRITORIO")),
            (" ", None),
            ("Madrid", Some("TERRITORIO")),
            (", ", None),
            ("España", Some("PAIS")),
            (". NHC: ", None),
            ("368503", Some("ID_SUJETO_ASISTENCIA")),
            (". DNI ", None),
            ("12345678Z", Some("ID_SUJETO_ASISTENCIA")),
            (". Nacido el ", None),
            ("03/03/1946", Some("FECHAS")),
            (", ", None),
            ("70 años", Some("EDAD_SUJETO_ASISTENCIA")),
            (", sexo ", None),
            ("H", Some("SEXO_SUJETO_ASISTENCIA")),
            (". Ingresa el ", None),
            ("3 de marzo de 2015", Some("FECHAS")),
            (" en el ", None),
            ("Hospital Universitario La Paz", Some("HOSPITAL")),
            (". Su ", None),
            ("madre", Some("FAMILIARES_SUJETO_ASISTENCIA")),
            (" trabaja de ", None),
            ("carpintero", Some("PROFESION")),
            (". Correo: ", None),
            ("nnavcu@hotmail.com", Some("CORREO_ELECTRONICO")),
            (", tel. ", None),
            ("912 345 678", Some("NUMERO_TELEFONO")),
            (". Dr. ", None),
            ("NAVARRO", Some("NOMBRE_PERSONAL_SANITARIO")),
            (".", None),
        ],
    )
}

#[test]
fn redact_and_mask() {
    let d = sample_doc("d1");
    let mut ctx = Surrogator::new(Options::default());
    let r = deidentify(&d, Mode::Redact, &mut ctx).unwrap();
    check_alignment(&d, &r.doc, &r.mapping);
    assert!(r.doc.text.starts_with("Nombre: [NOMBRE_SUJETO_ASISTENCIA]. Domicilio: [CALLE], [TERRITORIO]"));
    assert!(r.mapping.iter().all(|m| m.outcome == Outcome::Redacted));
    let r = deidentify(&d, Mode::Mask, &mut ctx).unwrap();
    check_alignment(&d, &r.doc, &r.mapping);
    for m in &r.mapping {
        assert_eq!(m.replacement.chars().count(), m.original.chars().count());
        for (a, b) in m.replacement.chars().zip(m.original.chars()) {
            assert_eq!(a, if b.is_whitespace() { b } else { '*' }, "mask keeps whitespace only");
        }
    }
    assert_eq!(r.stats.by_label["FECHAS"].masked, 2);
}

#[test]
fn surrogates_replace_every_span_and_look_right() {
    let d = sample_doc("d1");
    let mut ctx = Surrogator::new(Options::default().with_key("test-key"));
    let r = surrogate_of(&d, &mut ctx);
    let by = |o: &str| r.mapping.iter().find(|m| m.original == o).unwrap().clone();
    for m in &r.mapping {
        match m.kind {
            Some(Kind::Sex) | Some(Kind::Relative) => {
                assert_eq!(m.outcome, Outcome::Kept);
                assert_eq!(m.replacement, m.original);
            }
            _ => {
                assert_eq!(m.outcome, Outcome::Surrogate, "{:?} gets a realistic surrogate", m.kind);
                assert_ne!(m.replacement, m.original);
                assert!(!r.doc.text.contains(&m.original), "{:?} original gone from the text", m.kind);
            }
        }
    }
    // Names: same number of parts, capitalisation kept.
    let n = by("Ignacio Navarro Cuéllar");
    assert_eq!(n.replacement.split(' ').count(), 3);
    assert!(n.replacement.split(' ').all(|p| p.chars().next().unwrap().is_uppercase()));
    let caps = by("NAVARRO");
    assert!(caps.replacement.chars().all(|c| !c.is_lowercase()), "ALL CAPS stays all caps");
    // The surname is consistent inside the name and alone.
    let navarro_sur = n.replacement.split(' ').nth(1).unwrap().to_uppercase();
    assert_eq!(caps.replacement, navarro_sur);
    // Street: type word and article kept, numbers same shape.
    let st = by("c/ del Abedul 5-7, 2º dcha");
    assert!(st.replacement.starts_with("c/ "), "street type kept");
    assert!(st.replacement.ends_with("º dcha"));
    // Postal code: 5 digits, province 01-52.
    let pc = by("28036");
    assert_eq!(pc.replacement.len(), 5);
    assert!((1..=52).contains(&pc.replacement[..2].parse::<u32>().unwrap()));
    // IDs: same shape; DNI check letter valid.
    let id = by("368503");
    assert!(id.replacement.len() == 6 && id.replacement.chars().all(|c| c.is_ascii_digit()));
    let dni = by("12345678Z");
    assert!(is_valid_dni_or_nie(&dni.replacement), "DNI check letter valid");
    // Age keeps its unit.
    assert!(by("70 años").replacement.ends_with(" años"));
    // Hospital keeps its type words.
    assert!(by("Hospital Universitario La Paz").replacement.starts_with("Hospital Universitario "));
    // E-mail and phone.
    let e = by("nnavcu@hotmail.com");
    assert!(e.replacement.contains('@') && !e.replacement.contains("nnavcu"));
    let p = by("912 345 678");
    assert!(p.replacement.starts_with('9') && p.replacement.len() == 11 && &p.replacement[3..4] == " ");
}

#[test]
fn consistency_same_key_same_surrogate_different_key_different() {
    let d1 = doc(
        "a",
        &[
            ("Paciente ", None),
            ("Rivera Bueno", Some("NOMBRE_SUJETO_ASISTENCIA")),
            (" de ", None),
            ("Pamplona", Some("TERRITORIO")),
        ],
    );
    let d2 = doc(
        "b",
        &[
            ("Visto por ", None),
            ("rivera  bueno", Some("NOMBRE_SUJETO_ASISTENCIA")),
            (", vive en ", None),
            ("PAMPLONA", Some("TERRITORIO")),
            (" y luego ", None),
            ("Rivera Bueno", Some("NOMBRE_SUJETO_ASISTENCIA")),
        ],
    );
    let run = |key: &str| {
        let mut ctx = Surrogator::new(Options::default().with_key(key));
        let a = surrogate_of(&d1, &mut ctx);
        let b = surrogate_of(&d2, &mut ctx);
        (a, b)
    };
    let (a, b) = run("k1");
    let name = &a.mapping[0].replacement;
    // Same original (normalised: case, whitespace) → same surrogate, written in the occurrence's style.
    assert_eq!(&b.mapping[2].replacement, name);
    // (the occurrence's own spacing is kept: "rivera  bueno" has two spaces)
    assert_eq!(b.mapping[0].replacement.split_whitespace().collect::<Vec<_>>().join(" "), name.to_lowercase());
    assert_eq!(b.mapping[0].replacement, b.mapping[0].replacement.to_lowercase());
    assert_eq!(b.mapping[1].replacement, a.mapping[1].replacement.to_uppercase());
    // Reproducible with the same key, in a new Surrogator.
    let (a2, _) = run("k1");
    assert_eq!(a2.doc.text, a.doc.text);
    // A different key gives different surrogates.
    let (a3, _) = run("k2");
    assert_ne!(a3.mapping[0].replacement, a.mapping[0].replacement);
    assert_ne!(a3.doc.text, a.doc.text);
    // Without a key, the seed decides.
    let s = |seed| {
        let mut ctx = Surrogator::new(Options::default().with_seed(seed));
        surrogate_of(&d1, &mut ctx).doc.text
    };
    assert_eq!(s(7), s(7));
    assert_ne!(s(7), s(8));
}

#[test]
fn different_originals_get_different_surrogates() {
    let names = ["García", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz", "Díaz", "Moreno", "Muñoz"];
    let mut pieces = Vec::new();
    for n in &names {
        pieces.push((*n, Some("NOMBRE_SUJETO_ASISTENCIA")));
        pieces.push((" y ", None));
    }
    let d = doc("n", &pieces);
    let mut ctx = Surrogator::new(Options::default().with_key("x"));
    let r = surrogate_of(&d, &mut ctx);
    let mut reps: Vec<&str> = r.mapping.iter().map(|m| m.replacement.as_str()).collect();
    reps.sort();
    reps.dedup();
    assert_eq!(reps.len(), names.len(), "injective within a class");
    for m in &r.mapping {
        assert!(!names.contains(&m.replacement.as_str()), "no surrogate equals any original of the document");
    }
}

fn parse_dmy(s: &str) -> i64 {
    let p: Vec<i64> = s.split('/').map(|x| x.parse().unwrap()).collect();
    days_from_civil(p[2], p[1] as u32, p[0] as u32)
}

#[test]
fn date_intervals_and_formats_are_kept() {
    for (a, b, gap) in [
        ("03/03/2015", "13/03/2015", 10),
        ("25/02/2016", "06/03/2016", 10), // across 29 February
        ("28/02/2015", "01/03/2015", 1),
        ("31/12/1999", "01/01/2000", 1),
        ("01/01/2012", "31/12/2012", 365),
    ] {
        for key in ["k1", "k2", "k3", "k4", "k5", "k6"] {
            let d = doc(
                "d",
                &[("Ingreso ", None), (a, Some("FECHAS")), (", alta ", None), (b, Some("FECHAS")), (".", None)],
            );
            let mut ctx = Surrogator::new(Options::default().with_key(key));
            let r = surrogate_of(&d, &mut ctx);
            let (na, nb) = (&r.mapping[0].replacement, &r.mapping[1].replacement);
            assert_eq!(na.len(), 10);
            assert_eq!(parse_dmy(nb) - parse_dmy(na), gap, "interval kept");
            assert_ne!(na, a);
            let off = parse_dmy(na) - parse_dmy(a);
            assert_eq!(off, ctx.date_offset_days("d"));
            assert!(off.abs() >= 365 + 31 && off.abs() <= 2 * 365 + 330);
        }
    }
    // Written forms are kept.
    let forms = [
        "3 de marzo de 2015",
        "03/03/2015",
        "3/3/15",
        "marzo de 2015",
        "Marzo del 2015",
        "2015",
        "MARZO 2015",
        "03-03-2015",
        "dic-99",
    ];
    let mut pieces = Vec::new();
    for f in &forms {
        pieces.push((*f, Some("FECHAS")));
        pieces.push((" | ", None));
    }
    let d = doc("forms", &pieces);
    let mut ctx = Surrogator::new(Options::default().with_key("forms"));
    let r = surrogate_of(&d, &mut ctx);
    let shape = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    '9'
                } else if c.is_alphabetic() {
                    'a'
                } else {
                    c
                }
            })
            .collect()
    };
    let months = [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
        "ene",
        "feb",
        "mar",
        "abr",
        "may",
        "jun",
        "jul",
        "ago",
        "sep",
        "oct",
        "nov",
        "dic",
    ];
    for m in &r.mapping {
        assert_eq!(m.outcome, Outcome::Surrogate, "parsed");
        assert_ne!(m.replacement, m.original);
        let words_o: Vec<&str> = m.original.split(|c: char| !c.is_alphanumeric()).collect();
        let words_n: Vec<&str> = m.replacement.split(|c: char| !c.is_alphanumeric()).collect();
        assert_eq!(words_o.len(), words_n.len());
        for (o, n) in words_o.iter().zip(&words_n) {
            if o.chars().all(|c| c.is_ascii_digit()) {
                assert!(n.chars().all(|c| c.is_ascii_digit()));
                if o.len() != 1 {
                    assert_eq!(o.len(), n.len(), "zero padding / year width kept");
                }
            } else if months.contains(&o.to_lowercase().as_str()) {
                assert!(months.contains(&n.to_lowercase().as_str()), "month name stays a month name");
                assert_eq!(deid_case(o), deid_case(n), "month capitalisation kept");
            } else {
                assert_eq!(o, n, "filler words kept");
            }
        }
        if !m.original.contains(char::is_alphabetic) && m.original.len() > 4 && !m.original.starts_with("3/") {
            assert_eq!(shape(&m.original), shape(&m.replacement));
        }
    }
    assert_eq!(r.stats.dates_unparsed, 0);
}

fn deid_case(s: &str) -> u8 {
    if s.chars().all(|c| c.is_uppercase()) {
        2
    } else if s.chars().next().unwrap().is_uppercase() {
        1
    } else {
        0
    }
}

#[test]
fn unparsed_dates_are_replaced_and_counted() {
    let d =
        doc("u", &[("En ", None), ("verano de 2015", Some("FECHAS")), (" y ", None), ("99/999/9999", Some("FECHAS"))]);
    let mut ctx = Surrogator::new(Options::default().with_key("u"));
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.stats.dates_unparsed, 2);
    for m in &r.mapping {
        assert_eq!(m.outcome, Outcome::Generic);
        assert_ne!(m.replacement, m.original);
        assert_eq!(m.replacement.chars().count(), m.original.chars().count());
    }
    assert!(r.mapping[0].replacement.starts_with("verano de "));
}

#[test]
fn per_patient_date_shift_is_shared() {
    let mut m = HashMap::new();
    m.insert("a".to_string(), "patient-1".to_string());
    m.insert("b".to_string(), "patient-1".to_string());
    let ctx = Surrogator::new(Options::default().with_key("k").with_date_shift(DateShift::PerPatient(m)));
    assert_eq!(ctx.date_offset_days(ctx.scope_of("a")), ctx.date_offset_days(ctx.scope_of("b")));
    let per_doc = Surrogator::new(Options::default().with_key("k"));
    let offs: std::collections::HashSet<i64> = (0..20).map(|i| per_doc.date_offset_days(&format!("doc{i}"))).collect();
    assert!(offs.len() > 10, "per-document offsets differ");
    let corpus = Surrogator::new(Options::default().with_key("k").with_date_shift(DateShift::PerCorpus));
    assert_eq!(corpus.date_offset_days(corpus.scope_of("x")), corpus.date_offset_days(corpus.scope_of("y")));
}

#[test]
fn id_formats_are_kept() {
    let ids = [
        "12345678Z",
        "12.345.678-Z",
        "X1234567L",
        "28 28 70973",
        "26 63514095 11",
        "AB-123/45",
        "0012345",
        "368503/12",
    ];
    let mut pieces = Vec::new();
    for i in &ids {
        pieces.push((*i, Some("ID_SUJETO_ASISTENCIA")));
        pieces.push((" ; ", None));
    }
    let d = doc("ids", &pieces);
    for key in ["a", "b", "c", "d"] {
        let mut ctx = Surrogator::new(Options::default().with_key(key));
        let r = surrogate_of(&d, &mut ctx);
        for m in &r.mapping {
            assert_eq!(m.outcome, Outcome::Surrogate);
            assert_ne!(m.replacement, m.original);
            assert_eq!(m.replacement.chars().count(), m.original.chars().count());
            for (a, b) in m.replacement.chars().zip(m.original.chars()) {
                assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "digit positions");
                assert_eq!(a.is_ascii_alphabetic(), b.is_ascii_alphabetic(), "letter positions");
                if !b.is_ascii_alphanumeric() {
                    assert_eq!(a, b, "separators");
                }
            }
        }
        for m in &r.mapping[..3] {
            assert!(is_valid_dni_or_nie(&m.replacement), "valid DNI/NIE check letter");
        }
        assert!(r.mapping[2].replacement.starts_with(['X', 'Y', 'Z']));
    }
}

#[test]
fn unicode_bom_emoji_and_accents() {
    let d = doc(
        "u",
        &[
            ("\u{FEFF}", None),
            ("José Ángel Núñez", Some("NOMBRE_SUJETO_ASISTENCIA")),
            (" 🎉🧪 vive en ", None),
            ("Málaga", Some("TERRITORIO")),
            (" — ñandú ", None),
            ("ÁVILA", Some("TERRITORIO")),
            ("👍🏽", None),
        ],
    );
    let mut ctx = Surrogator::new(Options::default());
    let r = surrogate_of(&d, &mut ctx);
    assert!(r.doc.text.starts_with('\u{FEFF}'));
    assert!(r.doc.text.ends_with("👍🏽"));
    assert_eq!(r.doc.spans[0].start, 1, "the BOM is char 0");
    assert!(r.mapping[2].replacement.chars().all(|c| !c.is_lowercase()));
    // A span that starts at the BOM itself.
    let d = doc("b", &[("\u{FEFF}Ana", Some("NOMBRE_SUJETO_ASISTENCIA")), (" 😀", None)]);
    for mode in [Mode::Redact, Mode::Mask, Mode::Surrogate] {
        let r = deidentify(&d, mode, &mut ctx).unwrap();
        check_alignment(&d, &r.doc, &r.mapping);
    }
}

#[test]
fn touching_spans_are_replaced_independently() {
    let d = doc(
        "t",
        &[
            ("Dr. ", None),
            ("Juan", Some("NOMBRE_PERSONAL_SANITARIO")),
            ("García", Some("NOMBRE_PERSONAL_SANITARIO")),
            ("28001", Some("TERRITORIO")),
            ("Madrid", Some("TERRITORIO")),
        ],
    );
    for mode in [Mode::Redact, Mode::Mask, Mode::Surrogate] {
        let mut ctx = Surrogator::new(Options::default());
        let r = deidentify(&d, mode, &mut ctx).unwrap();
        check_alignment(&d, &r.doc, &r.mapping);
        assert_eq!(r.doc.spans.len(), 4);
        for w in r.doc.spans.windows(2) {
            assert_eq!(w[0].end, w[1].start, "still touching");
        }
    }
}

#[test]
fn overlapping_spans_error_or_merge() {
    let mut d = doc("o", &[("Vive en ", None), ("Calle Mayor 5, Madrid", Some("CALLE"))]);
    d.spans.push(Span::new(23, 29, "TERRITORIO")); // "Madrid", inside the street span
    d.spans.push(Span::new(8, 13, "OTROS_SUJETO_ASISTENCIA")); // "Calle"
    let mut ctx = Surrogator::new(Options::default());
    match deidentify(&d, Mode::Surrogate, &mut ctx) {
        Err(e @ DeidError::Overlap { .. }) => {
            let msg = e.to_string();
            assert!(!msg.contains("Madrid") && !msg.contains("Mayor"), "errors never quote text");
        }
        other => panic!("expected an overlap error, got {other:?}"),
    }
    let mut ctx = Surrogator::new(Options::default().with_overlap(OverlapPolicy::Merge));
    let r = deidentify(&d, Mode::Surrogate, &mut ctx).unwrap();
    assert_eq!(r.doc.spans.len(), 1);
    assert_eq!(r.doc.spans[0].label, "CALLE", "the longest span's label");
    assert_eq!(r.stats.merged_overlaps, 2);
    assert_eq!(r.mapping[0].original, "Calle Mayor 5, Madrid");
    check_alignment(&Document { spans: vec![Span::new(8, 29, "CALLE")], ..d.clone() }, &r.doc, &r.mapping);
    // Out-of-range and empty spans are errors.
    let bad = Document { id: "x".into(), text: "abc".into(), spans: vec![Span::new(1, 9, "FECHAS")] };
    assert!(matches!(deidentify(&bad, Mode::Redact, &mut ctx), Err(DeidError::SpanOutOfRange { .. })));
    let bad = Document { id: "x".into(), text: "abc".into(), spans: vec![Span::new(2, 2, "FECHAS")] };
    assert!(matches!(deidentify(&bad, Mode::Redact, &mut ctx), Err(DeidError::EmptySpan { .. })));
}

#[test]
fn empty_documents() {
    let mut ctx = Surrogator::new(Options::default());
    for mode in [Mode::Redact, Mode::Mask, Mode::Surrogate] {
        let d = Document::new("e", "");
        let r = deidentify(&d, mode, &mut ctx).unwrap();
        assert_eq!(r.doc, d);
        assert!(r.mapping.is_empty());
        let d = Document::new("e2", "Sin datos personales.");
        let r = deidentify(&d, mode, &mut ctx).unwrap();
        assert_eq!(r.doc, d);
    }
    let (docs, map, stats) = deidentify_corpus(&[], Mode::Surrogate, &Options::default()).unwrap();
    assert!(docs.is_empty() && map.is_empty() && stats.documents == 0);
}

#[test]
fn unknown_labels_get_generic_replacement_and_are_counted() {
    let d = doc("x", &[("Código ", None), ("AB-12 zeta", Some("PLANET")), (" fin", None)]);
    let mut ctx = Surrogator::new(Options::default());
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.mapping[0].outcome, Outcome::Generic);
    assert_eq!(r.stats.unknown_labels["PLANET"], 1);
    let rep = &r.mapping[0].replacement;
    assert_ne!(rep, "AB-12 zeta");
    assert_eq!(rep.chars().count(), 10);
    assert_eq!(&rep[2..3], "-");
    assert!(rep[..2].chars().all(|c| c.is_ascii_uppercase()) && rep[3..5].chars().all(|c| c.is_ascii_digit()));
}

#[test]
fn keep_kinds_are_configurable() {
    let d = doc(
        "k",
        &[
            ("Sexo: ", None),
            ("Varón", Some("SEXO_SUJETO_ASISTENCIA")),
            (". Su ", None),
            ("madre", Some("FAMILIARES_SUJETO_ASISTENCIA")),
            (" y ", None),
            ("Juan", Some("FAMILIARES_SUJETO_ASISTENCIA")),
        ],
    );
    let mut ctx = Surrogator::new(Options::default());
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.mapping[0].outcome, Outcome::Kept);
    assert_eq!(r.mapping[1].outcome, Outcome::Kept);
    assert_eq!(r.mapping[2].outcome, Outcome::Surrogate, "a name in a relative span is replaced");
    assert_ne!(r.mapping[2].replacement, "Juan");
    let mut labels = LabelMap::meddocan();
    labels.set_keep(Kind::Sex, false);
    labels.set_keep(Kind::Relative, false);
    let mut ctx = Surrogator::new(Options::default().with_labels(labels));
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.mapping[0].replacement, "Mujer");
    assert_ne!(r.mapping[1].replacement, "madre");
    assert!(["madre", "hermana", "hija", "tía", "abuela", "prima", "sobrina", "nieta", "cuñada", "suegra"]
        .contains(&r.mapping[1].replacement.as_str()));
}

#[test]
fn label_map_from_toml() {
    let m = LabelMap::from_toml_str("[labels]\nPERSON = \"name\"\nDATE = \"date\"\n[surrogate]\nkeep = []\n").unwrap();
    let d =
        doc("x", &[("Seen ", None), ("John Smith", Some("PERSON")), (" on ", None), ("March 3, 2015", Some("DATE"))]);
    let opts = Options::default().with_labels(m).with_language(deid::Language::En).with_key("en");
    let mut ctx = Surrogator::new(opts);
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.mapping[0].outcome, Outcome::Surrogate);
    assert_eq!(r.mapping[0].replacement.split(' ').count(), 2);
    assert_eq!(r.mapping[1].outcome, Outcome::Surrogate);
    assert!(r.mapping[1].replacement.contains(", "));
}

/// Random documents with random spans in all modes: offsets always exact.
#[test]
fn randomized_offsets_are_exact() {
    let alphabet: Vec<char> =
        "abcdefghijklmnñopqrstuvwxyzÁÉÍÓÚáéíóúü ABCDEFGH0123456789/-.,:;@\n\t🎉😀👍🏽ẞß\u{FEFF}\u{0301}"
            .chars()
            .collect();
    let map = LabelMap::meddocan();
    let labels: Vec<&str> = map.labels().map(|(l, _)| l).chain(["UNKNOWN_X"]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut ctx = Surrogator::new(Options::default().with_key("random"));
    for i in 0..300 {
        let len = rng.random_range(0..120);
        let text: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
        let n = text.chars().count();
        let mut spans = Vec::new();
        let mut at = 0;
        while at < n {
            at += rng.random_range(0..8);
            if at >= n {
                break;
            }
            let end = (at + rng.random_range(1..15)).min(n);
            spans.push(Span::new(at, end, labels[rng.random_range(0..labels.len())]));
            at = end;
        }
        let d = Document { id: format!("r{i}"), text, spans };
        for mode in [Mode::Redact, Mode::Mask, Mode::Surrogate] {
            let r = deidentify(&d, mode, &mut ctx).unwrap();
            check_alignment(&d, &r.doc, &r.mapping);
            if mode == Mode::Surrogate {
                for m in &r.mapping {
                    if m.outcome != Outcome::Kept {
                        assert_ne!(m.replacement, m.original, "never equal to the original");
                    }
                }
            }
        }
    }
}

#[test]
fn corpus_run_forbids_every_original_and_leak_measures_work() {
    let docs = vec![
        sample_doc("a"),
        sample_doc("b"),
        doc("c", &[("Vive en ", None), ("Toledo", Some("TERRITORIO")), (".", None)]),
    ];
    let (out, mapping, stats) =
        deidentify_corpus(&docs, Mode::Surrogate, &Options::default().with_key("corpus")).unwrap();
    assert_eq!(stats.documents, 3);
    assert_eq!(stats.spans, mapping.len());
    assert_eq!(stats.by_label["TERRITORIO"].spans, 5);
    // No surrogate equals any original of the corpus (except kept values).
    let originals: std::collections::HashSet<String> = mapping.iter().map(|m| m.original.to_lowercase()).collect();
    for m in mapping.iter().filter(|m| m.outcome == Outcome::Surrogate) {
        assert!(!originals.contains(&m.replacement.to_lowercase()));
    }
    let leaks = leaked_strings(&docs, &out);
    for (label, n) in &leaks {
        if label == "SEXO_SUJETO_ASISTENCIA" || label == "FAMILIARES_SUJETO_ASISTENCIA" {
            assert_eq!(*n, 1, "kept values are found");
        } else {
            assert_eq!(*n, 0, "{label} leaked");
        }
    }
    let rep = leak_report(&docs, &out).unwrap();
    assert_eq!(rep["SEXO_SUJETO_ASISTENCIA"].via_replacement, 2);
    assert_eq!(rep["CALLE"].leaked, 0);
    // The leak measure itself: word boundaries, outside vs inside replacements.
    let o = doc(
        "z",
        &[("H", Some("SEXO_SUJETO_ASISTENCIA")), (" Hola Ana, ", None), ("Ana", Some("NOMBRE_SUJETO_ASISTENCIA"))],
    );
    let n = doc(
        "z",
        &[("H", Some("SEXO_SUJETO_ASISTENCIA")), (" Hola Ana, ", None), ("Eva", Some("NOMBRE_SUJETO_ASISTENCIA"))],
    );
    let rep = leak_report(std::slice::from_ref(&o), std::slice::from_ref(&n)).unwrap();
    assert_eq!(rep["NOMBRE_SUJETO_ASISTENCIA"].outside_only, 1);
    assert_eq!(rep["NOMBRE_SUJETO_ASISTENCIA"].via_replacement, 0);
    assert_eq!(rep["SEXO_SUJETO_ASISTENCIA"].via_replacement, 1);
    let l = leaked_strings(&[o], &[n]);
    assert_eq!(l["NOMBRE_SUJETO_ASISTENCIA"], 1);
}

#[test]
fn strings_without_alphanumerics_are_still_replaced() {
    let d = doc("p", &[("x ", None), ("--", Some("OTROS_SUJETO_ASISTENCIA")), (" y ", None), ("()", Some("PLANET"))]);
    let mut ctx = Surrogator::new(Options::default());
    let r = surrogate_of(&d, &mut ctx);
    assert_eq!(r.mapping[0].replacement, "**");
    assert_eq!(r.mapping[1].replacement, "**");
}

#[test]
fn english_and_swedish_vocabularies() {
    let m = LabelMap::from_toml_str(
        "[labels]\nPERSON = \"name\"\nADDRESS = \"street\"\nDATE = \"date\"\nCITY = \"city\"\nAGE = \"age\"\n",
    )
    .unwrap();
    let d = doc(
        "en",
        &[
            ("Mr ", None),
            ("John Smith", Some("PERSON")),
            (" of ", None),
            ("221B Baker Street", Some("ADDRESS")),
            (", ", None),
            ("Leeds", Some("CITY")),
            (", aged ", None),
            ("45 years", Some("AGE")),
            (", seen ", None),
            ("12/25/2015", Some("DATE")),
        ],
    );
    let mut ctx =
        Surrogator::new(Options::default().with_labels(m.clone()).with_language(deid::Language::En).with_key("en"));
    let r = surrogate_of(&d, &mut ctx);
    assert!(r.mapping.iter().all(|m| m.outcome == Outcome::Surrogate && m.replacement != m.original));
    assert!(r.mapping[1].replacement.ends_with(" Street"), "English type word after the name is kept");
    assert!(r.mapping[1].replacement.chars().take(3).all(|c| c.is_ascii_digit()));
    assert!(r.mapping[3].replacement.ends_with(" years"));
    let days = |s: &str| {
        let p: Vec<i64> = s.split('/').map(|x| x.parse().unwrap()).collect();
        days_from_civil(p[2], p[0] as u32, p[1] as u32)
    };
    assert_eq!(
        days(&r.mapping[4].replacement) - days("12/25/2015"),
        ctx.date_offset_days("en"),
        "month-first in English"
    );
    let en = deid::vocab::vocab(deid::Language::En);
    assert!(en.cities.contains(&r.mapping[2].replacement.as_str()));

    let d = doc(
        "sv",
        &[
            ("Patient ", None),
            ("Anna Lindqvist", Some("PERSON")),
            (", ", None),
            ("Storgatan 12", Some("ADDRESS")),
            (", ", None),
            ("2015-03-03", Some("DATE")),
        ],
    );
    let mut ctx = Surrogator::new(Options::default().with_labels(m).with_language(deid::Language::Sv).with_key("sv"));
    let r = surrogate_of(&d, &mut ctx);
    let sv = deid::vocab::vocab(deid::Language::Sv);
    let parts: Vec<&str> = r.mapping[0].replacement.split(' ').collect();
    assert!(sv.given_female.contains(&parts[0]) && sv.surnames.contains(&parts[1]), "Swedish names, gender kept");
    let street = &r.mapping[1].replacement;
    assert!(street.ends_with(|c: char| c.is_ascii_digit()) && !street.starts_with("Storgatan"));
    let iso = &r.mapping[2].replacement;
    assert_eq!(iso.len(), 10);
    assert_eq!((&iso[4..5], &iso[7..8]), ("-", "-"));
}

#[test]
fn forbidden_strings_are_never_produced() {
    // As when hardening a synthetic corpus: every training PHI string is forbidden.
    let es = deid::vocab::vocab(deid::Language::Es);
    let mut ctx = Surrogator::new(Options::default().with_key("harden"));
    ctx.forbid(es.cities.iter().skip(5));
    ctx.forbid(["Mayor", "del Pino", "García"]);
    let mut pieces = Vec::new();
    let suffix = |i: u8| format!("{}{}", char::from(b'a' + i % 26), char::from(b'a' + i / 26));
    let towns: Vec<String> = (0..30).map(|i| format!("Villa{}", suffix(i))).collect();
    for t in &towns {
        pieces.push((t.as_str(), Some("TERRITORIO")));
        pieces.push((", ", None));
    }
    let streets: Vec<String> = (0..30).map(|i| format!("Calle Nombre{} {i}", suffix(i))).collect();
    for s in &streets {
        pieces.push((s.as_str(), Some("CALLE")));
        pieces.push((", ", None));
    }
    let names: Vec<String> = (0..30).map(|i| format!("Apellido{}", suffix(i))).collect();
    for n in &names {
        pieces.push((n.as_str(), Some("NOMBRE_SUJETO_ASISTENCIA")));
        pieces.push((", ", None));
    }
    let d = doc("h", &pieces);
    let r = surrogate_of(&d, &mut ctx);
    let forbidden_cities: std::collections::HashSet<&str> = es.cities.iter().skip(5).copied().collect();
    for m in &r.mapping {
        assert_eq!(m.outcome, Outcome::Surrogate, "{} {} -> {}", m.label, m.original, m.replacement);
        assert!(!forbidden_cities.contains(m.replacement.as_str()), "a forbidden city was produced");
        let words: Vec<&str> = m.replacement.split(|c: char| !c.is_alphanumeric()).collect();
        assert!(!words.contains(&"Mayor") && !words.contains(&"García"), "a forbidden string inside a surrogate");
        assert!(!m.replacement.contains("del Pino"));
    }
}

#[test]
fn strict_mode_keeps_dates_off_the_forbidden_set() {
    let d = doc("d", &[("Fecha: ", None), ("03/03/2015", Some("FECHAS"))]);
    let probe = Surrogator::new(Options::default().with_key("s"));
    let expected = deid::date::shift_date("03/03/2015", probe.date_offset_days("d"), deid::Language::Es).unwrap();
    let run = |strict: bool| {
        let mut o = Options::default().with_key("s");
        o.strict = strict;
        let mut ctx = Surrogator::new(o);
        ctx.forbid([expected.as_str()]);
        surrogate_of(&d, &mut ctx)
    };
    let lax = run(false);
    assert_eq!(lax.mapping[0].replacement, expected, "dates are only kept off their own document's originals");
    let strict = run(true);
    assert_ne!(strict.mapping[0].replacement, expected);
    assert_eq!(strict.mapping[0].outcome, Outcome::Surrogate);
    assert_eq!(strict.stats.consistency_breaks, 1);
}

#[test]
fn mapping_and_stats_serialize_without_surprises() {
    let d = sample_doc("s");
    let mut ctx = Surrogator::new(Options::default());
    let r = surrogate_of(&d, &mut ctx);
    let line = serde_json::to_string(&r.mapping[0]).unwrap();
    assert!(line.contains("\"outcome\":\"surrogate\"") && line.contains("\"kind\":\"name\""));
    let stats = serde_json::to_string(&r.stats).unwrap();
    assert!(!stats.contains("Navarro"), "stats hold counts only");
    let dbg = format!("{ctx:?} {:?}", Options::default().with_key("secret-key"));
    assert!(!dbg.contains("secret-key") && !dbg.contains("Navarro"), "Debug output holds no key and no PHI");
}

/// One document with `n` distinct two-part names, one per line (as in `crates/bench/src/bin/many_spans.rs`).
fn many_names(n: usize) -> Document {
    const SYL: [&str; 16] = ["ba", "ke", "ri", "lo", "mu", "sa", "te", "vi", "no", "pe", "du", "ga", "fi", "zo", "ca", "ju"];
    let word = |mut i: usize, suffix: &str| {
        let mut s = String::new();
        loop {
            s.push_str(SYL[i % 16]);
            i /= 16;
            if i == 0 {
                break;
            }
        }
        s.push_str(suffix);
        s[..1].to_uppercase() + &s[1..]
    };
    let mut pieces: Vec<(String, Option<&str>)> = Vec::new();
    for i in 0..n {
        pieces.push(("Paciente: ".into(), None));
        pieces.push((format!("{} {}", word(i, "r"), word(i.wrapping_mul(7919) % (n * 4 + 1), "")), Some("NOMBRE_SUJETO_ASISTENCIA")));
        pieces.push((".\n".into(), None));
    }
    let borrowed: Vec<(&str, Option<&str>)> = pieces.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    doc("big", &borrowed)
}

/// Issue 25, case 5: every candidate surrogate was checked against every original of its document one by
/// one, so one document with N names took O(N²) (16,000 names: 31 s; 100,000 did not finish in 7
/// minutes). Ten times the spans must now take about ten times as long: the 20,000-span document must
/// finish within 30× the time of the 2,000-span one (quadratic: 100×); the test gives up waiting at that
/// bound rather than waiting for a quadratic run to end.
#[test]
fn issue25_case5_surrogate_time_is_linear_in_the_spans_of_one_document() {
    let run = |n: usize| {
        let d = many_names(n);
        let t = std::time::Instant::now();
        let (out, _, stats) = deidentify_corpus(&[d], Mode::Surrogate, &Options::default().with_key(b"k".to_vec())).unwrap();
        assert_eq!((out[0].spans.len(), stats.by_label["NOMBRE_SUJETO_ASISTENCIA"].surrogate), (n, n));
        t.elapsed()
    };
    // The smaller run three times (the fastest counts), so that a scheduling hiccup does not shrink the bound.
    let small = (0..3).map(|_| run(2_000)).min().unwrap();
    let bound = small * 30;
    // Three tries at the larger one, so that a busy machine's preemption is not taken for a
    // quadratic run (which misses the bound every time).
    for _ in 0..3 {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run(20_000));
        });
        if let Ok(large) = rx.recv_timeout(bound) {
            eprintln!("2,000 spans: {small:?}; 20,000 spans: {large:?} ({:.1}×)", large.as_secs_f64() / small.as_secs_f64());
            return;
        }
    }
    panic!("20,000 spans in one document took over 30× the time of 2,000 ({small:?}) three times: superlinear");
}

/// Issue 25, case 6: a decomposed accent (`Jose` + U+0301) left the combining mark on the surrogate
/// (`Pedro\u{301}`). The mark belongs to the name: replaced with it, and the decomposed spelling gets
/// the surrogate of the precomposed one.
#[test]
fn issue25_case6_decomposed_accents_leave_no_stray_combining_mark() {
    let decomposed = doc("d", &[("Paciente: ", None), ("Jose\u{301} Garci\u{301}a", Some("NOMBRE_SUJETO_ASISTENCIA")), (".", None)]);
    let precomposed = doc("p", &[("Paciente: ", None), ("José García", Some("NOMBRE_SUJETO_ASISTENCIA")), (".", None)]);
    let (out, mapping, _) = deidentify_corpus(&[decomposed.clone(), precomposed], Mode::Surrogate, &Options::default().with_key(b"k".to_vec())).unwrap();
    let combining = |s: &str| s.chars().any(|c| ('\u{300}'..='\u{36f}').contains(&c));
    assert!(!combining(&out[0].text), "stray combining mark in {:?}", out[0].text);
    assert!(!combining(&mapping[0].replacement));
    assert_eq!(mapping[0].replacement, mapping[1].replacement, "same name, same surrogate, however it is encoded");
    check_alignment(&decomposed, &out[0], &mapping[..1]);
    // A combining mark inside a word stays with its letter's replacement, never doubles up.
    let inner = doc("i", &[("Nu\u{303}n\u{303}ez", Some("NOMBRE_SUJETO_ASISTENCIA"))]);
    let (out, _, _) = deidentify_corpus(&[inner], Mode::Surrogate, &Options::default()).unwrap();
    assert!(!combining(&out[0].text), "{:?}", out[0].text);
}

/// `CorpusVocab`: unknown name parts become surnames (known given names, titles and particles do
/// not), places without digits become cities, a hospital name gives its distinctive part; the
/// caller's filter drops what it refuses.
#[test]
fn corpus_vocab_takes_name_parts_places_and_hospital_names_through_the_filter() {
    let d = doc(
        "d",
        &[
            ("Remitido por: Dr. ", None),
            ("Anselmo Guareño de Antúnez", Some("NOMBRE_PERSONAL_SANITARIO")),
            (", ", None),
            ("Hospital General Universitario Gregorio Marañón", Some("HOSPITAL")),
            (", ", None),
            ("Hospital de Murcia", Some("HOSPITAL")),
            (". ", None),
            ("Medellín", Some("TERRITORIO")),
            (" ", None),
            ("28043", Some("TERRITORIO")),
            (". Paciente: ", None),
            ("María Zubiri", Some("NOMBRE_SUJETO_ASISTENCIA")),
        ],
    );
    let labels = LabelMap::meddocan();
    let all = deid::CorpusVocab::from_documents(std::slice::from_ref(&d), &labels, deid::Language::Es, |_| true);
    for s in ["Guareño", "Antúnez", "Zubiri"] {
        assert!(all.surnames.contains(&s.to_string()), "{s}: {:?}", all.surnames);
    }
    assert!(!all.surnames.iter().any(|s| s == "María" || s == "de" || s == "Dr"), "{:?}", all.surnames);
    assert_eq!(all.cities, ["Medellín"]);
    // "Hospital de | Murcia" is a place after a connector, replaced from the cities, not a name.
    assert_eq!(all.hospital_names, ["Gregorio Marañón"]);
    let filtered = deid::CorpusVocab::from_documents(std::slice::from_ref(&d), &labels, deid::Language::Es, |s| !s.contains("Mara") && s != "Zubiri");
    assert!(filtered.hospital_names.is_empty() && !filtered.surnames.contains(&"Zubiri".to_string()));
    // A word written outside the spans of 3 documents is an ordinary word, not a name or a place,
    // even where the annotator ran a name on into it.
    let mut docs = vec![d];
    for i in 0..3 {
        docs.push(doc(
            &format!("s{i}"),
            &[
                ("Servicio de Urología de la ciudad. Dr. ", None),
                ("Pedro Quintanar Servicio", Some("NOMBRE_PERSONAL_SANITARIO")),
                (" en ", None),
                ("Aldeamayor", Some("TERRITORIO")),
                (", ", None),
                ("Ciudad Real", Some("TERRITORIO")),
                (", ", None),
                ("Ciudad", Some("TERRITORIO")),
            ],
        ));
    }
    let v = deid::CorpusVocab::from_documents(&docs, &labels, deid::Language::Es, |_| true);
    assert!(v.surnames.contains(&"Quintanar".to_string()) && !v.surnames.contains(&"Servicio".to_string()), "{:?}", v.surnames);
    // A place of several words keeps its ordinary words ("Ciudad Real"); one alone is not a place.
    assert_eq!(v.cities, ["Medellín", "Aldeamayor", "Ciudad Real"]);
}

/// `PhiWords::points_at`: a PHI string itself, or a word in the PHI of fewer than `common`
/// documents (0: of any), points at the training documents; a word common enough does not.
#[test]
fn phi_words_point_at_rare_words_and_whole_strings() {
    let train: Vec<Document> = (0..3)
        .map(|i| {
            let rare = ["Bueso", "Ontiveros", "Aponte"][i];
            doc(&format!("t{i}"), &[("Dr. ", None), (&format!("Juan García {rare}"), Some("NOMBRE_PERSONAL_SANITARIO"))])
        })
        .collect();
    let phi = deid::PhiWords::of(&train);
    assert!(phi.points_at("Juan García Bueso", 3), "a whole PHI string");
    assert!(phi.points_at("Pedro bueso", 3), "a word of one document's PHI, case and accents folded");
    assert!(!phi.points_at("Pedro García", 3), "García is PHI in 3 documents: common at 3");
    assert!(phi.points_at("Pedro García", 4) && phi.points_at("Pedro García", 0));
    assert!(!phi.points_at("Pedro Quintana", 0));
}

/// Widened lists: surrogates come from the corpus's strings as well as the built-in ones, and
/// still never equal a forbidden string.
#[test]
fn widened_lists_give_corpus_surnames_and_keep_forbidden_strings_out() {
    let extra = deid::CorpusVocab {
        surnames: (0..300).map(|i| format!("Zq{}ex", ["a", "e", "i", "o", "u"][i % 5].repeat(1 + i / 5))).collect(),
        cities: vec!["Villaquemada del Norte".into()],
        hospital_names: vec![],
    };
    let mut ctx = Surrogator::new(Options::default());
    ctx.widen_vocab(&extra);
    let forbidden: std::collections::HashSet<&String> = extra.surnames[..100].iter().collect();
    ctx.forbid(&extra.surnames[..100]);
    let mut from_corpus = 0;
    for i in 0..200 {
        let surname = format!("Apel{}{}", (b'a' + (i / 26) as u8) as char, (b'a' + (i % 26) as u8) as char);
        let d = doc(&format!("d{i}"), &[("Dr. ", None), (&format!("Pedro {surname}"), Some("NOMBRE_PERSONAL_SANITARIO"))]);
        let r = surrogate_of(&d, &mut ctx);
        let surname = r.mapping[0].replacement.split_whitespace().last().unwrap().to_string();
        assert!(!forbidden.contains(&surname), "a forbidden string");
        from_corpus += surname.starts_with("Zq") as usize;
    }
    assert!(from_corpus > 50, "{from_corpus} of 200 surnames from the corpus's 300");
}

/// `forbid_within`: no whole surrogate contains a registered string, even where a kept part
/// ("Hospital") and a drawn one ("Virgen de la Salud") would make it up; without it they do.
#[test]
fn forbid_within_keeps_kept_and_drawn_parts_from_making_up_a_string() {
    let extra = deid::CorpusVocab { hospital_names: vec!["Virgen de la Salud".into()], ..Default::default() };
    let count = |forbid: bool| {
        let mut ctx = Surrogator::new(Options::default());
        ctx.widen_vocab(&extra);
        if forbid {
            ctx.forbid_within(["Hospital Virgen de la Salud"]);
        }
        (0..300)
            .filter(|i| {
                let name = format!("Hospital Apel{}{}", (b'a' + (i / 26) as u8) as char, (b'a' + (i % 26) as u8) as char);
                let d = doc(&format!("d{i}"), &[("Ingresa en el ", None), (&name, Some("HOSPITAL")), (".", None)]);
                surrogate_of(&d, &mut ctx).mapping[0].replacement.contains("Hospital Virgen de la Salud")
            })
            .count()
    };
    assert!(count(false) > 0, "the drawn part never came up: the test shows nothing");
    assert_eq!(count(true), 0);
}
