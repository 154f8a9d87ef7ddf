//! Surrogate vocabularies (the `lang` crate's lists: built in from `crates/lang/resources/<lang>/*.txt`,
//! plus a user's `SYNTHDEID_LANG_DIR`) and the small closed word lists used to
//! recognise parts of originals (name particles, titles, street types, kinship and sex words).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::DeidError;
use crate::text::fold_word;

/// Language of the surrogate vocabularies (and the default day/month order of numeric dates: day first for
/// Spanish, German and Swedish, month first for English).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Es,
    En,
    Sv,
    De,
}

impl Language {
    /// Every language, in the order of [`Language::index`] (German last: the older three keep their
    /// indices, so tables indexed by language keep their order).
    pub const ALL: [Language; 4] = [Language::Es, Language::En, Language::Sv, Language::De];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
            Language::Sv => "sv",
            Language::De => "de",
        }
    }
    pub(crate) fn index(self) -> usize {
        match self {
            Language::Es => 0,
            Language::En => 1,
            Language::Sv => 2,
            Language::De => 3,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Language {
    type Err = DeidError;
    fn from_str(s: &str) -> Result<Self, DeidError> {
        match s.to_ascii_lowercase().as_str() {
            "es" | "spa" | "spanish" | "español" => Ok(Language::Es),
            "en" | "eng" | "english" => Ok(Language::En),
            "sv" | "swe" | "swedish" | "svenska" => Ok(Language::Sv),
            "de" | "deu" | "ger" | "german" | "deutsch" => Ok(Language::De),
            _ => Err(DeidError::Invalid(format!("unknown language {s:?} (es, en, sv, de)"))),
        }
    }
}

/// The lists of one language. Entries keep their natural capitalisation.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub given_female: Vec<&'static str>,
    pub given_male: Vec<&'static str>,
    pub surnames: Vec<&'static str>,
    pub street_names: Vec<&'static str>,
    pub cities: Vec<&'static str>,
    pub provinces: Vec<&'static str>,
    pub regions: Vec<&'static str>,
    pub countries: Vec<&'static str>,
    pub professions: Vec<&'static str>,
    pub email_domains: Vec<&'static str>,
    pub hospital_names: Vec<&'static str>,
    pub health_center_names: Vec<&'static str>,
    pub companies: Vec<&'static str>,
    pub institution_templates: Vec<&'static str>,
}

impl From<Language> for lang::Language {
    fn from(l: Language) -> lang::Language {
        match l {
            Language::Es => lang::Language::Es,
            Language::En => lang::Language::En,
            Language::Sv => lang::Language::Sv,
            Language::De => lang::Language::De,
        }
    }
}

/// The lists of `lang` from the `lang` crate (built in, plus a user's `SYNTHDEID_LANG_DIR`).
fn vocab_for(lang: Language) -> Vocab {
    let l = lang::Language::from(lang);
    let list = |name: &str| lang::list(l, name).to_vec();
    Vocab {
        given_female: list("given_female"),
        given_male: list("given_male"),
        surnames: list("surnames"),
        street_names: list("street_names"),
        cities: list("cities"),
        provinces: list("provinces"),
        regions: list("regions"),
        countries: list("countries"),
        professions: list("professions"),
        email_domains: list("email_domains"),
        hospital_names: list("hospital_names"),
        health_center_names: list("health_center_names"),
        companies: list("companies"),
        institution_templates: list("institution_names"),
    }
}

/// The built-in vocabulary of a language.
pub fn vocab(lang: Language) -> &'static Vocab {
    static V: OnceLock<[Vocab; 4]> = OnceLock::new();
    &V.get_or_init(|| Language::ALL.map(vocab_for))[lang.index()]
}

/// Given-name gender, for keeping the gender of replaced given names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Gender {
    Female,
    Male,
}

/// Folded given names of every language → gender (female wins for names on both lists).
pub(crate) fn given_gender(folded: &str) -> Option<Gender> {
    static M: OnceLock<HashMap<String, Gender>> = OnceLock::new();
    M.get_or_init(|| {
        let mut m = HashMap::new();
        for lang in Language::ALL {
            let v = vocab(lang);
            for n in &v.given_male {
                m.insert(fold_word(n), Gender::Male);
            }
        }
        for lang in Language::ALL {
            for n in &vocab(lang).given_female {
                m.insert(fold_word(n), Gender::Female);
            }
        }
        // Frequent Spanish given names and abbreviations not on the surrogate lists.
        for n in ["maria", "mª", "m.ª", "jose", "josep", "josefina", "jesus", "carmen", "mari", "pepa", "pepe", "paco"]
        {
            m.entry(n.to_string()).or_insert(if n.ends_with('a') || n == "carmen" || n == "mari" {
                Gender::Female
            } else {
                Gender::Male
            });
        }
        m
    })
    .get(folded)
    .copied()
}

fn folded_set(words: &[&str]) -> HashSet<String> {
    words.iter().map(|w| fold_word(w)).collect()
}

/// Folded set of a static word list, built once per list.
macro_rules! static_set {
    ($name:ident, $words:expr) => {
        pub(crate) fn $name(folded: &str) -> bool {
            static S: OnceLock<HashSet<String>> = OnceLock::new();
            S.get_or_init(|| folded_set(&$words)).contains(fold_word(folded).as_str())
        }
    };
}

// Name particles are kept as written ("de la", "del", "y", "i", "van").
static_set!(
    is_name_particle,
    [
        "de", "del", "la", "las", "los", "y", "i", "e", "da", "das", "do", "dos", "di", "van", "von", "der", "den",
        "le", "du", "el", "al", "zu", "vom", "zum"
    ]
);

// Titles and honorifics are kept.
static_set!(
    is_name_title,
    [
        "dr",
        "dra",
        "doctor",
        "doctora",
        "sr",
        "sra",
        "srta",
        "señor",
        "señora",
        "señorita",
        "don",
        "doña",
        "dña",
        "d",
        "prof",
        "profesor",
        "profesora",
        "mr",
        "mrs",
        "ms",
        "miss",
        "sir",
        "herr",
        "frau",
        "fru",
        // German academic titles written between "Dr." and the name ("Dr. med. Weber", "Dipl.-Ing.").
        "med",
        "dent",
        "vet",
        "dipl",
        "ing",
        "pd",
        "dres",
        "dott",
        "lic",
        "ldo",
        "lda"
    ]
);

static_set!(
    is_street_type,
    include_str!("../data/street_types.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
);

// Words of an address after the street name that say nothing about the place ("2º dcha", "bajo B").
static_set!(
    is_address_word,
    [
        "dcha",
        "dcha.",
        "derecha",
        "izq",
        "izqda",
        "izda",
        "izquierda",
        "izquierdo",
        "bajo",
        "bajos",
        "atico",
        "ático",
        "piso",
        "puerta",
        "pta",
        "portal",
        "escalera",
        "esc",
        "bis",
        "nº",
        "n",
        "no",
        "num",
        "número",
        "numero",
        "s/n",
        "sn",
        "local",
        "planta",
        "pl",
        "bloque",
        "blq",
        "entre",
        "y",
        "de",
        "del",
        "la",
        "el",
        "los",
        "las",
        "ch",
        "apt",
        "apartment",
        "suite",
        "floor",
        "flat",
        "unit",
        "lgh",
        "tr",
        "vån",
        "km",
        "kilómetro",
        "kilometro",
        "entresuelo",
        "principal",
        "pral",
        "casa",
        "chalet",
        "edificio",
        "edif",
        "urb",
        "int",
        "interior",
        "exterior",
        "ext",
        "centro",
        "en",
        "esquina",
        "esq",
        "con",
        "frente",
        "junto",
        "a",
        "al",
        "puerta",
        "dpto",
        "depto",
        "departamento",
        "oficina",
        "of",
        "letra",
        "mano"
    ]
);

// Leading words of hospital names that describe the kind of place, kept as written.
static_set!(
    is_hospital_type,
    [
        "hospital",
        "hospitales",
        "hospitalario",
        "hospitalaria",
        "hospitalari",
        "complejo",
        "complexo",
        "complex",
        "universitario",
        "universitaria",
        "universitari",
        "universitària",
        "general",
        "clínico",
        "clínica",
        "clinico",
        "clinica",
        "clínic",
        "clinic",
        "provincial",
        "comarcal",
        "regional",
        "materno",
        "infantil",
        "materno-infantil",
        "policlínica",
        "policlinica",
        "sanatorio",
        "centro",
        "médico",
        "medico",
        "quirúrgico",
        "quirurgico",
        "de",
        "del",
        "la",
        "el",
        "los",
        "las",
        "especialidades",
        "asistencial",
        "consorcio",
        "fundación",
        "fundacion",
        "fundació",
        "instituto",
        "institut",
        "unidad",
        "servicio",
        "área",
        "area",
        "sanitaria",
        "sanitario",
        "integrado",
        "university",
        "hospitals",
        "memorial",
        "county",
        "royal",
        "sjukhus",
        "sjukhuset",
        "universitetssjukhus",
        "universitetssjukhuset",
        "lasarett",
        "lasarettet",
        "nacional",
        "militar",
        "psiquiátrico",
        "psiquiatrico",
        "residencia",
        "sanitaria",
        "mutua",
        "corporació",
        "parc",
        "parc",
        "salut",
        "xeral",
        "xeral-calde",
        "geriátrico",
        "oncológico",
        "oncologico",
        "rehabilitación",
        "sanitària",
        "krankenhaus",
        "krankenhäuser",
        "klinikum",
        "klinik",
        "kliniken",
        "uniklinik",
        "universitätsklinikum",
        "universitatsklinikum",
        "kreiskrankenhaus",
        "kreisklinik",
        "spital",
        "städtisches",
        "stadtisches",
        "evangelisches",
        "katholisches",
        "allgemeines",
        "akademisches",
        "lehrkrankenhaus",
        "fachklinik",
        "für",
        "fur"
    ]
);

static_set!(
    is_institution_type,
    [
        "universidad",
        "universitat",
        "universidade",
        "university",
        "facultad",
        "facultat",
        "faculty",
        "instituto",
        "institut",
        "institute",
        "institución",
        "institucion",
        "fundación",
        "fundacion",
        "fundació",
        "foundation",
        "servicio",
        "servei",
        "service",
        "centro",
        "centre",
        "center",
        "departamento",
        "departament",
        "department",
        "consejería",
        "consejeria",
        "conselleria",
        "ministerio",
        "ministry",
        "juzgado",
        "juzgados",
        "tribunal",
        "laboratorio",
        "laboratorios",
        "laboratori",
        "laboratory",
        "laboratories",
        "escuela",
        "escola",
        "school",
        "colegio",
        "col·legi",
        "college",
        "asociación",
        "asociacion",
        "associació",
        "association",
        "sociedad",
        "societat",
        "society",
        "agencia",
        "agència",
        "agency",
        "clínica",
        "clinica",
        "ciudad",
        "edificio",
        "unidad",
        "área",
        "area",
        "de",
        "del",
        "la",
        "el",
        "los",
        "las",
        "y",
        "i",
        "of",
        "the",
        "and",
        "medicina",
        "médica",
        "medica",
        "legal",
        "nacional",
        "regional",
        "provincial",
        "general",
        "salud",
        "salut",
        "sanidad",
        "sanitario",
        "sanitaria",
        "forense",
        "justicia",
        "investigación",
        "investigacion",
        "odontología",
        "odontologia",
        "enfermería",
        "enfermeria",
        "farmacia",
        "transfusión",
        "transfusion",
        "sanguínea",
        "sanguinea",
        "residencia",
        "mutua",
        "delegación",
        "delegacion",
        "gerencia",
        "dirección",
        "direccion",
        "registro",
        "civil",
        "policía",
        "policia",
        "guardia",
        "cuerpo",
        "ejército",
        "ejercito",
        "hospital",
        "universitario",
        "universitaria",
        "medical",
        "forensic",
        "health",
        "authority",
        "universitet",
        "universitetet",
        "region",
        "stiftelsen",
        "rättsmedicinalverket",
        "clínico",
        "clinico",
        "ciencias",
        "científico",
        "cientifico",
        "superior"
    ]
);

static_set!(
    is_health_center_type,
    [
        "centro",
        "de",
        "del",
        "la",
        "el",
        "salud",
        "cap",
        "cs",
        "c.s.",
        "consultorio",
        "ambulatorio",
        "local",
        "atención",
        "atencion",
        "primaria",
        "área",
        "area",
        "básica",
        "basica",
        "zona",
        "centre",
        "salut",
        "health",
        "centre",
        "center",
        "clinic",
        "surgery",
        "practice",
        "vårdcentral",
        "vårdcentralen",
        "hälsocentral",
        "urbano",
        "rural",
        "médico",
        "medico",
        "ebap",
        "eap",
        "abs",
        "especialidades",
        "periférico",
        "periferico",
        "integrado",
        "y",
        "praxis",
        "arztpraxis",
        "hausarztpraxis",
        "gemeinschaftspraxis",
        "praxisgemeinschaft",
        "mvz",
        "medizinisches",
        "versorgungszentrum",
        "ärztehaus",
        "arztehaus",
        "gesundheitszentrum"
    ]
);

// Kinship nouns and their modifiers (Spanish, English, Swedish): a relative span made only of these is kept
// when `relative` is a keep kind.
static_set!(
    is_kinship_word,
    [
        "padre",
        "madre",
        "padres",
        "hijo",
        "hija",
        "hijos",
        "hijas",
        "hermano",
        "hermana",
        "hermanos",
        "hermanas",
        "tío",
        "tía",
        "tíos",
        "tías",
        "abuelo",
        "abuela",
        "abuelos",
        "abuelas",
        "primo",
        "prima",
        "primos",
        "primas",
        "sobrino",
        "sobrina",
        "sobrinos",
        "nieto",
        "nieta",
        "nietos",
        "bisabuelo",
        "bisabuela",
        "marido",
        "esposo",
        "esposa",
        "mujer",
        "pareja",
        "novio",
        "novia",
        "cuñado",
        "cuñada",
        "suegro",
        "suegra",
        "yerno",
        "nuera",
        "familia",
        "familiar",
        "familiares",
        "progenitor",
        "progenitora",
        "progenitores",
        "gemelo",
        "gemela",
        "gemelos",
        "mellizo",
        "melliza",
        "hermanastro",
        "hermanastra",
        "padrastro",
        "madrastra",
        "tutor",
        "tutora",
        "cónyuge",
        "conyuge",
        "compañero",
        "compañera",
        "varón",
        "varon",
        "niño",
        "niña",
        "bebé",
        "bebe",
        "recién",
        "nacido",
        "nacida",
        "neonato",
        "neonata",
        "paterno",
        "paterna",
        "materno",
        "materna",
        "paternos",
        "maternos",
        "mayor",
        "menor",
        "pequeño",
        "pequeña",
        "primer",
        "primero",
        "primera",
        "segundo",
        "segunda",
        "tercer",
        "tercero",
        "tercera",
        "mayores",
        "menores",
        "un",
        "una",
        "uno",
        "dos",
        "tres",
        "cuatro",
        "cinco",
        "seis",
        "ambos",
        "sus",
        "su",
        "el",
        "la",
        "los",
        "las",
        "de",
        "del",
        "y",
        "e",
        "político",
        "política",
        "gestante",
        "embarazada",
        "adoptivo",
        "adoptiva",
        "biológico",
        "biológica",
        "lejano",
        "lejana",
        "fallecido",
        "fallecida",
        "joven",
        "jóvenes",
        "jovenes",
        "miembros",
        "miembro",
        "anciano",
        "anciana",
        "ancianos",
        "adulto",
        "adulta",
        "adultos",
        "sano",
        "sana",
        "sanos",
        "vivo",
        "viva",
        "vivos",
        "edad",
        "años",
        "meses",
        "días",
        "con",
        "sin",
        "ni",
        "o",
        "otro",
        "otra",
        "otros",
        "varios",
        "dos",
        "ambas",
        "resto",
        "father",
        "mother",
        "parents",
        "parent",
        "son",
        "daughter",
        "sons",
        "daughters",
        "brother",
        "sister",
        "brothers",
        "sisters",
        "uncle",
        "aunt",
        "grandfather",
        "grandmother",
        "grandparents",
        "cousin",
        "nephew",
        "niece",
        "grandson",
        "granddaughter",
        "husband",
        "wife",
        "partner",
        "family",
        "relative",
        "relatives",
        "twin",
        "paternal",
        "maternal",
        "older",
        "younger",
        "elder",
        "his",
        "her",
        "their",
        "the",
        "a",
        "and",
        "far",
        "mor",
        "föräldrar",
        "son",
        "dotter",
        "bror",
        "syster",
        "syskon",
        "farbror",
        "morbror",
        "faster",
        "moster",
        "farfar",
        "farmor",
        "morfar",
        "mormor",
        "kusin",
        "make",
        "maka",
        "man",
        "fru",
        "sambo",
        "familj",
        "anhörig",
        "anhöriga",
        "äldre",
        "yngre",
        "hans",
        "hennes",
        "vater",
        "mutter",
        "eltern",
        "sohn",
        "tochter",
        "bruder",
        "schwester",
        "geschwister",
        "onkel",
        "tante",
        "großvater",
        "großmutter",
        "grossvater",
        "grossmutter",
        "opa",
        "oma",
        "cousine",
        "neffe",
        "nichte",
        "enkel",
        "enkelin",
        "ehemann",
        "ehefrau",
        "mann",
        "frau",
        "partnerin",
        "lebensgefährte",
        "lebensgefährtin",
        "ehepartner",
        "ehepartnerin",
        "schwiegersohn",
        "schwiegertochter",
        "schwiegervater",
        "schwiegermutter",
        "familie",
        "angehörige",
        "angehöriger",
        "ältere",
        "älterer",
        "jüngere",
        "jüngerer",
        "sein",
        "seine",
        "ihr",
        "ihre",
        "die",
        "der",
        "und"
    ]
);

/// Sex markers (folded) and the word they are swapped with when `sex` is not a keep kind.
pub(crate) fn sex_partner(folded: &str) -> Option<&'static str> {
    static M: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    M.get_or_init(|| {
        let pairs: [(&str, &str); 27] = [
            ("h", "m"),
            ("v", "m"),
            ("f", "m"),
            ("varon", "mujer"),
            ("hombre", "mujer"),
            ("masculino", "femenino"),
            ("masculina", "femenina"),
            ("nino", "nina"),
            ("chico", "chica"),
            ("senor", "senora"),
            ("anciano", "anciana"),
            ("esposo", "esposa"),
            ("macho", "hembra"),
            ("recien nacido", "recien nacida"),
            ("neonato", "neonata"),
            ("male", "female"),
            ("man", "woman"),
            ("boy", "girl"),
            ("gentleman", "lady"),
            ("kvinna", "man"),
            ("pojke", "flicka"),
            ("manlig", "kvinnlig"),
            ("k", "m"),
            ("w", "m"),
            ("mannlich", "weiblich"),
            ("junge", "madchen"),
            ("mann", "frau"),
        ];
        let mut m = HashMap::new();
        for (a, b) in pairs {
            m.entry(a).or_insert(b);
            m.entry(b).or_insert(a);
        }
        m
    })
    .get(folded)
    .copied()
}

pub(crate) fn is_sex_word(folded: &str) -> bool {
    sex_partner(folded).is_some()
        || matches!(
            folded,
            "mujeres"
                | "hombres"
                | "varones"
                | "nina"
                | "recien"
                | "nacido"
                | "nacida"
                | "hembra"
                | "adolescente"
                | "senorita"
                | "joven"
                | "lactante"
                | "bebe"
        )
}

/// Spanish kinship nouns by gender, for replacing kinship words when `relative` is not a keep kind.
pub(crate) const KIN_MALE_ES: [&str; 10] =
    ["padre", "hermano", "hijo", "tío", "abuelo", "primo", "sobrino", "nieto", "cuñado", "suegro"];
pub(crate) const KIN_FEMALE_ES: [&str; 10] =
    ["madre", "hermana", "hija", "tía", "abuela", "prima", "sobrina", "nieta", "cuñada", "suegra"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_load_and_are_single_words_where_needed() {
        for lang in Language::ALL {
            let v = vocab(lang);
            assert!(v.given_female.len() >= 40 && v.given_male.len() >= 40, "{lang}");
            assert!(v.surnames.len() >= 60 && v.cities.len() >= 40 && v.countries.len() >= 40, "{lang}");
            assert!(!v.email_domains.is_empty() && !v.professions.is_empty() && !v.hospital_names.is_empty());
            for n in v.given_female.iter().chain(&v.given_male).chain(&v.surnames) {
                assert!(!n.contains(char::is_whitespace), "{lang}: name list entries are single words");
            }
        }
        assert!(vocab(Language::Es).surnames.len() >= 400);
        assert_eq!(vocab(Language::Es).provinces.len(), 50);
    }

    #[test]
    fn recognisers() {
        assert_eq!(given_gender("ignacio"), Some(Gender::Male));
        assert_eq!(given_gender("lucia"), Some(Gender::Female));
        assert!(is_name_particle("de") && is_name_title("dra"));
        assert!(is_street_type("c/") && is_street_type("avda") && is_street_type("calle"));
        assert!(is_kinship_word("tío") && is_kinship_word("madre"));
        assert_eq!(sex_partner("varon"), Some("mujer"));
        assert_eq!(sex_partner("h"), Some("m"));
    }
}
