//! The Llama family (Llama, Mistral, Qwen2) with HF names: `model.embed_tokens`,
//! `model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
//! mlp.{gate,up,down}_proj}`, `model.norm`, `lm_head`. RMSNorm, rotary embeddings, SwiGLU and
//! grouped-query attention; the families differ by config (Qwen2: q/k/v biases).
//!
//! Not implemented: Mistral's `sliding_window` (attention is full; identical for sequences
//! shorter than the window, 4096 for Mistral 7B) and rope scaling other than `default` (refused).

use anyhow::{bail, Result};
use candle_core::Tensor;
use nn::{Activation, Embedding, Mode, Params};
use serde::{Deserialize, Serialize};

use crate::layers::{attend, KvCache, Proj, RmsNorm, Rotary};

fn d_act() -> String {
    "silu".into()
}
fn d_eps() -> f64 {
    1e-6
}
fn d_init() -> f64 {
    0.02
}

/// HF `LlamaConfig` / `MistralConfig` / `Qwen2Config` fields read here; the rest is kept in
/// `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `mistral` or `qwen2`.
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// Older configs; transformers ≥ 5 writes `rope_parameters.rope_theta` instead.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    #[serde(default)]
    pub attention_dropout: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl LlamaConfig {
    pub fn new(vocab_size: usize, max_positions: usize, hidden: usize, layers: usize, heads: usize, kv_heads: usize, ffn: usize) -> Self {
        LlamaConfig {
            model_type: "llama".into(),
            vocab_size,
            hidden_size: hidden,
            intermediate_size: ffn,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv_heads),
            head_dim: None,
            hidden_act: d_act(),
            max_position_embeddings: max_positions,
            rms_norm_eps: 1e-6,
            rope_theta: Some(10000.0),
            rope_scaling: None,
            attention_bias: Some(false),
            mlp_bias: Some(false),
            attention_dropout: 0.0,
            tie_word_embeddings: false,
            initializer_range: 0.02,
            bos_token_id: None,
            eos_token_id: None,
            extra: Default::default(),
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.extra.get("rope_parameters").and_then(|r| r.get("rope_theta")).and_then(|t| t.as_f64()))
            .unwrap_or(10000.0)
    }

    /// q/k/v biases: Qwen2 always, Llama/Mistral when `attention_bias`.
    fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias.unwrap_or(false)
    }

    fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias.unwrap_or(false)
    }
}

struct Layer {
    input_layernorm: RmsNorm,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    post_attention_layernorm: RmsNorm,
    gate: Proj,
    up: Proj,
    down: Proj,
}

pub struct Llama {
    pub config: LlamaConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Option<Proj>,
    rotary: Rotary,
    act: Activation,
}

impl Llama {
    pub fn new(params: &Params, c: &LlamaConfig) -> Result<Self> {
        if let Some(s) = &c.rope_scaling {
            if !s.is_null() && s.get("rope_type").and_then(|t| t.as_str()).unwrap_or("default") != "default" {
                bail!("rope_scaling {s} is not supported");
            }
        }
        if let Some(t) = c.extra.get("rope_parameters").and_then(|r| r.get("rope_type")).and_then(|t| t.as_str()) {
            if t != "default" {
                bail!("rope type {t:?} is not supported");
            }
        }
        let (h, std) = (c.hidden_size, c.initializer_range);
        let (nh, nkv, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let mlp_bias = c.mlp_bias.unwrap_or(false);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let a = format!("{p}.self_attn");
                let m = format!("{p}.mlp");
                Ok(Layer {
                    input_layernorm: RmsNorm::new(&params.pp(format!("{p}.input_layernorm")), h, c.rms_norm_eps)?,
                    q: Proj::linear(params, &format!("{a}.q_proj"), h, nh * hd, c.qkv_bias(), std)?,
                    k: Proj::linear(params, &format!("{a}.k_proj"), h, nkv * hd, c.qkv_bias(), std)?,
                    v: Proj::linear(params, &format!("{a}.v_proj"), h, nkv * hd, c.qkv_bias(), std)?,
                    o: Proj::linear(params, &format!("{a}.o_proj"), nh * hd, h, c.o_bias(), std)?,
                    post_attention_layernorm: RmsNorm::new(&params.pp(format!("{p}.post_attention_layernorm")), h, c.rms_norm_eps)?,
                    gate: Proj::linear(params, &format!("{m}.gate_proj"), h, c.intermediate_size, mlp_bias, std)?,
                    up: Proj::linear(params, &format!("{m}.up_proj"), h, c.intermediate_size, mlp_bias, std)?,
                    down: Proj::linear(params, &format!("{m}.down_proj"), c.intermediate_size, h, mlp_bias, std)?,
                })
            })
            .collect::<Result<_>>()?;
        let lm_head = if c.tie_word_embeddings { None } else { Some(Proj::linear(params, "lm_head", h, c.vocab_size, false, std)?) };
        Ok(Llama {
            embed: Embedding::new(&params.pp("model.embed_tokens"), c.vocab_size, h, std)?,
            layers,
            norm: RmsNorm::new(&params.pp("model.norm"), h, c.rms_norm_eps)?,
            lm_head,
            rotary: Rotary::new(hd, c.max_position_embeddings, c.theta(), params.dtype(), params.device())?,
            act: Activation::from_hf(&c.hidden_act)?,
            config: c.clone(),
        })
    }

    /// A tied `lm_head.weight` in a file is not a parameter of ours.
    pub fn hf_rename(&self, name: &str) -> Option<String> {
        if self.config.tie_word_embeddings && name == "lm_head.weight" {
            return None;
        }
        Some(name.to_string())
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

    pub fn freeze(&mut self) {
        self.embed.weight = self.embed.weight.detach();
        self.norm.weight = self.norm.weight.detach();
        for l in &mut self.layers {
            l.input_layernorm.weight = l.input_layernorm.weight.detach();
            l.post_attention_layernorm.weight = l.post_attention_layernorm.weight.detach();
        }
        for p in self.projs_mut() {
            p.freeze();
        }
    }

    pub fn kv_shape(&self) -> (usize, usize, usize) {
        (self.config.num_hidden_layers, self.config.kv_heads(), self.config.head_dim())
    }

    /// Hidden states `[batch, len, hidden]` after the final norm.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, bias: Option<&Tensor>, mut cache: Option<&mut KvCache>, mode: &mut Mode) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let positions = if positions.dim(0)? == b { positions.clone() } else { positions.broadcast_as((b, t))?.contiguous()? };
        let (cos, sin) = self.rotary.tables(&positions)?;
        let mut x = self.embed.forward(ids)?;
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.input_layernorm.forward(&x)?;
            let heads = |p: &Proj, n: usize, mode: &mut Mode| -> Result<Tensor> {
                Ok(p.forward(&h, mode)?.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let q = Rotary::apply(&heads(&l.q, nh, mode)?, &cos, &sin, mode)?;
            let k = Rotary::apply(&heads(&l.k, nkv, mode)?, &cos, &sin, mode)?;
            let v = heads(&l.v, nkv, mode)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => cache.append(i, &k, &v)?,
                None => (k, v),
            };
            let a = attend(&q, &k, &v, bias, c.attention_dropout, mode)?;
            x = (x + l.o.forward(&a, mode)?)?;
            let h = l.post_attention_layernorm.forward(&x)?;
            // SwiGLU: down(act(gate(h)) * up(h)).
            let g = self.act.forward(&l.gate.forward(&h, mode)?)?;
            let m = l.down.forward(&(g * l.up.forward(&h, mode)?)?, mode)?;
            x = (x + m)?;
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.norm.forward(&x)
    }

    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(h) => h.forward(hidden, &mut Mode::Eval),
            None => super::gpt2::lm_head(hidden, &self.embed.weight),
        }
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
}
