//! Label → surrogate-kind mapping, read from a TOML file the user can edit. The MEDDOCAN map is built in.
//! Labels the map does not list get a kind guessed from their name ([`guess_kind`]: English, Spanish,
//! German and Swedish words, i2b2 / MEDDOCAN / German / Swedish clinical tag sets), unless the map turns
//! guessing off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DeidError;

/// What kind of value a label holds, which decides how its surrogate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Person names: each part is replaced by a given name (same gender where known) or a surname.
    Name,
    /// Street addresses: type word kept, street name replaced, numbers re-drawn.
    Street,
    /// A place: a city / province / region, or a postal code when it holds digits.
    Territory,
    /// A city, province or region (never a postal code).
    City,
    /// Postal codes: same number of digits; Spanish 5-digit codes get a valid province prefix (01–52).
    PostalCode,
    Country,
    Hospital,
    Institution,
    HealthCenter,
    Profession,
    Email,
    Phone,
    Fax,
    /// Identifiers: format-preserving (same length, digit and letter positions, separators); Spanish
    /// DNI/NIE shapes get a valid check letter.
    Id,
    /// Ages: the number is moved by a small per-document amount, units kept.
    Age,
    /// Sex markers: kept by default (see `[surrogate] keep`), otherwise swapped consistently.
    Sex,
    /// Dates: shifted by one offset per document (or patient, or corpus), written format kept.
    Date,
    /// Relatives: kinship words kept by default; names written in the span are replaced.
    Relative,
    /// Anything else: format-preserving random letters and digits.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::Name,
        Kind::Street,
        Kind::Territory,
        Kind::City,
        Kind::PostalCode,
        Kind::Country,
        Kind::Hospital,
        Kind::Institution,
        Kind::HealthCenter,
        Kind::Profession,
        Kind::Email,
        Kind::Phone,
        Kind::Fax,
        Kind::Id,
        Kind::Age,
        Kind::Sex,
        Kind::Date,
        Kind::Relative,
        Kind::Other,
    ];

    /// The snake_case name used in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Name => "name",
            Kind::Street => "street",
            Kind::Territory => "territory",
            Kind::City => "city",
            Kind::PostalCode => "postal_code",
            Kind::Country => "country",
            Kind::Hospital => "hospital",
            Kind::Institution => "institution",
            Kind::HealthCenter => "health_center",
            Kind::Profession => "profession",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Fax => "fax",
            Kind::Id => "id",
            Kind::Age => "age",
            Kind::Sex => "sex",
            Kind::Date => "date",
            Kind::Relative => "relative",
            Kind::Other => "other",
        }
    }

    /// Dates and ages: values whose surrogate is computed (shifted), not drawn, so a coincidence with
    /// another original value of the corpus is expected and allowed (only the document's own originals are
    /// avoided, unless `Options::strict` is set).
    pub fn is_value(self) -> bool {
        matches!(self, Kind::Date | Kind::Age)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = DeidError;
    fn from_str(s: &str) -> Result<Self, DeidError> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| DeidError::LabelMap(format!("unknown surrogate kind {s:?}")))
    }
}

/// Which kind each label is, and which kinds keep their recognised values in surrogate mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    kinds: BTreeMap<String, Kind>,
    keep: BTreeSet<Kind>,
    /// Whether labels missing from `kinds` get a kind guessed from their name (on by default).
    guess: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelFile {
    labels: BTreeMap<String, Kind>,
    #[serde(default)]
    surrogate: SurrogateSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurrogateSection {
    #[serde(default)]
    keep: Vec<Kind>,
    #[serde(default = "yes")]
    guess_unknown: bool,
}

fn yes() -> bool {
    true
}

impl Default for SurrogateSection {
    fn default() -> Self {
        SurrogateSection { keep: Vec::new(), guess_unknown: true }
    }
}

/// The built-in MEDDOCAN label map (the text of `data/labels_meddocan.toml`).
pub const MEDDOCAN_LABELS_TOML: &str = include_str!("../data/labels_meddocan.toml");

impl LabelMap {
    /// The MEDDOCAN map: 22 labels, keep = sex and relative.
    pub fn meddocan() -> Self {
        Self::from_toml_str(MEDDOCAN_LABELS_TOML).expect("built-in MEDDOCAN label map parses")
    }

    /// An empty map: every label's kind is guessed from its name (see [`guess_kind`]); with
    /// `set_guess(false)`, every label is unknown and gets the generic replacement.
    pub fn empty() -> Self {
        LabelMap { kinds: BTreeMap::new(), keep: BTreeSet::new(), guess: true }
    }

    /// Parses the TOML format of `data/labels_meddocan.toml`: a `[labels]` table of `LABEL = "kind"` and
    /// an optional `[surrogate]` with `keep = ["kind", ...]` and `guess_unknown = false` (labels not
    /// listed then get the generic replacement instead of a guessed kind).
    pub fn from_toml_str(s: &str) -> Result<Self, DeidError> {
        let f: LabelFile = toml::from_str(s).map_err(|e| DeidError::LabelMap(e.to_string()))?;
        Ok(LabelMap { kinds: f.labels, keep: f.surrogate.keep.into_iter().collect(), guess: f.surrogate.guess_unknown })
    }

    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, DeidError> {
        let path = path.as_ref();
        let s = std::fs::read_to_string(path)
            .map_err(|e| DeidError::LabelMap(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&s)
    }

    /// The map in `path` (a user's), else MEDDOCAN's: what every setting that takes an optional
    /// label map file means by its absence.
    pub fn from_path_or_meddocan(path: Option<&Path>) -> Result<Self, DeidError> {
        path.map_or_else(|| Ok(Self::meddocan()), Self::from_path)
    }

    /// The kind the map lists for `label` (no guessing).
    pub fn kind_of(&self, label: &str) -> Option<Kind> {
        self.kinds.get(label).copied()
    }

    /// The kind a span of `label` is replaced as: the map's, else (when guessing is on) one guessed from the
    /// label's name; `None` when neither knows it (it gets the generic replacement).
    pub fn effective_kind(&self, label: &str) -> Option<Kind> {
        self.kind_of(label).or_else(|| if self.guess { guess_kind(label) } else { None })
    }

    /// The map's kind, else the guessed one, else [`Kind::Other`] (what an unknown label is replaced as).
    pub fn kind_or_guess(&self, label: &str) -> Kind {
        self.effective_kind(label).unwrap_or(Kind::Other)
    }

    /// Whether labels missing from the map get a guessed kind.
    pub fn guesses(&self) -> bool {
        self.guess
    }

    pub fn set_guess(&mut self, guess: bool) {
        self.guess = guess;
    }

    pub fn insert(&mut self, label: impl Into<String>, kind: Kind) {
        self.kinds.insert(label.into(), kind);
    }

    /// Whether surrogate mode keeps recognised values of `kind` (sex markers, kinship words).
    pub fn keeps(&self, kind: Kind) -> bool {
        self.keep.contains(&kind)
    }

    pub fn set_keep(&mut self, kind: Kind, keep: bool) {
        if keep {
            self.keep.insert(kind);
        } else {
            self.keep.remove(&kind);
        }
    }

    /// Labels and their kinds, sorted by label.
    pub fn labels(&self) -> impl Iterator<Item = (&str, Kind)> {
        self.kinds.iter().map(|(l, k)| (l.as_str(), *k))
    }
}

/// One rule of [`guess_kind`]: `words` are compared with each word of the label (split on `_`, `-`, `.`,
/// `/` and spaces, lower case, accents folded); `parts` are looked for inside the whole label with the
/// separators removed (so `MEDICALRECORD`, `Telefonnummer`, `CENTRO_SALUD` → `centrosalud` are found).
struct Rule {
    kind: Kind,
    words: &'static [&'static str],
    parts: &'static [&'static str],
}

/// The rules in priority order: the first that matches decides. The order settles labels naming two
/// things: the value before the person (`PATIENT_ID` → id, `EDAD_SUJETO` → age, `NAME_USERNAME` → id), the
/// specific place before the general one (`LOCATION_HOSPITAL` → hospital, `LOCATION-OTHER` → other), and a
/// person's role before an organisation (`NAME_DOCTOR` → name) but an organisation before the bare word
/// "name" (`HOSPITAL_NAME` → hospital).
const RULES: &[Rule] = &[
    // Values with no surrogate of their own: format-preserving letters and digits.
    Rule {
        kind: Kind::Other,
        words: &[
            "other", "others", "otros", "otro", "otra", "otras", "sonstige", "sonstiges", "andere", "anderes", "ovrigt",
            "ovriga", "misc", "url", "uri", "web", "website", "ip", "ipaddr", "room", "zimmer", "title", "titel",
        ],
        parts: &["ipaddr", "ipaddress", "webseite", "homepage"],
    },
    Rule { kind: Kind::Email, words: &["mail", "email", "correo", "epost"], parts: &["email", "mail", "correo", "epost"] },
    Rule { kind: Kind::Fax, words: &["fax", "telefax"], parts: &["fax"] },
    Rule {
        kind: Kind::Phone,
        words: &["tel", "tfno", "tlf", "tlfno", "movil", "mobile", "mobil", "handy", "pager", "beeper", "cell"],
        parts: &["phone", "telefon", "telefono", "telf", "mobilnummer", "handynummer"],
    },
    // Before identifiers: ZIP_CODE and CODIGO_POSTAL are postal codes, not codes.
    Rule {
        kind: Kind::PostalCode,
        words: &["zip", "plz", "cp", "postal", "postcode", "zipcode", "postnummer", "postnr"],
        parts: &["zip", "postal", "postleitzahl", "postcode", "postnummer", "codigopostal"],
    },
    Rule {
        kind: Kind::Id,
        words: &[
            "id", "ids", "nr", "no", "num", "numero", "number", "nummer", "ssn", "mrn", "nhc", "dni", "nie", "nif", "cip",
            "account", "license", "licence", "vehicle", "device", "bioid", "username", "user", "login", "code", "codigo",
            "kennung", "aktenzeichen", "az",
        ],
        parts: &[
            "idnum", "identif", "medicalrecord", "record", "healthplan", "insurance", "aseguramiento", "personnummer",
            "samordningsnummer", "patientennummer", "fallnummer", "versichert", "username", "journalnummer",
            "historiaclinica", "kontonummer", "accountnumber",
        ],
    },
    Rule {
        kind: Kind::Date,
        words: &["date", "dates", "fecha", "fechas", "datum", "dato", "day", "tag", "year", "jahr", "ano", "month", "monat", "dob", "birthday"],
        parts: &["date", "fecha", "datum", "geburtstag"],
    },
    Rule { kind: Kind::Age, words: &["age", "ages", "edad", "alter", "alder", "aged"], parts: &["edad", "lebensalter"] },
    Rule {
        kind: Kind::Sex,
        words: &["sex", "sexo", "gender", "genero", "geschlecht", "kon"],
        parts: &["geschlecht", "gender"],
    },
    Rule {
        kind: Kind::Relative,
        words: &["relative", "relatives", "family", "kin", "familiar", "familiares", "familia", "familj", "anhorig", "anhoriga", "angehorige", "angehoriger", "verwandte"],
        parts: &["familiar", "relative", "angehorig", "anhorig", "verwandt"],
    },
    Rule {
        kind: Kind::Street,
        words: &["street", "calle", "strasse", "straße", "str", "address", "adresse", "adress", "direccion", "domicilio", "gata", "gatuadress", "via"],
        parts: &["street", "calle", "strasse", "straße", "address", "adresse", "direccion", "domicilio", "gatuadress"],
    },
    Rule {
        kind: Kind::Profession,
        words: &["profession", "profesion", "occupation", "job", "beruf", "yrke", "ocupacion", "trabajo", "work"],
        parts: &["profes", "occupation", "beruf", "yrke", "ocupacion"],
    },
    // A person's role: before the organisations, so that NAME_DOCTOR is a name, not a practice.
    Rule {
        kind: Kind::Name,
        words: &[
            "patient", "patients", "paciente", "patientin", "pat", "doctor", "doctors", "dr", "doktor", "arzt", "arztin",
            "physician", "clinician", "nurse", "staff", "sujeto", "medico", "medica", "lakare", "personal", "persona",
            "person", "personen", "pflege", "sanitario", "therapist", "provider",
        ],
        parts: &["patient", "doctor", "doktor", "physician", "clinician", "arzt", "lakare"],
    },
    Rule {
        kind: Kind::HealthCenter,
        words: &["praxis", "mvz", "vardcentral", "vardenhet", "practice", "surgery", "ambulatorio", "consultorio", "primaria"],
        parts: &["centrosalud", "centrodesalud", "healthcent", "healthcare", "careunit", "vardcentral", "vardenhet", "praxis", "ambulanz", "versorgungszentrum"],
    },
    Rule {
        kind: Kind::Hospital,
        words: &["hospital", "hospitals", "klinik", "klinikum", "kliniken", "krankenhaus", "clinic", "clinica", "sjukhus", "lasarett", "spital", "ward", "station"],
        parts: &["hospital", "krankenhaus", "klinik", "clinic", "sjukhus", "lasarett", "spital"],
    },
    Rule {
        kind: Kind::Institution,
        words: &["org", "organization", "organisation", "organizacion", "institution", "institucion", "company", "empresa", "firma", "foretag", "department", "abteilung", "departamento", "employer", "arbeitgeber", "school", "schule", "skola", "university", "universidad", "universitat", "agency", "behorde"],
        parts: &["organi", "institu", "company", "empresa", "department", "departamento", "abteilung", "universi", "arbeitgeber"],
    },
    Rule {
        kind: Kind::Country,
        words: &["country", "countries", "pais", "paises", "land", "staat", "nation", "nationality", "nacionalidad", "nationalitat"],
        parts: &["country", "pais", "nationali", "nacionali"],
    },
    Rule {
        kind: Kind::City,
        words: &["city", "ciudad", "stadt", "stad", "town", "ort", "municipio", "municipality", "localidad", "poblacion", "gemeinde", "kommun", "village", "dorf", "wohnort"],
        parts: &["ciudad", "stadt", "wohnort", "municip"],
    },
    Rule {
        kind: Kind::Territory,
        words: &["state", "province", "provincia", "region", "county", "bundesland", "lan", "territorio", "territory", "location", "loc", "place", "plats", "lugar", "ubicacion", "geo", "area", "district", "kreis", "landkreis"],
        parts: &["territor", "location", "provinc", "region", "bundesland", "ubicacion"],
    },
    // The bare word "name" last: HOSPITAL_NAME is a hospital, NAME_PATIENT a name either way.
    Rule {
        kind: Kind::Name,
        words: &["name", "names", "nombre", "nombres", "nom", "namn", "apellido", "apellidos", "surname", "vorname", "nachname", "fornamn", "efternamn", "initials", "initialen", "firstname", "lastname"],
        parts: &["name", "nombre", "namn", "apellido"],
    },
];

/// The kind a label's name suggests, or `None` when no rule matches. Case-insensitive; the label is split
/// on `_`, `-`, `.`, `/` and spaces and its words compared with each rule's words, then its letters (the
/// separators removed) searched for each rule's parts; the first rule that matches either way wins (see
/// the order of `RULES`). `NAME_DOCTOR` → name, `ID_CONTACTO_ASISTENCIAL` → id, `HOSPITAL` → hospital,
/// `LOCATION-OTHER` → other, `Telefonnummer` → phone, `Personnummer` → id.
pub fn guess_kind(label: &str) -> Option<Kind> {
    let folded: String = label.chars().flat_map(char::to_lowercase).map(crate::text::fold_char).collect();
    let words: Vec<&str> =
        folded.split(|c: char| matches!(c, '_' | '-' | '.' | '/' | ':') || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return None;
    }
    let joined: String = words.concat();
    // A rule's words first (exact words are the stronger evidence), then its parts, rule by rule.
    RULES
        .iter()
        .find(|r| r.words.iter().any(|w| words.contains(w)) || r.parts.iter().any(|p| joined.contains(p)))
        .map(|r| r.kind)
}

impl Default for LabelMap {
    fn default() -> Self {
        Self::meddocan()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meddocan_map_has_all_22_labels() {
        let m = LabelMap::meddocan();
        assert_eq!(m.labels().count(), 22);
        assert_eq!(m.kind_of("FECHAS"), Some(Kind::Date));
        assert_eq!(m.kind_of("TERRITORIO"), Some(Kind::Territory));
        assert_eq!(m.kind_of("NOPE"), None);
        assert!(m.keeps(Kind::Sex) && m.keeps(Kind::Relative) && !m.keeps(Kind::Name));
    }

    #[test]
    fn bad_kind_is_an_error() {
        assert!(LabelMap::from_toml_str("[labels]\nX = \"planet\"\n").is_err());
        let m = LabelMap::from_toml_str("[labels]\nPERSON = \"name\"\n").unwrap();
        assert_eq!(m.kind_of("PERSON"), Some(Kind::Name));
        assert!(!m.keeps(Kind::Sex));
    }
}
