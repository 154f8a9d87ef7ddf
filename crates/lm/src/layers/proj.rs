// candidate for crates/nn (Conv1D and LoRA)
//! A learned projection in either HF layout — `nn.Linear` (weight `[out, in]`) or GPT-2's
//! `Conv1D` (weight `[in, out]`) — with an optional LoRA adapter.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::Tensor;
use nn::infer::{PackedLinear, Precision};
use nn::layers::dropout;
use nn::{Init, Mode, Params};
use serde::{Deserialize, Serialize};

/// LoRA hyper-parameters, with PEFT's `adapter_config.json` meanings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of the update `B A`; 0 disables LoRA.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapter's input.
    pub dropout: f64,
    /// Module names (last path component) that get adapters; empty: the family's default
    /// (`c_attn` for GPT-2, `q_proj`/`v_proj` for Llama, as PEFT).
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { rank: 0, alpha: 16.0, dropout: 0.05, target_modules: Vec::new() }
    }
}

/// The two adapter matrices (PEFT shapes): `a` `[rank, in]`, `b` `[out, rank]`.
#[derive(Clone)]
pub struct LoraWeights {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    pub dropout: f64,
}

#[derive(Clone)]
pub struct Proj {
    /// Full parameter path of the module (`transformer.h.0.attn.c_attn`).
    pub name: String,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// GPT-2 `Conv1D`: weight stored `[in, out]`, `y = x W + b`.
    pub conv1d: bool,
    pub lora: Option<LoraWeights>,
    /// The weight packed for inference ([`Proj::pack`]): when set, `forward` runs this GEMM.
    pub packed: Option<Arc<PackedLinear>>,
}

impl Proj {
    /// `nn.Linear` at `name` (weight `[out, in]`).
    pub fn linear(params: &Params, name: &str, in_dim: usize, out_dim: usize, bias: bool, std: f64) -> Result<Self> {
        let pb = params.pp(name);
        let weight = pb.get(&[out_dim, in_dim], "weight", Init::Normal(std))?;
        let bias = if bias { Some(pb.get(&[out_dim], "bias", Init::Zeros)?) } else { None };
        Ok(Proj { name: name.to_string(), weight, bias, conv1d: false, lora: None, packed: None })
    }

    /// GPT-2 `Conv1D` at `name` (weight `[in, out]`, always a bias).
    pub fn conv1d(params: &Params, name: &str, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        let pb = params.pp(name);
        let weight = pb.get(&[in_dim, out_dim], "weight", Init::Normal(std))?;
        let bias = Some(pb.get(&[out_dim], "bias", Init::Zeros)?);
        Ok(Proj { name: name.to_string(), weight, bias, conv1d: true, lora: None, packed: None })
    }

    /// The weight `[out, in]` where the layer is `x Wᵀ` and nothing else (no bias, adapter,
    /// `Conv1D` layout or packed copy).
    pub fn plain_weight(&self) -> Option<&Tensor> {
        (self.bias.is_none() && self.lora.is_none() && !self.conv1d && self.packed.is_none()).then_some(&self.weight)
    }

    pub fn in_dim(&self) -> usize {
        self.weight.dims()[if self.conv1d { 0 } else { 1 }]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[if self.conv1d { 1 } else { 0 }]
    }

    /// The module's last path component (`c_attn`, `q_proj`), which LoRA targets name.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    pub fn forward(&self, x: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        if let Some(p) = &self.packed {
            return p.forward_tensor(x);
        }
        // One GEMM over all rows with the bias fused in, either weight layout (`nn::fused::linear`).
        let mut y = nn::fused::linear(x, &self.weight, self.bias.as_ref(), self.conv1d)?;
        if let Some(l) = &self.lora {
            let xa = nn::fused::linear(&dropout(x, l.dropout, mode)?, &l.a, None, false)?;
            y = (y + (nn::fused::linear(&xa, &l.b, None, false)? * l.scale)?)?;
        }
        Ok(y)
    }

    /// `act(self(x))`. Without an adapter, a GELU is applied inside the projection's op (see
    /// `nn::fused::linear_gelu`), which keeps the unfused pair wherever gradients are tracked.
    pub fn forward_act(&self, x: &Tensor, act: &nn::Activation, mode: &mut Mode) -> Result<Tensor> {
        match act.gelu_tanh() {
            Some(tanh) if self.lora.is_none() && self.packed.is_none() => nn::fused::linear_gelu(x, &self.weight, self.bias.as_ref(), self.conv1d, tanh),
            _ => act.forward(&self.forward(x, mode)?),
        }
    }

    /// Adds a LoRA adapter whose variables live in `adapters` under PEFT's names
    /// (`base_model.model.{name}.lora_A.weight`, `...lora_B.weight`). `A` starts with the spread of
    /// PEFT's Kaiming-uniform init, `B` at zero, so the adapted model starts equal to the base.
    pub fn add_lora(&mut self, adapters: &Params, cfg: &LoraConfig) -> Result<()> {
        let (i, o, r) = (self.in_dim(), self.out_dim(), cfg.rank);
        let base = format!("base_model.model.{}", self.name);
        let a = adapters.pp(format!("{base}.lora_A")).get(&[r, i], "weight", Init::Normal(1.0 / (3.0 * i as f64).sqrt()))?;
        let b = adapters.pp(format!("{base}.lora_B")).get(&[o, r], "weight", Init::Zeros)?;
        self.lora = Some(LoraWeights { a, b, scale: cfg.alpha / r as f64, dropout: cfg.dropout });
        Ok(())
    }

    /// Stores a `Conv1D` weight transposed, as `nn.Linear` (`[out, in]`); same outputs.
    pub fn to_linear_layout(&mut self) -> Result<()> {
        if self.conv1d {
            self.weight = self.weight.t()?.contiguous()?;
            self.conv1d = false;
        }
        Ok(())
    }

    /// Packs the weight (and bias) for the inference GEMM at `precision`, which `forward` then
    /// runs: for generation only (no gradients flow through it). An adapter must be merged first.
    pub fn pack(&mut self, precision: Precision) -> Result<()> {
        if self.lora.is_some() {
            bail!("{}: merge the LoRA adapter before packing the weight", self.name);
        }
        self.to_linear_layout()?;
        self.packed = Some(Arc::new(PackedLinear::from_weight(&self.weight, self.bias.as_ref(), precision)?));
        Ok(())
    }

    /// Cuts the base weights out of the autograd graph (LoRA training: base frozen).
    pub fn freeze(&mut self) {
        self.weight = self.weight.detach();
        self.bias = self.bias.as_ref().map(|b| b.detach());
    }
}
