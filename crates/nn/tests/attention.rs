//! The fused attention against the composition of candle primitives: values and gradients of q, k
//! and v, with padding and causal biases, grouped-query heads and strided (transposed) inputs;
//! and a finite-difference check of the fused backward with dropout on.

use candle_core::{DType, Device, Tensor, Var};
use nn::attention::{attention, attention_reference, attention_seeded};
use nn::Mode;
use rand::{Rng, SeedableRng};

fn rand_tensor(rng: &mut rand_chacha::ChaCha8Rng, dims: &[usize], dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// Max |a - b| over all elements.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// Causal + left-padding bias `[b, 1, t, t]` and a padding-only bias `[b, 1, 1, t]`.
fn biases(b: usize, t: usize, dtype: DType) -> (Tensor, Tensor) {
    let mut causal = Vec::new();
    let mut pad = Vec::new();
    for bi in 0..b {
        let p = bi % 3;
        for i in 0..t {
            for j in 0..t {
                causal.push(if j >= p && j <= i { 0.0 } else { -1e9 });
            }
        }
        for j in 0..t {
            pad.push(if j < t - p { 0.0 } else { -1e9 });
        }
    }
    (
        Tensor::from_vec(causal, (b, 1, t, t), &Device::Cpu).unwrap().to_dtype(dtype).unwrap(),
        Tensor::from_vec(pad, (b, 1, 1, t), &Device::Cpu).unwrap().to_dtype(dtype).unwrap(),
    )
}

fn check(dtype: DType, tol: f64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for &(b, h, hk, t, d) in &[(2usize, 4usize, 4usize, 5usize, 8usize), (3, 4, 2, 7, 4), (2, 6, 1, 3, 6)] {
        let (causal, pad) = biases(b, t, dtype);
        for bias in [None, Some(&causal), Some(&pad)] {
            // q, k, v as transposed views of [b, t, heads, d], as a projection's output is split.
            let q = Var::from_tensor(&rand_tensor(&mut rng, &[b, t, h, d], dtype)).unwrap();
            let k = Var::from_tensor(&rand_tensor(&mut rng, &[b, t, hk, d], dtype)).unwrap();
            let v = Var::from_tensor(&rand_tensor(&mut rng, &[b, t, hk, d], dtype)).unwrap();
            let (qt, kt, vt) = (q.transpose(1, 2).unwrap(), k.transpose(1, 2).unwrap(), v.transpose(1, 2).unwrap());
            assert!(!qt.is_contiguous());
            let scale = 1.0 / (d as f64).sqrt();
            let weights = rand_tensor(&mut rng, &[b, t, h * d], dtype);
            let fused = attention(&qt, &kt, &vt, bias, scale, 0.0, &mut Mode::Eval).unwrap();
            let reference = attention_reference(&qt, &kt, &vt, bias, scale, 0.0, &mut Mode::Eval).unwrap();
            assert_eq!(fused.dims(), &[b, t, h * d]);
            let diff = max_diff(&fused, &reference);
            assert!(diff < tol, "value {b} {h} {hk} {t} {d}: {diff}");
            // A loss that weighs every output element differently.
            let gf = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, var) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, c) = (gf.get(var.as_tensor()).unwrap(), gr.get(var.as_tensor()).unwrap());
                let diff = max_diff(a, c);
                assert!(diff < tol, "grad {name} {b} {h} {hk} {t} {d} bias {}: {diff}", bias.is_some());
            }
        }
    }
}

#[test]
fn fused_attention_matches_primitives_f64() {
    check(DType::F64, 1e-10);
}

#[test]
fn fused_attention_matches_primitives_f32() {
    check(DType::F32, 1e-5);
}

#[test]
fn fused_attention_dropout_gradient_matches_finite_differences() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (b, h, hk, t, d) = (2, 4, 2, 4, 3);
    let q = rand_tensor(&mut rng, &[b, h, t, d], DType::F64);
    let k = rand_tensor(&mut rng, &[b, hk, t, d], DType::F64);
    let v = rand_tensor(&mut rng, &[b, hk, t, d], DType::F64);
    let w = rand_tensor(&mut rng, &[b, t, h * d], DType::F64);
    // Causal without padding: a fully masked row is flat at -1e9, where finite differences in f64
    // lose their precision.
    let causal: Vec<f64> = (0..t * t).map(|x| if x % t <= x / t { 0.0 } else { -1e9 }).collect();
    let causal = Tensor::from_vec(causal, (1, 1, t, t), &Device::Cpu).unwrap();
    let drop = Some((0.3, 99u64));
    let loss = |q: &Tensor, k: &Tensor, v: &Tensor| -> f64 {
        let o = attention_seeded(q, k, v, Some(&causal), 0.5, drop).unwrap();
        (o * &w).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    let vars = [Var::from_tensor(&q).unwrap(), Var::from_tensor(&k).unwrap(), Var::from_tensor(&v).unwrap()];
    let o = attention_seeded(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor(), Some(&causal), 0.5, drop).unwrap();
    let grads = (o * &w).unwrap().sum_all().unwrap().backward().unwrap();
    // Dropout must have zeroed something, or this test would not test the mask.
    let plain = attention_seeded(&q, &k, &v, Some(&causal), 0.5, None).unwrap();
    let with = attention_seeded(&q, &k, &v, Some(&causal), 0.5, drop).unwrap();
    assert!(max_diff(&plain, &with) > 1e-3);
    let eps = 1e-6;
    for which in 0..3 {
        let analytic: Vec<f64> = grads.get(vars[which].as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = [&q, &k, &v][which].flatten_all().unwrap().to_vec1().unwrap();
        let dims = [&q, &k, &v][which].dims().to_vec();
        for i in 0..base.len() {
            let bump = |delta: f64| {
                let mut x = base.clone();
                x[i] += delta;
                let x = Tensor::from_vec(x, dims.as_slice(), &Device::Cpu).unwrap();
                let mut args = [q.clone(), k.clone(), v.clone()];
                args[which] = x;
                loss(&args[0], &args[1], &args[2])
            };
            let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps);
            assert!((numeric - analytic[i]).abs() < 1e-6, "operand {which} element {i}: numeric {numeric} vs analytic {}", analytic[i]);
        }
    }
}

#[test]
fn fused_attention_dropout_is_seeded() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let q = rand_tensor(&mut rng, &[1, 2, 6, 4], DType::F32);
    let run = |seed: u64| {
        let mut r = nn::Rng::seed_from_u64(seed);
        attention(&q, &q, &q, None, 0.5, 0.5, &mut Mode::Train(&mut r)).unwrap()
    };
    assert_eq!(max_diff(&run(1), &run(1)), 0.0);
    assert!(max_diff(&run(1), &run(2)) > 1e-3);
}

/// Decoding: one query row against keys and values that are narrowed views of a longer cache
/// (the row-wise path), grouped heads, with a padding bias.
#[test]
fn fused_attention_decoding_matches_primitives() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for dtype in [DType::F64, DType::F32] {
        let (b, h, hk, max_len, tk, d) = (3, 4, 2, 12, 9, 20);
        let cache_k = rand_tensor(&mut rng, &[b, hk, max_len, d], dtype);
        let cache_v = rand_tensor(&mut rng, &[b, hk, max_len, d], dtype);
        let (k, v) = (cache_k.narrow(2, 0, tk).unwrap(), cache_v.narrow(2, 0, tk).unwrap());
        let q = rand_tensor(&mut rng, &[b, h, 1, d], dtype);
        let pad: Vec<f64> = (0..b * tk).map(|i| if i % tk < i / tk { -1e9 } else { 0.0 }).collect();
        let bias = Tensor::from_vec(pad, (b, 1, 1, tk), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        let fused = attention(&q, &k, &v, Some(&bias), 0.3, 0.0, &mut Mode::Eval).unwrap();
        let reference = attention_reference(&q, &k, &v, Some(&bias), 0.3, 0.0, &mut Mode::Eval).unwrap();
        let diff = max_diff(&fused, &reference);
        assert!(diff < if dtype == DType::F64 { 1e-12 } else { 1e-5 }, "{dtype:?}: {diff}");
    }
}

/// Decoding with grouped heads: one task per (batch, key head) when there are enough of them for
/// every thread, one per query head otherwise. Both give the same bits, and match the primitives,
/// on keys narrowed from the middle of a cache (a sliding window's view).
#[test]
fn grouped_decoding_equals_per_head_decoding_bit_for_bit() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (b, h, hk, max_len, d) = (3, 8, 2, 40, 24);
    let cache_k = rand_tensor(&mut rng, &[b, hk, max_len, d], DType::F32);
    let cache_v = rand_tensor(&mut rng, &[b, hk, max_len, d], DType::F32);
    let (start, tk) = (5, 29);
    let (k, v) = (cache_k.narrow(2, start, tk).unwrap(), cache_v.narrow(2, start, tk).unwrap());
    let q = rand_tensor(&mut rng, &[b, h, 1, d], DType::F32);
    let pad: Vec<f64> = (0..b * tk).map(|i| if i % tk < 2 * (i / tk) { -1e9 } else { 0.0 }).collect();
    let bias = Tensor::from_vec(pad, (b, 1, 1, tk), &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| attention(&q, &k, &v, Some(&bias), 0.2, 0.0, &mut Mode::Eval).unwrap())
    };
    // 1 thread: b · hk = 6 groups suffice (grouped); 7 threads: too few groups (per head).
    let (grouped, per_head) = (run(1), run(b * hk + 1));
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&grouped), bits(&per_head));
    let reference = attention_reference(&q, &k, &v, Some(&bias), 0.2, 0.0, &mut Mode::Eval).unwrap();
    assert!(max_diff(&grouped, &reference) < 1e-5);
}
