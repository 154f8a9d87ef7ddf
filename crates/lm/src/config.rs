//! Training and generation settings: serde-(de)serialisable, so they can be sections of a
//! pipeline TOML, with named size presets for models trained from scratch.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::layers::LoraConfig;
use crate::models::{Gpt2Config, LlamaConfig, ModelConfig};
use crate::ngram::NgramConfig;
use crate::sampling::SamplingConfig;

/// Size presets for models trained from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 2 layers × 64, vocabulary 1000: for tests.
    Tiny,
    /// 4 layers × 256, vocabulary 8000: minutes on a laptop CPU.
    #[default]
    Small,
    /// 6 layers × 384, vocabulary 32000 (the speed benchmark's shape).
    Base,
}

impl std::str::FromStr for Preset {
    type Err = String;

    /// `tiny`, `small` or `base`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "base" => Ok(Preset::Base),
            _ => Err(format!("{s:?} is not a preset: tiny, small or base")),
        }
    }
}

/// Model dimensions; `None` takes the preset's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDims {
    pub vocab_size: Option<usize>,
    pub hidden: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    /// Llama only: key/value heads (grouped-query attention).
    pub kv_heads: Option<usize>,
    /// FFN width (GPT-2: 4 × hidden by default; Llama: 8/3 × hidden rounded to 32).
    pub ffn: Option<usize>,
    /// Maximum sequence length (position table / rotary table size).
    pub max_positions: Option<usize>,
    pub dropout: Option<f64>,
}

/// Everything `lm train` needs (besides data and output directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// `gpt2`, `llama` (decoders) or `ngram` (the word n-gram baseline).
    pub generator: String,
    pub preset: Preset,
    #[serde(flatten)]
    pub dims: ModelDims,
    /// A local HF model directory to start from (full fine-tuning, or LoRA with `lora.rank > 0`);
    /// `None`: train from scratch (and train a byte-level BPE on the training text).
    pub init: Option<PathBuf>,
    pub lora: LoraConfig,
    pub ngram: NgramConfig,
    /// Tokens per training block (context length).
    pub block_size: usize,
    /// Blocks per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub epochs: usize,
    pub lr: f64,
    /// Share of all optimizer steps spent warming up linearly.
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Stop (after saving) when this much wall time has passed; a later run resumes.
    pub max_minutes: Option<f64>,
    /// Dev tokens scored after each epoch (evenly spaced blocks; 0: all): a pretrained model's
    /// forward over a whole dev set can cost minutes.
    pub dev_max_tokens: usize,
    /// Minutes between resume checkpoints.
    pub checkpoint_minutes: f64,
    /// Samples come from this OpenAI-compatible server (`[generator.openai]`) instead of a model
    /// trained here: the generator stage then trains nothing. Absent (the default) leaves the
    /// stage keys of existing configs as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openai: Option<crate::openai::OpenAiConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            generator: "gpt2".into(),
            preset: Preset::Small,
            dims: ModelDims::default(),
            init: None,
            lora: LoraConfig::default(),
            ngram: NgramConfig::default(),
            block_size: 256,
            batch_size: 8,
            grad_accum: 1,
            epochs: 10,
            lr: 1e-3,
            warmup_ratio: 0.05,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
            seed: 42,
            max_minutes: None,
            dev_max_tokens: 32_768,
            checkpoint_minutes: 5.0,
            openai: None,
        }
    }
}

impl TrainConfig {
    /// These settings as a stage key should hash them: the same, except that an `openai`
    /// section keeps only what decides the samples ([`crate::openai::OpenAiConfig::output_settings`]).
    pub fn key_settings(&self) -> TrainConfig {
        TrainConfig { openai: self.openai.as_ref().map(|o| o.output_settings()), ..self.clone() }
    }

    /// The vocabulary size the BPE is trained to (from scratch).
    pub fn vocab_size(&self) -> usize {
        self.dims.vocab_size.unwrap_or(match self.preset {
            Preset::Tiny => 1000,
            Preset::Small => 8000,
            Preset::Base => 32000,
        })
    }

    /// The HF config of a model trained from scratch, `vocab` being the trained tokenizer's size.
    pub fn model_config(&self, vocab: usize, bos: u32, eos: u32) -> Result<ModelConfig> {
        let (h, l, nh) = match self.preset {
            Preset::Tiny => (64, 2, 2),
            Preset::Small => (256, 4, 4),
            Preset::Base => (384, 6, 6),
        };
        let d = &self.dims;
        let (h, l, nh) = (d.hidden.unwrap_or(h), d.layers.unwrap_or(l), d.heads.unwrap_or(nh));
        let pos = d.max_positions.unwrap_or(self.block_size.max(512));
        let dropout = d.dropout.unwrap_or(0.1);
        let mut c = match self.generator.as_str() {
            "gpt2" => {
                let mut c = Gpt2Config::new(vocab, pos, h, l, nh);
                c.n_inner = d.ffn;
                ModelConfig::Gpt2(c)
            }
            "llama" => {
                let ffn = d.ffn.unwrap_or((8 * h / 3).div_ceil(32) * 32);
                ModelConfig::Llama(LlamaConfig::new(vocab, pos, h, l, nh, d.kv_heads.unwrap_or(nh), ffn))
            }
            other => bail!("cannot build a {other:?} decoder (use gpt2 or llama)"),
        };
        c.set_dropout(dropout);
        c.set_special_tokens(bos, eos);
        Ok(c)
    }
}

/// Everything `lm generate` needs besides model, prompts and output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateConfig {
    /// Words of each prompt document used as the prompt.
    pub prompt_words: usize,
    pub samples_per_prompt: usize,
    /// New subword tokens per sample (words for the n-gram baseline).
    pub max_new_tokens: usize,
    #[serde(flatten)]
    pub sampling: SamplingConfig,
    pub seed: u64,
    /// Sequences decoded together.
    pub batch_size: usize,
    /// The decoding GEMMs' weights: `f32` (exact, the default) or `bf16` (half the bytes a step
    /// streams; on CPUs with AVX-512 BF16, elsewhere f32). Not written when f32, so that
    /// earlier configs keep their stage keys.
    #[serde(skip_serializing_if = "nn::Precision::is_f32")]
    pub precision: nn::Precision,
    /// The tokens a sample may draw: `full` (the model's whole vocabulary, the default) or
    /// `corpus` (those of the generator's training text). Not written when full.
    #[serde(skip_serializing_if = "Vocabulary::is_full")]
    pub vocabulary: Vocabulary,
}

/// Which tokens generation draws from ([`GenerateConfig::vocabulary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vocabulary {
    /// Every token of the model.
    #[default]
    Full,
    /// The tokens of the text the generator was adapted on (and the stop tokens): the output layer
    /// and the sampler work on those rows only, a fraction of a large multilingual vocabulary.
    Corpus,
}

impl Vocabulary {
    pub fn is_full(&self) -> bool {
        *self == Vocabulary::Full
    }
}

impl std::str::FromStr for Vocabulary {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Vocabulary::Full),
            "corpus" => Ok(Vocabulary::Corpus),
            other => bail!("vocabulary {other:?}: use full or corpus"),
        }
    }
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            prompt_words: 3,
            samples_per_prompt: 1,
            max_new_tokens: 512,
            sampling: SamplingConfig::default(),
            seed: 0,
            batch_size: 16,
            precision: nn::Precision::F32,
            vocabulary: Vocabulary::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_and_accept_partial_sections() {
        let mut t = TrainConfig::default();
        t.dims.hidden = Some(128);
        t.lora.rank = 8;
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let partial: TrainConfig = serde_json::from_str(r#"{"generator": "llama", "hidden": 96, "epochs": 2}"#).unwrap();
        assert_eq!((partial.generator.as_str(), partial.dims.hidden, partial.epochs, partial.block_size), ("llama", Some(96), 2, 256));
        let g: GenerateConfig = serde_json::from_str(r#"{"top_p": 0.9, "samples_per_prompt": 80}"#).unwrap();
        assert_eq!((g.sampling.top_p, g.sampling.temperature, g.samples_per_prompt, g.prompt_words), (0.9, 1.0, 80, 3));
        let ModelConfig::Llama(c) = partial.model_config(500, 0, 0).unwrap() else { panic!() };
        assert_eq!((c.hidden_size, c.intermediate_size, c.num_attention_heads), (96, 256, 4));
    }

    /// `openai` is absent from a config that does not set it (so existing configs' stage keys,
    /// hashes of their settings as JSON, stay as they were), and a TOML section sets it.
    #[test]
    fn openai_section_is_optional_and_parsed() {
        let v = serde_json::to_value(TrainConfig::default()).unwrap();
        assert!(v.get("openai").is_none(), "{v}");
        let t: TrainConfig = toml::from_str("epochs = 1\n[openai]\nbase_url = \"http://10.0.0.5:8000/v1\"\nmodel = \"gen\"\nconcurrency = 16\n").unwrap();
        let o = t.openai.as_ref().unwrap();
        assert_eq!((o.base_url.as_str(), o.model.as_str(), o.concurrency, o.retries, o.api_key_env.as_str()), ("http://10.0.0.5:8000/v1", "gen", 16, 5, "OPENAI_API_KEY"));
        assert!(toml::from_str::<TrainConfig>("[openai]\nbase_urll = \"x\"\n").is_err());
        let mut faster = t.clone();
        faster.openai.as_mut().unwrap().concurrency = 64;
        assert_eq!(faster.key_settings(), t.key_settings());
        assert_eq!(TrainConfig::default().key_settings(), TrainConfig::default());
    }
}
