//! A language model's output layer and its mean cross-entropy as one op, a block of rows at a time.
//!
//! Materialised, a batch of 8 × 256 tokens over Gemma-3's 262,144-word vocabulary holds 2.1 GB of
//! logits until backward and 2.1 GB of their gradient, and the softmax takes three `exp` per logit
//! (loss, then log-sum-exp and softmax again in backward). Here each block's logits live in one
//! reused buffer; the gradients with respect to the input (and the weight, where it trains) are
//! made in the forward pass, while the block is at hand, so backward only scales them by the
//! loss's upstream gradient. Each logit takes one `exp` (two under a soft cap, with gradients).

use anyhow::{bail, Result};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

use crate::fused::{exp_f32, gemm_raw, par_for};

/// Bytes of logits one block may hold: 256 rows of a 262k vocabulary. Larger blocks re-read the
/// weight less often (once per block for the logits, once for the input's gradient).
const BLOCK_BYTES: usize = 256 << 20;

/// Whether [`linear_cross_entropy`] runs on `x` and `weight` (CPU, f32); otherwise compose
/// the output layer and a cross-entropy.
pub fn usable(x: &Tensor, weight: &Tensor) -> bool {
    x.device().is_cpu() && weight.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 && x.rank() == 2 && weight.rank() == 2
}

/// Mean over rows of `−log softmax(z)[target]`, `z = x Wᵀ` (`x` `[n, hidden]`, `weight`
/// `[vocab, hidden]`), with `z` replaced by `cap · tanh(z / cap)` where `softcap` is set (Gemma 2's
/// final soft cap). With `grads`, gradients flow to `x` and to `weight` where they track them;
/// without, the op is outside the autograd graph.
pub fn linear_cross_entropy(x: &Tensor, weight: &Tensor, targets: &[u32], softcap: Option<f64>, grads: bool) -> Result<Tensor> {
    let op = checked_op(x, weight, targets, softcap, grads)?;
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    Ok(if op.need_dx || op.need_dw { x.apply_op2(&w, op)? } else { x.apply_op2_no_bwd(&w, &op)? })
}

fn checked_op(x: &Tensor, weight: &Tensor, targets: &[u32], softcap: Option<f64>, grads: bool) -> Result<LinearCe> {
    if !usable(x, weight) {
        bail!("linear_cross_entropy: CPU f32 x [n, hidden] and weight [vocab, hidden] expected");
    }
    let (n, h) = x.dims2()?;
    let (v, wh) = weight.dims2()?;
    if wh != h || targets.len() != n || n == 0 {
        bail!("linear_cross_entropy: x {:?}, weight {:?}, {} targets", x.dims(), weight.dims(), targets.len());
    }
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= v) {
        bail!("linear_cross_entropy: target {t} outside a vocabulary of {v}");
    }
    Ok(LinearCe {
        targets: targets.to_vec(),
        softcap: softcap.map(|c| c as f32),
        need_dx: grads && x.track_op(),
        need_dw: grads && weight.track_op(),
        grads: Mutex::new(None),
    })
}

/// Each row's `−log softmax(z)[target]` (nats), as [`linear_cross_entropy`] without gradients: the
/// per-document likelihoods of an audit, without the rows' logits held whole.
pub fn linear_row_nlls(x: &Tensor, weight: &Tensor, targets: &[u32], softcap: Option<f64>) -> Result<Vec<f64>> {
    let op = checked_op(x, weight, targets, softcap, false)?;
    let (n, h) = x.dims2()?;
    let v = weight.dim(0)?;
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let (candle_core::Storage::Cpu(xs), candle_core::Storage::Cpu(ws)) = (&*xs, &*ws) else { bail!("linear_row_nlls: CPU tensors expected") };
    Ok(op.run(f32_slice(xs, xl)?, f32_slice(ws, wl)?, n, h, v)?)
}

/// Gradients of the summed loss made in the forward pass: with respect to the input, and to the
/// weight, each where needed.
type Grads = (Option<Vec<f32>>, Option<Vec<f32>>);

struct LinearCe {
    targets: Vec<u32>,
    softcap: Option<f32>,
    need_dx: bool,
    need_dw: bool,
    /// `(d Σ loss / dx, d Σ loss / dW)` from the forward pass, for backward to scale.
    grads: Mutex<Option<Grads>>,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else { candle_core::bail!("linear_cross_entropy: f32 expected") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => candle_core::bail!("linear_cross_entropy: contiguous operands expected"),
    }
}

/// One row of logits `z` in, its loss out; with `grad`, the row becomes `d loss / dz`:
/// `softmax − onehot`, times `1 − tanh²` under a soft cap.
fn row_loss(z: &mut [f32], t: usize, cap: Option<f32>, grad: bool) -> f64 {
    if let Some(c) = cap {
        z.iter_mut().for_each(|v| *v = c * (*v / c).tanh());
    }
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let target = z[t];
    // Without a cap the softmax is the kept exponentials over their sum: one `exp` a logit.
    let keep = grad && cap.is_none();
    let sum = sum_exp(z, max, keep);
    let lse = max as f64 + (sum as f64).ln();
    if grad {
        match cap {
            None => {
                let inv = 1.0 / sum;
                z.iter_mut().for_each(|v| *v *= inv);
                z[t] -= 1.0;
            }
            Some(c) => {
                let lse = lse as f32;
                for (j, v) in z.iter_mut().enumerate() {
                    let tanh = *v / c;
                    let p = exp_f32(*v - lse) - if j == t { 1.0 } else { 0.0 };
                    *v = p * (1.0 - tanh * tanh);
                }
            }
        }
    }
    lse - target as f64
}

/// `Σ exp(z − max)`, in 16 lanes so that it vectorises; with `keep`, each `z` becomes its
/// exponential.
fn sum_exp(z: &mut [f32], max: f32, keep: bool) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = z.chunks_exact_mut(16);
    for ch in &mut chunks {
        for (a, v) in acc.iter_mut().zip(ch.iter_mut()) {
            let e = exp_f32(*v - max);
            if keep {
                *v = e;
            }
            *a += e;
        }
    }
    let mut rest = 0f32;
    for v in chunks.into_remainder() {
        let e = exp_f32(*v - max);
        if keep {
            *v = e;
        }
        rest += e;
    }
    acc.iter().sum::<f32>() + rest
}

impl LinearCe {
    /// Each row's loss, in row order; with gradients wanted, they are kept for backward.
    fn run(&self, x: &[f32], w: &[f32], n: usize, h: usize, v: usize) -> candle_core::Result<Vec<f64>> {
        let grad = self.need_dx || self.need_dw;
        let block = (BLOCK_BYTES / 4 / v).clamp(1, n);
        let mut buf = vec![0f32; block * v];
        let mut dx = self.need_dx.then(|| vec![0f32; n * h]);
        let mut dw = self.need_dw.then(|| vec![0f32; v * h]);
        let mut losses = Vec::with_capacity(n);
        for r0 in (0..n).step_by(block) {
            let c = block.min(n - r0);
            let z = &mut buf[..c * v];
            // SAFETY: every operand lies inside its slice with the strides given.
            unsafe {
                // z [c, v] = x[r0..] [c, h] · Wᵀ [h, v]
                gemm_raw(c, v, h, z.as_mut_ptr(), (v, 1), false, x[r0 * h..].as_ptr(), (h, 1), w.as_ptr(), (1, h), 1.0, par_for(2 * c * v * h));
            }
            // Rows in parallel, kept in row order: the mean is summed in that order.
            let part: Vec<f64> = z.par_chunks_mut(v).zip(self.targets[r0..r0 + c].par_iter()).map(|(row, &t)| row_loss(row, t as usize, self.softcap, grad)).collect();
            losses.extend(part);
            unsafe {
                if let Some(dx) = dx.as_mut() {
                    // dx[r0..] [c, h] = G [c, v] · W [v, h]
                    gemm_raw(c, h, v, dx[r0 * h..].as_mut_ptr(), (h, 1), false, z.as_ptr(), (v, 1), w.as_ptr(), (h, 1), 1.0, par_for(2 * c * v * h));
                }
                if let Some(dw) = dw.as_mut() {
                    // dW [v, h] += Gᵀ [v, c] · x[r0..] [c, h]
                    gemm_raw(v, h, c, dw.as_mut_ptr(), (h, 1), true, z.as_ptr(), (1, v), x[r0 * h..].as_ptr(), (h, 1), 1.0, par_for(2 * c * v * h));
                }
            }
        }
        if grad {
            *self.grads.lock().map_err(|_| candle_core::Error::Msg("linear_cross_entropy: poisoned".into()))? = Some((dx, dw));
        }
        Ok(losses)
    }
}

impl CustomOp2 for LinearCe {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (n, h) = l1.shape().dims2()?;
        let v = l2.shape().dims2()?.0;
        let losses = self.run(x, w, n, h, v)?;
        let mean = losses.iter().sum::<f64>() / n as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let taken = self.grads.lock().map_err(|_| candle_core::Error::Msg("linear_cross_entropy: poisoned".into()))?.take();
        let Some((dx, dw)) = taken else { candle_core::bail!("linear_cross_entropy: backward ran twice, or after a forward without gradients") };
        let scale = grad_res.to_dtype(DType::F64)?.to_scalar::<f64>()? / x.dim(0)? as f64;
        let dx = dx.map(|d| Tensor::from_vec(d, x.shape(), x.device())?.affine(scale, 0.0)).transpose()?;
        let dw = dw.map(|d| Tensor::from_vec(d, w.shape(), w.device())?.affine(scale, 0.0)).transpose()?;
        Ok((dx, dw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// `log_softmax(x Wᵀ)`, under `cap · tanh(· / cap)` where a soft cap is set, from candle primitives.
    fn composed_log_softmax(x: &Tensor, w: &Tensor, cap: Option<f64>) -> Tensor {
        let mut z = x.matmul(&w.t().unwrap()).unwrap();
        if let Some(c) = cap {
            z = ((z / c).unwrap().tanh().unwrap() * c).unwrap();
        }
        candle_nn::ops::log_softmax(&z, D::Minus1).unwrap()
    }

    /// The op (f32) against the same loss composed from candle primitives in f64: value, and the
    /// gradients of both operands, with and without a soft cap.
    fn check(n: usize, v: usize, h: usize, cap: Option<f64>) {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (0..n * h).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let ws: Vec<f32> = (0..v * h).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        let targets: Vec<u32> = (0..n).map(|i| (i * 7 % v) as u32).collect();
        let (x, w) = (Var::from_vec(xs, (n, h), &dev).unwrap(), Var::from_vec(ws, (v, h), &dev).unwrap());
        let fused = linear_cross_entropy(x.as_tensor(), w.as_tensor(), &targets, cap, true).unwrap();
        let x64 = Var::from_tensor(&x.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let w64 = Var::from_tensor(&w.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let logp = composed_log_softmax(x64.as_tensor(), w64.as_tensor(), cap);
        let t = Tensor::new(targets.as_slice(), &dev).unwrap();
        let plain = (logp.gather(&t.unsqueeze(1).unwrap(), 1).unwrap().mean_all().unwrap() * -1.0).unwrap();
        let (a, b) = (fused.to_scalar::<f32>().unwrap() as f64, plain.to_scalar::<f64>().unwrap());
        assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "loss {a} vs {b}");
        let ga = (fused * 3.0).unwrap().backward().unwrap();
        let gb = (plain * 3.0).unwrap().backward().unwrap();
        for (name, var, var64) in [("x", &x, &x64), ("w", &w, &w64)] {
            let p: Vec<f32> = ga.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let q: Vec<f64> = gb.get(var64.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let scale = q.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (&p, &q) in p.iter().zip(&q) {
                assert!((p as f64 - q).abs() <= 1e-4 * scale, "gradient of {name}: {p} vs {q} (largest {scale})");
            }
        }
    }

    #[test]
    fn matches_the_composed_loss_and_its_gradients() {
        check(5, 7, 3, None);
        check(5, 7, 3, Some(2.0));
    }

    #[test]
    fn row_nlls_are_each_rows_loss() {
        let dev = Device::Cpu;
        // 600 rows over 120,000 words: blocks of 559 rows, so two blocks.
        let (n, v, h) = (600, 120_000, 3);
        let xs: Vec<f32> = (0..n * h).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let ws: Vec<f32> = (0..v * h).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        let targets: Vec<u32> = (0..n).map(|i| (i * 7919 % v) as u32).collect();
        let (x, w) = (Tensor::from_vec(xs, (n, h), &dev).unwrap(), Tensor::from_vec(ws, (v, h), &dev).unwrap());
        for cap in [None, Some(2.0)] {
            let got = linear_row_nlls(&x, &w, &targets, cap).unwrap();
            let logp = composed_log_softmax(&x.to_dtype(DType::F64).unwrap(), &w.to_dtype(DType::F64).unwrap(), cap);
            let t = Tensor::new(targets.as_slice(), &dev).unwrap();
            let want: Vec<f64> = logp.gather(&t.unsqueeze(1).unwrap(), 1).unwrap().squeeze(1).unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), n);
            for (g, w) in got.iter().zip(&want) {
                assert!((g + w).abs() < 1e-4 * w.abs().max(1.0), "{g} vs {}", -w);
            }
            let mean = linear_cross_entropy(&x, &w, &targets, cap, false).unwrap().to_scalar::<f32>().unwrap() as f64;
            assert!((mean - got.iter().sum::<f64>() / n as f64).abs() < 1e-5 * mean.abs().max(1.0));
        }
    }

    #[test]
    fn blocks_of_rows_give_the_same_as_one() {
        // 1,100 rows over a vocabulary of 70,000: blocks of 958 rows, so two blocks.
        check(1100, 70_000, 2, None);
    }

    #[test]
    fn without_gradients_it_is_outside_the_graph_and_backward_is_refused_twice() {
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], (2, 2), &dev).unwrap();
        let w = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &dev).unwrap();
        let l = linear_cross_entropy(x.as_tensor(), &w, &[0, 2], None, false).unwrap();
        assert!(!l.track_op());
        let l = linear_cross_entropy(x.as_tensor(), &w, &[0, 2], None, true).unwrap();
        assert!(l.track_op());
        let g = l.backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some() && g.get(&w).is_none());
        assert!(linear_cross_entropy(x.as_tensor(), &w, &[0, 3], None, true).is_err(), "a target outside the vocabulary");
    }
}
