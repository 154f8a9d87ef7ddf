// candidate for crates/nn
//! Rotary position embeddings in the "rotate half" layout of HF Llama (`rotate_half`: the first
//! and second halves of each head are the two coordinates of each rotated pair).

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use nn::Mode;

/// Cos/sin tables `[max_positions, head_dim / 2]`.
#[derive(Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub fn new(head_dim: usize, max_positions: usize, theta: f64, dtype: DType, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        // Frequencies in f32 as HF computes them (`1 / theta^(2i/d)` then outer product in f32).
        let inv: Vec<f32> = (0..half).map(|i| 1.0 / (theta.powf(2.0 * i as f64 / head_dim as f64)) as f32).collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(Rotary {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?.to_dtype(dtype)?,
        })
    }

    /// Cos and sin rows `[batch, len, head_dim/2]` for position ids `[batch, len]` (u32).
    pub fn tables(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dim(1)?;
        Ok((self.cos.index_select(&flat, 0)?.reshape((b, t, half))?, self.sin.index_select(&flat, 0)?.reshape((b, t, half))?))
    }

    /// Rotates `x` `[batch, heads, len, head_dim]` by the tables of [`Rotary::tables`]. The fused
    /// kernel has no backward, so any `x` that carries gradients (training, or an eval-mode pass
    /// over trainable weights) takes the differentiable path.
    pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: &Mode) -> Result<Tensor> {
        if mode.is_train() || x.track_op() {
            rope_reference(x, cos, sin)
        } else {
            Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos.contiguous()?, &sin.contiguous()?)?)
        }
    }
}

/// Rotary embedding from differentiable primitives (candle-nn's `rope` has no backward).
pub fn rope_reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let half = d / 2;
    let cos = cos.unsqueeze(1)?;
    let sin = sin.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let b = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}
