// candidate for crates/nn
//! Fused softmax cross-entropy for CPU training.
//!
//! With a 32k vocabulary the logits of one batch (8 × 256 tokens) hold 65M floats; composing
//! `log_softmax` + `gather` from primitives makes about ten passes over them, each allocating a
//! tensor that lives until backward. This op makes one pass forward and one backward (rows split
//! over threads), and keeps nothing but the logits.

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Mean cross-entropy of `logits` `[n, vocab]` (f32) against `targets` `[n]` (u32), with a
/// backward pass. Other devices/dtypes fall back to candle-nn's composed version.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !logits.device().is_cpu() || logits.dtype() != candle_core::DType::F32 {
        return Ok(candle_nn::loss::cross_entropy(logits, targets)?);
    }
    let targets: Vec<u32> = targets.to_vec1()?;
    Ok(logits.contiguous()?.apply_op1(CrossEntropy { targets })?)
}

struct CrossEntropy {
    targets: Vec<u32>,
}

fn rows<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<(&'a [f32], usize, usize)> {
    let (n, v) = l.shape().dims2()?;
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("cross_entropy: f32 logits expected"),
    };
    let data = match l.contiguous_offsets() {
        Some((a, b)) => &data[a..b],
        None => candle_core::bail!("cross_entropy: contiguous logits expected"),
    };
    Ok((data, n, v))
}

/// `log Σ exp(row)` with the max subtracted first.
fn logsumexp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (data, n, v) = rows(s, l)?;
        if self.targets.len() != n {
            candle_core::bail!("cross_entropy: {} targets for {n} rows", self.targets.len());
        }
        // Rows in parallel, summed in row order: a parallel `sum` adds in a scheduling-dependent order.
        let losses: Vec<f64> = data.par_chunks(v).zip(self.targets.par_iter()).map(|(row, &t)| (logsumexp(row) - row[t as usize]) as f64).collect();
        let total: f64 = losses.iter().sum();
        Ok((CpuStorage::F32(vec![(total / n as f64) as f32]), Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = grad_res.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        let (n, _) = arg.dims2()?;
        let grad = arg.apply_op1_no_bwd(&CrossEntropyGrad { targets: &self.targets, scale: g / n as f32 })?;
        Ok(Some(grad))
    }
}

/// `scale · (softmax(row) − onehot(target))`, row by row.
struct CrossEntropyGrad<'a> {
    targets: &'a [u32],
    scale: f32,
}

impl CustomOp1 for CrossEntropyGrad<'_> {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (data, n, v) = rows(s, l)?;
        let mut out = vec![0f32; n * v];
        out.par_chunks_mut(v).zip(data.par_chunks(v)).zip(self.targets.par_iter()).for_each(|((o, row), &t)| {
            let lse = logsumexp(row);
            for (o, &x) in o.iter_mut().zip(row) {
                *o = (x - lse).exp() * self.scale;
            }
            o[t as usize] -= self.scale;
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_nn_value_and_gradient() {
        let data: Vec<f32> = (0..3 * 5).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let x = Var::from_vec(data, (3, 5), &Device::Cpu).unwrap();
        let t = Tensor::new(&[1u32, 4, 0], &Device::Cpu).unwrap();
        let a = cross_entropy(x.as_tensor(), &t).unwrap();
        let b = candle_nn::loss::cross_entropy(x.as_tensor(), &t).unwrap();
        let (va, vb) = (a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
        assert!((va - vb).abs() < 1e-6, "{va} vs {vb}");
        let ga: Vec<f32> = (a * 2.0).unwrap().backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let gb: Vec<f32> = (b * 2.0).unwrap().backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (p, q) in ga.iter().zip(&gb) {
            assert!((p - q).abs() < 1e-6, "{ga:?} vs {gb:?}");
        }
    }
}
