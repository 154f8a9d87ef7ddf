use corpus::{tokenize, Document};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// n-gram recall of one corpus against a reference text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NgramRecall {
    pub n: usize,
    /// n-gram occurrences in the audited corpus.
    pub total: usize,
    /// … of which occur in the training text.
    pub found: usize,
    /// `found / total` (0 when there are no n-grams): the paper's measure.
    pub recall: f64,
    /// Distinct n-grams of the audited corpus, and the share of them found.
    pub distinct_total: usize,
    pub distinct_recall: f64,
}

/// Word n-grams (case kept) hashed to u64; documents do not run into each other.
pub(crate) fn ngram_hashes(doc: &Document, n: usize) -> Vec<u64> {
    let chars: Vec<char> = doc.text.chars().collect();
    let words: Vec<&[char]> = tokenize(&doc.text).iter().map(|t| &chars[t.start..t.end]).collect();
    if words.len() < n {
        return vec![];
    }
    words
        .windows(n)
        .map(|w| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            w.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Share of `audited`'s word n-grams that occur in `training`. An order `n` of 0 is an error.
pub fn ngram_recall(audited: &[Document], training: &[Document], n: usize) -> Result<NgramRecall, String> {
    if n == 0 {
        return Err(ORDER_ZERO.into());
    }
    let reference: HashSet<u64> = training.iter().flat_map(|d| ngram_hashes(d, n)).collect();
    let (mut total, mut found) = (0, 0);
    let mut distinct: HashSet<u64> = HashSet::new();
    for d in audited {
        for h in ngram_hashes(d, n) {
            total += 1;
            found += reference.contains(&h) as usize;
            distinct.insert(h);
        }
    }
    let distinct_found = distinct.iter().filter(|h| reference.contains(h)).count();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(NgramRecall { n, total, found, recall: ratio(found, total), distinct_total: distinct.len(), distinct_recall: ratio(distinct_found, distinct.len()) })
}

/// [`ngram_recall`] without template text: n-grams that occur in more than `share` of the training
/// documents (form headers, field names, boilerplate every note repeats) are left out of the
/// audited corpus's n-grams before counting, so that the recall measures copied content.
pub fn ngram_recall_without_templates(audited: &[Document], training: &[Document], n: usize, share: f64) -> Result<NgramRecall, String> {
    if n == 0 {
        return Err(ORDER_ZERO.into());
    }
    let mut doc_freq: HashMap<u64, usize> = HashMap::new();
    for d in training {
        for h in ngram_hashes(d, n).into_iter().collect::<HashSet<_>>() {
            *doc_freq.entry(h).or_default() += 1;
        }
    }
    let limit = share * training.len() as f64;
    let (mut total, mut found) = (0, 0);
    let mut distinct: HashSet<u64> = HashSet::new();
    for d in audited {
        for h in ngram_hashes(d, n) {
            match doc_freq.get(&h) {
                Some(&f) if f as f64 > limit => {}
                seen => {
                    total += 1;
                    found += seen.is_some() as usize;
                    distinct.insert(h);
                }
            }
        }
    }
    let distinct_found = distinct.iter().filter(|h| doc_freq.contains_key(h)).count();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(NgramRecall { n, total, found, recall: ratio(found, total), distinct_total: distinct.len(), distinct_recall: ratio(distinct_found, distinct.len()) })
}

pub(crate) const ORDER_ZERO: &str = "n-gram order 0 is impossible: it must be at least 1 (the paper uses 5)";
