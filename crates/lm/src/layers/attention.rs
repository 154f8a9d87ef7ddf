// candidate for crates/nn
//! Causal (grouped-query) attention and the KV cache used by generation.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use nn::Mode;

/// Large negative score for masked keys: finite, so a row with every key masked (a padding
/// query) gives no NaN, and `exp` of it underflows to exactly 0, so a masked key has no effect.
pub(crate) const MASKED: f32 = -1e9;

/// Additive bias `[batch, 1, len, past + len]`: query `i` of row `b` (at cache position
/// `past + i`) may see key `j` iff `pad[b] <= j <= past + i`. `pad[b]` counts the left padding of
/// row `b` (0 for training). Without padding the batch dimension is 1 (it broadcasts).
pub fn causal_bias(pad: &[usize], past: usize, len: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let total = past + len;
    let rows: Vec<usize> = if pad.iter().all(|&p| p == 0) { vec![0] } else { pad.to_vec() };
    let mut data = Vec::with_capacity(rows.len() * len * total);
    for &p in &rows {
        for i in 0..len {
            for j in 0..total {
                data.push(if j >= p && j <= past + i { 0.0 } else { MASKED });
            }
        }
    }
    Ok(Tensor::from_vec(data, (rows.len(), 1, len, total), device)?.to_dtype(dtype)?)
}

/// `softmax(q kᵀ / sqrt(d) + bias) v`, grouped-query aware: `nn`'s fused attention.
///
/// `q`: `[batch, heads, len, head_dim]`; `k`, `v`: `[batch, kv_heads, keys, head_dim]` (may be
/// strided views of a cache); `bias`: `[batch or 1, 1, len, keys]`. Query head `h` uses key head
/// `h / (heads / kv_heads)`, as HF's `repeat_kv`. Returns `[batch, len, heads * head_dim]`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, attn_dropout: f64, mode: &mut Mode) -> Result<Tensor> {
    let d = q.dim(3)?;
    nn::attention::attention(q, k, v, bias, 1.0 / (d as f64).sqrt(), attn_dropout, mode)
}

/// Keys and values of one layer, preallocated to the maximum length: each step writes its new
/// columns in place (no re-copy of the whole cache per token).
#[derive(Clone)]
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
}

/// Per-layer key/value buffers `[batch, kv_heads, max_len, head_dim]` and the filled length.
/// A clone shares the buffers until [`KvCache::select_rows`] gives it its own.
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    pub fn new(layers: usize, batch: usize, kv_heads: usize, max_len: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        let layers = (0..layers)
            .map(|_| {
                Ok(LayerCache {
                    k: Tensor::zeros((batch, kv_heads, max_len, head_dim), dtype, device)?,
                    v: Tensor::zeros((batch, kv_heads, max_len, head_dim), dtype, device)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(KvCache { layers, len: 0, max_len })
    }

    /// Positions already filled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Writes `k`, `v` (`[batch, kv_heads, new, head_dim]`) of `layer` after the filled part and
    /// returns views of all keys and values so far. Call [`KvCache::advance`] once all layers ran.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if self.len + t > self.max_len {
            bail!("KV cache full: {} + {t} > {}", self.len, self.max_len);
        }
        let c = &self.layers[layer];
        c.k.slice_set(&k.contiguous()?, 2, self.len)?;
        c.v.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((c.k.narrow(2, 0, self.len + t)?, c.v.narrow(2, 0, self.len + t)?))
    }

    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Keeps only the batch rows `rows` (u32 indices), e.g. dropping finished sequences.
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for c in &mut self.layers {
            c.k = c.k.index_select(rows, 0)?;
            c.v = c.v.index_select(rows, 0)?;
        }
        Ok(())
    }
}
