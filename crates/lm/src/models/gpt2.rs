//! GPT-2 (and GPT-SW3, which uses its layout) with HF parameter names: `transformer.wte`, `wpe`,
//! `h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `ln_f`; the LM head is tied
//! to `wte`.

use anyhow::{bail, Result};
use candle_core::Tensor;
use nn::layers::dropout;
use nn::{Activation, Embedding, LayerNorm, Mode, Params};
use serde::{Deserialize, Serialize};

use crate::layers::{attend, KvCache, Proj};

fn d_act() -> String {
    "gelu_new".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_init() -> f64 {
    0.02
}
fn d_drop() -> f64 {
    0.1
}
fn d_true() -> bool {
    true
}

/// HF `GPT2Config` fields this implementation reads; everything else is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// FFN width; `null`: 4 × `n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "d_act")]
    pub activation_function: String,
    #[serde(default = "d_drop")]
    pub resid_pdrop: f64,
    #[serde(default = "d_drop")]
    pub embd_pdrop: f64,
    #[serde(default = "d_drop")]
    pub attn_pdrop: f64,
    #[serde(default = "d_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Gpt2Config {
    pub fn new(vocab_size: usize, n_positions: usize, n_embd: usize, n_layer: usize, n_head: usize) -> Self {
        Gpt2Config {
            model_type: "gpt2".into(),
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: d_act(),
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            bos_token_id: None,
            eos_token_id: None,
            tie_word_embeddings: true,
            extra: Default::default(),
        }
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Proj,
    attn_proj: Proj,
    ln_2: LayerNorm,
    c_fc: Proj,
    mlp_proj: Proj,
}

pub struct Gpt2 {
    pub config: Gpt2Config,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    act: Activation,
}

impl Gpt2 {
    /// Creates (or takes from `params`) every variable under its HF name. Initialisation follows
    /// HF: normal(initializer_range), output projections scaled by `1/sqrt(2 n_layer)`.
    pub fn new(params: &Params, c: &Gpt2Config) -> Result<Self> {
        if !c.tie_word_embeddings {
            bail!("GPT-2 with an untied lm_head is not supported");
        }
        // Variants that change the attention arithmetic are refused rather than silently wrong.
        for flag in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] {
            if c.extra.get(flag).and_then(|v| v.as_bool()) == Some(true) {
                bail!("GPT-2 option {flag} = true is not supported");
            }
        }
        if c.extra.get("scale_attn_weights").and_then(|v| v.as_bool()) == Some(false) {
            bail!("GPT-2 option scale_attn_weights = false is not supported");
        }
        if !c.n_embd.is_multiple_of(c.n_head) {
            bail!("n_embd {} is not a multiple of n_head {}", c.n_embd, c.n_head);
        }
        let (h, std) = (c.n_embd, c.initializer_range);
        let proj_std = std / (2.0 * c.n_layer as f64).sqrt();
        let inner = c.n_inner.unwrap_or(4 * h);
        let blocks = (0..c.n_layer)
            .map(|i| {
                let p = format!("transformer.h.{i}");
                Ok(Block {
                    ln_1: LayerNorm::new(&params.pp(format!("{p}.ln_1")), h, c.layer_norm_epsilon)?,
                    c_attn: Proj::conv1d(params, &format!("{p}.attn.c_attn"), h, 3 * h, std)?,
                    attn_proj: Proj::conv1d(params, &format!("{p}.attn.c_proj"), h, h, proj_std)?,
                    ln_2: LayerNorm::new(&params.pp(format!("{p}.ln_2")), h, c.layer_norm_epsilon)?,
                    c_fc: Proj::conv1d(params, &format!("{p}.mlp.c_fc"), h, inner, std)?,
                    mlp_proj: Proj::conv1d(params, &format!("{p}.mlp.c_proj"), inner, h, proj_std)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Gpt2 {
            wte: Embedding::new(&params.pp("transformer.wte"), c.vocab_size, h, std)?,
            wpe: Embedding::new(&params.pp("transformer.wpe"), c.n_positions, h, std)?,
            blocks,
            ln_f: LayerNorm::new(&params.pp("transformer.ln_f"), h, c.layer_norm_epsilon)?,
            act: Activation::from_hf(&c.activation_function)?,
            config: c.clone(),
        })
    }

    /// Maps names of HF files onto ours: checkpoints saved from `GPT2Model` lack the
    /// `transformer.` prefix; the causal-mask buffers (`attn.bias`, `attn.masked_bias`) and a tied
    /// `lm_head.weight` are not parameters.
    pub fn hf_rename(name: &str) -> Option<String> {
        if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "attn.bias" || name == "lm_head.weight" {
            return None;
        }
        Some(if name.starts_with("transformer.") { name.to_string() } else { format!("transformer.{name}") })
    }

    pub fn projs_mut(&mut self) -> Vec<&mut Proj> {
        self.blocks.iter_mut().flat_map(|b| [&mut b.c_attn, &mut b.attn_proj, &mut b.c_fc, &mut b.mlp_proj]).collect()
    }

    pub fn freeze(&mut self) {
        let d = |t: &mut Tensor| *t = t.detach();
        d(&mut self.wte.weight);
        d(&mut self.wpe.weight);
        for ln in std::iter::once(&mut self.ln_f).chain(self.blocks.iter_mut().flat_map(|b| [&mut b.ln_1, &mut b.ln_2])) {
            d(&mut ln.weight);
            d(&mut ln.bias);
        }
        for p in self.projs_mut() {
            p.freeze();
        }
    }

    pub fn kv_shape(&self) -> (usize, usize, usize) {
        (self.config.n_layer, self.config.n_head, self.config.n_embd / self.config.n_head)
    }

    /// Hidden states `[batch, len, n_embd]` after `ln_f`. `positions` `[batch or 1, len]` (u32).
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, bias: Option<&Tensor>, mut cache: Option<&mut KvCache>, mode: &mut Mode) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let (nh, hd) = (c.n_head, c.n_embd / c.n_head);
        let x = self.wte.forward(ids)?.broadcast_add(&self.wpe.forward(positions)?)?;
        let mut x = dropout(&x, c.embd_pdrop, mode)?;
        for (i, blk) in self.blocks.iter().enumerate() {
            let h = blk.ln_1.forward(&x)?;
            let qkv = blk.c_attn.forward(&h, mode)?; // [b, t, 3h]
            let split = |j: usize| -> Result<Tensor> {
                Ok(qkv.narrow(2, j * c.n_embd, c.n_embd)?.reshape((b, t, nh, hd))?.transpose(1, 2)?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => cache.append(i, &k, &v)?,
                None => (k, v),
            };
            let a = attend(&q, &k, &v, bias, c.attn_pdrop, mode)?;
            let a = dropout(&blk.attn_proj.forward(&a, mode)?, c.resid_pdrop, mode)?;
            x = (x + a)?;
            let h = blk.ln_2.forward(&x)?;
            let m = blk.c_fc.forward_act(&h, &self.act, mode)?;
            let m = dropout(&blk.mlp_proj.forward(&m, mode)?, c.resid_pdrop, mode)?;
            x = (x + m)?;
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.ln_f.forward(&x)
    }

    /// Logits `[.., vocab]` of hidden states (tied to `wte`).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        lm_head(hidden, &self.wte.weight)
    }

    /// The output layer's weight: always the token embedding table.
    pub fn tied_head(&self) -> Option<&Tensor> {
        Some(&self.wte.weight)
    }
}

/// `hidden @ weightᵀ` over all rows at once.
pub(crate) fn lm_head(hidden: &Tensor, weight: &Tensor) -> Result<Tensor> {
    nn::fused::linear(hidden, weight, None, false)
}
