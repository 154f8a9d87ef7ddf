//! BERT / RoBERTa / XLM-R encoders with Hugging Face parameter names, so HF checkpoints load and
//! models trained here save in the same layout.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::layers::{attention_bias, dropout, Activation, Embedding, LayerNorm, Linear, Mode};
use crate::params::ParamBuilder;

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_init() -> f64 {
    0.02
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}

/// An HF `config.json` of a BERT-family encoder. Unknown fields are kept in `extra` and written
/// back, so a config round-trips (e.g. `id2label`, `architectures`, `torch_dtype`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// `bert`, `roberta`, `xlm-roberta`, `camembert`, ...: decides the position-id offset.
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EncoderConfig {
    /// A BERT config of the given size (dropout 0.1, GELU, 512 positions).
    pub fn bert(vocab_size: usize, hidden: usize, layers: usize, heads: usize, ffn: usize) -> Self {
        EncoderConfig {
            model_type: "bert".into(),
            vocab_size,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ffn,
            hidden_act: default_act(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            initializer_range: 0.02,
            pad_token_id: 0,
            extra: Default::default(),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&s).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(fsutil::atomic_write(path, serde_json::to_string_pretty(self)?.as_bytes())?)
    }

    /// RoBERTa-family models number positions from `padding_idx + 1`.
    pub fn position_offset(&self) -> Option<u32> {
        match self.model_type.as_str() {
            "roberta" | "xlm-roberta" | "camembert" | "xlm_roberta" => Some(self.pad_token_id + 1),
            _ => None,
        }
    }

    /// The attribute name HF's `*ForTokenClassification` gives the encoder (`bert.`, `roberta.`).
    pub fn hf_prefix(&self) -> &'static str {
        match self.model_type.as_str() {
            "roberta" | "xlm-roberta" | "xlm_roberta" | "camembert" => "roberta",
            _ => "bert",
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Word + position + token-type embeddings, then LayerNorm and dropout.
pub struct Embeddings {
    pub(crate) word: Embedding,
    pub(crate) position: Embedding,
    pub(crate) token_type: Embedding,
    pub(crate) norm: LayerNorm,
    pub(crate) dropout: f64,
    pub(crate) position_offset: Option<u32>,
    pub(crate) pad: u32,
}

impl Embeddings {
    pub fn new(pb: &ParamBuilder, c: &EncoderConfig) -> Result<Self> {
        let std = c.initializer_range;
        Ok(Embeddings {
            word: Embedding::new(&pb.pp("word_embeddings"), c.vocab_size, c.hidden_size, std)?,
            position: Embedding::new(&pb.pp("position_embeddings"), c.max_position_embeddings, c.hidden_size, std)?,
            token_type: Embedding::new(&pb.pp("token_type_embeddings"), c.type_vocab_size, c.hidden_size, std)?,
            norm: LayerNorm::new(&pb.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            dropout: c.hidden_dropout_prob,
            position_offset: c.position_offset(),
            pad: c.pad_token_id,
        })
    }

    /// Position ids as HF computes them: `0..len` for BERT; for RoBERTa `pad+1+i` on real tokens
    /// and `pad` on padding.
    fn position_ids(&self, ids: &[Vec<u32>], len: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len() * len);
        for seq in ids {
            for i in 0..len {
                out.push(match self.position_offset {
                    None => i as u32,
                    Some(off) => match seq.get(i) {
                        Some(&t) if t != self.pad => off + i as u32,
                        _ => self.pad,
                    },
                });
            }
        }
        out
    }

    /// `input_ids` `[b, l]`; `extra` (same shape as the output) is added before the LayerNorm,
    /// for task features such as word shapes.
    pub fn forward(&self, input_ids: &Tensor, extra: Option<&Tensor>, mode: &mut Mode) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        let host: Vec<Vec<u32>> = input_ids.to_vec2()?;
        let pos = Tensor::from_vec(self.position_ids(&host, l), (b, l), input_ids.device())?;
        let mut x = self.word.forward(input_ids)?;
        x = (x + self.position.forward(&pos)?)?;
        // All token types are 0 (single-segment input): add row 0 to every position.
        x = x.broadcast_add(&self.token_type.weight.narrow(0, 0, 1)?)?;
        if let Some(e) = extra {
            x = (x + e)?;
        }
        let x = self.norm.forward(&x)?;
        dropout(&x, self.dropout, mode)
    }
}

/// Multi-head self-attention with HF names (`attention.self.{query,key,value}`,
/// `attention.output.{dense,LayerNorm}`), post-norm as in BERT.
pub struct SelfAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) out: Linear,
    pub(crate) norm: LayerNorm,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) attn_dropout: f64,
    pub(crate) dropout: f64,
}

impl SelfAttention {
    pub fn new(pb: &ParamBuilder, c: &EncoderConfig) -> Result<Self> {
        let (h, std) = (c.hidden_size, c.initializer_range);
        let s = pb.pp("self");
        Ok(SelfAttention {
            query: Linear::new(&s.pp("query"), h, h, true, std)?,
            key: Linear::new(&s.pp("key"), h, h, true, std)?,
            value: Linear::new(&s.pp("value"), h, h, true, std)?,
            out: Linear::new(&pb.pp("output").pp("dense"), h, h, true, std)?,
            norm: LayerNorm::new(&pb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            attn_dropout: c.attention_probs_dropout_prob,
            dropout: c.hidden_dropout_prob,
        })
    }

    /// `x` `[b, l, h]`, `bias` `[b, 1, 1, l]` (see [`attention_bias`]).
    pub fn forward(&self, x: &Tensor, bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        // Heads as strided views of the projections: the fused attention reads them in place.
        let split = |t: Tensor| -> Result<Tensor> { Ok(t.reshape((b, l, self.heads, self.head_dim))?.transpose(1, 2)?) };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let ctx = crate::attention::attention(&q, &k, &v, Some(bias), scale, self.attn_dropout, mode)?;
        debug_assert_eq!(ctx.dims(), &[b, l, h]);
        let y = dropout(&self.out.forward(&ctx)?, self.dropout, mode)?;
        self.norm.forward(&(y + x)?)
    }
}

/// One transformer block: attention, then the feed-forward (`intermediate.dense`,
/// `output.dense`, `output.LayerNorm`).
pub struct EncoderLayer {
    pub(crate) attention: SelfAttention,
    pub(crate) intermediate: Linear,
    pub(crate) output: Linear,
    pub(crate) norm: LayerNorm,
    pub(crate) act: Activation,
    pub(crate) dropout: f64,
}

impl EncoderLayer {
    pub fn new(pb: &ParamBuilder, c: &EncoderConfig) -> Result<Self> {
        let std = c.initializer_range;
        Ok(EncoderLayer {
            attention: SelfAttention::new(&pb.pp("attention"), c)?,
            intermediate: Linear::new(&pb.pp("intermediate").pp("dense"), c.hidden_size, c.intermediate_size, true, std)?,
            output: Linear::new(&pb.pp("output").pp("dense"), c.intermediate_size, c.hidden_size, true, std)?,
            norm: LayerNorm::new(&pb.pp("output").pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            act: Activation::from_hf(&c.hidden_act)?,
            dropout: c.hidden_dropout_prob,
        })
    }

    pub fn forward(&self, x: &Tensor, bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let a = self.attention.forward(x, bias, mode)?;
        let f = self.act.forward(&self.intermediate.forward(&a)?)?;
        let f = dropout(&self.output.forward(&f)?, self.dropout, mode)?;
        self.norm.forward(&(f + a)?)
    }
}

/// The encoder without pooler: `embeddings.*` and `encoder.layer.N.*`.
pub struct Encoder {
    pub config: EncoderConfig,
    pub(crate) embeddings: Embeddings,
    pub(crate) layers: Vec<EncoderLayer>,
}

impl Encoder {
    /// Creates (or reuses, if already present in the store) the parameters under `pb`; pass
    /// `params.pp("bert")` for the HF `*ForTokenClassification` layout.
    pub fn new(pb: &ParamBuilder, config: &EncoderConfig) -> Result<Self> {
        anyhow::ensure!(
            config.hidden_size.is_multiple_of(config.num_attention_heads),
            "hidden_size {} not divisible by {} heads",
            config.hidden_size,
            config.num_attention_heads
        );
        let embeddings = Embeddings::new(&pb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::new(&pb.pp("encoder").pp("layer").pp(i), config))
            .collect::<Result<_>>()?;
        Ok(Encoder { config: config.clone(), embeddings, layers })
    }

    /// `input_ids` `[b, l]` u32, `mask` `[b, l]` (1 real, 0 padding) → hidden states `[b, l, h]`.
    pub fn forward(&self, input_ids: &Tensor, mask: &Tensor, extra: Option<&Tensor>, mode: &mut Mode) -> Result<Tensor> {
        let dtype = self.embeddings.word.weight.dtype();
        let bias = attention_bias(mask, dtype)?;
        let mut x = self.embeddings.forward(input_ids, extra, mode)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, mode)?;
        }
        Ok(x)
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}

/// Maps a tensor name of an HF checkpoint to our parameter name under `prefix` (`bert`,
/// `roberta`): accepts names with any known model prefix or none, and the old `gamma`/`beta`
/// LayerNorm names. Returns `None` for the pooler and heads we do not build.
pub fn hf_rename(name: &str, prefix: &str) -> Option<String> {
    let mut n = name;
    for p in ["bert.", "roberta.", "model.", "encoder_model."] {
        if let Some(rest) = n.strip_prefix(p) {
            n = rest;
            break;
        }
    }
    if !(n.starts_with("embeddings.") || n.starts_with("encoder.")) {
        return None;
    }
    if n.starts_with("embeddings.position_ids") {
        return None;
    }
    let n = n.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias");
    Some(if prefix.is_empty() { n } else { format!("{prefix}.{n}") })
}
