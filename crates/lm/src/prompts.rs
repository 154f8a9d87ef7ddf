//! Prompts (the first k words of a document) and per-sample seeds.

use corpus::Document;
use serde::{Deserialize, Serialize};

/// A generation prompt: the id of the document it was cut from and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: String,
    pub text: String,
}

/// The first `words` words of `text` (by [`corpus::tokenize`]), cut at the end of the last word so
/// the prompt carries no trailing whitespace: the model then chooses the whitespace that follows.
/// A text with fewer words gives all of them.
pub fn first_words(text: &str, words: usize) -> String {
    if words == 0 {
        return String::new();
    }
    let toks = corpus::tokenize(text);
    let Some(last) = toks.get(words.min(toks.len()).saturating_sub(1)) else { return String::new() };
    text.chars().take(last.end).collect()
}

/// One prompt per document: its id and its first `words` words.
pub fn prompts_from_docs(docs: &[Document], words: usize) -> Vec<Prompt> {
    docs.iter().map(|d| Prompt { id: d.id.clone(), text: first_words(&d.text, words) }).collect()
}

/// The id of sample `index` of a prompt: `{prompt_id}__s{NNN}`.
pub fn sample_id(prompt_id: &str, index: usize) -> String {
    format!("{prompt_id}__s{index:03}")
}

/// The RNG seed of one sample, from (run seed, prompt id, sample index) only. Because it does not
/// depend on the batch a sample is drawn in, a sample's text is the same alone or in any batch.
pub fn sample_seed(seed: u64, prompt_id: &str, index: usize) -> u64 {
    // FNV-1a over the bytes, then splitmix64 finalisation: stable across platforms and versions
    // (std's hasher is not guaranteed to be).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&seed.to_le_bytes());
    eat(prompt_id.as_bytes());
    eat(&[0xff]);
    eat(&(index as u64).to_le_bytes());
    splitmix64(h)
}

pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_words_cuts_after_the_kth_word() {
        assert_eq!(first_words("Nombre: Juan  Pérez\nEdad: 3", 3), "Nombre: Juan");
        assert_eq!(first_words("  Hola", 5), "  Hola");
        assert_eq!(first_words("", 3), "");
        assert_eq!(sample_id("doc1", 7), "doc1__s007");
        assert_ne!(sample_seed(1, "a", 0), sample_seed(1, "a", 1));
        assert_ne!(sample_seed(1, "a", 0), sample_seed(2, "a", 0));
    }
}
