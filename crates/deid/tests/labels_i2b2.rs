//! The shipped i2b2 / n2c2 2014 label map (`data/labels_i2b2_2014.toml`) parses and maps every TYPE of
//! that tag set to a surrogate kind.

use deid::{Kind, LabelMap};

const I2B2_2014_TYPES: [&str; 30] = [
    "PATIENT", "DOCTOR", "USERNAME", "PROFESSION", "ROOM", "DEPARTMENT", "HOSPITAL", "ORGANIZATION", "STREET", "CITY",
    "STATE", "COUNTRY", "ZIP", "LOCATION-OTHER", "AGE", "DATE", "PHONE", "FAX", "EMAIL", "URL", "IPADDR", "SSN",
    "MEDICALRECORD", "HEALTHPLAN", "ACCOUNT", "LICENSE", "VEHICLE", "DEVICE", "BIOID", "IDNUM",
];

fn map() -> LabelMap {
    LabelMap::from_toml_str(include_str!("../data/labels_i2b2_2014.toml")).expect("the i2b2 label map parses")
}

#[test]
fn i2b2_2014_map_covers_every_type_and_nothing_else() {
    let m = map();
    for t in I2B2_2014_TYPES {
        assert!(m.kind_of(t).is_some(), "{t} has no kind");
    }
    let mut listed: Vec<&str> = m.labels().map(|(l, _)| l).collect();
    let mut expected = I2B2_2014_TYPES.to_vec();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn i2b2_2014_kinds_are_the_obvious_ones() {
    let m = map();
    for (label, kind) in [
        ("PATIENT", Kind::Name),
        ("DOCTOR", Kind::Name),
        ("HOSPITAL", Kind::Hospital),
        ("STREET", Kind::Street),
        ("CITY", Kind::City),
        ("ZIP", Kind::PostalCode),
        ("COUNTRY", Kind::Country),
        ("AGE", Kind::Age),
        ("DATE", Kind::Date),
        ("PHONE", Kind::Phone),
        ("FAX", Kind::Fax),
        ("EMAIL", Kind::Email),
        ("MEDICALRECORD", Kind::Id),
        ("PROFESSION", Kind::Profession),
    ] {
        assert_eq!(m.kind_of(label), Some(kind), "{label}");
    }
    assert!(!m.keeps(Kind::Name));
}
