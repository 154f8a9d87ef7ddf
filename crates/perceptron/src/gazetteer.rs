//! Gazetteer features: which built-in word lists (the de-identification vocabularies of
//! `deid::vocab`, written for this project from general knowledge) a run of words matches.
//! Five hundred training documents name few of the world's countries, towns and given names;
//! a list carries what a model learned from the listed ones it saw to those it did not.

use std::collections::HashMap;
use std::sync::OnceLock;

use deid::vocab::{vocab, Language};

/// Longest list entry, in words.
const MAX_WORDS: usize = 5;

/// Lower-cased word sequence → the lists that hold it.
fn lists() -> &'static HashMap<Vec<String>, Vec<&'static str>> {
    static LISTS: OnceLock<HashMap<Vec<String>, Vec<&'static str>>> = OnceLock::new();
    LISTS.get_or_init(|| {
        let mut m: HashMap<Vec<String>, Vec<&'static str>> = HashMap::new();
        for lang in [Language::Es, Language::En, Language::Sv] {
            let v = vocab(lang);
            let groups: [(&'static str, Vec<&&'static str>); 6] = [
                ("country", v.countries.iter().collect()),
                ("place", v.cities.iter().chain(&v.provinces).chain(&v.regions).collect()),
                ("given", v.given_female.iter().chain(&v.given_male).collect()),
                ("surname", v.surnames.iter().collect()),
                ("profession", v.professions.iter().collect()),
                ("street", v.street_names.iter().collect()),
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
    })
}

fn words_of(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    corpus::tokenize(s).iter().map(|t| chars[t.start..t.end].iter().collect::<String>().to_lowercase()).collect()
}

/// For each word (`lower`: the lower-cased words of a document), the features `(list, B|I)` of
/// the longest list entries that cover it.
pub fn matches(lower: &[String]) -> Vec<Vec<(&'static str, &'static str)>> {
    let lists = lists();
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
        let m = matches(&words);
        assert!(m[2].contains(&("place", "B")), "{m:?}");
        assert!(m[6].contains(&("given", "B")), "{m:?}");
        assert!(m[0].is_empty() && m[1].is_empty());
        // A multi-word entry marks its first word B and the rest I.
        let multi = lists().keys().find(|k| k.len() == 2).expect("a two-word entry").clone();
        let m = matches(&multi);
        assert!(m[0].iter().any(|(_, p)| *p == "B") && m[1].iter().any(|(_, p)| *p == "I"), "{multi:?} {m:?}");
    }
}
