//! An inference-only forward pass of a BERT-family [`Encoder`] on the CPU, for prediction.
//!
//! The training forward builds a candle graph: every op allocates a tensor and records itself
//! for backward, attention keeps its probabilities, padding is computed and then masked, and
//! each linear layer reads its weight through a transposed view. Here the same arithmetic runs
//! on plain `f32` buffers: the weights are copied once into the layouts the GEMMs read best
//! (query, key and value side by side as one `[in, 3·out]` matrix), the sequences of a batch lie
//! back to back without padding (a "ragged" batch: each attends only over itself), and bias,
//! residual, GELU and layer norm are applied where the GEMMs leave their output. Nothing is
//! recorded, so nothing is kept for a backward pass.
//!
//! The result equals [`Encoder::forward`] in eval mode up to float rounding (summation order);
//! `tests/infer.rs` checks it.

use anyhow::{bail, Result};
use candle_core::{CpuStorage, DType, Storage, Tensor};
use rayon::prelude::*;

use crate::bert::Encoder;
use crate::fused::{gelu_erf_one, gelu_tanh_one, SendPtr};
use crate::layers::Activation;

/// A linear layer `y = x M + b` with `M` packed for [`gemm_packed`].
pub struct PackedLinear {
    pub inp: usize,
    pub out: usize,
    packed: Packed,
    bias: Vec<f32>,
}

impl PackedLinear {
    /// From HF `nn.Linear` weights (`[out, in]` each, stacked along `out` when several are given,
    /// as query, key and value become one product).
    fn from_linears(parts: &[&crate::Linear], precision: Precision) -> Result<Self> {
        let inp = parts[0].weight.dim(1)?;
        let mut rows: Vec<f32> = Vec::new();
        let mut bias = Vec::new();
        for p in parts {
            let (o, i) = p.weight.dims2()?;
            if i != inp {
                bail!("stacked linear layers differ in input width");
            }
            rows.extend(host_f32(&p.weight)?);
            match &p.bias {
                Some(b) => bias.extend(host_f32(b)?),
                None => bias.extend(std::iter::repeat_n(0.0, o)),
            }
        }
        let out = bias.len();
        Ok(PackedLinear { inp, out, packed: Packed::from_out_in(&rows, out, inp, precision), bias })
    }

    /// From one HF `nn.Linear` (e.g. a classification head).
    pub fn new(l: &crate::Linear) -> Result<Self> {
        Self::from_linears(&[l], Precision::F32)
    }

    /// From a weight `[out, in]` (any layout candle can read; copied) and an optional bias
    /// `[out]`, at `precision`: the decoding GEMMs of a causal LM use it.
    pub fn from_weight(weight: &Tensor, bias: Option<&Tensor>, precision: Precision) -> Result<Self> {
        let (out, inp) = weight.dims2()?;
        let bias = match bias {
            Some(b) => host_f32(b)?,
            None => vec![0.0; out],
        };
        if bias.len() != out {
            bail!("bias of {} values for {out} outputs", bias.len());
        }
        Ok(PackedLinear { inp, out, packed: Packed::from_out_in(&host_f32(weight)?, out, inp, precision), bias })
    }

    /// `x M + b` over the last dimension of a tensor of any leading shape: its values are read
    /// in place when it is a contiguous f32 CPU tensor ([`with_values`]), copied otherwise.
    pub fn forward_tensor(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let Some(last) = dims.last_mut() else { bail!("packed linear layer: a scalar input") };
        if *last != self.inp {
            bail!("packed linear layer: input width {} for a weight of {} inputs", *last, self.inp);
        }
        *last = self.out;
        let rows = x.elem_count() / self.inp.max(1);
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let y = match with_values(&x, |v| self.forward(v, rows)) {
            Ok(y) => y,
            Err(_) => self.forward(&host_f32(&x)?, rows),
        };
        Ok(Tensor::from_vec(y, dims, x.device())?)
    }

    /// `x M + b` over `rows` rows of `x`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        self.forward_into(x, rows, &mut y, false);
        y
    }

    /// `y = x M + b (+ y)` over `rows` rows; `accumulate` keeps what `y` holds (a residual).
    pub fn forward_into(&self, x: &[f32], rows: usize, y: &mut [f32], accumulate: bool) {
        debug_assert!(x.len() == rows * self.inp && y.len() == rows * self.out);
        y.par_chunks_mut(self.out * 64).for_each(|c| {
            for r in c.chunks_mut(self.out) {
                if accumulate {
                    r.iter_mut().zip(&self.bias).for_each(|(v, &b)| *v += b);
                } else {
                    r.copy_from_slice(&self.bias);
                }
            }
        });
        gemm_packed(x, rows, self.inp, &self.packed, y);
    }
}

/// The number format of the packed weights (and of the activations multiplied with them). f32 is
/// exact up to summation order; bf16 keeps 8 bits of mantissa, products accumulate in f32, and
/// runs where the CPU has AVX-512 BF16 (elsewhere the weights stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision {s:?}: f32 or bf16")),
        }
    }
}

impl Precision {
    /// Whether this is f32, the default (configs leave it unwritten then, keeping their keys).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The precision that actually runs here: bf16 falls back to f32 without AVX-512 BF16.
    pub fn effective(self) -> Precision {
        #[cfg(target_arch = "x86_64")]
        if self == Precision::Bf16 && panels_usable() && avx512::bf16_usable() {
            return Precision::Bf16;
        }
        Precision::F32
    }
}

/// A weight `M` `[in, out]` in the layout its GEMM reads: panels for the AVX-512 kernel (f32 or
/// bf16 pairs), else row-major `[in, out]` (the transposed HF weight) for the `gemm` crate.
enum Packed {
    #[cfg(target_arch = "x86_64")]
    Panels { p: Vec<f32>, out: usize },
    #[cfg(target_arch = "x86_64")]
    PanelsBf16 { p: Vec<u32>, out: usize },
    RowMajor { m: Vec<f32>, out: usize },
}

/// Whether the packed AVX-512 kernel runs. `SYNTHDEID_INFER_GEMM=gemm` makes the inference path
/// use the `gemm` crate instead (to compare the two).
fn panels_usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::usable() && std::env::var("SYNTHDEID_INFER_GEMM").map(|v| v != "gemm").unwrap_or(true)
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl Packed {
    fn from_out_in(w: &[f32], out: usize, inp: usize, precision: Precision) -> Self {
        #[cfg(target_arch = "x86_64")]
        if precision.effective() == Precision::Bf16 {
            return Packed::PanelsBf16 { p: avx512::pack_bf16(w, out, inp), out };
        }
        #[cfg(target_arch = "x86_64")]
        if panels_usable() {
            return Packed::Panels { p: avx512::pack(w, out, inp), out };
        }
        let mut m = vec![0f32; inp * out];
        m.par_chunks_mut(out).enumerate().for_each(|(k, row)| {
            for (o, v) in row.iter_mut().enumerate() {
                *v = w[o * inp + k];
            }
        });
        Packed::RowMajor { m, out }
    }
}

/// `y += x M`, `x` `[rows, inp]`, `y` `[rows, out]`.
fn gemm_packed(x: &[f32], rows: usize, inp: usize, w: &Packed, y: &mut [f32]) {
    if rows == 0 {
        return;
    }
    match w {
        #[cfg(target_arch = "x86_64")]
        Packed::Panels { p, out } => avx512::gemm(x, rows, inp, p, *out, y),
        #[cfg(target_arch = "x86_64")]
        Packed::PanelsBf16 { p, out } => avx512::gemm_bf16(x, rows, inp, p, *out, y),
        Packed::RowMajor { m, out } => unsafe {
            let out = *out;
            crate::fused::gemm_raw(
                rows,
                out,
                inp,
                y.as_mut_ptr(),
                (out, 1),
                true,
                x.as_ptr(),
                (inp, 1),
                m.as_ptr(),
                (out, 1),
                1.0f32,
                crate::fused::par_for(2 * rows * inp * out),
            )
        },
    }
}

/// Layer-norm weights.
struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn new(n: &crate::LayerNorm) -> Result<Self> {
        Ok(Norm { w: host_f32(&n.weight)?, b: host_f32(&n.bias)?, eps: n.eps as f32 })
    }

    /// Normalises each row of `x` (width `w.len()`) in place.
    fn apply(&self, x: &mut [f32]) {
        let n = self.w.len();
        x.par_chunks_mut(n * 32).for_each(|c| simd::layer_norm_rows(c, n, &self.w, &self.b, self.eps));
    }
}

struct Layer {
    qkv: PackedLinear,
    out: PackedLinear,
    norm1: Norm,
    up: PackedLinear,
    down: PackedLinear,
    norm2: Norm,
    act: Activation,
}

/// The inference copy of an [`Encoder`]: built by [`InferenceEncoder::new`] from the encoder's
/// current weights (a snapshot: weights trained afterwards need a new one).
pub struct InferenceEncoder {
    hidden: usize,
    heads: usize,
    head_dim: usize,
    /// The word-embedding table, read in place (it can be hundreds of MB).
    word: Tensor,
    position: Vec<f32>,
    positions: usize,
    token_type0: Vec<f32>,
    emb_norm: Norm,
    position_offset: Option<u32>,
    pad: u32,
    layers: Vec<Layer>,
}

/// A tensor's values as `f32` on the host.
fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Runs `f` on a contiguous f32 CPU tensor's values in place, without copying them.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    match (&*s, l.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => bail!("inference path: a contiguous f32 CPU tensor expected"),
    }
}

impl InferenceEncoder {
    /// Whether [`InferenceEncoder::new`] applies to this encoder (f32 weights on the CPU).
    pub fn supports(e: &Encoder) -> bool {
        let w = &e.embeddings.word.weight;
        w.device().is_cpu() && w.dtype() == DType::F32 && w.is_contiguous()
    }

    pub fn new(e: &Encoder) -> Result<Self> {
        Self::with_precision(e, Precision::F32)
    }

    /// [`InferenceEncoder::new`] with the linear layers' weights at `precision` (embeddings,
    /// layer norms and attention stay f32).
    pub fn with_precision(e: &Encoder, precision: Precision) -> Result<Self> {
        if !Self::supports(e) {
            bail!("the inference path runs f32 encoders on the CPU");
        }
        let emb = &e.embeddings;
        let layers = e
            .layers
            .iter()
            .map(|l| {
                let a = &l.attention;
                Ok(Layer {
                    qkv: PackedLinear::from_linears(&[&a.query, &a.key, &a.value], precision)?,
                    out: PackedLinear::from_linears(&[&a.out], precision)?,
                    norm1: Norm::new(&a.norm)?,
                    up: PackedLinear::from_linears(&[&l.intermediate], precision)?,
                    down: PackedLinear::from_linears(&[&l.output], precision)?,
                    norm2: Norm::new(&l.norm)?,
                    act: l.act,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden = e.config.hidden_size;
        Ok(InferenceEncoder {
            hidden,
            heads: e.config.num_attention_heads,
            head_dim: e.config.head_dim(),
            word: emb.word.weight.clone(),
            position: host_f32(&emb.position.weight)?,
            positions: emb.position.weight.dim(0)?,
            token_type0: host_f32(&emb.token_type.weight.narrow(0, 0, 1)?)?,
            emb_norm: Norm::new(&emb.norm)?,
            position_offset: emb.position_offset,
            pad: emb.pad,
            layers,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Hidden states of the sequences `seqs`, back to back: row `offset(s) + i` is token `i` of
    /// sequence `s`, `[Σ len, hidden]`. `extra` (the same shape) is added to the embeddings before
    /// their layer norm, as [`Encoder::forward`]'s `extra`.
    pub fn forward(&self, seqs: &[&[u32]], extra: Option<&[f32]>) -> Result<Vec<f32>> {
        let h = self.hidden;
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let n: usize = lens.iter().sum();
        if extra.is_some_and(|e| e.len() != n * h) {
            bail!("inference path: extra inputs of {} values for {n} tokens × {h}", extra.unwrap().len());
        }
        let mut x = self.embed(seqs, extra)?;
        let ffn = self.layers.first().map_or(0, |l| l.up.out);
        let mut qkv = vec![0f32; n * 3 * h];
        let mut ctx = vec![0f32; n * h];
        let mut a = vec![0f32; n * h];
        let mut f = vec![0f32; n * ffn];
        for layer in &self.layers {
            layer.qkv.forward_into(&x, n, &mut qkv, false);
            self.attention(&qkv, &lens, &mut ctx);
            // a = LN(ctx Wo + bo + x)
            a.copy_from_slice(&x);
            layer.out.forward_into(&ctx, n, &mut a, true);
            layer.norm1.apply(&mut a);
            // x = LN(act(a Wi + bi) Wo + bo + a)
            f.resize(n * layer.up.out, 0.0);
            layer.up.forward_into(&a, n, &mut f, false);
            let act = layer.act;
            f.par_chunks_mut(16384).for_each(|c| simd::activate(c, act));
            x.copy_from_slice(&a);
            layer.down.forward_into(&f, n, &mut x, true);
            layer.norm2.apply(&mut x);
        }
        Ok(x)
    }

    /// Word + position + token-type (0) embeddings (+ `extra`), layer-normed, `[n, h]`.
    fn embed(&self, seqs: &[&[u32]], extra: Option<&[f32]>) -> Result<Vec<f32>> {
        let h = self.hidden;
        // (sequence, position) of each row.
        let rows: Vec<(u32, u32)> = seqs.iter().flat_map(|s| s.iter().enumerate().map(move |(i, &t)| (t, i as u32))).collect();
        let vocab = self.word.dim(0)?;
        if let Some(&(t, _)) = rows.iter().find(|(t, _)| *t as usize >= vocab) {
            bail!("token id {t} outside the vocabulary of {vocab}");
        }
        let mut x = vec![0f32; rows.len() * h];
        with_values(&self.word, |word| -> Result<()> {
            let bad = std::sync::atomic::AtomicBool::new(false);
            x.par_chunks_mut(h * 64).enumerate().for_each(|(c, chunk)| {
                for (j, out) in chunk.chunks_mut(h).enumerate() {
                    let r = c * 64 + j;
                    let (t, i) = rows[r];
                    // Position ids as `Embeddings::position_ids`.
                    let pos = match self.position_offset {
                        None => i as usize,
                        Some(off) if t != self.pad => (off + i) as usize,
                        Some(_) => self.pad as usize,
                    };
                    if pos >= self.positions {
                        bad.store(true, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let w = &word[t as usize * h..(t as usize + 1) * h];
                    let p = &self.position[pos * h..(pos + 1) * h];
                    for k in 0..h {
                        out[k] = (w[k] + p[k]) + self.token_type0[k];
                    }
                    if let Some(e) = extra {
                        for (o, &v) in out.iter_mut().zip(&e[r * h..(r + 1) * h]) {
                            *o += v;
                        }
                    }
                }
            });
            if bad.into_inner() {
                bail!("a sequence is longer than the {} positions of the encoder", self.positions);
            }
            Ok(())
        })??;
        self.emb_norm.apply(&mut x);
        Ok(x)
    }

    /// Multi-head self-attention of each sequence over itself: `qkv` `[n, 3h]` (query, key,
    /// value side by side) → `ctx` `[n, h]`. One task per (sequence, head).
    fn attention(&self, qkv: &[f32], lens: &[usize], ctx: &mut [f32]) {
        let (h, d, heads) = (self.hidden, self.head_dim, self.heads);
        let mut offsets = Vec::with_capacity(lens.len());
        let mut o = 0;
        for &l in lens {
            offsets.push(o);
            o += l;
        }
        let scale = 1.0 / (d as f32).sqrt();
        let ctx_ptr = SendPtr(ctx.as_mut_ptr());
        let w3 = 3 * h;
        (0..lens.len() * heads).into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, item| {
            let (s, hd) = (item / heads, item % heads);
            let (l, off) = (lens[s], offsets[s]);
            if l == 0 {
                return;
            }
            scores.resize(l * l, 0.0);
            let base = off * w3 + hd * d;
            let (q, k, v) = (qkv[base..].as_ptr(), qkv[base + h..].as_ptr(), qkv[base + 2 * h..].as_ptr());
            unsafe {
                // scores = scale · q kᵀ
                crate::fused::gemm_raw(l, l, d, scores.as_mut_ptr(), (l, 1), false, q, (w3, 1), k, (1, w3), scale, gemm::Parallelism::None);
            }
            for row in scores.chunks_mut(l) {
                simd::softmax(row);
            }
            unsafe {
                // ctx = probs v, into this head's columns of [n, h]
                let dst = ctx_ptr.get().add(off * h + hd * d);
                crate::fused::gemm_raw(l, d, l, dst, (h, 1), false, scores.as_ptr(), (l, 1), v, (w3, 1), 1.0f32, gemm::Parallelism::None);
            }
        });
    }
}

/// `y += x M` on AVX-512 with `M` packed once into panels of [`NR`] columns: `panels[j]` holds
/// columns `j·NR..` as `inp` rows of `NR` values (zero beyond `out`), so the kernel streams a
/// panel with unit stride and never repacks the weight. Blocks of [`MR`] rows of `x` are read in
/// place (each value broadcast), [`KC`] of the inner dimension at a time, so that a panel block
/// (`KC × NR`, 32 KB) stays in L1 while every row block of a task passes over it.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use rayon::prelude::*;
    use std::arch::x86_64::*;

    use crate::fused::SendPtr;

    pub const NR: usize = 64;
    const MR: usize = 6;
    const KC: usize = 128;
    /// Rows per rayon task, at least: each task streams the whole weight from L3 once per task,
    /// so tasks are as tall as four per thread allow (up to [`MC_MAX`]).
    const MC: usize = 96;
    const MC_MAX: usize = 384;

    pub fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// Packs `w` (`[out, in]`, HF `nn.Linear`) into panels.
    pub fn pack(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
        let panels = out.div_ceil(NR);
        let mut p = vec![0f32; panels * inp * NR];
        p.par_chunks_mut(inp * NR).enumerate().for_each(|(j, panel)| {
            // 16 inner-dimension values at a time, so that reads and writes both stay in cache lines.
            for k0 in (0..inp).step_by(16) {
                for c in 0..NR.min(out - j * NR) {
                    let o = j * NR + c;
                    for k in k0..(k0 + 16).min(inp) {
                        panel[k * NR + c] = w[o * inp + k];
                    }
                }
            }
        });
        p
    }

    /// `y[rows × out] += x[rows × inp] · M` with `M` packed by [`pack`].
    pub fn gemm(x: &[f32], rows: usize, inp: usize, packed: &[f32], out: usize, y: &mut [f32]) {
        // SAFETY (of the kernels `drive` calls): AVX-512F checked by the caller (`usable`).
        drive(x, rows, inp, packed, out, y, KC, &[kernel::<1>, kernel::<2>, kernel::<3>, kernel::<4>, kernel::<5>, kernel::<6>]);
    }

    /// Whether the bf16 kernel runs (AVX-512 BF16: `vdpbf16ps`).
    pub fn bf16_usable() -> bool {
        usable() && std::arch::is_x86_feature_detected!("avx512bf16")
    }

    /// `x` rounded to bf16 (to nearest, ties to even), the high half of its f32 bits.
    pub fn to_bf16(x: f32) -> u32 {
        let b = x.to_bits();
        if x.is_nan() {
            return (b >> 16) | 0x40;
        }
        (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    }

    /// Packs `w` (`[out, in]`) into bf16 panels: as [`pack`], but each 32-bit value holds two
    /// consecutive inner-dimension values of a column (the even one low), as `vdpbf16ps` reads
    /// them; `in` is padded to even with a zero.
    pub fn pack_bf16(w: &[f32], out: usize, inp: usize) -> Vec<u32> {
        let panels = out.div_ceil(NR);
        let pairs = inp.div_ceil(2);
        let mut p = vec![0u32; panels * pairs * NR];
        let at = |o: usize, k: usize| if k < inp { to_bf16(w[o * inp + k]) } else { 0 };
        p.par_chunks_mut(pairs * NR).enumerate().for_each(|(j, panel)| {
            for c in 0..NR.min(out - j * NR) {
                let o = j * NR + c;
                for q in 0..pairs {
                    panel[q * NR + c] = at(o, 2 * q) | (at(o, 2 * q + 1) << 16);
                }
            }
        });
        p
    }

    /// `y[rows × out] += x[rows × inp] · M` with `M` packed by [`pack_bf16`]: `x` is rounded to
    /// bf16 once, the products accumulate in f32.
    pub fn gemm_bf16(x: &[f32], rows: usize, inp: usize, packed: &[u32], out: usize, y: &mut [f32]) {
        let pairs = inp.div_ceil(2);
        let mut a = vec![0u32; rows * pairs];
        a.par_chunks_mut(pairs * 64).zip(x.par_chunks(inp * 64)).for_each(|(a, x)| {
            for (a, x) in a.chunks_mut(pairs).zip(x.chunks(inp)) {
                // SAFETY: AVX-512 BF16 checked by the caller; a holds ⌈inp / 2⌉ pairs of x's inp values.
                unsafe { row_to_bf16(x, a) }
            }
        });
        // SAFETY (of the kernels `drive` calls): AVX-512F and BF16 checked by the caller (`bf16_usable`).
        drive(&a, rows, pairs, packed, out, y, KC / 2, &[kernel_bf16::<1>, kernel_bf16::<2>, kernel_bf16::<3>, kernel_bf16::<4>, kernel_bf16::<5>, kernel_bf16::<6>]);
    }

    /// One row of f32 values as bf16 pairs (`vcvtne2ps2bf16`: to nearest even, as [`to_bf16`]
    /// apart from flushing subnormals), the odd tail padded with zero.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn row_to_bf16(x: &[f32], a: &mut [u32]) {
        debug_assert_eq!(a.len(), x.len().div_ceil(2));
        let mut k = 0;
        while k < x.len() {
            let n = (x.len() - k).min(32);
            let lo = _mm512_maskz_loadu_ps(mask16(n), x.as_ptr().add(k));
            let hi = _mm512_maskz_loadu_ps(mask16(n.saturating_sub(16)), x.as_ptr().add(k + 16.min(n)));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_mask_storeu_epi32(a.as_mut_ptr().add(k / 2) as *mut i32, mask16(n.div_ceil(2)), v);
            k += 32;
        }
    }

    /// The first `n` (≤ 16, or all) of 16 lanes.
    fn mask16(n: usize) -> u16 {
        if n >= 16 {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as u16
        }
    }

    /// A kernel for `R` rows: `(kc, a, lda, b, c, ldc, ncols)`, as [`kernel`].
    type Kernel<T> = unsafe fn(usize, *const T, usize, *const T, *mut f32, usize, usize);

    /// The tiling both kernels share: rayon tasks of row chunks (and panel groups when rows are
    /// few), `kc_block` of the inner dimension at a time, blocks of `r` ≤ [`MR`] rows handed to
    /// `kernels[r - 1]`; tasks write disjoint (rows, panel) blocks of `y`. The caller vouches
    /// that the CPU runs the kernels.
    #[allow(clippy::too_many_arguments)]
    fn drive<T: Sync>(x: &[T], rows: usize, inp: usize, packed: &[T], out: usize, y: &mut [f32], kc_block: usize, kernels: &[Kernel<T>; MR]) {
        let panels = out.div_ceil(NR);
        let want = 4 * rayon::current_num_threads();
        let mc = (rows.div_ceil(want).div_ceil(MR) * MR).clamp(MC, MC_MAX);
        let chunks = rows.div_ceil(mc);
        // Enough tasks for every thread even when there are few rows: split the panels too.
        let groups = if chunks >= want { 1 } else { want.div_ceil(chunks).min(panels) };
        let per_group = panels.div_ceil(groups);
        let groups = panels.div_ceil(per_group);
        let yp = SendPtr(y.as_mut_ptr());
        assert!(x.len() >= rows * inp && packed.len() >= panels * inp * NR && y.len() >= rows * out);
        (0..chunks * groups).into_par_iter().for_each(|t| {
            let (c, g) = (t / groups, t % groups);
            let (r0, r1) = (c * mc, ((c + 1) * mc).min(rows));
            let (j0, j1) = (g * per_group, ((g + 1) * per_group).min(panels));
            let mut kb = 0;
            while kb < inp {
                let kc = kc_block.min(inp - kb);
                for j in j0..j1 {
                    let bp = &packed[(j * inp + kb) * NR..];
                    let ncols = NR.min(out - j * NR);
                    let mut i = r0;
                    while i < r1 {
                        let mr = MR.min(r1 - i);
                        // SAFETY: the block is inside x, the panel and y (the assert above, i + mr ≤
                        // rows, kb + kc ≤ inp, j < panels); the caller checked the CPU features.
                        unsafe {
                            let a = x.as_ptr().add(i * inp + kb);
                            let cp = yp.get().add(i * out + j * NR);
                            kernels[mr - 1](kc, a, inp, bp.as_ptr(), cp, out, ncols);
                        }
                        i += mr;
                    }
                }
                kb += kc;
            }
        });
    }

    /// The masks of a block's four 16-lane column groups, for its first `ncols` columns.
    fn column_masks(ncols: usize) -> [u16; 4] {
        std::array::from_fn(|v| mask16(ncols.saturating_sub(v * 16)))
    }

    /// A kernel's accumulators: `R` rows × 4 column groups of `c` (row stride `ldc`), masked.
    #[target_feature(enable = "avx512f")]
    unsafe fn load_block<const R: usize>(c: *const f32, ldc: usize, masks: &[u16; 4]) -> [[__m512; 4]; R] {
        std::array::from_fn(|r| std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], c.add(r * ldc + v * 16))))
    }

    /// Writes a kernel's accumulators back to `c`, masked.
    #[target_feature(enable = "avx512f")]
    unsafe fn store_block<const R: usize>(acc: &[[__m512; 4]; R], c: *mut f32, ldc: usize, masks: &[u16; 4]) {
        for (r, acc) in acc.iter().enumerate() {
            for (v, x) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(c.add(r * ldc + v * 16), masks[v], *x);
            }
        }
    }

    /// As [`kernel`] on bf16 pairs: `a` `[R × kc]` pairs, `b` a [`pack_bf16`] panel block of `kc`
    /// pairs; each step adds two inner-dimension terms per lane.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel_bf16<const R: usize>(kc: usize, a: *const u32, lda: usize, b: *const u32, c: *mut f32, ldc: usize, ncols: usize) {
        let masks = column_masks(ncols);
        let mut acc = load_block::<R>(c, ldc, &masks);
        for k in 0..kc {
            let bk = b.add(k * NR);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bk as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bk.add(16) as *const _));
            let b2: __m512bh = std::mem::transmute(_mm512_loadu_si512(bk.add(32) as *const _));
            let b3: __m512bh = std::mem::transmute(_mm512_loadu_si512(bk.add(48) as *const _));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * lda + k) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
                acc[2] = _mm512_dpbf16_ps(acc[2], av, b2);
                acc[3] = _mm512_dpbf16_ps(acc[3], av, b3);
            }
        }
        store_block(&acc, c, ldc, &masks);
    }

    /// `c[R × ncols] += a[R × kc] · b[kc × NR]` (`a` and `c` with row strides `lda`, `ldc`; `b` a
    /// panel block): R × 4 accumulators of 16 lanes, masked to `ncols` columns.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel<const R: usize>(kc: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, ncols: usize) {
        let masks = column_masks(ncols);
        let mut acc = load_block::<R>(c, ldc, &masks);
        for k in 0..kc {
            let bk = b.add(k * NR);
            let b0 = _mm512_loadu_ps(bk);
            let b1 = _mm512_loadu_ps(bk.add(16));
            let b2 = _mm512_loadu_ps(bk.add(32));
            let b3 = _mm512_loadu_ps(bk.add(48));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + k));
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                acc[2] = _mm512_fmadd_ps(av, b2, acc[2]);
                acc[3] = _mm512_fmadd_ps(av, b3, acc[3]);
            }
        }
        store_block(&acc, c, ldc, &masks);
    }
}

/// Row kernels compiled for AVX-512 (or AVX2) where the CPU has it: the workspace builds for
/// baseline x86-64, whose SSE2 code runs these loops at a quarter of the width.
mod simd {
    use super::*;

    macro_rules! dispatch {
        ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
            $(#[$m])*
            pub(super) fn $name($($arg: $ty),*) {
                #[inline(always)]
                fn body($($arg: $ty),*) $body
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                    unsafe fn v4($($arg: $ty),*) { body($($arg),*) }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn v3($($arg: $ty),*) { body($($arg),*) }
                    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
                        && std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
                        return unsafe { v4($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                        return unsafe { v3($($arg),*) };
                    }
                }
                body($($arg),*)
            }
        };
    }

    dispatch! {
        /// Softmax of one row in place, max subtracted first (16 partial maxima and sums, so the
        /// loops vectorise).
        fn softmax(row: &mut [f32]) {
            let mut m = [f32::NEG_INFINITY; 16];
            let chunks = row.chunks_exact(16);
            let mut max = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            for c in chunks {
                for (p, &v) in m.iter_mut().zip(c) {
                    *p = p.max(v);
                }
            }
            max = m.iter().fold(max, |a, &b| a.max(b));
            for v in row.iter_mut() {
                *v = crate::fused::exp_f32(*v - max);
            }
            let mut part = [0f32; 16];
            let chunks = row.chunks_exact(16);
            let mut sum = chunks.remainder().iter().sum::<f32>();
            for c in chunks {
                for (p, &v) in part.iter_mut().zip(c) {
                    *p += v;
                }
            }
            sum += part.iter().sum::<f32>();
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }

    dispatch! {
        /// Layer norm of each row (width `n`) of `x` in place.
        fn layer_norm_rows(x: &mut [f32], n: usize, w: &[f32], b: &[f32], eps: f32) {
            let inv_n = 1.0 / n as f32;
            for row in x.chunks_mut(n) {
                let mut part = [0f32; 16];
                let chunks = row.chunks_exact(16);
                let mut mean = chunks.remainder().iter().sum::<f32>();
                for c in chunks {
                    for (p, &v) in part.iter_mut().zip(c) {
                        *p += v;
                    }
                }
                mean = (mean + part.iter().sum::<f32>()) * inv_n;
                let mut part = [0f32; 16];
                let chunks = row.chunks_exact(16);
                let mut var = chunks.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>();
                for c in chunks {
                    for (p, &v) in part.iter_mut().zip(c) {
                        *p += (v - mean) * (v - mean);
                    }
                }
                var = (var + part.iter().sum::<f32>()) * inv_n;
                let rstd = 1.0 / (var + eps).sqrt();
                for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
                    *v = (*v - mean) * rstd * wi + bi;
                }
            }
        }
    }

    dispatch! {
        /// The activation in place.
        fn activate(x: &mut [f32], act: Activation) {
            match act {
                Activation::Gelu => x.iter_mut().for_each(|v| *v = gelu_erf_one(*v)),
                Activation::GeluTanh => x.iter_mut().for_each(|v| *v = gelu_tanh_one(*v)),
                Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
                Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + crate::fused::exp_f32(-*v)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// bf16 as an f32 (its bits in the high half).
    fn round_bf16(x: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        return f32::from_bits(avx512::to_bf16(x) << 16);
        #[cfg(not(target_arch = "x86_64"))]
        x
    }

    /// Both precisions' GEMMs equal the product of their inputs rounded as they say (bf16 where
    /// it runs, else exact), accumulated in f64, at odd depths and partial panels.
    #[test]
    fn packed_gemm_is_the_product_at_its_precision() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for precision in [Precision::F32, Precision::Bf16] {
            for (rows, inp, out) in [(13, 131, 70), (1, 1, 1), (7, 256, 64), (20, 3, 130)] {
                let w: Vec<f32> = (0..out * inp).map(|_| rng.random_range(-1.0..1.0f32)).collect();
                let x: Vec<f32> = (0..rows * inp).map(|_| rng.random_range(-1.0..1.0f32)).collect();
                let packed = Packed::from_out_in(&w, out, inp, precision);
                let mut y = vec![0.5f32; rows * out];
                gemm_packed(&x, rows, inp, &packed, &mut y);
                let r = |v: f32| if precision.effective() == Precision::Bf16 { round_bf16(v) } else { v };
                for i in 0..rows {
                    for o in 0..out {
                        let want: f64 = 0.5 + (0..inp).map(|k| r(x[i * inp + k]) as f64 * r(w[o * inp + k]) as f64).sum::<f64>();
                        let got = y[i * out + o] as f64;
                        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{precision:?} {rows}x{inp}x{out} [{i},{o}]: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(avx512::to_bf16(1.0), 0x3f80);
            // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
            assert_eq!(avx512::to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
            assert_eq!(avx512::to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
            assert_eq!(avx512::to_bf16(-2.0), 0xc000);
            assert!(f32::from_bits(avx512::to_bf16(f32::NAN) << 16).is_nan());
        }
    }
}
