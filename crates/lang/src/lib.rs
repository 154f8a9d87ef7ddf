//! Language resources: per-language word lists (given names, surnames, places, month and weekday
//! names, field names such as `Nombre:` / `Name:` / `Namn:`, kinship words, the words that open a
//! street's, a hospital's or an institution's name, …) and language detection from text.
//!
//! The lists are the files under `resources/<code>/<list>.txt` (one entry a line; `#` starts a
//! comment line), built into the binary. A user adds to them with a directory named by
//! [`LANG_DIR_VAR`] (`SYNTHDEID_LANG_DIR`) laid out the same way: `$SYNTHDEID_LANG_DIR/de/surnames.txt`
//! adds its lines to the built-in German surnames, `$SYNTHDEID_LANG_DIR/other/months.txt` gives
//! month names to documents of no built-in language. Entries are kept in file order, built-in
//! first, duplicates dropped. The directory is read once per process.
//!
//! The perceptron's features and the de-identifier's surrogates both read their lists here.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The environment variable naming a directory of lists added to the built-in ones.
pub const LANG_DIR_VAR: &str = "SYNTHDEID_LANG_DIR";

/// A language with built-in resources, or `Other` (only what a user adds under `other/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Es,
    En,
    De,
    Sv,
    Other,
}

impl Language {
    /// Every language, in the order ties are broken by in [`detect`].
    pub const ALL: [Language; 5] = [Language::Es, Language::En, Language::De, Language::Sv, Language::Other];

    /// ISO 639-1 code (`other` for [`Language::Other`]): the name of its resource folder.
    pub fn code(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
            Language::De => "de",
            Language::Sv => "sv",
            Language::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether this is the default language (Spanish): models and settings saved before the
    /// language existed are Spanish, and a Spanish setting is left out when saved.
    pub fn is_default(&self) -> bool {
        *self == Language::default()
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_lowercase().as_str() {
            "es" | "spa" | "spanish" | "español" | "espanol" => Language::Es,
            "en" | "eng" | "english" => Language::En,
            "de" | "deu" | "ger" | "german" | "deutsch" => Language::De,
            "sv" | "swe" | "swedish" | "svenska" => Language::Sv,
            "other" => Language::Other,
            _ => return Err(format!("unknown language {s:?}: es, en, de, sv or other")),
        })
    }
}

/// The lists a language folder may hold (a user's files of other names are ignored, with a
/// warning).
pub const LISTS: [&str; 27] = [
    // Surrogate vocabularies (deid) and gazetteers (perceptron).
    "given_female",
    "given_male",
    "surnames",
    "street_names",
    "cities",
    "provinces",
    "regions",
    "countries",
    "professions",
    "email_domains",
    "hospital_names",
    "health_center_names",
    "companies",
    "institution_names",
    // Feature word lists (perceptron), lower case.
    "months",
    "weekdays",
    "fields",
    "kinship",
    "kw_street",
    "kw_street_slash",
    "kw_hospital",
    "kw_institution",
    "kw_unit",
    "kw_title",
    "kw_postcode",
    "name_joiners",
    // Language detection.
    "stopwords",
];

macro_rules! builtin_lists {
    ($($lang:literal),*) => {
        &[$(
            ($lang, [
                include_str!(concat!("../resources/", $lang, "/given_female.txt")),
                include_str!(concat!("../resources/", $lang, "/given_male.txt")),
                include_str!(concat!("../resources/", $lang, "/surnames.txt")),
                include_str!(concat!("../resources/", $lang, "/street_names.txt")),
                include_str!(concat!("../resources/", $lang, "/cities.txt")),
                include_str!(concat!("../resources/", $lang, "/provinces.txt")),
                include_str!(concat!("../resources/", $lang, "/regions.txt")),
                include_str!(concat!("../resources/", $lang, "/countries.txt")),
                include_str!(concat!("../resources/", $lang, "/professions.txt")),
                include_str!(concat!("../resources/", $lang, "/email_domains.txt")),
                include_str!(concat!("../resources/", $lang, "/hospital_names.txt")),
                include_str!(concat!("../resources/", $lang, "/health_center_names.txt")),
                include_str!(concat!("../resources/", $lang, "/companies.txt")),
                include_str!(concat!("../resources/", $lang, "/institution_names.txt")),
                include_str!(concat!("../resources/", $lang, "/months.txt")),
                include_str!(concat!("../resources/", $lang, "/weekdays.txt")),
                include_str!(concat!("../resources/", $lang, "/fields.txt")),
                include_str!(concat!("../resources/", $lang, "/kinship.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_street.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_street_slash.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_hospital.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_institution.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_unit.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_title.txt")),
                include_str!(concat!("../resources/", $lang, "/kw_postcode.txt")),
                include_str!(concat!("../resources/", $lang, "/name_joiners.txt")),
                include_str!(concat!("../resources/", $lang, "/stopwords.txt")),
            ]),
        )*]
    };
}

/// The built-in files: language code → the text of each of [`LISTS`], in order.
const BUILTIN: &[(&str, [&str; LISTS.len()])] = builtin_lists!("es", "en", "de", "sv");

/// Non-empty, non-comment lines, trimmed.
fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Every list of every language: `[language][list]`.
type Table = Vec<Vec<Vec<&'static str>>>;

fn build(extension: Option<&Path>, warn: &mut dyn FnMut(String)) -> Table {
    let mut table: Table = vec![vec![Vec::new(); LISTS.len()]; Language::ALL.len()];
    let mut seen: Vec<Vec<HashSet<&'static str>>> = vec![vec![HashSet::new(); LISTS.len()]; Language::ALL.len()];
    let mut add = |lang: usize, list: usize, entry: &'static str| {
        if seen[lang][list].insert(entry) {
            table[lang][list].push(entry);
        }
    };
    for (code, texts) in BUILTIN {
        let lang: Language = code.parse().expect("built-in languages are known");
        for (list, text) in texts.iter().enumerate() {
            for e in entries(text) {
                add(lang.index(), list, e);
            }
        }
    }
    if let Some(dir) = extension {
        for lang in Language::ALL {
            let folder = dir.join(lang.code());
            let Ok(read) = std::fs::read_dir(&folder) else { continue };
            let mut files: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for path in files {
                if path.extension().is_none_or(|e| e != "txt") {
                    continue;
                }
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let Some(list) = LISTS.iter().position(|l| *l == stem) else {
                    warn(format!("{}: not a known list ({}); ignored", path.display(), LISTS.join(", ")));
                    continue;
                };
                match std::fs::read_to_string(&path) {
                    // Read once per process and kept to its end.
                    Ok(text) => {
                        let text: &'static str = Box::leak(text.into_boxed_str());
                        for e in entries(text) {
                            add(lang.index(), list, e);
                        }
                    }
                    Err(e) => warn(format!("{}: {e}; ignored", path.display())),
                }
            }
        }
    }
    table
}

/// The directory named by [`LANG_DIR_VAR`], if set and not empty.
pub fn extension_dir() -> Option<PathBuf> {
    std::env::var_os(LANG_DIR_VAR).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let dir = extension_dir();
        if let Some(d) = &dir {
            if !d.is_dir() {
                eprintln!("warning: {LANG_DIR_VAR}={}: not a directory; only the built-in language lists are used", d.display());
            }
        }
        build(dir.as_deref(), &mut |w| eprintln!("warning: {LANG_DIR_VAR}: {w}"))
    })
}

fn builtin_table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| build(None, &mut |_| {}))
}

fn list_index(name: &str) -> usize {
    LISTS.iter().position(|l| *l == name).unwrap_or_else(|| panic!("no language list named {name:?} (see lang::LISTS)"))
}

/// List `name` (one of [`LISTS`]) of `lang`: the built-in entries, then those a user added under
/// [`LANG_DIR_VAR`]. Empty when neither has one. Panics on a name not in [`LISTS`].
pub fn list(lang: Language, name: &str) -> &'static [&'static str] {
    &table()[lang.index()][list_index(name)]
}

/// List `name` of `lang` as built in, without a user's additions.
pub fn builtin_list(lang: Language, name: &str) -> &'static [&'static str] {
    &builtin_table()[lang.index()][list_index(name)]
}

/// The lists of every language as built in plus those under `dir` (laid out as
/// [`LANG_DIR_VAR`]'s directory), and the warnings reading it gave: for checking a directory
/// before using it. `[language][list]` in the order of [`Language::ALL`] and [`LISTS`].
pub fn lists_with(dir: &Path) -> (Vec<Vec<Vec<String>>>, Vec<String>) {
    let mut warnings = Vec::new();
    let t = build(Some(dir), &mut |w| warnings.push(w));
    (t.into_iter().map(|l| l.into_iter().map(|e| e.into_iter().map(str::to_string).collect()).collect()).collect(), warnings)
}

/// Words of a text for detection: runs of letters (apostrophes and hyphens break them), lower case.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// At most this many words of the texts are read by [`detect`].
pub const DETECT_SAMPLE_WORDS: usize = 200_000;

/// The language of `texts`: the built-in language whose stop words (`stopwords` lists, built in
/// only, so that detection does not change with a user's files) are most frequent among the first
/// [`DETECT_SAMPLE_WORDS`] words, in the order given. Deterministic; ties go to the earlier of
/// [`Language::ALL`]. [`Language::Other`] when no language's stop words make at least 5% of the
/// words (or there are fewer than 2 hits).
pub fn detect<'a>(texts: impl IntoIterator<Item = &'a str>) -> Language {
    static STOP: OnceLock<HashMap<&'static str, Vec<usize>>> = OnceLock::new();
    let stop = STOP.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for lang in Language::ALL {
            for w in builtin_list(lang, "stopwords") {
                m.entry(*w).or_default().push(lang.index());
            }
        }
        m
    });
    let mut hits = [0usize; Language::ALL.len()];
    let mut total = 0usize;
    'texts: for text in texts {
        for w in words(text) {
            if total == DETECT_SAMPLE_WORDS {
                break 'texts;
            }
            total += 1;
            if let Some(langs) = stop.get(w.as_str()) {
                for &l in langs {
                    hits[l] += 1;
                }
            }
        }
    }
    let (best, n) = hits.iter().enumerate().fold((Language::Other.index(), 0), |b, (i, &n)| if n > b.1 { (i, n) } else { b });
    if n < 2 || n * 20 < total {
        return Language::Other;
    }
    Language::ALL[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_its_lists() {
        for lang in [Language::Es, Language::En, Language::De, Language::Sv] {
            for name in ["given_female", "given_male", "surnames", "cities", "countries", "months", "weekdays", "fields", "kinship", "kw_street", "kw_hospital", "kw_title", "stopwords"] {
                assert!(!builtin_list(lang, name).is_empty(), "{lang}/{name}.txt is empty");
            }
            assert_eq!(builtin_list(lang, "months").len(), 12, "{lang}");
            assert_eq!(builtin_list(lang, "weekdays").len(), 7, "{lang}");
        }
        assert!(builtin_list(Language::Other, "months").is_empty());
    }

    #[test]
    fn feature_lists_are_lower_case() {
        for lang in Language::ALL {
            for name in ["months", "weekdays", "fields", "kinship", "kw_street", "kw_street_slash", "kw_hospital", "kw_institution", "kw_unit", "kw_title", "kw_postcode", "name_joiners", "stopwords"] {
                for e in builtin_list(lang, name) {
                    assert_eq!(*e, e.to_lowercase(), "{lang}/{name}.txt: {e:?}");
                }
            }
        }
    }

    #[test]
    fn stop_words_belong_to_one_language() {
        let mut owner: HashMap<&str, Language> = HashMap::new();
        for lang in Language::ALL {
            for w in builtin_list(lang, "stopwords") {
                if let Some(other) = owner.insert(w, lang) {
                    panic!("stop word {w:?} is in both {other} and {lang}");
                }
            }
        }
    }

    #[test]
    fn detects_the_language_of_short_notes() {
        let cases = [
            (Language::Es, "El paciente de 45 años acude a urgencias por dolor abdominal. Refiere que el dolor comenzó hace tres días y no ha mejorado con los analgésicos."),
            (Language::En, "The patient is a 45-year-old man who presented to the emergency department with abdominal pain. He reports that the pain started three days ago and has not improved with analgesics."),
            (Language::De, "Der Patient stellte sich mit seit drei Tagen bestehenden Bauchschmerzen in unserer Notaufnahme vor. Die Schmerzen haben sich unter Analgetika nicht gebessert, eine Operation wurde besprochen."),
            (Language::Sv, "Patienten är en 45-årig man som söker akutmottagningen på grund av buksmärta. Han uppger att smärtan började för tre dagar sedan och att den inte har blivit bättre med smärtstillande."),
            (Language::Other, "12/03/2019 45 mg 3x1 ### --- 120/80 mmHg"),
        ];
        for (lang, text) in cases {
            assert_eq!(detect([text]), lang, "{text}");
        }
        // Over several documents: the language of most of their words.
        assert_eq!(detect([cases[2].1, cases[0].1, cases[2].1]), Language::De);
        assert_eq!(detect(std::iter::empty()), Language::Other);
    }

    #[test]
    fn parse_and_display() {
        for lang in Language::ALL {
            assert_eq!(lang.code().parse::<Language>().unwrap(), lang);
            assert_eq!(serde_json::to_string(&lang).unwrap(), format!("\"{}\"", lang.code()));
        }
        assert_eq!("German".parse::<Language>().unwrap(), Language::De);
        assert!("xx".parse::<Language>().is_err());
        assert!(Language::Es.is_default() && !Language::De.is_default());
    }

    #[test]
    fn a_directory_adds_to_the_built_in_lists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("de")).unwrap();
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("de/surnames.txt"), "# mine\nZwiebelhuber\nMüller\n").unwrap();
        std::fs::write(dir.path().join("other/months.txt"), "januari\n").unwrap();
        std::fs::write(dir.path().join("de/nonsense.txt"), "x\n").unwrap();
        let (t, warnings) = lists_with(dir.path());
        let surnames = &t[Language::De.index()][list_index("surnames")];
        assert_eq!(surnames.len(), builtin_list(Language::De, "surnames").len() + 1, "Müller is built in: not added twice");
        assert_eq!(surnames.last().map(String::as_str), Some("Zwiebelhuber"));
        assert_eq!(t[Language::Other.index()][list_index("months")], ["januari"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("nonsense.txt"));
    }
}
