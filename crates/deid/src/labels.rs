//! Label → surrogate-kind mapping, read from a TOML file the user can edit. The MEDDOCAN map is built in.

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelFile {
    labels: BTreeMap<String, Kind>,
    #[serde(default)]
    surrogate: SurrogateSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SurrogateSection {
    #[serde(default)]
    keep: Vec<Kind>,
}

/// The built-in MEDDOCAN label map (the text of `data/labels_meddocan.toml`).
pub const MEDDOCAN_LABELS_TOML: &str = include_str!("../data/labels_meddocan.toml");

impl LabelMap {
    /// The MEDDOCAN map: 22 labels, keep = sex and relative.
    pub fn meddocan() -> Self {
        Self::from_toml_str(MEDDOCAN_LABELS_TOML).expect("built-in MEDDOCAN label map parses")
    }

    /// An empty map: every label is unknown and gets the generic replacement.
    pub fn empty() -> Self {
        LabelMap { kinds: BTreeMap::new(), keep: BTreeSet::new() }
    }

    /// Parses the TOML format of `data/labels_meddocan.toml`: a `[labels]` table of `LABEL = "kind"` and
    /// an optional `[surrogate] keep = ["kind", ...]`.
    pub fn from_toml_str(s: &str) -> Result<Self, DeidError> {
        let f: LabelFile = toml::from_str(s).map_err(|e| DeidError::LabelMap(e.to_string()))?;
        Ok(LabelMap { kinds: f.labels, keep: f.surrogate.keep.into_iter().collect() })
    }

    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, DeidError> {
        let path = path.as_ref();
        let s = std::fs::read_to_string(path)
            .map_err(|e| DeidError::LabelMap(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&s)
    }

    pub fn kind_of(&self, label: &str) -> Option<Kind> {
        self.kinds.get(label).copied()
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
