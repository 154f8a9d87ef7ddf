//! Kinds guessed from label names for labels a label map does not list.

use corpus::{Document, Span};
use deid::{deidentify_corpus, guess_kind, Kind, LabelMap, Mode, Options, Outcome};

#[test]
fn label_names_guess_the_obvious_kind() {
    let table: &[(&str, Option<Kind>)] = &[
        // i2b2 / n2c2 2014
        ("PATIENT", Some(Kind::Name)),
        ("DOCTOR", Some(Kind::Name)),
        ("USERNAME", Some(Kind::Id)),
        ("HOSPITAL", Some(Kind::Hospital)),
        ("ORGANIZATION", Some(Kind::Institution)),
        ("STREET", Some(Kind::Street)),
        ("CITY", Some(Kind::City)),
        ("STATE", Some(Kind::Territory)),
        ("COUNTRY", Some(Kind::Country)),
        ("ZIP", Some(Kind::PostalCode)),
        ("LOCATION-OTHER", Some(Kind::Other)),
        ("PHONE", Some(Kind::Phone)),
        ("FAX", Some(Kind::Fax)),
        ("EMAIL", Some(Kind::Email)),
        ("URL", Some(Kind::Other)),
        ("IDNUM", Some(Kind::Id)),
        ("MEDICALRECORD", Some(Kind::Id)),
        ("DATE", Some(Kind::Date)),
        ("AGE", Some(Kind::Age)),
        ("PROFESSION", Some(Kind::Profession)),
        // German clinical tag sets
        ("NAME_PATIENT", Some(Kind::Name)),
        ("NAME_ARZT", Some(Kind::Name)),
        ("NAME_DOCTOR", Some(Kind::Name)),
        ("NAME_USERNAME", Some(Kind::Id)),
        ("DATUM", Some(Kind::Date)),
        ("ALTER", Some(Kind::Age)),
        ("STRASSE", Some(Kind::Street)),
        ("Straße", Some(Kind::Street)),
        ("STADT", Some(Kind::City)),
        ("PLZ", Some(Kind::PostalCode)),
        ("KRANKENHAUS", Some(Kind::Hospital)),
        ("KLINIK", Some(Kind::Hospital)),
        ("LOCATION_HOSPITAL", Some(Kind::Hospital)),
        ("ORGANISATION", Some(Kind::Institution)),
        ("TELEFON", Some(Kind::Phone)),
        ("CONTACT_FAX", Some(Kind::Fax)),
        ("BERUF", Some(Kind::Profession)),
        ("ID", Some(Kind::Id)),
        // Swedish
        ("Patient", Some(Kind::Name)),
        ("First_Name", Some(Kind::Name)),
        ("Efternamn", Some(Kind::Name)),
        ("Full_Date", Some(Kind::Date)),
        ("Date_Part", Some(Kind::Date)),
        ("Ålder", Some(Kind::Age)),
        ("Vårdenhet", Some(Kind::HealthCenter)),
        ("Health_Care_Unit", Some(Kind::HealthCenter)),
        ("Ort", Some(Kind::City)),
        ("Location", Some(Kind::Territory)),
        ("Telefonnummer", Some(Kind::Phone)),
        ("Personnummer", Some(Kind::Id)),
        // Spanish and other spellings
        ("ID_CONTACTO_ASISTENCIAL", Some(Kind::Id)),
        ("CODIGO_POSTAL", Some(Kind::PostalCode)),
        ("zip-code", Some(Kind::PostalCode)),
        ("patient id", Some(Kind::Id)),
        ("HOSPITAL_NAME", Some(Kind::Hospital)),
        ("PLANET", None),
        ("", None),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(l, k)| guess_kind(l) != *k)
        .map(|(l, k)| format!("{l}: expected {k:?}, guessed {:?}", guess_kind(l)))
        .collect();
    assert!(wrong.is_empty(), "{} label(s) guessed wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn meddocan_labels_guessed_like_the_builtin_map() {
    let m = LabelMap::meddocan();
    let all: Vec<(&str, Kind)> = m.labels().collect();
    assert_eq!(all.len(), 22);
    let differ: Vec<String> = all
        .iter()
        .filter(|(l, k)| guess_kind(l) != Some(*k))
        .map(|(l, k)| format!("{l}: map {k}, guessed {:?}", guess_kind(l)))
        .collect();
    assert!(all.len() - differ.len() >= 18, "{} of 22 differ:\n{}", differ.len(), differ.join("\n"));
}

#[test]
fn known_labels_win_and_guessing_can_be_turned_off() {
    // The map says CITY is a postal code here: the map wins over the name.
    let mut m = LabelMap::from_toml_str("[labels]\nCITY = \"postal_code\"\n").unwrap();
    assert_eq!(m.kind_or_guess("CITY"), Kind::PostalCode);
    assert_eq!(m.kind_or_guess("NAME_PATIENT"), Kind::Name);
    assert_eq!(m.kind_or_guess("PLANET"), Kind::Other, "unknown → other, as before");
    assert_eq!(m.effective_kind("PLANET"), None);
    m.set_guess(false);
    assert_eq!(m.effective_kind("NAME_PATIENT"), None);
    let off = LabelMap::from_toml_str("[labels]\nX = \"id\"\n[surrogate]\nguess_unknown = false\n").unwrap();
    assert!(!off.guesses() && LabelMap::meddocan().guesses() && LabelMap::empty().guesses());
}

#[test]
fn guessed_kinds_are_used_and_counted() {
    let text = "Patient: Anna Müller, geb. 03.04.1950, Tel. 0711 123456; Fundort: Zxq-12";
    let span = |a: &str, label: &str| {
        let start = text.find(a).unwrap();
        let s = text[..start].chars().count();
        Span::new(s, s + a.chars().count(), label)
    };
    let d = Document {
        id: "g".into(),
        text: text.into(),
        spans: vec![
            span("Anna Müller", "NAME_PATIENT"),
            span("03.04.1950", "DATUM"),
            span("0711 123456", "TELEFON"),
            span("Zxq-12", "PLANET"),
        ],
    };
    let opts = Options::default().with_language(deid::Language::De).with_labels(LabelMap::meddocan());
    let (_, mapping, stats) = deidentify_corpus(&[d], Mode::Surrogate, &opts).unwrap();
    assert_eq!(mapping[0].kind, Some(Kind::Name));
    assert_eq!(mapping[1].kind, Some(Kind::Date));
    assert_eq!(mapping[2].kind, Some(Kind::Phone));
    assert_eq!(mapping[3].kind, None);
    assert!(mapping[..3].iter().all(|m| m.outcome == Outcome::Surrogate), "{:?}", mapping.iter().map(|m| m.outcome).collect::<Vec<_>>());
    assert_eq!(mapping[3].outcome, Outcome::Generic);
    assert_eq!(mapping[1].replacement.split('.').count(), 3, "a date, shifted in its format");
    assert_eq!(stats.guessed_kinds.len(), 3);
    assert_eq!(stats.guessed_kinds["DATUM"].kind, Kind::Date);
    assert_eq!(stats.guessed_kinds["NAME_PATIENT"].spans, 1);
    assert_eq!(stats.unknown_labels["PLANET"], 1);
    assert!(!stats.unknown_labels.contains_key("DATUM"));
    // Without guessing, the old behaviour: all four are unknown and generic.
    let mut m = LabelMap::meddocan();
    m.set_guess(false);
    let d = Document { id: "g".into(), text: text.into(), spans: vec![span("Anna Müller", "NAME_PATIENT")] };
    let (_, mapping, stats) = deidentify_corpus(&[d], Mode::Surrogate, &opts.clone().with_labels(m)).unwrap();
    assert_eq!((mapping[0].kind, mapping[0].outcome), (None, Outcome::Generic));
    assert!(stats.guessed_kinds.is_empty() && stats.unknown_labels["NAME_PATIENT"] == 1);
    // The JSON of fully mapped stats is unchanged (no empty guessed_kinds field).
    assert!(!serde_json::to_string(&stats).unwrap().contains("guessed_kinds"));
}
