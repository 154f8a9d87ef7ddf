//! Subword tokenizer: HF `tokenizer.json` through the `tokenizers` crate, and training of a
//! byte-level BPE (GPT-2 style: any text round-trips, no unknown token) for models from scratch.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TokenizerBuilder};

/// The end-of-document token of models trained here (GPT-2's name, so HF tools recognise it).
pub const EOD_TOKEN: &str = "<|endoftext|>";

/// A loaded `tokenizer.json`.
#[derive(Clone)]
pub struct LmTokenizer {
    pub inner: Tokenizer,
}

impl LmTokenizer {
    pub fn load(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| anyhow!("loading {}: {e}", path.display()))?;
        Ok(LmTokenizer { inner })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let s = self.inner.to_string(true).map_err(|e| anyhow!("serialising tokenizer: {e}"))?;
        Ok(fsutil::atomic_write(path, s.as_bytes())?)
    }

    /// Trains a byte-level BPE of at most `vocab_size` entries on `texts`, with [`EOD_TOKEN`] as
    /// special token id 0. Pre-tokenisation splits like GPT-2 (a space sticks to the next word)
    /// and adds no prefix space, so `decode(encode(t)) == t` for every text.
    pub fn train_bpe<'a>(texts: impl Iterator<Item = &'a str> + Send, vocab_size: usize) -> Result<Self> {
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(EOD_TOKEN, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let byte_level = ByteLevel::new(false, false, true);
        let mut tok: tokenizers::TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper> =
            TokenizerBuilder::new()
                .with_model(BPE::default())
                .with_normalizer(None)
                .with_pre_tokenizer(Some(byte_level.into()))
                .with_post_processor(Some(byte_level.into()))
                .with_decoder(Some(byte_level.into()))
                .build()
                .map_err(|e| anyhow!("building tokenizer: {e}"))?;
        tok.train(&mut trainer, texts).map_err(|e| anyhow!("training BPE: {e}"))?;
        Ok(LmTokenizer { inner: tok.into() })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Whether the tokenizer's own encoding (with special tokens) starts a text with `bos`.
    pub fn adds_bos(&self, bos: u32) -> bool {
        self.inner.encode_fast("a", true).map(|e| e.get_ids().first() == Some(&bos)).unwrap_or(false)
    }

    /// Token ids of `text`, without special tokens (the caller adds document boundaries).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode_fast(text, false).map_err(|e| anyhow!("encoding: {e}"))?.get_ids().to_vec())
    }

    /// Many texts at once (in parallel).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encs = self.inner.encode_batch_fast(texts.to_vec(), false).map_err(|e| anyhow!("encoding: {e}"))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| anyhow!("decoding: {e}"))
    }
}

/// Reads `dir/tokenizer.json`, or builds the tokenizer of a GGUF checkpoint (`dir` a `.gguf`
/// file or a directory holding one).
pub fn load_from_dir(dir: &Path) -> Result<LmTokenizer> {
    if !dir.join("tokenizer.json").exists() {
        if let Some(file) = crate::gguf::find(dir)? {
            return crate::gguf::Gguf::open(&file)?.tokenizer();
        }
    }
    LmTokenizer::load(&dir.join("tokenizer.json")).with_context(|| format!("model directory {}", dir.display()))
}
