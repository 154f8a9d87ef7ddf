//! Fused multi-head attention for the CPU, forward and backward, shared by the encoders (BERT
//! family) and the decoders (GPT-2, Llama family, grouped-query attention included).
//!
//! Composed from candle primitives, one attention costs a copy of q, k and v into head-major
//! layout, four batched matmuls (slow at head sizes of 32–64), a scale, a broadcast bias add whose
//! backward reduces a `[batch, heads, len, len]` gradient on one thread, a softmax, a dropout
//! mask tensor and a transpose back, each way. Here one op does it all per (batch, head) on rayon,
//! with sequential GEMMs on strided views: q, k and v are read where they lie (the projection's
//! output or a KV cache) and the context is written straight into `[batch, len, heads × dim]`.
//! The softmax probabilities are kept for backward; dropout masks are regenerated from a seed.
//! Other devices and dtypes use [`attention_reference`], built from primitives with backward.

use std::sync::Mutex;

use anyhow::{bail, Result};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rand::Rng as _;
use rayon::prelude::*;

use crate::fused::{dropout_scales, gemm_raw, softmax_in_place, Float, SendPtr};
use crate::layers::{dropout, Mode};

/// `softmax(scale · q kᵀ + bias) v`, with dropout on the probabilities in training.
///
/// `q`: `[batch, heads, tq, dim]`; `k`, `v`: `[batch, kv_heads, tk, dim]`, any strides (views of a
/// projection's output or of a KV cache are read in place). Query head `h` uses key/value head
/// `h / (heads / kv_heads)`, as HF's `repeat_kv`. `bias`: additive, `[batch or 1, 1, tq or 1, tk]`
/// (padding and causal masks); it takes no gradient. Returns the context `[batch, tq, heads · dim]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64, dropout_p: f64, mode: &mut Mode) -> Result<Tensor> {
    let seed = match mode {
        Mode::Train(rng) if dropout_p > 0.0 => Some(rng.random::<u64>()),
        _ => None,
    };
    let fused = q.device().is_cpu() && matches!(q.dtype(), DType::F32 | DType::F64) && k.dtype() == q.dtype() && v.dtype() == q.dtype();
    if !fused {
        return attention_reference(q, k, v, bias, scale, dropout_p, mode);
    }
    attention_seeded(q, k, v, bias, scale, seed.map(|s| (dropout_p, s)))
}

/// The fused op with an explicit dropout `(p, seed)`: a deterministic function of its inputs
/// (what the gradient checks need).
pub fn attention_seeded(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64, drop: Option<(f64, u64)>) -> Result<Tensor> {
    let (b, h, tq, d) = q.dims4()?;
    let (kb, hk, tk, kd) = k.dims4()?;
    if v.dims() != k.dims() || kb != b || kd != d {
        bail!("attention: q {:?}, k {:?}, v {:?} do not fit", q.dims(), k.dims(), v.dims());
    }
    if hk == 0 || h % hk != 0 {
        bail!("attention: {h} query heads are not a multiple of {hk} key/value heads");
    }
    let bias = match bias {
        None => None,
        Some(t) => {
            let (bb, one, bq, btk) = t.dims4()?;
            if one != 1 || btk != tk || !(bb == 1 || bb == b) || !(bq == 1 || bq == tq) {
                bail!("attention: bias {:?} does not broadcast to [{b}, {h}, {tq}, {tk}]", t.dims());
            }
            Some(BiasTable { data: t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?, batches: bb, rows: bq, tk })
        }
    };
    let drop = drop.filter(|&(p, _)| p > 0.0);
    if let Some((p, _)) = drop {
        if p >= 1.0 {
            bail!("attention: dropout {p} must be below 1");
        }
    }
    let op = Attention { scale, bias, drop, probs: Mutex::new(None) };
    Ok(q.apply_op3(k, v, op)?)
}

/// The additive bias on the host, `[batches, 1, rows, tk]` with `batches` and `rows` either 1
/// (broadcast) or full.
struct BiasTable {
    data: Vec<f64>,
    batches: usize,
    rows: usize,
    tk: usize,
}

impl BiasTable {
    fn row(&self, batch: usize, query: usize) -> &[f64] {
        let b = if self.batches > 1 { batch } else { 0 };
        let q = if self.rows > 1 { query } else { 0 };
        let start = (b * self.rows + q) * self.tk;
        &self.data[start..start + self.tk]
    }
}

struct Attention {
    scale: f64,
    bias: Option<BiasTable>,
    /// Dropout probability and seed.
    drop: Option<(f64, u64)>,
    /// Softmax probabilities `[batch, heads, tq, tk]` (before dropout), saved by the forward pass.
    probs: Mutex<Option<CpuStorage>>,
}

/// A 4-D strided view `[batch, heads, len, dim]` into a storage slice.
#[derive(Clone, Copy, Debug)]
struct View {
    offset: usize,
    dims: [usize; 4],
    strides: [usize; 4],
}

impl View {
    fn of(l: &Layout) -> candle_core::Result<View> {
        let d = l.dims();
        let s = l.stride();
        if d.len() != 4 {
            candle_core::bail!("attention: 4-D operand expected, got {d:?}");
        }
        Ok(View { offset: l.start_offset(), dims: [d[0], d[1], d[2], d[3]], strides: [s[0], s[1], s[2], s[3]] })
    }

    fn head(&self, b: usize, h: usize) -> usize {
        self.offset + b * self.strides[0] + h * self.strides[1]
    }
}

/// GEMMs inside a task that already runs on one rayon thread per (batch, head).
const SEQUENTIAL: gemm::Parallelism = gemm::Parallelism::None;

impl Attention {
    fn fwd<T: Float>(&self, q: &[T], lq: &Layout, k: &[T], lk: &Layout, v: &[T], lv: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (qv, kv, vv) = (View::of(lq)?, View::of(lk)?, View::of(lv)?);
        let [b, h, tq, d] = qv.dims;
        let [_, hk, tk, _] = kv.dims;
        let rep = h / hk;
        let width = h * d;
        let mut out = vec![T::zero(); b * tq * width];
        let mut probs = vec![T::zero(); b * h * tq * tk];
        let out_ptr = SendPtr(out.as_mut_ptr());
        let scale = T::from_f64(self.scale);
        let rowwise = tq == 1 && qv.strides[3] == 1 && kv.strides[3] == 1 && vv.strides[3] == 1;
        // Decoding with grouped queries and enough (batch, key head) tasks for every thread: one task
        // per group reads each cached key and value once for all its query heads, instead of once per
        // head (memory-bound at long contexts). Same products in the same order: the same result.
        if rowwise && rep > 1 && self.drop.is_none() && b * hk >= rayon::current_num_threads() {
            probs.par_chunks_mut(rep * tk).enumerate().for_each(|(group, p)| {
                let (bi, kh) = (group / hk, group % hk);
                let (ko, vo) = (kv.head(bi, kh), vv.head(bi, kh));
                let qrows: Vec<&[T]> = (0..rep).map(|r| &q[qv.head(bi, kh * rep + r)..][..d]).collect();
                for j in 0..tk {
                    let kr = &k[ko + j * kv.strides[2]..][..d];
                    for (r, qrow) in qrows.iter().enumerate() {
                        p[r * tk + j] = scale * dot(qrow, kr);
                    }
                }
                for row in p.chunks_mut(tk) {
                    if let Some(bias) = &self.bias {
                        for (s, &c) in row.iter_mut().zip(bias.row(bi, 0)) {
                            *s += T::from_f64(c);
                        }
                    }
                    softmax_in_place(row);
                }
                // context = Σ_j p_j v_j, head by head in the same order of j as the per-head path.
                // SAFETY: each (row, key head) group writes only its own rep·d columns of row bi.
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(bi * width + kh * rep * d), rep * d) };
                for j in 0..tk {
                    let vr = &v[vo + j * vv.strides[2]..][..d];
                    for (r, o) in dst.chunks_mut(d).enumerate() {
                        let pj = p[r * tk + j];
                        for (o, &x) in o.iter_mut().zip(vr) {
                            *o += pj * x;
                        }
                    }
                }
            });
            *self.probs.lock().unwrap() = Some(T::to_cpu_storage_owned(probs));
            return Ok((T::to_cpu_storage_owned(out), Shape::from((b, tq, width))));
        }
        probs.par_chunks_mut(tq * tk).enumerate().for_each(|(item, p)| {
            let (bi, hi) = (item / h, item % h);
            let kh = hi / rep;
            let (qo, ko, vo) = (qv.head(bi, hi), kv.head(bi, kh), vv.head(bi, kh));
            // Decoding (one query row, unit-stride heads): plain dot products beat a GEMM call,
            // whose set-up costs more than a 1 × d × tk product.
            if rowwise {
                let qrow = &q[qo..qo + d];
                for (j, s) in p.iter_mut().enumerate() {
                    let kr = ko + j * kv.strides[2];
                    *s = scale * dot(qrow, &k[kr..kr + d]);
                }
            } else {
                unsafe {
                    // scores = scale · q kᵀ
                    gemm_raw(tq, tk, d, p.as_mut_ptr(), (tk, 1), false, q[qo..].as_ptr(), (qv.strides[2], qv.strides[3]), k[ko..].as_ptr(), (kv.strides[3], kv.strides[2]), scale, SEQUENTIAL);
                }
            }
            for (i, row) in p.chunks_mut(tk).enumerate() {
                if let Some(bias) = &self.bias {
                    for (s, &c) in row.iter_mut().zip(bias.row(bi, i)) {
                        *s += T::from_f64(c);
                    }
                }
                softmax_in_place(row);
            }
            let mut dropped;
            let pd: &[T] = match self.drop {
                None => p,
                Some(drop) => {
                    dropped = vec![T::zero(); tq * tk];
                    // The mask of (batch, head) `item` is its own ChaCha stream: backward draws it again.
                    dropout_scales(drop.0, drop.1, item as u64, &mut dropped);
                    for (m, &x) in dropped.iter_mut().zip(p.iter()) {
                        *m *= x;
                    }
                    &dropped
                }
            };
            if rowwise {
                // context = Σ_j p_j v_j
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(bi * width + hi * d), d) };
                for (j, &pj) in pd.iter().enumerate() {
                    let vr = vo + j * vv.strides[2];
                    for (o, &x) in dst.iter_mut().zip(&v[vr..vr + d]) {
                        *o += pj * x;
                    }
                }
            } else {
                unsafe {
                    // context = probs v, written into [b, tq, h·d]
                    let dst = out_ptr.get().add(bi * tq * width + hi * d);
                    gemm_raw(tq, d, tk, dst, (width, 1), false, pd.as_ptr(), (tk, 1), v[vo..].as_ptr(), (vv.strides[2], vv.strides[3]), T::one(), SEQUENTIAL);
                }
            }
        });
        *self.probs.lock().unwrap() = Some(T::to_cpu_storage_owned(probs));
        Ok((T::to_cpu_storage_owned(out), Shape::from((b, tq, width))))
    }

    #[allow(clippy::too_many_arguments)]
    fn bwd_typed<T: Float>(&self, q: &[T], lq: &Layout, k: &[T], lk: &Layout, v: &[T], lv: &Layout, g: &[T], lg: &Layout, probs: &[T]) -> candle_core::Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let (qv, kv, vv) = (View::of(lq)?, View::of(lk)?, View::of(lv)?);
        let [b, h, tq, d] = qv.dims;
        let [_, hk, tk, _] = kv.dims;
        let rep = h / hk;
        let width = h * d;
        let g = match lg.contiguous_offsets() {
            Some((a, z)) => &g[a..z],
            None => candle_core::bail!("attention backward: contiguous gradient expected"),
        };
        let mut dq = vec![T::zero(); b * h * tq * d];
        let mut dk = vec![T::zero(); b * hk * tk * d];
        let mut dv = vec![T::zero(); b * hk * tk * d];
        let dq_ptr = SendPtr(dq.as_mut_ptr());
        let scale = T::from_f64(self.scale);
        // One task per (batch, kv head): the query heads of a group add into the same dk, dv.
        dk.par_chunks_mut(tk * d).zip(dv.par_chunks_mut(tk * d)).enumerate().for_each(|(group, (dk, dv))| {
            let (bi, kh) = (group / hk, group % hk);
            let (ko, vo) = (kv.head(bi, kh), vv.head(bi, kh));
            let mut mask = vec![T::zero(); if self.drop.is_some() { tq * tk } else { 0 }];
            let mut pd = vec![T::zero(); tq * tk];
            let mut ds = vec![T::zero(); tq * tk];
            for r in 0..rep {
                let hi = kh * rep + r;
                let item = bi * h + hi;
                let p = &probs[item * tq * tk..(item + 1) * tq * tk];
                if let Some(drop) = self.drop {
                    dropout_scales(drop.0, drop.1, item as u64, &mut mask);
                    for ((o, &m), &x) in pd.iter_mut().zip(&mask).zip(p) {
                        *o = m * x;
                    }
                } else {
                    pd.copy_from_slice(p);
                }
                let go = bi * tq * width + hi * d;
                let qo = qv.head(bi, hi);
                unsafe {
                    // dv += pdᵀ g
                    gemm_raw(tk, d, tq, dv.as_mut_ptr(), (d, 1), r > 0, pd.as_ptr(), (1, tk), g[go..].as_ptr(), (width, 1), T::one(), SEQUENTIAL);
                    // d(pd) = g vᵀ
                    gemm_raw(tq, tk, d, ds.as_mut_ptr(), (tk, 1), false, g[go..].as_ptr(), (width, 1), v[vo..].as_ptr(), (vv.strides[3], vv.strides[2]), T::one(), SEQUENTIAL);
                }
                if self.drop.is_some() {
                    for (x, &m) in ds.iter_mut().zip(&mask) {
                        *x *= m;
                    }
                }
                // d(scores) = p ⊙ (dp − Σ p ⊙ dp), row by row.
                for (drow, prow) in ds.chunks_mut(tk).zip(p.chunks(tk)) {
                    let mut dot = T::zero();
                    for (&a, &c) in drow.iter().zip(prow) {
                        dot += a * c;
                    }
                    for (x, &c) in drow.iter_mut().zip(prow) {
                        *x = c * (*x - dot);
                    }
                }
                unsafe {
                    // dq = scale · ds k
                    let dst = dq_ptr.get().add(item * tq * d);
                    gemm_raw(tq, d, tk, dst, (d, 1), false, ds.as_ptr(), (tk, 1), k[ko..].as_ptr(), (kv.strides[2], kv.strides[3]), scale, SEQUENTIAL);
                    // dk += scale · dsᵀ q
                    gemm_raw(tk, d, tq, dk.as_mut_ptr(), (d, 1), r > 0, ds.as_ptr(), (1, tk), q[qo..].as_ptr(), (qv.strides[2], qv.strides[3]), scale, SEQUENTIAL);
                }
            }
        });
        Ok((dq, dk, dv))
    }
}

/// Dot product with eight running sums (which the compiler keeps in one vector register).
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().fold(T::zero(), |s, &x| s + x);
    for (&x, &y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "nn-fused-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => self.fwd(q, l1, k, l2, v, l3),
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => self.fwd(q, l1, k, l2, v, l3),
            _ => candle_core::bail!("attention: q, k and v must all be f32 or all f64"),
        }
    }

    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let probs = self.probs.lock().unwrap();
        let Some(probs) = probs.as_ref() else { candle_core::bail!("attention backward before forward") };
        let (sq, lq) = q.storage_and_layout();
        let (sk, lk) = k.storage_and_layout();
        let (sv, lv) = v.storage_and_layout();
        let (sg, lg) = grad.storage_and_layout();
        let dev = q.device();
        let (dq, dk, dv) = match (&*sq, &*sk, &*sv, &*sg, probs) {
            (Storage::Cpu(CpuStorage::F32(q)), Storage::Cpu(CpuStorage::F32(k)), Storage::Cpu(CpuStorage::F32(v)), Storage::Cpu(CpuStorage::F32(g)), CpuStorage::F32(p)) => {
                let (a, b, c) = self.bwd_typed(q, lq, k, lk, v, lv, g, lg, p)?;
                (Tensor::from_vec(a, lq.shape(), dev)?, Tensor::from_vec(b, lk.shape(), dev)?, Tensor::from_vec(c, lv.shape(), dev)?)
            }
            (Storage::Cpu(CpuStorage::F64(q)), Storage::Cpu(CpuStorage::F64(k)), Storage::Cpu(CpuStorage::F64(v)), Storage::Cpu(CpuStorage::F64(g)), CpuStorage::F64(p)) => {
                let (a, b, c) = self.bwd_typed(q, lq, k, lk, v, lv, g, lg, p)?;
                (Tensor::from_vec(a, lq.shape(), dev)?, Tensor::from_vec(b, lk.shape(), dev)?, Tensor::from_vec(c, lv.shape(), dev)?)
            }
            _ => candle_core::bail!("attention backward: unsupported storage"),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// Attention from candle primitives (each with a backward pass): the fallback for other devices
/// and dtypes and the reference the fused op is tested against. Same arguments and result as
/// [`attention`]. Grouped queries are stacked as rows of one matrix per key head, so keys are
/// never copied.
pub fn attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64, dropout_p: f64, mode: &mut Mode) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    if kv_heads == 0 || h % kv_heads != 0 {
        bail!("{h} attention heads are not a multiple of {kv_heads} key/value heads");
    }
    let rep = h / kv_heads;
    let q = q.contiguous()?.reshape((b, kv_heads, rep * t, d))?;
    let mut scores = (q.matmul(&k.contiguous()?.t()?)? * scale)?;
    if let Some(bias) = bias {
        // Bias rows are per query: repeat them for each query head of a group.
        let bias = if rep > 1 && bias.dim(2)? > 1 { bias.repeat((1, 1, rep, 1))? } else { bias.clone() };
        scores = scores.broadcast_add(&bias)?;
    }
    let probs = crate::fused::softmax_last_dim(&scores)?;
    let probs = dropout(&probs, dropout_p, mode)?;
    let out = probs.matmul(&v.contiguous()?)?; // [b, kv_heads, rep * t, d]
    Ok(out.reshape((b, h, t, d))?.transpose(1, 2)?.reshape((b, t, h * d))?)
}
