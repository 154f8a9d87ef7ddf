//! German surrogates: names, dates in German formats, streets with their type words, hospitals, practices,
//! e-mail addresses; consistency across documents.

use corpus::{Document, Span};
use deid::date::{days_from_civil, shift_date};
use deid::{deidentify, Language, LabelMap, Mode, Options, Outcome, Surrogator};

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

fn labels() -> LabelMap {
    LabelMap::from_toml_str(
        "[labels]\nNAME_PATIENT = \"name\"\nNAME_DOCTOR = \"name\"\nDATE = \"date\"\nSTREET = \"street\"\n\
         HOSPITAL = \"hospital\"\nPRAXIS = \"health_center\"\nEMAIL = \"email\"\nAGE = \"age\"\nCITY = \"city\"\n",
    )
    .unwrap()
}

fn ctx(key: &str) -> Surrogator {
    Surrogator::new(Options::default().with_labels(labels()).with_language(Language::De).with_key(key))
}

/// The replacement of one span, checked to be a real surrogate.
fn one(ctx: &mut Surrogator, id: &str, label: &str, text: &str) -> String {
    let d = doc(id, &[("Betreff: ", None), (text, Some(label)), (" (Ende)", None)]);
    let r = deidentify(&d, Mode::Surrogate, ctx).unwrap();
    let m = &r.mapping[0];
    assert_eq!(m.outcome, Outcome::Surrogate, "{label} {text:?} → {:?}", m.replacement);
    assert_ne!(m.replacement, text);
    m.replacement.clone()
}

#[test]
fn language_parses_from_its_names() {
    for s in ["de", "DE", "deu", "german", "Deutsch"] {
        assert_eq!(s.parse::<Language>().unwrap(), Language::De, "{s}");
    }
    assert_eq!(Language::De.to_string(), "de");
    let v = deid::vocab::vocab(Language::De);
    assert!(v.surnames.contains(&"Müller") || v.surnames.len() >= 60);
    assert!(v.street_names.iter().any(|s| s.ends_with("straße")));
}

#[test]
fn german_dates_shift_and_keep_their_format() {
    let de = Language::De;
    assert_eq!(shift_date("3.4.2019", 1, de).unwrap(), "4.4.2019");
    assert_eq!(shift_date("03.04.2019", 30, de).unwrap(), "03.05.2019");
    assert_eq!(shift_date("3. April 2019", 30, de).unwrap(), "3. Mai 2019");
    assert_eq!(shift_date("3. Apr. 2019", 30, de).unwrap(), "3. Mai. 2019");
    assert_eq!(shift_date("28. Februar 2019", 2, de).unwrap(), "2. März 2019");
    assert_eq!(shift_date("1. März 2019", -1, de).unwrap(), "28. Februar 2019");
    assert_eq!(shift_date("15. Dez. 2019", 31, de).unwrap(), "15. Jan. 2020");
    assert_eq!(shift_date("MÄRZ 2019", 31, de).unwrap(), "APRIL 2019");
    assert_eq!(shift_date("im Oktober 2018", 31, de).unwrap(), "im November 2018");
    assert_eq!(shift_date("3.4.19", 1, de).unwrap(), "4.4.19");
    // Day first: 03.04. is the 3rd of April, not March 4th.
    assert_eq!(shift_date("03.04.2019", 1, de).unwrap(), "04.04.2019");
    assert_eq!(shift_date("12.03.", 1, de).unwrap(), "13.03.");

    // Through the surrogator: each written form moves by the document's offset.
    let mut c = ctx("dates");
    let off = c.date_offset_days("d1");
    let ymd = |s: &str| -> i64 {
        let p: Vec<&str> = s.split(|c: char| !c.is_alphanumeric()).filter(|x| !x.is_empty()).collect();
        let month = |w: &str| -> u32 {
            ["jan", "feb", "mär", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "dez"]
                .iter()
                .position(|m| w.to_lowercase().starts_with(m))
                .map(|i| i as u32 + 1)
                .unwrap_or_else(|| w.parse().unwrap())
        };
        days_from_civil(p[2].parse().unwrap(), month(p[1]), p[0].parse().unwrap())
    };
    for (orig, shape) in [
        ("3.4.2019", r"^\d{1,2}\.\d{1,2}\.\d{4}$"),
        ("03.04.2019", r"^\d\d\.\d\d\.\d{4}$"),
        ("3. April 2019", r"^\d{1,2}\. [A-ZÄ][a-zä]+ \d{4}$"),
        ("3. Apr. 2019", r"^\d{1,2}\. [A-ZÄ][a-zä]{2}\. \d{4}$"),
    ] {
        let d = doc("d1", &[("Aufnahme am ", None), (orig, Some("DATE")), (".", None)]);
        let r = deidentify(&d, Mode::Surrogate, &mut c).unwrap();
        let new = &r.mapping[0].replacement;
        assert_eq!(ymd(new) - ymd(orig), off, "{orig} → {new}");
        assert!(matches_shape(new, shape), "{orig} → {new} keeps the format {shape}");
    }
}

/// A tiny matcher for the shapes above (no regex crate in this workspace's deid dev-dependencies).
fn matches_shape(s: &str, shape: &str) -> bool {
    let words: Vec<&str> = s.split(' ').collect();
    match shape {
        r"^\d{1,2}\.\d{1,2}\.\d{4}$" => {
            let p: Vec<&str> = s.split('.').collect();
            p.len() == 3 && p[0].len() <= 2 && p[1].len() <= 2 && p[2].len() == 4
        }
        r"^\d\d\.\d\d\.\d{4}$" => {
            let p: Vec<&str> = s.split('.').collect();
            p.len() == 3 && p[0].len() == 2 && p[1].len() == 2 && p[2].len() == 4
        }
        r"^\d{1,2}\. [A-ZÄ][a-zä]+ \d{4}$" => {
            words.len() == 3 && words[0].ends_with('.') && !words[1].ends_with('.') && words[2].len() == 4
        }
        _ => words.len() == 3 && words[0].ends_with('.') && words[1].ends_with('.') && words[1].chars().count() == 4,
    }
}

#[test]
fn german_names_keep_parts_gender_and_case() {
    let mut c = ctx("names");
    let v = deid::vocab::vocab(Language::De);
    let r = one(&mut c, "n1", "NAME_PATIENT", "Anna Müller");
    let parts: Vec<&str> = r.split(' ').collect();
    assert_eq!(parts.len(), 2, "{r}");
    assert!(v.given_female.contains(&parts[0]), "female given name kept female: {r}");
    let r = one(&mut c, "n1", "NAME_DOCTOR", "Dr. med. Klaus Schneider");
    assert!(r.starts_with("Dr. med. "), "titles kept: {r}");
    assert_eq!(r.split(' ').count(), 4);
    assert!(v.given_male.contains(&r.split(' ').nth(2).unwrap()), "{r}");
    let r = one(&mut c, "n1", "NAME_PATIENT", "MÜLLER-LÜDENSCHEIDT, Hans");
    assert_eq!(r, r.to_uppercase().replace(&r.split(", ").nth(1).unwrap().to_uppercase(), r.split(", ").nth(1).unwrap()));
    assert!(r.contains('-') && r.contains(", "), "{r}");
    let r = one(&mut c, "n1", "NAME_PATIENT", "Heinrich von Kleist");
    assert!(r.contains(" von "), "particle kept: {r}");
}

#[test]
fn german_streets_keep_type_word_and_number_layout() {
    let mut c = ctx("streets");
    let digits = |s: &str| s.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>();
    for (orig, ending, check_tail) in [
        ("Goethestraße 12", "straße 99", true),
        ("Hauptstraße 5", "straße 9", true),
        ("Hauptstr. 17a", "str. 99a", true),
        ("Birkenweg 3", "weg 9", true),
        ("Kaiser-Wilhelm-Straße 104", "-Straße 999", true),
        ("Marktplatz 1", "platz 9", true),
        ("Lindenallee 22", "allee 99", true),
        ("Alte Gasse 7", " Gasse 9", true),
        ("Berliner Straße 40", " Straße 99", true),
        ("Berliner Str. 40", " Str. 99", true),
        ("Am Markt 3", " 9", false),
    ] {
        let r = one(&mut c, "s1", "STREET", orig);
        assert!(digits(&r).ends_with(ending), "{orig} → {r}: type word and number layout kept");
        if check_tail {
            let name = &r[..r.len() - ending.len()];
            assert!(!name.is_empty() && !orig.starts_with(name.trim()), "{orig} → {r}: the name changed");
        }
    }
    // "Am Markt 3" becomes another German street of the list, its number re-drawn with one digit.
    let r = one(&mut c, "s1", "STREET", "Am Markt 3");
    let v = deid::vocab::vocab(Language::De);
    let (name, num) = r.rsplit_once(' ').unwrap();
    assert!(v.street_names.contains(&name) && num.len() == 1, "{r}");
}

#[test]
fn german_hospitals_practices_and_emails() {
    let mut c = ctx("orgs");
    let r = one(&mut c, "o1", "HOSPITAL", "Klinikum Stuttgart");
    assert!(r.starts_with("Klinikum ") && r != "Klinikum Stuttgart", "{r}");
    let r = one(&mut c, "o1", "HOSPITAL", "St. Marien-Krankenhaus");
    assert!(r.starts_with("St. ") && r.ends_with("-Krankenhaus"), "{r}");
    let r = one(&mut c, "o1", "HOSPITAL", "Kreiskrankenhaus Mittweida");
    assert!(r.starts_with("Kreiskrankenhaus "), "{r}");
    let r = one(&mut c, "o1", "PRAXIS", "Praxis Dr. med. Weber");
    assert!(r.starts_with("Praxis Dr. med. ") && !r.ends_with("Weber"), "{r}");
    let r = one(&mut c, "o1", "PRAXIS", "MVZ Bonn");
    assert!(r.starts_with("MVZ ") && r != "MVZ Bonn", "{r}");
    let r = one(&mut c, "o1", "HOSPITAL", "Krankenhaus");
    assert!(
        r.starts_with("Klinikum ") || r.ends_with("-Krankenhaus") || r.starts_with("Krankenhaus ") || r.starts_with("Kreiskrankenhaus "),
        "a German template: {r}"
    );
    let r = one(&mut c, "o1", "EMAIL", "h.mueller@klinikum-nord.de");
    assert!(r.ends_with(".de") && r.is_ascii(), "{r}");
    let r = one(&mut c, "o1", "EMAIL", "anna.schmidt@gmx.de");
    let v = deid::vocab::vocab(Language::De);
    assert!(v.email_domains.contains(&r.rsplit_once('@').unwrap().1), "public domain → public domain: {r}");
    let r = one(&mut c, "o1", "AGE", "45 Jahre");
    assert!(r.ends_with(" Jahre") || r.ends_with(" Jahr"), "{r}");
}

#[test]
fn german_surrogates_are_consistent() {
    let texts = [
        ("NAME_PATIENT", "Anna Müller"),
        ("STREET", "Goethestraße 12"),
        ("HOSPITAL", "Klinikum Stuttgart"),
        ("CITY", "Stuttgart"),
        ("PRAXIS", "Praxis Dr. Weber"),
    ];
    let run = |key: &str| -> Vec<Vec<String>> {
        let mut c = ctx(key);
        ["a", "b"]
            .iter()
            .map(|id| {
                let mut pieces: Vec<(&str, Option<&str>)> = Vec::new();
                for (l, t) in &texts {
                    pieces.push((t, Some(l)));
                    pieces.push((". ", None));
                }
                let r = deidentify(&doc(id, &pieces), Mode::Surrogate, &mut c).unwrap();
                r.mapping.iter().map(|m| m.replacement.clone()).collect()
            })
            .collect()
    };
    let a = run("k1");
    assert_eq!(a[0], a[1], "same original → same surrogate in every document");
    assert_eq!(a, run("k1"), "and in every run with the same key");
    assert_ne!(a, run("k2"), "another key, other surrogates");
    // A compound's stem is one component: Goethestraße and Goetheweg share their new stem.
    let mut c = ctx("k1");
    let s1 = one(&mut c, "x", "STREET", "Goethestraße 1");
    let s2 = one(&mut c, "y", "STREET", "Goetheweg 1");
    assert_eq!(s1.trim_end_matches(|c: char| !c.is_alphabetic()).strip_suffix("straße"), s2.trim_end_matches(|c: char| !c.is_alphabetic()).strip_suffix("weg"));
}

#[test]
fn german_street_and_hospital_edge_cases_do_not_panic() {
    let mut c = ctx("edges");
    for (label, t) in [
        ("STREET", "Straße"),
        ("STREET", "str."),
        ("STREET", "-Straße 3"),
        ("STREET", "Ä-Straße"),
        ("STREET", "ẞTRASSE 1"),
        ("STREET", "Weg-weg-Weg 2"),
        ("STREET", "Goethestraße"),
        ("STREET", "Platz der Republik 1"),
        ("HOSPITAL", "-Krankenhaus"),
        ("HOSPITAL", "St.-Krankenhaus"),
        ("HOSPITAL", "Ä-Klinik"),
        ("PRAXIS", "Praxis Dr."),
        ("PRAXIS", "Müller-Praxis"),
    ] {
        let d = doc("e", &[("x ", None), (t, Some(label)), (" y", None)]);
        let r = deidentify(&d, Mode::Surrogate, &mut c).unwrap();
        assert_ne!(r.mapping[0].replacement, t, "{t}");
    }
}
