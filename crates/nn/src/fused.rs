//! Fused CPU kernels, with their own backward pass, for the element-wise hot spots of a
//! transformer: softmax over the last dimension, layer norm and exact (erf) GELU.
//!
//! Built from candle primitives these take 5–15 tensor ops each way (each a full pass over memory
//! and an allocation); fused they take one pass forward and one backward, parallel over rows.
//! Other devices and dtypes fall back to the primitive compositions, which have backward too.

use anyhow::Result;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, WithDType, D};
use rayon::prelude::*;

/// Floating types the kernels run on.
pub(crate) trait Float: WithDType + Send + Sync + PartialOrd + 'static {
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    fn erf(self) -> Self;
    fn tanh(self) -> Self;
}

/// `e^x` in f32 without a libm call: `2^n · e^r` with `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2`,
/// and Cephes' degree-6 polynomial for `e^r` (relative error below 3e-7, tested). Inlined and
/// branch-free, it is several times faster than `expf`, which dominated softmax, GELU and
/// nucleus sampling. Saturates to 0 below −87.3 (as `expf` underflows) and to `e^88` above 88.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n · LN2_HI` is exact for |n| < 2^10.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // Below the clamp the result is exactly 0, not a subnormal: masked attention scores land
    // here, and subnormal probabilities make the matrix products that read them many times
    // slower on x86. No branch, so loops over it vectorise (a select); `clamp` keeps a NaN.
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    // 2^n from the integer the rounding left in the low mantissa bits of `shifted` (its bits
    // minus ROUND's are n, |n| ≤ 127): integer operations only. `n as i32`, a saturating cast,
    // compiled to a compare and two conditional moves per lane and kept loops over this scalar.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let e = y * f32::from_bits(n_bits << 23);
    if underflow {
        0.0
    } else {
        e
    }
}

impl Float for f32 {
    fn exp(self) -> Self {
        exp_f32(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    /// Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, about f32's resolution): one
    /// `exp` and a polynomial, several times faster than libm's `erff`, which dominated GELU.
    fn erf(self) -> Self {
        let x = self.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * x);
        let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
        let y = 1.0 - poly * exp_f32(-x * x);
        y.copysign(self)
    }
    /// `1 − 2 / (e^{2x} + 1)`: one `exp`, saturating correctly at ±1.
    fn tanh(self) -> Self {
        1.0 - 2.0 / (exp_f32(2.0 * self) + 1.0)
    }
}

impl Float for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn erf(self) -> Self {
        candle_core::cpu::erf::erf_f64(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

/// A raw pointer that may cross threads: every task writes a disjoint part of the buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so closures capture the wrapper (Send) and not the raw pointer field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Rows per rayon task: big enough that scheduling costs nothing next to the work.
fn rows_per_task(n: usize) -> usize {
    (16384 / n.max(1)).max(1)
}

fn contiguous<'a, T: WithDType>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fused op on a non-contiguous tensor"),
    }
}

fn usable(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

// ---------------------------------------------------------------- softmax

struct Softmax;
struct SoftmaxBwd;

/// Softmax of one row, in place (max subtracted first).
pub(crate) fn softmax_in_place<T: Float>(row: &mut [T]) {
    let mut max = row[0];
    for &v in row.iter() {
        if v > max {
            max = v;
        }
    }
    // The exponentials and the sum in separate loops, the sum over 8 partial sums: a running
    // sum in the same loop serialises it (floating-point addition is not reassociated).
    for v in row.iter_mut() {
        *v = (*v - max).exp();
    }
    let mut part = [T::zero(); 8];
    let chunks = row.chunks_exact(8);
    let mut sum = chunks.remainder().iter().fold(T::zero(), |a, &b| a + b);
    for c in chunks {
        for (p, &v) in part.iter_mut().zip(c) {
            *p += v;
        }
    }
    for p in part {
        sum += p;
    }
    let inv = T::one() / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

fn softmax_rows<T: Float>(x: &[T], n: usize) -> Vec<T> {
    let mut out = x.to_vec();
    out.par_chunks_mut(n * rows_per_task(n)).for_each(|o| o.chunks_mut(n).for_each(softmax_in_place));
    out
}

/// `dx = y ⊙ (g − Σ g⊙y)` per row.
fn softmax_bwd_rows<T: Float>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c).zip(y.par_chunks(c).zip(g.par_chunks(c))).for_each(|(o, (y, g))| {
        for ((o, y), g) in o.chunks_mut(n).zip(y.chunks(n)).zip(g.chunks(n)) {
            let mut dot = T::zero();
            for (&a, &b) in y.iter().zip(g) {
                dot += a * b;
            }
            for ((o, &a), &b) in o.iter_mut().zip(y).zip(g) {
                *o = a * (b - dot);
            }
        }
    });
    out
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "nn-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l.dims().last().copied().unwrap_or(1);
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(softmax_rows(contiguous(v, l)?, n)),
            CpuStorage::F64(v) => CpuStorage::F64(softmax_rows(contiguous(v, l)?, n)),
            _ => candle_core::bail!("softmax: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd)?))
    }
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "nn-softmax-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l1.dims().last().copied().unwrap_or(1);
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => CpuStorage::F32(softmax_bwd_rows(contiguous(y, l1)?, contiguous(g, l2)?, n)),
            (CpuStorage::F64(y), CpuStorage::F64(g)) => CpuStorage::F64(softmax_bwd_rows(contiguous(y, l1)?, contiguous(g, l2)?, n)),
            _ => candle_core::bail!("softmax bwd: unsupported dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !usable(x) {
        return Ok(candle_nn::ops::softmax(x, D::Minus1)?);
    }
    Ok(x.contiguous()?.apply_op1(Softmax)?)
}

// ---------------------------------------------------------------- layer norm, RMS norm

/// Layer norm (`y = (x − mean) · rstd · w + b`, BERT, GPT-2) and RMS norm (`y = x · rstd · w`,
/// Llama, Mistral, Qwen2) share their row kernels: RMS norm is layer norm without the mean and
/// the bias, `rstd = 1 / sqrt(mean((x − mean)²) + eps)` with the mean taken as 0.
#[derive(Clone, Copy)]
struct NormOp {
    eps: f64,
    /// Layer norm: subtract the mean (and the op has a bias); RMS norm: neither.
    center: bool,
}

/// The mean (0 without centring) and `rstd` of one row.
fn row_stats<T: Float>(x: &[T], inv_n: T, eps: T, center: bool) -> (T, T) {
    let mut mean = T::zero();
    if center {
        for &v in x {
            mean += v;
        }
        mean *= inv_n;
    }
    let mut var = T::zero();
    for &v in x {
        var += (v - mean) * (v - mean);
    }
    (mean, T::one() / (var * inv_n + eps).sqrt())
}

fn norm_fwd_rows<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, n: usize, eps: f64) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    let (eps, inv_n) = (T::from_f64(eps), T::from_f64(1.0 / n as f64));
    out.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(|(o, x)| {
        for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
            let (mean, rstd) = row_stats(x, inv_n, eps, b.is_some());
            match b {
                Some(b) => {
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                }
                None => {
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = x[i] * rstd * w[i];
                    }
                }
            }
        }
    });
    out
}

/// Gradients: `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = g ⊙ w` (without centring,
/// no `mean(ĝ)` term); `dw = Σ g ⊙ x̂` and, with centring, `db = Σ g` over rows.
fn norm_bwd_rows<T: Float>(x: &[T], w: &[T], g: &[T], n: usize, eps: f64, center: bool) -> (Vec<T>, Vec<T>, Option<Vec<T>>) {
    let mut dx = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    let (eps, inv_n) = (T::from_f64(eps), T::from_f64(1.0 / n as f64));
    let partial: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(c)
        .zip(x.par_chunks(c).zip(g.par_chunks(c)))
        .map(|(dx, (x, g))| {
            let mut dw = vec![T::zero(); n];
            let mut db = vec![T::zero(); if center { n } else { 0 }];
            let mut xhat = vec![T::zero(); n];
            for ((dx, x), g) in dx.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(x, inv_n, eps, center);
                let (mut m1, mut m2) = (T::zero(), T::zero());
                for i in 0..n {
                    xhat[i] = (x[i] - mean) * rstd;
                    let gh = g[i] * w[i];
                    m1 += gh;
                    m2 += gh * xhat[i];
                    dw[i] += g[i] * xhat[i];
                }
                for (d, &v) in db.iter_mut().zip(g) {
                    *d += v;
                }
                m1 = if center { m1 * inv_n } else { T::zero() };
                m2 *= inv_n;
                for i in 0..n {
                    dx[i] = rstd * (g[i] * w[i] - m1 - xhat[i] * m2);
                }
            }
            (dw, db)
        })
        .collect();
    let (pw, pb): (Vec<_>, Vec<_>) = partial.into_iter().unzip();
    (dx, add_in_order(pw, n), center.then(|| add_in_order(pb, n)))
}

/// The element-wise sum of per-chunk partial sums (each `n` long), added in chunk order: rayon's
/// `reduce` would add them in whatever tree work stealing made, so the same seed could train
/// different bits under load.
fn add_in_order<T: Float>(partial: Vec<Vec<T>>, n: usize) -> Vec<T> {
    let mut sum = vec![T::zero(); n];
    for p in partial {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    sum
}

impl NormOp {
    /// `(dx, dw, db)`; `db` only with centring.
    fn grads(&self, x: &Tensor, w: &Tensor, g: &Tensor) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
        fn run<T: Float>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64, center: bool) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
            let n = w.elem_count();
            let xv = x.flatten_all()?.to_vec1::<T>()?;
            let wv = w.flatten_all()?.to_vec1::<T>()?;
            let gv = g.flatten_all()?.to_vec1::<T>()?;
            let (dx, dw, db) = norm_bwd_rows(&xv, &wv, &gv, n, eps, center);
            let db = db.map(|db| Tensor::from_vec(db, w.shape(), w.device())).transpose()?;
            Ok((Tensor::from_vec(dx, x.shape(), x.device())?, Tensor::from_vec(dw, w.shape(), w.device())?, db))
        }
        match x.dtype() {
            DType::F32 => run::<f32>(x, w, g, self.eps, self.center),
            DType::F64 => run::<f64>(x, w, g, self.eps, self.center),
            dt => candle_core::bail!("norm bwd: unsupported dtype {dt:?}"),
        }
    }
}

/// Layer norm: `(x, weight, bias)`.
impl candle_core::CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        "nn-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l1.dims().last().copied().unwrap_or(1);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(norm_fwd_rows(contiguous(x, l1)?, contiguous(w, l2)?, Some(contiguous(b, l3)?), n, self.eps))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(norm_fwd_rows(contiguous(x, l1)?, contiguous(w, l2)?, Some(contiguous(b, l3)?), n, self.eps))
            }
            _ => candle_core::bail!("layer norm: unsupported dtypes"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.grads(x, w, grad)?;
        Ok((Some(dx), Some(dw), db))
    }
}

/// RMS norm: `(x, weight)`.
impl CustomOp2 for NormOp {
    fn name(&self) -> &'static str {
        "nn-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l1.dims().last().copied().unwrap_or(1);
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => CpuStorage::F32(norm_fwd_rows(contiguous(x, l1)?, contiguous(w, l2)?, None, n, self.eps)),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => CpuStorage::F64(norm_fwd_rows(contiguous(x, l1)?, contiguous(w, l2)?, None, n, self.eps)),
            _ => candle_core::bail!("rms norm: unsupported dtypes"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, grad)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Layer norm over the last dimension (`weight`, `bias` of that size).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !usable(x) || x.dtype() != weight.dtype() || x.dtype() != bias.dtype() {
        return crate::layers::layer_norm_reference(x, weight, bias, eps);
    }
    Ok(x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, NormOp { eps, center: true })?)
}

/// RMS norm over the last dimension (`weight` of that size), with a backward pass (candle-nn's
/// fused `rms_norm` has none); candle's primitives on other devices and dtypes.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if !usable(x) || x.dtype() != weight.dtype() {
        return crate::layers::rms_norm_reference(x, weight, eps);
    }
    Ok(x.contiguous()?.apply_op2(&weight.contiguous()?, NormOp { eps, center: false })?)
}

// ---------------------------------------------------------------- GELU

/// GELU, exact (`x Φ(x)`, HF `gelu`) or with the tanh approximation (HF `gelu_new`,
/// `gelu_pytorch_tanh`: GPT-2's), and its backward.
#[derive(Clone, Copy)]
struct Gelu {
    tanh: bool,
}

struct GeluBwd(Gelu);

const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `x Φ(x)`, exact (erf) GELU of one value.
#[inline(always)]
pub(crate) fn gelu_erf_one<T: Float>(v: T) -> T {
    T::from_f64(0.5) * v * (T::one() + (v * T::from_f64(SQRT_HALF)).erf())
}

fn gelu_map<T: Float>(x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(16384).zip(x.par_chunks(16384)).for_each(|(o, x)| {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = gelu_erf_one(v);
        }
    });
    out
}

/// `d/dx [x Φ(x)] = Φ(x) + x φ(x)`.
fn gelu_bwd_map<T: Float>(x: &[T], g: &[T]) -> Vec<T> {
    let (h, s) = (T::from_f64(0.5), T::from_f64(SQRT_HALF));
    let inv_sqrt_2pi = T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt());
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(16384).zip(x.par_chunks(16384).zip(g.par_chunks(16384))).for_each(|(o, (x, g))| {
        for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
            let cdf = h * (T::one() + (v * s).erf());
            let pdf = (T::zero() - h * v * v).exp() * inv_sqrt_2pi;
            *o = g * (cdf + v * pdf);
        }
    });
    out
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

/// `½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, tanh-approximated GELU of one value.
#[inline(always)]
pub(crate) fn gelu_tanh_one<T: Float>(v: T) -> T {
    let (h, c, a) = (T::from_f64(0.5), T::from_f64(SQRT_2_OVER_PI), T::from_f64(GELU_CUBIC));
    h * v * (T::one() + (c * (v + a * v * v * v)).tanh())
}

fn gelu_tanh_map<T: Float>(x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(16384).zip(x.par_chunks(16384)).for_each(|(o, x)| {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = gelu_tanh_one(v);
        }
    });
    out
}

/// `d/dx`: `½(1 + t) + ½ x (1 − t²) c (1 + 3a x²)` with `t = tanh(c (x + a x³))`.
fn gelu_tanh_bwd_map<T: Float>(x: &[T], g: &[T]) -> Vec<T> {
    let (h, c, a) = (T::from_f64(0.5), T::from_f64(SQRT_2_OVER_PI), T::from_f64(GELU_CUBIC));
    let a3 = T::from_f64(3.0 * GELU_CUBIC);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(16384).zip(x.par_chunks(16384).zip(g.par_chunks(16384))).for_each(|(o, (x, g))| {
        for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
            let t = (c * (v + a * v * v * v)).tanh();
            *o = g * (h * (T::one() + t) + h * v * (T::one() - t * t) * c * (T::one() + a3 * v * v));
        }
    });
    out
}

impl Gelu {
    fn map<T: Float>(self, x: &[T]) -> Vec<T> {
        if self.tanh {
            gelu_tanh_map(x)
        } else {
            gelu_map(x)
        }
    }

    fn bwd_map<T: Float>(self, x: &[T], g: &[T]) -> Vec<T> {
        if self.tanh {
            gelu_tanh_bwd_map(x, g)
        } else {
            gelu_bwd_map(x, g)
        }
    }
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        if self.tanh {
            "nn-gelu-tanh"
        } else {
            "nn-gelu-erf"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(self.map(contiguous(v, l)?)),
            CpuStorage::F64(v) => CpuStorage::F64(self.map(contiguous(v, l)?)),
            _ => candle_core::bail!("gelu: unsupported dtype"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBwd(*self))?))
    }
}

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        if self.0.tanh {
            "nn-gelu-tanh-bwd"
        } else {
            "nn-gelu-erf-bwd"
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(self.0.bwd_map(contiguous(x, l1)?, contiguous(g, l2)?)),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(self.0.bwd_map(contiguous(x, l1)?, contiguous(g, l2)?)),
            _ => candle_core::bail!("gelu bwd: unsupported dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Exact GELU, `x Φ(x)` (HF `gelu`).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !usable(x) {
        return Ok(x.gelu_erf()?);
    }
    Ok(x.contiguous()?.apply_op1(Gelu { tanh: false })?)
}

/// GELU with the tanh approximation (HF `gelu_new`, `gelu_pytorch_tanh`: GPT-2's activation).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if !usable(x) {
        return Ok(x.gelu()?);
    }
    Ok(x.contiguous()?.apply_op1(Gelu { tanh: true })?)
}

// ---------------------------------------------------------------- linear (GEMM + bias)

/// `y = x M + b` with `M` `[in, out]` given as the weight in either HF layout: `nn.Linear`
/// (`[out, in]`, `M = Wᵀ`) or GPT-2's `Conv1D` (`[in, out]`, `M = W`).
///
/// One op instead of candle's matmul + broadcast add: the bias is the GEMM's initial value, and
/// the backward pass gives `dx`, `dW` (in the weight's own layout, no transposed copy) and `db`
/// (a parallel column sum; candle reduces a broadcast on one thread) from three GEMMs.
struct LinearOp {
    /// The weight is `[in, out]` (Conv1D) rather than `[out, in]`.
    conv1d: bool,
    /// GELU after the product (`Some(tanh)`), for inference only: its backward refuses.
    gelu: Option<bool>,
}

impl LinearOp {
    fn check_no_gelu(&self) -> candle_core::Result<()> {
        if self.gelu.is_some() {
            candle_core::bail!("linear + GELU is an inference op without backward; use linear, then the GELU, where gradients are needed");
        }
        Ok(())
    }
}

/// The strides of `M` (`[in, out]`) for a weight of layout `l`.
fn m_strides(l: &Layout, conv1d: bool) -> (usize, usize) {
    let s = l.stride();
    if conv1d {
        (s[0], s[1])
    } else {
        (s[1], s[0])
    }
}

pub(crate) fn par_for(flops: usize) -> gemm::Parallelism {
    // Below ~1 MFLOP, splitting a GEMM over threads costs more than it gains.
    if flops < (1 << 20) || rayon::current_num_threads() < 2 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// `dst[m×n] (+)= beta · lhs[m×k] · rhs[k×n]`, every operand strided as (row stride, column
/// stride). `accumulate` keeps what `dst` holds.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw<T: 'static + WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: *const T,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const T,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: T,
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        T::one(),
        beta,
        false,
        false,
        false,
        parallelism,
    )
}

/// [`gemm_raw`] with `beta = 1`, split over threads when it is big enough.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided<T: 'static + WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: *const T,
    lhs_strides: (usize, usize),
    rhs: *const T,
    rhs_strides: (usize, usize),
) {
    gemm_raw(m, n, k, dst, dst_strides, accumulate, lhs, lhs_strides, rhs, rhs_strides, T::one(), par_for(2 * m * n * k))
}

/// `x M + b`, then GELU where `gelu` is `Some(tanh)`, applied where the decoding kernel writes
/// its output.
#[allow(clippy::too_many_arguments)]
fn linear_fwd<T: Float>(x: &[T], lx: &Layout, w: &[T], lw: &Layout, b: Option<&[T]>, conv1d: bool, gelu: Option<bool>) -> candle_core::Result<(Vec<T>, Shape)> {
    let x = contiguous(x, lx)?;
    let (rows, inp) = lx.shape().dims2()?;
    let (wr, wc) = lw.shape().dims2()?;
    let out = if conv1d { wc } else { wr };
    if (if conv1d { wr } else { wc }) != inp {
        candle_core::bail!("linear: input width {inp} does not fit weight {:?}", lw.dims());
    }
    let mut y = vec![T::zero(); rows * out];
    let ms = m_strides(lw, conv1d);
    let w = &w[lw.start_offset()..];
    if (few_rows::MIN_ROWS..=few_rows::MAX_ROWS).contains(&rows) && !conv1d && ms == (1, inp) && few_rows::usable::<T>() {
        // Decoding: the weight streamed once, unpacked (see `few_rows`), the bias added on the way out.
        unsafe {
            let xs = std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len());
            let ws = std::slice::from_raw_parts(w.as_ptr() as *const f32, out * inp);
            let bs = b.map(|b| std::slice::from_raw_parts(b.as_ptr() as *const f32, out));
            let ys = std::slice::from_raw_parts_mut(y.as_mut_ptr() as *mut f32, y.len());
            let post = |o: &mut [f32]| match gelu {
                Some(true) => o.iter_mut().for_each(|v| *v = gelu_tanh_one(*v)),
                Some(false) => o.iter_mut().for_each(|v| *v = gelu_erf_one(*v)),
                None => {}
            };
            few_rows::linear(xs, rows, inp, ws, out, bs, ys, &post);
        }
        return Ok((y, Shape::from((rows, out))));
    }
    if let Some(b) = b {
        y.par_chunks_mut(out * rows_per_task(out)).for_each(|c| {
            for r in c.chunks_mut(out) {
                r.copy_from_slice(b);
            }
        });
    }
    unsafe {
        if rows < 64 {
            // Few rows (decoding): compute yᵀ = Mᵀ xᵀ into a row-major [out, rows] buffer, then
            // transpose: the weight is the left operand and the GEMM writes unit-stride rows,
            // 1.4–2.5× faster than x M at 16 rows (`nn`'s `matmul_speed` example).
            let mut yt = vec![T::zero(); out * rows];
            gemm_strided(out, rows, inp, yt.as_mut_ptr(), (rows, 1), false, w.as_ptr(), (ms.1, ms.0), x.as_ptr(), (1, inp));
            y.par_chunks_mut(out).enumerate().for_each(|(r, yr)| {
                for (o, v) in yr.iter_mut().enumerate() {
                    *v += yt[o * rows + r];
                }
            });
        } else {
            gemm_strided(rows, out, inp, y.as_mut_ptr(), (out, 1), b.is_some(), x.as_ptr(), (inp, 1), w.as_ptr(), ms);
        }
    }
    match gelu {
        Some(true) => y = gelu_tanh_map(&y),
        Some(false) => y = gelu_map(&y),
        None => {}
    }
    Ok((y, Shape::from((rows, out))))
}

/// `y = x Wᵀ + b` for the few rows of a decoding step (at most 16), `W` `[out, in]` row-major, f32,
/// on AVX2 + FMA. A GEMM library packs the weight into panels first, which for a weight read
/// once per step (a 32k-vocabulary LM head is 49 MB) triples its memory traffic; here the rows of
/// `x` are transposed once into a 16-wide table that stays in cache, and six weight rows at a time
/// are streamed straight from memory, each element broadcast against that table.
mod few_rows {
    use rayon::prelude::*;

    pub const MAX_ROWS: usize = 16;
    /// Below 8 rows the 16-wide table wastes most of each FMA (at 1 row the kernel ran at 0.6×
    /// the GEMM library's speed), so those take the general path.
    pub const MIN_ROWS: usize = 8;
    /// Weight rows per register block: 6 × 2 accumulators (12 of the 16 ymm registers).
    const MR: usize = 6;
    /// Weight rows per rayon task.
    const TASK: usize = MR * 32;

    pub fn usable<T: 'static>() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// `y[r][o] = Σ_k x[r][k] w[o][k] + b[o]`; `x` `[rows, inp]`, `w` `[out, inp]`, `y` `[rows, out]`.
    /// `post` runs on each finished piece of a row of y (an element-wise activation, while the
    /// piece is in cache).
    #[allow(clippy::too_many_arguments)]
    pub fn linear(x: &[f32], rows: usize, inp: usize, w: &[f32], out: usize, b: Option<&[f32]>, y: &mut [f32], post: &(dyn Fn(&mut [f32]) + Sync)) {
        assert!(rows <= MAX_ROWS && x.len() == rows * inp && w.len() == out * inp && y.len() == rows * out && b.is_none_or(|b| b.len() == out));
        // xt[k][r]: the rows of x side by side, zero-padded to 16.
        let mut xt = vec![0f32; inp * MAX_ROWS];
        for (r, xr) in x.chunks(inp).enumerate() {
            for (k, &v) in xr.iter().enumerate() {
                xt[k * MAX_ROWS + r] = v;
            }
        }
        let y_ptr = crate::fused::SendPtr(y.as_mut_ptr());
        (0..out.div_ceil(TASK)).into_par_iter().for_each(|c| {
            let o0 = c * TASK;
            let n = TASK.min(out - o0);
            // The task's outputs, transposed ([o][r]), stay in L1 until they go out as rows of y:
            // no output-sized buffer and no second pass over one.
            let mut yt = [0f32; TASK * MAX_ROWS];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `usable` checked AVX2 and FMA; the slices have the lengths asserted above.
            unsafe {
                kernel(&xt, inp, &w[o0 * inp..(o0 + n) * inp], n, &mut yt)
            }
            for r in 0..rows {
                // SAFETY: tasks write disjoint column ranges `o0..o0 + n` of each row of y.
                let dst = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(r * out + o0), n) };
                match b {
                    Some(b) => dst.iter_mut().zip(&b[o0..o0 + n]).enumerate().for_each(|(o, (d, &bo))| *d = bo + yt[o * MAX_ROWS + r]),
                    None => dst.iter_mut().enumerate().for_each(|(o, d)| *d = yt[o * MAX_ROWS + r]),
                }
                post(dst);
            }
        });
    }

    /// `yt[o][0..16] = Σ_k w[o][k] · xt[k][0..16]` for the `n` weight rows of `w`: blocks of
    /// `MR` rows, then the rest one at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel(xt: &[f32], inp: usize, w: &[f32], n: usize, yt: &mut [f32]) {
        let mut o = 0;
        while o + MR <= n {
            block::<MR>(xt, inp, w, o, yt);
            o += MR;
        }
        while o < n {
            block::<1>(xt, inp, w, o, yt);
            o += 1;
        }
    }

    /// Weight rows `o..o + R` against all of `xt`, in `2R` accumulators (`R` a constant, so the
    /// row loop unrolls and the accumulators stay in registers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize>(xt: &[f32], inp: usize, w: &[f32], o: usize, yt: &mut [f32]) {
        use std::arch::x86_64::*;
        let xp = xt.as_ptr();
        let wp = w.as_ptr().add(o * inp);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for k in 0..inp {
            let a0 = _mm256_loadu_ps(xp.add(k * MAX_ROWS));
            let a1 = _mm256_loadu_ps(xp.add(k * MAX_ROWS + 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*wp.add(r * inp + k));
                acc[0] = _mm256_fmadd_ps(b, a0, acc[0]);
                acc[1] = _mm256_fmadd_ps(b, a1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let dst = yt.as_mut_ptr().add((o + r) * MAX_ROWS);
            _mm256_storeu_ps(dst, acc[0]);
            _mm256_storeu_ps(dst.add(8), acc[1]);
        }
    }
}

/// Which gradients a backward pass computes: none for an operand outside the graph (a frozen
/// LoRA base weight, an input that needs no gradient), so its GEMM is skipped.
#[derive(Clone, Copy)]
struct Needed {
    dx: bool,
    dw: bool,
    db: bool,
}

/// `(dx, dW, db)` for `y = x M + b`, each only if `need`ed; `g` `[rows, out]` contiguous.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn linear_bwd<T: Float>(x: &[T], lx: &Layout, w: &[T], lw: &Layout, g: &[T], lg: &Layout, conv1d: bool, need: Needed) -> candle_core::Result<(Option<Vec<T>>, Option<Vec<T>>, Option<Vec<T>>)> {
    let x = contiguous(x, lx)?;
    let g = contiguous(g, lg)?;
    let (rows, inp) = lx.shape().dims2()?;
    let out = lg.shape().dims2()?.1;
    let ms = m_strides(lw, conv1d);
    let w = &w[lw.start_offset()..];
    let dx = need.dx.then(|| {
        let mut dx = vec![T::zero(); rows * inp];
        // dx = g Mᵀ
        unsafe { gemm_strided(rows, inp, out, dx.as_mut_ptr(), (inp, 1), false, g.as_ptr(), (out, 1), w.as_ptr(), (ms.1, ms.0)) };
        dx
    });
    let dw = need.dw.then(|| {
        let mut dw = vec![T::zero(); inp * out];
        unsafe {
            if conv1d {
                // dW = dM = xᵀ g  [in, out]
                gemm_strided(inp, out, rows, dw.as_mut_ptr(), (out, 1), false, x.as_ptr(), (1, inp), g.as_ptr(), (out, 1));
            } else {
                // dW = dMᵀ = gᵀ x  [out, in]
                gemm_strided(out, inp, rows, dw.as_mut_ptr(), (inp, 1), false, g.as_ptr(), (1, out), x.as_ptr(), (inp, 1));
            }
        }
        dw
    });
    let db = need.db.then(|| {
        let partial: Vec<Vec<T>> = g
            .par_chunks(out * rows_per_task(out).max(64))
            .map(|c| {
                let mut s = vec![T::zero(); out];
                for r in c.chunks(out) {
                    for (a, &v) in s.iter_mut().zip(r) {
                        *a += v;
                    }
                }
                s
            })
            .collect();
        add_in_order(partial, out)
    });
    Ok((dx, dw, db))
}

impl candle_core::CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "nn-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                let (y, s) = linear_fwd(x, l1, w, l2, None, self.conv1d, self.gelu)?;
                (CpuStorage::F32(y), s)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w)) => {
                let (y, s) = linear_fwd(x, l1, w, l2, None, self.conv1d, self.gelu)?;
                (CpuStorage::F64(y), s)
            }
            _ => candle_core::bail!("linear: unsupported dtypes"),
        })
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        self.check_no_gelu()?;
        let need = Needed { dx: x.track_op(), dw: w.track_op(), db: false };
        let (dx, dw, _) = linear_backward(x, w, grad, self.conv1d, need)?;
        Ok((dx, dw))
    }
}

impl candle_core::CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "nn-linear-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (y, s) = linear_fwd(x, l1, w, l2, Some(contiguous(b, l3)?), self.conv1d, self.gelu)?;
                (CpuStorage::F32(y), s)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (y, s) = linear_fwd(x, l1, w, l2, Some(contiguous(b, l3)?), self.conv1d, self.gelu)?;
                (CpuStorage::F64(y), s)
            }
            _ => candle_core::bail!("linear: unsupported dtypes"),
        })
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.check_no_gelu()?;
        let need = Needed { dx: x.track_op(), dw: w.track_op(), db: b.track_op() };
        let (dx, dw, db) = linear_backward(x, w, grad, self.conv1d, need)?;
        Ok((dx, dw, db.map(|d| d.reshape(b.shape())).transpose()?))
    }
}

#[allow(clippy::type_complexity)]
fn linear_backward(x: &Tensor, w: &Tensor, grad: &Tensor, conv1d: bool, need: Needed) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    use candle_core::Storage;
    let grad = grad.contiguous()?;
    let (sx, lx) = x.storage_and_layout();
    let (sw, lw) = w.storage_and_layout();
    let (sg, lg) = grad.storage_and_layout();
    let dev = x.device();
    let out = lg.shape().dims2()?.1;
    macro_rules! run {
        ($x:expr, $w:expr, $g:expr) => {{
            let (dx, dw, db) = linear_bwd($x, lx, $w, lw, $g, lg, conv1d, need)?;
            // dW was computed in the weight's own (contiguous) layout.
            (
                dx.map(|v| Tensor::from_vec(v, lx.shape(), dev)).transpose()?,
                dw.map(|v| Tensor::from_vec(v, lw.shape(), dev)).transpose()?,
                db.map(|v| Tensor::from_vec(v, out, dev)).transpose()?,
            )
        }};
    }
    Ok(match (&*sx, &*sw, &*sg) {
        (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(w)), Storage::Cpu(CpuStorage::F32(g))) => run!(x, w, g),
        (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(w)), Storage::Cpu(CpuStorage::F64(g))) => run!(x, w, g),
        _ => candle_core::bail!("linear backward: unsupported storage"),
    })
}

/// `x M + b` over the last dimension of `x` (any leading shape), `M` from `weight` as
/// [`LinearOp`] describes; the fused op on CPU f32/f64, candle's matmul elsewhere.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool) -> Result<Tensor> {
    linear_with(x, weight, bias, conv1d, None)
}

/// [`linear`], then GELU where `gelu` is `Some(tanh)` (inside the op on CPU f32/f64).
fn linear_with(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool, gelu: Option<bool>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap();
    let rows = x.elem_count() / inp;
    let out = weight.dim(if conv1d { 1 } else { 0 })?;
    let x2 = x.reshape((rows, inp))?;
    let fused = usable(x) && weight.dtype() == x.dtype() && weight.rank() == 2 && bias.is_none_or(|b| b.dtype() == x.dtype());
    let y = if fused {
        let op = LinearOp { conv1d, gelu };
        match bias {
            Some(b) => x2.contiguous()?.apply_op3(weight, &b.contiguous()?, op)?,
            None => x2.contiguous()?.apply_op2(weight, op)?,
        }
    } else {
        let m = if conv1d { weight.clone() } else { weight.t()? };
        let y = x2.matmul(&m)?;
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        match gelu {
            Some(true) => gelu_tanh(&y)?,
            Some(false) => gelu_erf(&y)?,
            None => y,
        }
    };
    let mut out_dims = dims;
    *out_dims.last_mut().unwrap() = out;
    Ok(y.reshape(out_dims)?)
}

/// `gelu(x M + b)` for inference: the activation is applied where the decoding kernel writes
/// its output, which saves a pass over the activations and an allocation per layer and step.
/// `tanh`: the tanh approximation (GPT-2's `gelu_new`) rather than the exact erf form. The op
/// has no backward; with an input or weight that tracks gradients it is the unfused pair.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv1d: bool, tanh: bool) -> Result<Tensor> {
    if x.track_op() || weight.track_op() || bias.is_some_and(|b| b.track_op()) {
        let y = linear(x, weight, bias, conv1d)?;
        return if tanh { gelu_tanh(&y) } else { gelu_erf(&y) };
    }
    linear_with(x, weight, bias, conv1d, Some(tanh))
}

#[cfg(test)]
mod linear_tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Fused linear against matmul + broadcast add: values and the gradients of x, W and b, both
    /// weight layouts, with and without bias, in the few-rows (decoding) and many-rows paths.
    #[test]
    fn fused_linear_matches_matmul() {
        let dev = Device::Cpu;
        for rows in [3usize, 70] {
            for conv1d in [false, true] {
                for with_bias in [false, true] {
                    let (inp, out) = (5, 7);
                    let x = Var::randn(0f64, 1.0, (2, rows, inp), &dev).unwrap();
                    let w = Var::randn(0f64, 1.0, if conv1d { (inp, out) } else { (out, inp) }, &dev).unwrap();
                    let b = Var::randn(0f64, 1.0, out, &dev).unwrap();
                    let wt = Tensor::randn(0f64, 1.0, (2, rows, out), &dev).unwrap();
                    let bias = with_bias.then(|| b.as_tensor());
                    let fused = linear(&x, &w, bias, conv1d).unwrap();
                    let m = if conv1d { w.as_tensor().clone() } else { w.t().unwrap() };
                    let mut reference = x.broadcast_matmul(&m).unwrap();
                    if with_bias {
                        reference = reference.broadcast_add(&b).unwrap();
                    }
                    assert!(max_diff(&fused, &reference) < 1e-12);
                    let gf = (fused * &wt).unwrap().sum_all().unwrap().backward().unwrap();
                    let gr = (reference * &wt).unwrap().sum_all().unwrap().backward().unwrap();
                    for v in [&x, &w] {
                        assert!(max_diff(gf.get(v).unwrap(), gr.get(v).unwrap()) < 1e-12, "rows {rows} conv1d {conv1d} bias {with_bias}");
                    }
                    if with_bias {
                        assert!(max_diff(gf.get(&b).unwrap(), gr.get(&b).unwrap()) < 1e-12);
                    }
                    // A frozen (detached) weight gets no gradient; the input still does.
                    let frozen = w.as_tensor().detach();
                    let g = (linear(&x, &frozen, None, conv1d).unwrap() * &wt).unwrap().sum_all().unwrap().backward().unwrap();
                    assert!(g.get(&frozen).is_none() && g.get(&x).is_some());
                }
            }
        }
    }

    /// Linear + GELU in one op gives exactly the pair's values, both GELUs, in the decoding
    /// kernel's row range and outside it; with a weight that tracks gradients it is the pair
    /// (which has a backward).
    #[test]
    fn linear_gelu_matches_the_pair() {
        let dev = Device::Cpu;
        for rows in [3usize, 16] {
            for tanh in [false, true] {
                let (inp, out) = (37, 200);
                let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev).unwrap();
                let w = Tensor::randn(0f32, 0.3, (out, inp), &dev).unwrap();
                let b = Tensor::randn(0f32, 1.0, out, &dev).unwrap();
                let pair = linear(&x, &w, Some(&b), false).unwrap();
                let pair = if tanh { gelu_tanh(&pair) } else { gelu_erf(&pair) }.unwrap();
                let fused = linear_gelu(&x, &w, Some(&b), false, tanh).unwrap();
                assert_eq!(fused.to_vec2::<f32>().unwrap(), pair.to_vec2::<f32>().unwrap(), "rows {rows} tanh {tanh}");
            }
        }
        let x = Tensor::randn(0f64, 1.0, (2, 5), &dev).unwrap();
        let w = Var::randn(0f64, 1.0, (4, 5), &dev).unwrap();
        let g = linear_gelu(&x, &w, None, false, true).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&w).is_some());
    }

    /// The f32 decoding kernel (`few_rows`, 1–16 rows, weight row-major) against an f64 product
    /// of the same numbers, on sizes that leave partial register blocks and rayon tasks; and a
    /// transposed weight view, which must take the general path and give the same values.
    #[test]
    fn few_rows_kernel_matches_f64_product() {
        let dev = Device::Cpu;
        for rows in [1usize, 5, 8, 16] {
            for out in [1usize, 6, 7, 200, 389] {
                let inp = 37;
                let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev).unwrap();
                let w = Tensor::randn(0f32, 1.0, (out, inp), &dev).unwrap();
                let b = Tensor::randn(0f32, 1.0, out, &dev).unwrap();
                let fused = linear(&x, &w, Some(&b), false).unwrap().to_dtype(DType::F64).unwrap();
                let (x64, w64, b64) = (x.to_dtype(DType::F64).unwrap(), w.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
                let reference = x64.matmul(&w64.t().unwrap()).unwrap().broadcast_add(&b64).unwrap();
                assert!(max_diff(&fused, &reference) < 1e-4, "rows {rows} out {out}");
                let wt_view = w.t().unwrap().contiguous().unwrap().t().unwrap();
                let general = linear(&x, &wt_view, Some(&b), false).unwrap().to_dtype(DType::F64).unwrap();
                assert!(max_diff(&general, &reference) < 1e-4, "rows {rows} out {out} (view)");
            }
        }
    }
}

// ---------------------------------------------------------------- dropout

/// Elements per dropout chunk; chunk `i` draws its mask from ChaCha stream `i` of the seed, so
/// chunks run in parallel and the mask does not depend on the thread count.
const DROPOUT_CHUNK: usize = 16384;

/// Inverted dropout with its mask regenerated from `seed`: backward is the same op applied to
/// the gradient, and no mask tensor is kept.
struct DropoutOp {
    p: f64,
    seed: u64,
}

/// Fills `out` with dropout keep-scales, 0 with probability `p` and `1/(1-p)` otherwise, from
/// ChaCha stream `stream` of `seed`: one u32 draw per element, so a mask is regenerated exactly.
pub(crate) fn dropout_scales<T: Float>(p: f64, seed: u64, stream: u64, out: &mut [T]) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let threshold = (p * u32::MAX as f64) as u32;
    let keep = T::from_f64(1.0 / (1.0 - p));
    for o in out.iter_mut() {
        *o = if rng.random::<u32>() < threshold { T::zero() } else { keep };
    }
}

impl DropoutOp {
    fn apply<T: Float>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        out.par_chunks_mut(DROPOUT_CHUNK).zip(x.par_chunks(DROPOUT_CHUNK)).enumerate().for_each(|(i, (o, x))| {
            dropout_scales(self.p, self.seed, i as u64, o);
            for (o, &v) in o.iter_mut().zip(x) {
                // A dropped element is 0 whatever its input (also inf or NaN).
                if *o != T::zero() {
                    *o *= v;
                }
            }
        });
        out
    }
}

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "nn-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(self.apply(contiguous(v, l)?)),
            CpuStorage::F64(v) => CpuStorage::F64(self.apply(contiguous(v, l)?)),
            _ => candle_core::bail!("dropout: unsupported dtype"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&DropoutOp { p: self.p, seed: self.seed })?))
    }
}

/// Dropout with probability `p` and mask seed `seed` (`0 < p < 1`).
pub fn dropout_seeded(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let op = DropoutOp { p, seed };
    if usable(x) {
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    // Other devices: the same mask, as a tensor.
    let ones = vec![1f32; x.elem_count()];
    let mask = Tensor::from_vec(op.apply(&ones), x.shape(), &candle_core::Device::Cpu)?.to_device(x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

// ---------------------------------------------------------------- AdamW, in place

/// `m ← β m + (1 − β) s g` (`second`: `v ← β v + (1 − β) (s g)²`), in place on the moment.
pub(crate) struct MomentUpdate {
    pub beta: f64,
    pub grad_scale: f64,
    pub second: bool,
}

/// `θ ← θ · decay − lr · (m / bc1) / (sqrt(v / bc2) + eps)`, in place on the parameter.
pub(crate) struct ParamUpdate {
    pub lr: f64,
    pub decay: f64,
    pub bc1: f64,
    pub bc2: f64,
    pub eps: f64,
}

fn moment_update<T: Float>(u: &MomentUpdate, m: &mut [T], g: &[T]) {
    let (b, c, s) = (T::from_f64(u.beta), T::from_f64(1.0 - u.beta), T::from_f64(u.grad_scale));
    let second = u.second;
    m.par_chunks_mut(16384).zip(g.par_chunks(16384)).for_each(|(m, g)| {
        for (m, &g) in m.iter_mut().zip(g) {
            let g = g * s;
            *m = b * *m + c * if second { g * g } else { g };
        }
    });
}

fn param_update<T: Float>(u: &ParamUpdate, p: &mut [T], m: &[T], v: &[T]) {
    let (lr, decay, ibc1, ibc2, eps) = (T::from_f64(u.lr), T::from_f64(u.decay), T::from_f64(1.0 / u.bc1), T::from_f64(1.0 / u.bc2), T::from_f64(u.eps));
    p.par_chunks_mut(16384).zip(m.par_chunks(16384).zip(v.par_chunks(16384))).for_each(|(p, (m, v))| {
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p = *p * decay - lr * (m * ibc1) / ((v * ibc2).sqrt() + eps);
        }
    });
}

fn contiguous_mut<'a, T: WithDType>(v: &'a mut [T], l: &Layout) -> candle_core::Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("in-place op on a non-contiguous tensor"),
    }
}

impl candle_core::InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "nn-adamw-moment"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        match (s1, s2) {
            (CpuStorage::F32(m), CpuStorage::F32(g)) => moment_update(self, contiguous_mut(m, l1)?, contiguous(g, l2)?),
            (CpuStorage::F64(m), CpuStorage::F64(g)) => moment_update(self, contiguous_mut(m, l1)?, contiguous(g, l2)?),
            _ => candle_core::bail!("adamw: unsupported dtypes"),
        }
        Ok(())
    }
}

impl candle_core::InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "nn-adamw-param"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<()> {
        match (s1, s2, s3) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => param_update(self, contiguous_mut(p, l1)?, contiguous(m, l2)?, contiguous(v, l3)?),
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => param_update(self, contiguous_mut(p, l1)?, contiguous(m, l2)?, contiguous(v, l3)?),
            _ => candle_core::bail!("adamw: unsupported dtypes"),
        }
        Ok(())
    }
}

/// Whether the in-place AdamW kernels apply to these tensors.
pub(crate) fn inplace_usable(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| usable(t) && t.is_contiguous() && t.dtype() == ts[0].dtype())
}

#[cfg(test)]
mod fast_math_tests {
    use super::Float;

    /// The f32 erf and tanh used by the GELU kernels, against f64 references over [-6, 6].
    #[test]
    fn fast_erf_and_tanh_are_accurate() {
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let erf = Float::erf(x as f32) as f64;
            assert!((erf - candle_core::cpu::erf::erf_f64(x)).abs() < 5e-7, "erf({x}) = {erf}");
            let tanh = Float::tanh(x as f32) as f64;
            assert!((tanh - x.tanh()).abs() < 5e-7, "tanh({x}) = {tanh}");
        }
        assert_eq!(Float::tanh(100f32), 1.0);
        assert_eq!(Float::tanh(-100f32), -1.0);
    }

    /// The f32 exp of every kernel, against f64 `exp`, over its whole finite range.
    #[test]
    fn exp_f32_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((super::exp_f32(x) as f64 - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(super::exp_f32(0.0), 1.0);
        assert_eq!(super::exp_f32(-1e9), 0.0);
        assert_eq!(super::exp_f32(-87.4), 0.0);
        assert!(super::exp_f32(-87.3).is_normal());
        assert!(super::exp_f32(f32::NAN).is_nan());
    }
}
