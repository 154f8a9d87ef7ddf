//! Gemma 3 (text) with HF names: `model.embed_tokens` (scaled by `sqrt(hidden)`),
//! `model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm,
//! post_attention_layernorm, pre_feedforward_layernorm, mlp.{gate,up,down}_proj,
//! post_feedforward_layernorm}`, `model.norm`; the LM head is tied to the embeddings.
//!
//! What sets it apart from Llama: RMSNorms scale by `1 + w` (HF stores `w`; llama.cpp's GGUF
//! stores `1 + w`, see [`crate::gguf`]), norms on queries and keys per head, norms after
//! attention and after the MLP as well as before, GeGLU with tanh GELU, attention scaled by
//! `query_pre_attn_scalar^-1/2`, and interleaved sliding-window ("local", their own RoPE base)
//! and global layers.

use anyhow::{bail, Result};
use candle_core::Tensor;
use nn::{Activation, Embedding, Mode, Params};
use serde::{Deserialize, Serialize};

use crate::layers::{KvCache, Proj, Rotary};

fn d_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn d_eps() -> f64 {
    1e-6
}
fn d_theta() -> f64 {
    1_000_000.0
}
fn d_local_theta() -> f64 {
    10_000.0
}
fn d_pattern() -> usize {
    6
}
fn d_true() -> bool {
    true
}
fn d_init() -> f64 {
    0.02
}

/// HF `Gemma3TextConfig` fields read here; the rest is kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gemma3Config {
    /// `gemma3_text` (or `gemma3` for text-only checkpoints saved with the multimodal name).
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    #[serde(default = "d_act")]
    pub hidden_activation: String,
    pub max_position_embeddings: usize,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// Older configs; transformers ≥ 5 writes `rope_parameters` per layer type instead.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    pub query_pre_attn_scalar: f64,
    pub sliding_window: usize,
    /// `sliding_attention` / `full_attention` per layer; when absent, every
    /// `sliding_window_pattern`-th layer is global.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "d_pattern")]
    pub sliding_window_pattern: usize,
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub attention_dropout: f64,
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Gemma3Config {
    /// Whether layer `i` attends within the sliding window only.
    pub fn is_sliding(&self, i: usize) -> bool {
        match &self.layer_types {
            Some(t) => t.get(i).map(|s| s == "sliding_attention").unwrap_or(false),
            None => !(i + 1).is_multiple_of(self.sliding_window_pattern.max(1)),
        }
    }

    fn rope_param(&self, kind: &str, key: &str) -> Option<&serde_json::Value> {
        self.extra.get("rope_parameters").and_then(|r| r.get(kind)).and_then(|r| r.get(key))
    }

    /// RoPE base of global layers.
    pub fn global_theta(&self) -> f64 {
        self.rope_theta.or_else(|| self.rope_param("full_attention", "rope_theta").and_then(|t| t.as_f64())).unwrap_or_else(d_theta)
    }

    /// RoPE base of sliding-window layers.
    pub fn local_theta(&self) -> f64 {
        self.rope_local_base_freq
            .or_else(|| self.rope_param("sliding_attention", "rope_theta").and_then(|t| t.as_f64()))
            .unwrap_or_else(d_local_theta)
    }

    fn check(&self) -> Result<()> {
        let scaled = |v: Option<&serde_json::Value>| {
            v.map(|s| !s.is_null() && s.get("rope_type").and_then(|t| t.as_str()).unwrap_or("default") != "default").unwrap_or(false)
        };
        if scaled(self.rope_scaling.as_ref()) || scaled(self.extra.get("rope_parameters").and_then(|r| r.get("full_attention"))) {
            bail!("Gemma 3 rope scaling (the 4B+ checkpoints' long-context setting) is not supported");
        }
        if self.attn_logit_softcapping.is_some() {
            bail!("attention logit soft-capping is not supported (Gemma 3 checkpoints do not use it)");
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            bail!("{} attention heads are not a multiple of {} key/value heads", self.num_attention_heads, self.num_key_value_heads);
        }
        Ok(())
    }
}

/// RMSNorm scaling by `1 + w` (Gemma's convention).
struct GemmaNorm {
    weight: Tensor,
    /// `1 + weight`, computed once when the norm is frozen.
    frozen_scale: Option<Tensor>,
    eps: f64,
}

impl GemmaNorm {
    fn new(params: &Params, name: &str, dim: usize, eps: f64) -> Result<Self> {
        // HF initialises `w` to zeros, so a fresh norm is the identity scale.
        Ok(GemmaNorm { weight: params.pp(name).get(&[dim], "weight", nn::Init::Zeros)?, frozen_scale: None, eps })
    }

    fn freeze(&mut self) -> Result<()> {
        self.weight = self.weight.detach();
        self.frozen_scale = Some((&self.weight + 1.0)?);
        Ok(())
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.frozen_scale {
            Some(scale) => nn::fused::rms_norm(x, scale, self.eps),
            None => nn::fused::rms_norm(x, &(&self.weight + 1.0)?, self.eps),
        }
    }
}

struct Layer {
    input_layernorm: GemmaNorm,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    q_norm: GemmaNorm,
    k_norm: GemmaNorm,
    post_attention_layernorm: GemmaNorm,
    pre_feedforward_layernorm: GemmaNorm,
    gate: Proj,
    up: Proj,
    down: Proj,
    post_feedforward_layernorm: GemmaNorm,
    sliding: bool,
}

pub struct Gemma3 {
    pub config: Gemma3Config,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: GemmaNorm,
    lm_head: Option<Proj>,
    rotary_global: Rotary,
    rotary_local: Rotary,
    act: Activation,
}

impl Gemma3 {
    pub fn new(params: &Params, c: &Gemma3Config) -> Result<Self> {
        c.check()?;
        let (h, std, eps) = (c.hidden_size, c.initializer_range, c.rms_norm_eps);
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let a = format!("{p}.self_attn");
                let m = format!("{p}.mlp");
                let norm = |n: &str, dim: usize| GemmaNorm::new(params, &format!("{p}.{n}"), dim, eps);
                Ok(Layer {
                    input_layernorm: norm("input_layernorm", h)?,
                    q: Proj::linear(params, &format!("{a}.q_proj"), h, nh * hd, c.attention_bias, std)?,
                    k: Proj::linear(params, &format!("{a}.k_proj"), h, nkv * hd, c.attention_bias, std)?,
                    v: Proj::linear(params, &format!("{a}.v_proj"), h, nkv * hd, c.attention_bias, std)?,
                    o: Proj::linear(params, &format!("{a}.o_proj"), nh * hd, h, c.attention_bias, std)?,
                    q_norm: norm("self_attn.q_norm", hd)?,
                    k_norm: norm("self_attn.k_norm", hd)?,
                    post_attention_layernorm: norm("post_attention_layernorm", h)?,
                    pre_feedforward_layernorm: norm("pre_feedforward_layernorm", h)?,
                    gate: Proj::linear(params, &format!("{m}.gate_proj"), h, c.intermediate_size, false, std)?,
                    up: Proj::linear(params, &format!("{m}.up_proj"), h, c.intermediate_size, false, std)?,
                    down: Proj::linear(params, &format!("{m}.down_proj"), c.intermediate_size, h, false, std)?,
                    post_feedforward_layernorm: norm("post_feedforward_layernorm", h)?,
                    sliding: c.is_sliding(i),
                })
            })
            .collect::<Result<_>>()?;
        let lm_head = if c.tie_word_embeddings { None } else { Some(Proj::linear(params, "lm_head", h, c.vocab_size, false, std)?) };
        let (dt, dev) = (params.dtype(), params.device());
        Ok(Gemma3 {
            embed: Embedding::new(&params.pp("model.embed_tokens"), c.vocab_size, h, std)?,
            layers,
            norm: GemmaNorm::new(params, "model.norm", h, eps)?,
            lm_head,
            rotary_global: Rotary::new(hd, c.max_position_embeddings, c.global_theta(), dt, dev)?,
            rotary_local: Rotary::new(hd, c.max_position_embeddings, c.local_theta(), dt, dev)?,
            act: Activation::from_hf(&c.hidden_activation)?,
            config: c.clone(),
        })
    }

    /// A tied `lm_head.weight` in a file is not a parameter of ours.
    pub fn hf_rename(&self, name: &str) -> Option<String> {
        if self.config.tie_word_embeddings && name == "lm_head.weight" {
            return None;
        }
        // Multimodal checkpoints keep the text model under `language_model.`.
        Some(name.strip_prefix("language_model.").unwrap_or(name).to_string())
    }

    pub fn projs_mut(&mut self) -> Vec<&mut Proj> {
        let mut v: Vec<&mut Proj> = self
            .layers
            .iter_mut()
            .flat_map(|l| [&mut l.q, &mut l.k, &mut l.v, &mut l.o, &mut l.gate, &mut l.up, &mut l.down])
            .collect();
        if let Some(h) = self.lm_head.as_mut() {
            v.push(h);
        }
        v
    }

    pub fn freeze(&mut self) -> Result<()> {
        self.embed.weight = self.embed.weight.detach();
        self.norm.freeze()?;
        for l in &mut self.layers {
            for n in [
                &mut l.input_layernorm,
                &mut l.q_norm,
                &mut l.k_norm,
                &mut l.post_attention_layernorm,
                &mut l.pre_feedforward_layernorm,
                &mut l.post_feedforward_layernorm,
            ] {
                n.freeze()?;
            }
        }
        for p in self.projs_mut() {
            p.freeze();
        }
        Ok(())
    }

    pub fn kv_shape(&self) -> (usize, usize, usize) {
        (self.config.num_hidden_layers, self.config.num_key_value_heads, self.config.head_dim)
    }

    /// Hidden states `[batch, len, hidden]` after the final norm.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, bias: Option<&Tensor>, mut cache: Option<&mut KvCache>, mode: &mut Mode) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let positions = if positions.dim(0)? == b { positions.clone() } else { positions.broadcast_as((b, t))?.contiguous()? };
        let global = self.rotary_global.tables(&positions)?;
        let local = self.rotary_local.tables(&positions)?;
        let past = cache.as_deref().map(|c| c.len()).unwrap_or(0);
        // Sliding-window layers read only the keys their queries can see: from the first query's
        // window start on (the mask covers the rest). Decoding a long document then reads `window`
        // keys, not all of them.
        let local_start = (past + 1).saturating_sub(c.sliding_window);
        let local_keys = past + t - local_start;
        let local_bias = match sliding_bias(bias, past, t, c.sliding_window, ids.device())? {
            Some(b) if local_start > 0 => Some(b.narrow(3, local_start, local_keys)?),
            b => b,
        };
        let scale = 1.0 / c.query_pre_attn_scalar.sqrt();
        // HF multiplies by the scale as a tensor of the weights' dtype.
        let mut x = (self.embed.forward(ids)? * (c.hidden_size as f32).sqrt() as f64)?;
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.input_layernorm.forward(&x)?;
            let (cos, sin) = if l.sliding { &local } else { &global };
            let heads = |p: &Proj, n: usize, norm: Option<&GemmaNorm>, mode: &mut Mode| -> Result<Tensor> {
                let y = p.forward(&h, mode)?.reshape((b, t, n, hd))?;
                let y = match norm {
                    Some(norm) => norm.forward(&y)?,
                    None => y,
                };
                Ok(y.transpose(1, 2)?.contiguous()?)
            };
            let q = Rotary::apply(&heads(&l.q, nh, Some(&l.q_norm), mode)?, cos, sin, mode)?;
            let k = Rotary::apply(&heads(&l.k, nkv, Some(&l.k_norm), mode)?, cos, sin, mode)?;
            let v = heads(&l.v, nkv, None, mode)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => cache.append(i, &k, &v)?,
                None => (k, v),
            };
            let (k, v) = if l.sliding && local_start > 0 { (k.narrow(2, local_start, local_keys)?, v.narrow(2, local_start, local_keys)?) } else { (k, v) };
            let layer_bias = if l.sliding { local_bias.as_ref().or(bias) } else { bias };
            let a = nn::attention::attention(&q, &k, &v, layer_bias, scale, c.attention_dropout, mode)?;
            let a = l.post_attention_layernorm.forward(&l.o.forward(&a, mode)?)?;
            x = (x + a)?;
            let h = l.pre_feedforward_layernorm.forward(&x)?;
            // GeGLU: down(gelu_tanh(gate(h)) * up(h)).
            let g = self.act.forward(&l.gate.forward(&h, mode)?)?;
            let m = l.down.forward(&(g * l.up.forward(&h, mode)?)?, mode)?;
            x = (x + l.post_feedforward_layernorm.forward(&m)?)?;
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.norm.forward(&x)
    }

    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = match &self.lm_head {
            Some(h) => h.forward(hidden, &mut Mode::Eval)?,
            None => super::gpt2::lm_head(hidden, &self.embed.weight)?,
        };
        self.softcap(logits)
    }

    /// The output layer's weight `[vocab, hidden]` where the layer is that one product: tied, or
    /// an untied head without bias or adapter.
    pub fn head_weight(&self) -> Option<&Tensor> {
        self.lm_head.as_ref().map_or(Some(&self.embed.weight), Proj::plain_weight)
    }

    /// The output layer's weight when it is the embedding table.
    pub fn tied_head(&self) -> Option<&Tensor> {
        self.lm_head.is_none().then_some(&self.embed.weight)
    }

    /// `cap · tanh(logits / cap)` where the config sets a final soft cap.
    pub fn softcap(&self, logits: Tensor) -> Result<Tensor> {
        match self.config.final_logit_softcapping {
            Some(cap) => Ok(((logits / cap)?.tanh()? * cap)?),
            None => Ok(logits),
        }
    }
}

/// The bias of sliding-window layers: `bias` (or no mask) plus a mask on keys `window` or more
/// positions behind their query (HF: key `j` is seen by query `i` iff `i - j < window`). Cache
/// slots and positions differ by each row's left padding, which cancels in `i - j`. `None` when
/// no key is that far back.
fn sliding_bias(bias: Option<&Tensor>, past: usize, len: usize, window: usize, device: &candle_core::Device) -> Result<Option<Tensor>> {
    let total = past + len;
    if total <= window {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(len * total);
    for i in 0..len {
        for j in 0..total {
            data.push(if past + i >= j + window { crate::layers::attention::MASKED } else { 0.0 });
        }
    }
    let dtype = bias.map(|b| b.dtype()).unwrap_or(candle_core::DType::F32);
    let w = Tensor::from_vec(data, (1, 1, len, total), device)?.to_dtype(dtype)?;
    Ok(Some(match bias {
        Some(b) => b.broadcast_add(&w)?,
        None => w,
    }))
}
