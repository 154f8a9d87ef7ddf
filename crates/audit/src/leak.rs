use aho_corasick::{AhoCorasick, MatchKind};
use corpus::Document;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Leakage of one label's training PHI strings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabelLeak {
    /// Distinct surface strings of this label in the training set.
    pub distinct: usize,
    /// … of which appear verbatim, on word boundaries, in the audited text.
    pub leaked: usize,
    /// `leaked / distinct`.
    pub share: f64,
    /// Strings that occur (as this label's PHI) in only one training document: the ones that can
    /// point at one patient. Common strings (`España`, `H`) leak without revealing anyone.
    pub unique: usize,
    pub unique_leaked: usize,
}

/// Leakage of the training PHI strings found in a given number of training documents.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RarityLeak {
    /// `"1"`, `"2-4"` or `"5+"` training documents.
    pub documents: String,
    pub distinct: usize,
    pub leaked: usize,
    pub share: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Leakage {
    /// Over all labels: distinct (label, string) pairs and how many leaked.
    pub distinct: usize,
    pub leaked: usize,
    pub share: f64,
    /// Over all labels: strings of one training document only, and how many of them leaked.
    pub unique: usize,
    pub unique_leaked: usize,
    pub per_label: BTreeMap<String, LabelLeak>,
    /// Over all labels, by the number of training documents a string is PHI in: a string of one
    /// patient's note can point at that patient; one in many notes cannot.
    #[serde(default)]
    pub by_rarity: Vec<RarityLeak>,
}

/// For every label, the distinct PHI strings of `training` that occur verbatim in `audited`'s
/// texts. A match must start and end on word boundaries (the characters around it are not
/// letters or digits), so a sex marker `M` does not "occur" inside every word with an M.
pub fn leaked_phi(training: &[Document], audited: &[Document]) -> Leakage {
    // Distinct (label, string) pairs with the training documents they occur in; the automaton
    // searches each distinct string once.
    let mut pairs: HashMap<(String, String), HashSet<usize>> = HashMap::new();
    for (di, d) in training.iter().enumerate() {
        let chars: Vec<char> = d.text.chars().collect();
        for s in &d.spans {
            if s.end <= chars.len() {
                pairs.entry((s.label.clone(), chars[s.start..s.end].iter().collect())).or_default().insert(di);
            }
        }
    }
    let mut strings: Vec<String> = pairs.keys().map(|(_, s)| s.clone()).collect::<HashSet<_>>().into_iter().collect();
    strings.sort();
    let index: HashMap<&str, usize> = strings.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let mut found = vec![false; strings.len()];
    for i in strings_found(&strings, audited) {
        found[i] = true;
    }
    let mut per_label: BTreeMap<String, LabelLeak> = BTreeMap::new();
    for ((label, s), docs) in &pairs {
        let e = per_label.entry(label.clone()).or_default();
        let leaked = found[index[s.as_str()]] as usize;
        e.distinct += 1;
        e.leaked += leaked;
        if docs.len() == 1 {
            e.unique += 1;
            e.unique_leaked += leaked;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    for e in per_label.values_mut() {
        e.share = ratio(e.leaked, e.distinct);
    }
    let mut by_rarity: Vec<RarityLeak> = ["1", "2-4", "5+"].iter().map(|b| RarityLeak { documents: b.to_string(), ..Default::default() }).collect();
    for ((_, s), docs) in &pairs {
        let b = &mut by_rarity[match docs.len() {
            1 => 0,
            2..=4 => 1,
            _ => 2,
        }];
        b.distinct += 1;
        b.leaked += found[index[s.as_str()]] as usize;
    }
    for b in &mut by_rarity {
        b.share = ratio(b.leaked, b.distinct);
    }
    let distinct = per_label.values().map(|e| e.distinct).sum();
    let leaked = per_label.values().map(|e| e.leaked).sum();
    let unique = per_label.values().map(|e| e.unique).sum();
    let unique_leaked = per_label.values().map(|e| e.unique_leaked).sum();
    Leakage { distinct, leaked, share: ratio(leaked, distinct), unique, unique_leaked, per_label, by_rarity }
}

/// The indices of `strings` that occur in some document of `docs` on word boundaries.
pub fn strings_found(strings: &[String], docs: &[Document]) -> Vec<usize> {
    if strings.is_empty() {
        return Vec::new();
    }
    let ac = AhoCorasick::builder().match_kind(MatchKind::Standard).build(strings).expect("strings build an automaton");
    let mut found = vec![false; strings.len()];
    for d in docs {
        for p in matches_on_word_boundaries(&ac, &d.text) {
            found[p] = true;
        }
    }
    found.iter().enumerate().filter(|(_, &f)| f).map(|(i, _)| i).collect()
}

/// The patterns of `ac` found in `text` with word boundaries at both ends (a letter or digit at an
/// edge of the match must not touch another letter or digit), overlapping matches included.
pub(crate) fn matches_on_word_boundaries<'a>(ac: &'a AhoCorasick, text: &'a str) -> impl Iterator<Item = usize> + 'a {
    ac.find_overlapping_iter(text).filter_map(move |m| {
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        let first = text[m.start()..].chars().next();
        let last = text[..m.end()].chars().next_back();
        let edge_ok = |outside: Option<char>, inside: Option<char>| !(outside.is_some_and(char::is_alphanumeric) && inside.is_some_and(char::is_alphanumeric));
        (edge_ok(before, first) && edge_ok(after, last)).then(|| m.pattern().as_usize())
    })
}
