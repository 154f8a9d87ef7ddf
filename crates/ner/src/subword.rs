//! Sub-word tokenization of word tokens: a WordPiece vocabulary trained on the training documents
//! (case preserved) for models from scratch, or the `tokenizer.json` of an HF checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{anyhow, Result};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{AddedToken, Tokenizer};

/// A tokenizer plus the ids of its special tokens.
#[derive(Clone)]
pub struct Subwords {
    pub tokenizer: Tokenizer,
    pub cls: u32,
    pub sep: u32,
    pub pad: u32,
    pub unk: u32,
}

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
/// Longest word-initial piece and longest `##` piece considered, in characters.
const MAX_PREFIX: usize = 16;
const MAX_INNER: usize = 10;

impl Subwords {
    /// Wraps a tokenizer, finding its special tokens under BERT (`[CLS]`) or RoBERTa (`<s>`) names.
    pub fn new(tokenizer: Tokenizer) -> Result<Self> {
        let id = |names: &[&str]| names.iter().find_map(|n| tokenizer.token_to_id(n));
        let cls = id(&["[CLS]", "<s>"]).ok_or_else(|| anyhow!("tokenizer has no [CLS] or <s> token"))?;
        let sep = id(&["[SEP]", "</s>"]).ok_or_else(|| anyhow!("tokenizer has no [SEP] or </s> token"))?;
        let pad = id(&["[PAD]", "<pad>"]).ok_or_else(|| anyhow!("tokenizer has no [PAD] or <pad> token"))?;
        let unk = id(&["[UNK]", "<unk>"]).unwrap_or(pad);
        Ok(Subwords { tokenizer, cls, sep, pad, unk })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let tok = Tokenizer::from_file(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        Self::new(tok)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.tokenizer.to_string(true).map_err(|e| anyhow!("serialising tokenizer: {e}"))?;
        Ok(fsutil::atomic_write(path, json.as_bytes())?)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Learns a case-preserving WordPiece vocabulary of at most `vocab_size` entries from `words`
    /// (already split by `corpus::tokenize`, so sub-words never cross our word boundaries). The
    /// saved `tokenizer.json` is a complete BERT-style tokenizer usable on its own.
    ///
    /// Why not the tokenizers crate's trainers: they break frequency ties by hash-map order, so
    /// two runs with the same seed get different vocabularies (and different models). This
    /// learner is deterministic: every character seen (as word start and as `##` continuation),
    /// then word prefixes and inner substrings ranked by `count × length` (what greedy
    /// longest-match WordPiece saves by having them), ties broken by the string.
    pub fn train<'a>(words: impl Iterator<Item = &'a str>, vocab_size: usize) -> Result<Self> {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
        let mut chars: BTreeSet<String> = BTreeSet::new();
        let mut cand: HashMap<String, u64> = HashMap::new();
        for (w, &c) in &counts {
            let cs: Vec<char> = w.chars().collect();
            for (i, ch) in cs.iter().enumerate() {
                chars.insert(if i == 0 { ch.to_string() } else { format!("##{ch}") });
            }
            for j in 2..=cs.len().min(MAX_PREFIX) {
                *cand.entry(cs[..j].iter().collect()).or_default() += c;
            }
            for i in 1..cs.len() {
                for j in i + 2..=cs.len().min(i + MAX_INNER) {
                    *cand.entry(format!("##{}", cs[i..j].iter().collect::<String>())).or_default() += c;
                }
            }
        }
        let mut vocab: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
        vocab.extend(chars);
        let len = |p: &str| p.trim_start_matches("##").chars().count() as u64;
        let mut ranked: Vec<(u64, String)> =
            cand.into_iter().filter(|(_, c)| *c >= 2).map(|(p, c)| (c * len(&p), p)).collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let room = vocab_size.saturating_sub(vocab.len());
        vocab.extend(ranked.into_iter().take(room).map(|(_, p)| p));
        let map: ahash::AHashMap<String, u32> =
            vocab.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        let model = WordPiece::builder()
            .vocab(map)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| anyhow!("building WordPiece: {e}"))?;
        let id = |t: &str| vocab.iter().position(|p| p == t).unwrap() as u32;
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::bert::BertPreTokenizer));
        tok.with_post_processor(Some(tokenizers::processors::bert::BertProcessing::new(
            ("[SEP]".into(), id("[SEP]")),
            ("[CLS]".into(), id("[CLS]")),
        )));
        tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
        tok.add_special_tokens(SPECIAL.iter().map(|s| AddedToken::from(*s, true)))
            .map_err(|e| anyhow!("adding special tokens: {e}"))?;
        Self::new(tok)
    }

    /// Sub-word ids of one word (no special tokens); never empty (falls back to the unknown token).
    pub fn word_ids(&self, word: &str) -> Vec<u32> {
        match self.tokenizer.encode(word, false) {
            Ok(enc) if !enc.get_ids().is_empty() => enc.get_ids().to_vec(),
            _ => vec![self.unk],
        }
    }
}

/// Memoises [`Subwords::word_ids`]: words repeat a lot and the tokenizer call dominates otherwise.
pub struct WordCache<'a> {
    sw: &'a Subwords,
    map: HashMap<String, Vec<u32>>,
}

impl<'a> WordCache<'a> {
    pub fn new(sw: &'a Subwords) -> Self {
        WordCache { sw, map: HashMap::new() }
    }

    pub fn get(&mut self, word: &str) -> &[u32] {
        if !self.map.contains_key(word) {
            let ids = self.sw.word_ids(word);
            self.map.insert(word.to_string(), ids);
        }
        &self.map[word]
    }
}
