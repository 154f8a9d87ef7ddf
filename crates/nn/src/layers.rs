//! Trainable layers built only from candle primitives that have a backward pass.
//!
//! candle-nn's fused `layer_norm`/`rms_norm` ops have no backward: gradients silently stop there.
//! Everything here is differentiable end to end; the tests in `tests/gradients.rs` check it.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, D};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::params::{Init, ParamBuilder};

/// The random stream used for dropout (and anything else stochastic in a forward pass).
pub type Rng = ChaCha8Rng;

/// Whether a forward pass trains (dropout on, drawing masks from the given seeded stream) or
/// evaluates (dropout off, deterministic).
pub enum Mode<'a> {
    Eval,
    Train(&'a mut Rng),
}

impl Mode<'_> {
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by `1/(1-p)`.
/// The mask comes from our seeded rng, not the device RNG, so training is reproducible.
pub fn dropout(x: &Tensor, p: f64, mode: &mut Mode) -> Result<Tensor> {
    let Mode::Train(rng) = mode else { return Ok(x.clone()) };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return Ok(x.zeros_like()?);
    }
    // One draw from the stream seeds the whole mask (generated in parallel chunks, and again
    // for backward), so the stream advances the same whatever the tensor's size.
    crate::fused::dropout_seeded(x, p, rng.random::<u64>())
}

/// `y = x W^T + b`, weight `[out, in]` as in PyTorch/HF.
#[derive(Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(pb: &ParamBuilder, in_dim: usize, out_dim: usize, bias: bool, std: f64) -> Result<Self> {
        let weight = pb.get(&[out_dim, in_dim], "weight", Init::Normal(std))?;
        let bias = if bias { Some(pb.get(&[out_dim], "bias", Init::Zeros)?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // One GEMM over all rows with the bias fused in (see `fused::linear`).
        crate::fused::linear(x, &self.weight, self.bias.as_ref(), false)
    }
}

/// A lookup table `[num, dim]`.
#[derive(Clone)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(pb: &ParamBuilder, num: usize, dim: usize, std: f64) -> Result<Self> {
        Ok(Embedding { weight: pb.get(&[num, dim], "weight", Init::Normal(std))? })
    }

    /// `ids` of any shape (u32) → that shape + `[dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut dims = ids.dims().to_vec();
        dims.push(self.weight.dim(1)?);
        Ok(self.weight.index_select(&ids.flatten_all()?, 0)?.reshape(dims)?)
    }
}

/// Layer normalisation over the last dimension, from differentiable primitives.
#[derive(Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(pb: &ParamBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm { weight: pb.get(&[dim], "weight", Init::Ones)?, bias: pb.get(&[dim], "bias", Init::Zeros)?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::fused::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Reference layer norm from primitives (used by tests to check the fused op).
pub fn layer_norm_reference(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(xn.broadcast_mul(weight)?.broadcast_add(bias)?)
}

/// Root-mean-square layer norm (Llama, Mistral, Qwen2): `x / sqrt(mean(x²) + eps) * weight`.
#[derive(Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(pb: &ParamBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: pb.get(&[dim], "weight", Init::Ones)?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::fused::rms_norm(x, &self.weight, self.eps)
    }
}

/// Reference RMS norm from primitives (the fallback off the CPU; tests check the fused op).
pub fn rms_norm_reference(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)?)
}

/// Activation functions by their HF `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu` in HF: the exact erf form.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn from_hf(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_python" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => bail!("unsupported activation {other:?}"),
        })
    }

    /// For the GELUs, whether it is the tanh form (what [`crate::fused::linear_gelu`] takes).
    pub fn gelu_tanh(&self) -> Option<bool> {
        match self {
            Activation::Gelu => Some(false),
            Activation::GeluTanh => Some(true),
            Activation::Relu | Activation::Silu => None,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => crate::fused::gelu_erf(x)?,
            Activation::GeluTanh => crate::fused::gelu_tanh(x)?,
            Activation::Relu => x.relu()?,
            Activation::Silu => x.silu()?,
        })
    }
}

/// Softmax over the last dimension with a backward pass.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    crate::fused::softmax_last_dim(x)
}

/// Additive attention bias `[batch, 1, 1, len]` from a `[batch, len]` mask of 1 (keep) / 0 (pad):
/// 0 where kept, a large negative number where padded, so softmax gives padding no weight.
pub fn attention_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, l) = mask.dims2()?;
    let m = mask.to_dtype(dtype)?;
    let bias = ((m - 1.0)? * 1e9)?;
    Ok(bias.reshape((b, 1, 1, l))?)
}
