// candidate for crates/nn
//! Root-mean-square layer norm (Llama, Mistral, Qwen2): `x / sqrt(mean(x²) + eps) * weight`.

use anyhow::Result;
use candle_core::{Tensor, D};
use nn::{Init, Mode, ParamBuilder};

#[derive(Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(pb: &ParamBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: pb.get(&[dim], "weight", Init::Ones)?, eps })
    }

    /// candle-nn's fused `rms_norm` has no backward, so training composes primitives.
    pub fn forward(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        if mode.is_train() {
            rms_norm_reference(x, &self.weight, self.eps)
        } else {
            Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)?)
        }
    }
}

/// RMSNorm from differentiable primitives.
pub fn rms_norm_reference(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)?)
}
