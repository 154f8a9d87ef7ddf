//! Gazetteer features: which word lists of the `lang` crate (the vocabularies the de-identifier
//! draws surrogates from, written for this project from general knowledge) a run of words
//! matches. Five hundred training documents name few of the world's countries, towns and given
//! names; a list carries what a model learned from the listed ones it saw to those it did not.

use std::collections::HashMap;
use std::sync::OnceLock;

use lang::{list, Language};

/// Longest list entry, in words.
const MAX_WORDS: usize = 5;

/// The languages whose lists make `lang`'s gazetteer: its own and English ones (clinical text
/// names English-speaking people and places everywhere); Spanish also Swedish ones, as MEDDOCAN's
/// taggers were trained and their feature sets chosen with.
fn sources(lang: Language) -> &'static [Language] {
    match lang {
        Language::Es => &[Language::Es, Language::En, Language::Sv],
        Language::En => &[Language::En],
        Language::De => &[Language::De, Language::En],
        Language::Sv => &[Language::Sv, Language::En],
        Language::Other => &[Language::Other, Language::En],
    }
}

type Lists = HashMap<Vec<String>, Vec<&'static str>>;

/// Lower-cased word sequence → the lists of `lang`'s gazetteer that hold it.
fn lists(lang: Language) -> &'static Lists {
    static LISTS: OnceLock<Vec<Lists>> = OnceLock::new();
    let all = LISTS.get_or_init(|| Language::ALL.iter().map(|&l| build(l)).collect());
    &all[Language::ALL.iter().position(|&l| l == lang).expect("every language has a gazetteer")]
}

fn build(lang: Language) -> Lists {
    let mut m: Lists = HashMap::new();
    for &source in sources(lang) {
        let l = |name: &str| list(source, name).iter();
        let groups: [(&'static str, Vec<&&'static str>); 6] = [
            ("country", l("countries").collect()),
            ("place", l("cities").chain(l("provinces")).chain(l("regions")).collect()),
            ("given", l("given_female").chain(l("given_male")).collect()),
            ("surname", l("surnames").collect()),
            ("profession", l("professions").collect()),
            ("street", l("street_names").collect()),
        ];
        for (class, entries) in groups {
            for e in entries {
                let words = words_of(e);
                if words.is_empty() || words.len() > MAX_WORDS {
                    continue;
                }
                let classes = m.entry(words).or_default();
                if !classes.contains(&class) {
                    classes.push(class);
                }
            }
        }
    }
    m
}

fn words_of(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    corpus::tokenize(s).iter().map(|t| chars[t.start..t.end].iter().collect::<String>().to_lowercase()).collect()
}

/// For each word (`lower`: the lower-cased words of a document), with `lang`'s gazetteer, the features `(list, B|I)` of
/// the longest list entries that cover it.
pub fn matches(lower: &[String], lang: Language) -> Vec<Vec<(&'static str, &'static str)>> {
    let lists = lists(lang);
    let mut out = vec![Vec::new(); lower.len()];
    let mut i = 0;
    while i < lower.len() {
        let mut matched = 0;
        for n in (1..=MAX_WORDS.min(lower.len() - i)).rev() {
            if let Some(classes) = lists.get(&lower[i..i + n]) {
                for c in classes {
                    out[i].push((*c, "B"));
                    for slot in &mut out[i + 1..i + n] {
                        slot.push((*c, "I"));
                    }
                }
                matched = n;
                break;
            }
        }
        i += matched.max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_list_entries_longest_first() {
        let words: Vec<String> = ["vive", "en", "madrid", "con", "su", "hija", "maría"].iter().map(|s| s.to_string()).collect();
        let m = matches(&words, Language::Es);
        assert!(m[2].contains(&("place", "B")), "{m:?}");
        assert!(m[6].contains(&("given", "B")), "{m:?}");
        assert!(m[0].is_empty() && m[1].is_empty());
        // A multi-word entry marks its first word B and the rest I.
        let multi = lists(Language::Es).keys().find(|k| k.len() == 2).expect("a two-word entry").clone();
        let m = matches(&multi, Language::Es);
        assert!(m[0].iter().any(|(_, p)| *p == "B") && m[1].iter().any(|(_, p)| *p == "I"), "{multi:?} {m:?}");
    }

    #[test]
    fn each_language_has_its_gazetteer() {
        let words: Vec<String> = ["frau", "müller", "aus", "berlin", "und", "madrid"].iter().map(|s| s.to_string()).collect();
        let de = matches(&words, Language::De);
        assert!(de[1].contains(&("surname", "B")) && de[3].contains(&("place", "B")), "{de:?}");
        // Spanish towns are not in a German gazetteer, German names not in a Spanish one.
        assert!(de[5].is_empty(), "{de:?}");
        let es = matches(&words, Language::Es);
        assert!(es[1].is_empty() && es[5].contains(&("place", "B")), "{es:?}");
    }
}
