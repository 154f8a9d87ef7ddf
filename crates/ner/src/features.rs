//! Word-shape features. A model trained from scratch on a few hundred documents sees most PHI
//! strings once or never; their *form* (`Xxxx`, `dd/dd/dddd`, `X.X.`) is what generalises. Each
//! word's shape is hashed into a bucket whose embedding is added to all its sub-tokens' inputs.

use tagging::shape::{fnv_bytes as fnv, run_shape};

/// `Martínez` → `Xx`, `12/03/2017` → `dd/dd/dd`, `nhc` → `xx`: upper → `X`, lower → `x`,
/// digit → `d`, other characters kept; runs longer than two are cut to two.
pub fn shape(word: &str) -> String {
    run_shape(word, 2)
}

/// The bucket (`0..buckets`) of a word's shape and length; FNV-1a so ids are stable across
/// runs and platforms.
pub fn shape_id(word: &str, buckets: usize) -> u32 {
    let len = word.chars().count().min(12) as u8;
    (fnv(shape(word).bytes().chain([0xff, len])) % buckets.max(1) as u64) as u32
}

/// Number of lexical features per word ([`lexical_ids`]).
pub const LEXICAL_FEATURES: usize = 3;

/// Rows of the lexical embedding table for `word_buckets` and `affix_buckets`.
pub fn lexical_rows(word_buckets: usize, affix_buckets: usize) -> usize {
    1 + word_buckets + 2 * affix_buckets
}

/// Rows of one word's lexical features in a single table: the lower-cased word, its first three
/// and its last three characters, each hashed into its own range after row 0 (row 0: special
/// tokens and padding). The same features as the perceptron floor's, given to the encoder as
/// input embeddings: a sub-word vocabulary trained on a few hundred documents splits rare words
/// into pieces, and a word's identity and affixes are what a tagger of names and places needs.
pub fn lexical_ids(word: &str, word_buckets: usize, affix_buckets: usize) -> [u32; LEXICAL_FEATURES] {
    let lower: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    let n = lower.len();
    let bytes = |cs: &[char], tag: u8| -> u64 {
        let s: String = cs.iter().collect();
        fnv(std::iter::once(tag).chain(s.into_bytes()))
    };
    let (wb, ab) = (word_buckets.max(1) as u64, affix_buckets.max(1) as u64);
    let w = 1 + bytes(&lower, b'w') % wb;
    let p = 1 + wb + bytes(&lower[..n.min(3)], b'p') % ab;
    let s = 1 + wb + ab + bytes(&lower[n.saturating_sub(3)..], b's') % ab;
    [w as u32, p as u32, s as u32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(shape("Martínez"), "Xxx");
        assert_eq!(shape("12/03/2017"), "dd/dd/dd");
        assert_eq!(shape("NºCol"), "XxXxx");
        assert_ne!(shape_id("28", 1024), shape_id("280595", 1024));
        assert!(shape_id("abc", 7) < 7);
    }

    #[test]
    fn lexical_features_are_case_blind_and_in_their_ranges() {
        let (w, a) = (100, 10);
        assert_eq!(lexical_ids("MADRID", w, a), lexical_ids("Madrid", w, a));
        assert_ne!(lexical_ids("Madrid", w, a)[0], lexical_ids("Madrud", w, a)[0]);
        // Same prefix, same prefix row; the suffix differs.
        let (x, y) = (lexical_ids("Martínez", w, a), lexical_ids("Marta", w, a));
        assert_eq!(x[1], y[1]);
        for word in ["a", "Martínez", "12/03/2017", "", "NºCol"] {
            let ids = lexical_ids(word, w, a);
            assert!((1..=100).contains(&ids[0]), "{word}: {ids:?}");
            assert!((101..=110).contains(&ids[1]), "{word}: {ids:?}");
            assert!((111..=120).contains(&ids[2]), "{word}: {ids:?}");
            assert!((ids[2] as usize) < lexical_rows(w, a));
        }
    }
}
