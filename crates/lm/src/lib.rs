//! Causal language models for synthetic clinical text: GPT-2 and Llama-family decoders with
//! Hugging Face layouts, a byte-level BPE tokenizer, domain adaptation (from scratch, full
//! fine-tuning, LoRA) over packed documents, KV-cache batched sampling with per-sample seeds, and
//! a word n-gram baseline generator.
//!
//! The library API is what the binary's `lm` commands and the pipeline call:
//! [`train`], [`Generator::load`] + [`Generator::generate`], [`perplexity`]; [`Backend`] adds
//! an OpenAI-compatible server as a source of samples ([`openai`]) and resumable generation.

pub mod backend;
pub mod config;
pub mod data;
pub mod generate;
pub mod gguf;
pub mod layers;
pub mod lora;
pub mod loss;
pub mod models;
pub mod ngram;
pub mod openai;
pub mod prompts;
pub mod sampling;
pub mod tokenizer;
pub mod train;

use std::path::Path;

use anyhow::{Context, Result};
use corpus::Document;

pub use backend::{journal_path, Backend, GenerationStats, Journal};
pub use config::{GenerateConfig, ModelDims, Preset, TrainConfig, Vocabulary};
pub use data::Boundaries;
pub use generate::DecoderGenerator;
pub use layers::LoraConfig;
pub use models::{Decoder, ModelConfig};
pub use ngram::{NgramConfig, NgramModel};
pub use openai::{OpenAiClient, OpenAiConfig};
pub use prompts::{first_words, prompts_from_docs, sample_id, sample_seed, Prompt};
pub use sampling::SamplingConfig;
pub use nn::Precision;
pub use tokenizer::LmTokenizer;
pub use train::{train, EpochReport, TrainRecord, TrainReport};

/// A trained generator of either kind, loaded from its directory.
pub enum Generator {
    Decoder(Box<DecoderGenerator>),
    Ngram(NgramModel),
}

impl Generator {
    /// Loads a model directory: an n-gram model (`config.json` with `model_type: "ngram"`), LoRA
    /// adapters (`adapter_config.json`; base loaded and adapters merged), or an HF decoder
    /// (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn load(dir: &Path) -> Result<Self> {
        let dev = nn::device();
        let config_path = dir.join("config.json");
        if config_path.exists() {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
                .with_context(|| format!("parsing {}", config_path.display()))?;
            if v.get("model_type").and_then(|t| t.as_str()) == Some("ngram") {
                return Ok(Generator::Ngram(NgramModel::load(dir)?));
            }
        }
        let adapted = dir.join(lora::ADAPTER_CONFIG).exists();
        // A GGUF file holds both: read its metadata once.
        let gguf = if adapted || config_path.exists() { None } else { gguf::find(dir)? };
        let (model, tokenizer) = if let Some(file) = gguf {
            gguf::load_decoder(&file, &dev, |_| {})?
        } else {
            let model = if adapted { lora::load_adapted(dir, &dev, true)?.0 } else { Decoder::load(dir, &dev)? };
            let tokenizer = match tokenizer::load_from_dir(dir) {
                Ok(t) => t,
                Err(e) if adapted => tokenizer::load_from_dir(&lora::read_adapter_config(dir)?.1).context(e)?,
                Err(e) => return Err(e),
            };
            (model, tokenizer)
        };
        // Models trained here record their document boundaries; others use bos/eos.
        let boundaries = train::boundaries_in(dir, &model.config, &tokenizer)?;
        Ok(Generator::Decoder(Box::new(DecoderGenerator::new(model, tokenizer, boundaries)?)))
    }

    /// A decoder's weights at `precision` for generation ([`DecoderGenerator::set_precision`]);
    /// nothing for the n-gram baseline.
    pub fn set_precision(&mut self, precision: nn::Precision) -> Result<()> {
        match self {
            Generator::Decoder(g) => g.set_precision(precision),
            Generator::Ngram(_) => Ok(()),
        }
    }

    /// The token ids of `docs` as this generator's tokenizer splits them (sorted, each once): what
    /// [`Generator::restrict_vocabulary`] keeps for `generation.vocabulary = "corpus"`. The n-gram
    /// baseline draws from its training words anyway: none.
    pub fn vocabulary_of(&self, docs: &[Document]) -> Result<Vec<u32>> {
        let Generator::Decoder(g) = self else { return Ok(Vec::new()) };
        let mut seen = vec![false; g.model.config.vocab_size()];
        for d in docs {
            for id in g.tokenizer.encode(&d.text)? {
                if let Some(s) = seen.get_mut(id as usize) {
                    *s = true;
                }
            }
        }
        Ok(seen.iter().enumerate().filter(|(_, &s)| s).map(|(i, _)| i as u32).collect())
    }

    /// Samples draw only from `ids` and the stop tokens ([`DecoderGenerator::restrict_vocabulary`]);
    /// nothing for the n-gram baseline.
    pub fn restrict_vocabulary(&mut self, ids: &[u32]) -> Result<()> {
        match self {
            Generator::Decoder(g) => g.restrict_vocabulary(ids),
            Generator::Ngram(_) => Ok(()),
        }
    }

    /// Synthetic documents: `samples_per_prompt` per prompt, ids `{prompt_id}__s{NNN}`, each the
    /// prompt text followed by its continuation.
    pub fn generate(&self, prompts: &[Prompt], cfg: &GenerateConfig) -> Result<Vec<Document>> {
        match self {
            Generator::Decoder(g) => g.generate(prompts, cfg),
            Generator::Ngram(m) => Ok(m.generate(prompts, cfg.samples_per_prompt, cfg.max_new_tokens, &cfg.sampling, cfg.seed)),
        }
    }
}

/// Perplexity of `docs` under the model in `dir`: per subword token for decoders (documents
/// packed as in training, in blocks of the training block size, else 256), per word for the
/// n-gram baseline.
pub fn perplexity(dir: &Path, docs: &[Document]) -> Result<f64> {
    Ok(perplexity_report(dir, docs)?.per_token)
}

/// Perplexity per model token and per word, so that models with different tokenizers compare.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PerplexityReport {
    /// `exp` of the mean NLL per predicted token (decoders: subword tokens and document ends;
    /// n-gram: words and document ends).
    pub per_token: f64,
    /// `exp(total NLL / words)`, words counted as the n-gram baseline counts them: the corpus
    /// tokenizer's words and punctuation marks, plus one end per document.
    pub per_word: f64,
    pub tokens: usize,
    pub words: usize,
}

/// Perplexity of `docs` per token and per word (see [`PerplexityReport`]).
pub fn perplexity_report(dir: &Path, docs: &[Document]) -> Result<PerplexityReport> {
    perplexity_report_at(dir, docs, Precision::F32)
}

/// [`perplexity_report`] with a decoder's weights packed at `precision`, as generation runs them
/// (`lm generate --precision`).
pub fn perplexity_report_at(dir: &Path, docs: &[Document], precision: Precision) -> Result<PerplexityReport> {
    let words: usize = docs.iter().map(|d| ngram::word_tokens(&d.text).len() + 1).sum();
    let mut generator = Generator::load(dir)?;
    generator.set_precision(precision)?;
    match generator {
        Generator::Ngram(m) => {
            let p = m.perplexity(docs);
            Ok(PerplexityReport { per_token: p, per_word: p, tokens: words, words })
        }
        Generator::Decoder(g) => {
            let block = eval_block_size(dir, &g);
            let stream = data::encode_stream(&g.tokenizer, docs, g.boundaries)?;
            let blocks = data::blocks(&stream, block, true, g.boundaries.lead());
            let (nll, tokens) = train::eval_nll(&g.model, &blocks, 8, g.model.params.device())?;
            Ok(PerplexityReport { per_token: (nll / tokens.max(1) as f64).exp(), per_word: (nll / words.max(1) as f64).exp(), tokens, words })
        }
    }
}

/// Negative log-likelihood (nats) of each document on its own under the model in `dir`: a
/// decoder reads it framed as in training (one stream per document, in blocks as perplexity
/// cuts them); the n-gram baseline scores its words and its end. Documents that differ only in
/// their last words rank by how likely the model finds those words after the shared start
/// (what a canary's likelihood exposure needs).
pub fn document_nlls(dir: &Path, docs: &[Document]) -> Result<Vec<f64>> {
    match Generator::load(dir)? {
        Generator::Ngram(m) => Ok(ngram_document_nlls(&m, docs)),
        Generator::Decoder(g) => decoder_document_nlls(dir, &g, docs),
    }
}

/// [`document_nlls`] under the n-gram baseline: its words and its end.
fn ngram_document_nlls(m: &NgramModel, docs: &[Document]) -> Vec<f64> {
    docs.iter()
        .map(|d| {
            let n = ngram::word_tokens(&d.text).len() + 1;
            m.perplexity(std::slice::from_ref(d)).ln() * n as f64
        })
        .collect()
}

/// [`document_nlls`] under a loaded decoder.
fn decoder_document_nlls(dir: &Path, g: &DecoderGenerator, docs: &[Document]) -> Result<Vec<f64>> {
    let block = eval_block_size(dir, g);
    // Every document's blocks, tagged with the document.
    let mut rows: Vec<(usize, Vec<u32>)> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let stream = data::encode_stream(&g.tokenizer, std::slice::from_ref(d), g.boundaries)?;
        rows.extend(data::blocks(&stream, block, true, g.boundaries.lead()).into_iter().filter(|b| b.len() >= 2).map(|b| (i, b)));
    }
    summed_row_nlls(g, &rows, 0, docs.len())
}

/// Each of `n` documents' summed NLL of its `rows` (blocks tagged with the document), leaving out
/// the first `skip` predictions of every row; blocks of one length batch together.
fn summed_row_nlls(g: &DecoderGenerator, rows: &[(usize, Vec<u32>)], skip: usize, n: usize) -> Result<Vec<f64>> {
    let dev = g.model.params.device();
    let mut by_len: std::collections::BTreeMap<usize, Vec<&(usize, Vec<u32>)>> = Default::default();
    for r in rows {
        by_len.entry(r.1.len()).or_default().push(r);
    }
    let mut out = vec![0f64; n];
    for group in by_len.values() {
        for chunk in group.chunks(8) {
            let blocks: Vec<&Vec<u32>> = chunk.iter().map(|r| &r.1).collect();
            for (r, nll) in chunk.iter().zip(train::row_nlls_from(&g.model, &blocks, skip, dev)?) {
                out[r.0] += nll;
            }
        }
    }
    Ok(out)
}

/// For each group of documents that begin alike (a canary's context with each candidate code),
/// each document's NLL less that of the tokens the whole group starts with: those are predicted
/// alike in every document of the group (a causal model sees the same tokens before them), so
/// they are not scored, and the differences, hence the ranks, within a group are
/// [`document_nlls`]'s. The shared start runs through the model once
/// ([`train::shared_prefix_row_nlls`]). A group whose documents do not each fit one block, and the n-gram
/// baseline, get [`document_nlls`] itself.
pub fn shared_start_nlls(dir: &Path, groups: &[Vec<Document>]) -> Result<Vec<Vec<f64>>> {
    let g = match Generator::load(dir)? {
        Generator::Ngram(m) => return Ok(groups.iter().map(|docs| ngram_document_nlls(&m, docs)).collect()),
        Generator::Decoder(g) => g,
    };
    let block = eval_block_size(dir, &g);
    let mut out = Vec::with_capacity(groups.len());
    for docs in groups {
        let mut rows = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let stream = data::encode_stream(&g.tokenizer, std::slice::from_ref(d), g.boundaries)?;
            match <[Vec<u32>; 1]>::try_from(data::blocks(&stream, block, true, g.boundaries.lead())) {
                Ok([b]) if b.len() >= 2 => rows.push((i, b)),
                _ => break,
            }
        }
        if rows.len() < docs.len() {
            out.push(decoder_document_nlls(dir, &g, docs)?);
            continue;
        }
        // Predictions of tokens 1..shared see only shared tokens and predict one; one skip for
        // the whole group, so that every document leaves out the same predictions.
        let shared = rows.iter().map(|(_, r)| r.iter().zip(&rows[0].1).take_while(|(a, b)| a == b).count()).min().unwrap_or(0);
        let shortest = rows.iter().map(|(_, r)| r.len()).min().unwrap_or(2);
        if shared >= 1 && shared < shortest {
            let blocks: Vec<&Vec<u32>> = rows.iter().map(|(_, r)| r).collect();
            let nlls = train::shared_prefix_row_nlls(&g.model, &blocks, shared, 16, g.model.params.device())?;
            let mut each = vec![0f64; docs.len()];
            for ((i, _), nll) in rows.iter().zip(nlls) {
                each[*i] = nll;
            }
            out.push(each);
            continue;
        }
        out.push(summed_row_nlls(&g, &rows, shared.saturating_sub(1).min(shortest - 2), docs.len())?);
    }
    Ok(out)
}

/// The block length perplexity is measured in: the training block size (else 256), within the
/// model's positions.
fn eval_block_size(dir: &Path, g: &DecoderGenerator) -> usize {
    std::fs::read_to_string(dir.join(train::TRAIN_RECORD))
        .ok()
        .and_then(|s| serde_json::from_str::<TrainRecord>(&s).ok())
        .map(|r| r.config.block_size)
        .unwrap_or(256)
        .min(g.model.config.max_positions() - 1)
}
