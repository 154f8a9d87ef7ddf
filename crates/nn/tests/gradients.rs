//! Gradients reach every parameter and match finite differences.

use candle_core::{DType, Device, Tensor};
use nn::{Encoder, EncoderConfig, Mode, Params};
use rand::SeedableRng;

fn tiny(model_type: &str, dtype: DType) -> (Params, Encoder) {
    let mut c = EncoderConfig::bert(23, 8, 2, 2, 16);
    c.model_type = model_type.into();
    c.max_position_embeddings = 16;
    c.pad_token_id = 1;
    let params = Params::new(Device::Cpu, dtype, 11);
    let enc = Encoder::new(&params.pp(c.hf_prefix()), &c).unwrap();
    (params, enc)
}

/// Two sequences, the second one padded, and a fixed random projection so the loss depends on
/// every hidden unit of every real token.
fn inputs(dtype: DType) -> (Tensor, Tensor, Tensor) {
    let ids = Tensor::new(&[[2u32, 5, 7, 9, 3], [2, 11, 4, 1, 1]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let proj: Vec<f64> = (0..2 * 5 * 8).map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0).collect();
    let proj = Tensor::from_vec(proj, (2, 5, 8), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    (ids, mask, proj)
}

fn loss(enc: &Encoder, ids: &Tensor, mask: &Tensor, proj: &Tensor, mode: &mut Mode) -> Tensor {
    let h = enc.forward(ids, mask, None, mode).unwrap();
    // Padding positions are excluded from the loss, as a token-classification loss would.
    let m = mask.to_dtype(h.dtype()).unwrap().unsqueeze(2).unwrap();
    (h * proj).unwrap().broadcast_mul(&m).unwrap().sqr().unwrap().sum_all().unwrap()
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    for model_type in ["bert", "xlm-roberta"] {
        let (params, enc) = tiny(model_type, DType::F32);
        let (ids, mask, proj) = inputs(DType::F32);
        let mut rng = nn::Rng::seed_from_u64(1);
        let l = loss(&enc, &ids, &mask, &proj, &mut Mode::Train(&mut rng));
        let grads = l.backward().unwrap();
        let vars = params.vars();
        assert_eq!(vars.len(), 5 + 2 * 16, "{model_type}: parameter count");
        for (name, v) in vars {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{model_type}: no gradient for {name}"));
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(g.iter().all(|x| x.is_finite()), "{model_type}: non-finite gradient for {name}");
            assert!(g.iter().any(|&x| x != 0.0), "{model_type}: zero gradient for {name}");
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (params, enc) = tiny("bert", DType::F64);
    let (ids, mask, proj) = inputs(DType::F64);
    let l = loss(&enc, &ids, &mask, &proj, &mut Mode::Eval);
    let grads = l.backward().unwrap();
    let names = [
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.attention.self.key.bias",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight",
        "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.encoder.layer.1.output.LayerNorm.weight",
        "bert.encoder.layer.1.output.LayerNorm.bias",
    ];
    let eps = 1e-6;
    for name in names {
        let var = params.get(name).unwrap();
        let analytic: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        // A few elements spread over the tensor, including ones of used embedding rows.
        let picks: Vec<usize> = if name.contains("word_embeddings") {
            vec![2 * 8, 5 * 8 + 3, 11 * 8 + 7]
        } else {
            (0..3).map(|k| (k * 7 + 1) % base.len()).collect()
        };
        for i in picks {
            let eval_at = |delta: f64| {
                let mut p = base.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu).unwrap()).unwrap();
                let v = loss(&enc, &ids, &mask, &proj, &mut Mode::Eval).to_scalar::<f64>().unwrap();
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
                v
            };
            let numeric = (eval_at(eps) - eval_at(-eps)) / (2.0 * eps);
            // Relative error, with an absolute floor for the cancellation error of the finite
            // difference itself (loss ~1e2, eps 1e-6, f64: ~1e-8).
            let diff = (numeric - analytic[i]).abs();
            assert!(diff < 1e-7 + 1e-4 * numeric.abs().max(analytic[i].abs()), "{name}[{i}]: numeric {numeric} vs analytic {}", analytic[i]);
        }
    }
}

#[test]
fn padding_does_not_change_real_tokens() {
    let (_, enc) = tiny("xlm-roberta", DType::F32);
    let (ids, mask, _) = inputs(DType::F32);
    let h = enc.forward(&ids, &mask, None, &mut Mode::Eval).unwrap();
    // The padded row alone, without its padding.
    let short = Tensor::new(&[[2u32, 11, 4]], &Device::Cpu).unwrap();
    let h2 = enc.forward(&short, &short.ones_like().unwrap(), None, &mut Mode::Eval).unwrap();
    let a: Vec<Vec<f32>> = h.get(1).unwrap().narrow(0, 0, 3).unwrap().to_vec2().unwrap();
    let b: Vec<Vec<f32>> = h2.get(0).unwrap().to_vec2().unwrap();
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

/// The fused kernels agree with the primitive compositions, values and gradients.
#[test]
fn fused_ops_match_primitives() {
    let dev = Device::Cpu;
    let data: Vec<f64> = (0..3 * 4 * 10).map(|i| ((i * 53 % 29) as f64 - 14.0) / 5.0).collect();
    let x = candle_core::Var::from_tensor(&Tensor::from_vec(data, (3, 4, 10), &dev).unwrap()).unwrap();
    let w = candle_core::Var::from_tensor(&Tensor::arange(0.5f64, 1.5, &dev).unwrap().narrow(0, 0, 1).unwrap().repeat(10).unwrap()).unwrap();
    let b = candle_core::Var::from_tensor(&(Tensor::ones(10, DType::F64, &dev).unwrap() * 0.3).unwrap()).unwrap();
    let up: Vec<f64> = (0..120).map(|i| ((i * 17 % 13) as f64 - 6.0) / 3.0).collect();
    let up = Tensor::from_vec(up, (3, 4, 10), &dev).unwrap();
    type Op = Box<dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor>;
    let pairs: Vec<(&str, Op, Op)> = vec![
        (
            "layer_norm",
            Box::new(|x, w, b| nn::fused::layer_norm(x, w, b, 1e-5).unwrap()),
            Box::new(|x, w, b| nn::layers::layer_norm_reference(x, w, b, 1e-5).unwrap()),
        ),
        (
            "rms_norm",
            Box::new(|x, w, _| nn::fused::rms_norm(x, w, 1e-5).unwrap()),
            Box::new(|x, w, _| nn::layers::rms_norm_reference(x, w, 1e-5).unwrap()),
        ),
        (
            "softmax",
            Box::new(|x, _, _| nn::fused::softmax_last_dim(x).unwrap()),
            Box::new(|x, _, _| candle_nn::ops::softmax(x, candle_core::D::Minus1).unwrap()),
        ),
        ("gelu", Box::new(|x, _, _| nn::fused::gelu_erf(x).unwrap()), Box::new(|x, _, _| x.gelu_erf().unwrap())),
        ("gelu_tanh", Box::new(|x, _, _| nn::fused::gelu_tanh(x).unwrap()), Box::new(|x, _, _| x.gelu().unwrap())),
        (
            "dropout",
            Box::new(|x, _, _| nn::fused::dropout_seeded(x, 0.4, 11).unwrap()),
            // The same mask, as a tensor: dropout of ones is the mask itself.
            Box::new(|x, _, _| x.mul(&nn::fused::dropout_seeded(&x.ones_like().unwrap().detach(), 0.4, 11).unwrap()).unwrap()),
        ),
    ];
    let flat = |t: &Tensor| -> Vec<f64> { t.flatten_all().unwrap().to_vec1().unwrap() };
    for (name, fused, reference) in pairs {
        let (yf, yr) = (fused(&x, &w, &b), reference(&x, &w, &b));
        for (a, c) in flat(&yf).iter().zip(flat(&yr)) {
            assert!((a - c).abs() < 1e-10, "{name} forward: {a} vs {c}");
        }
        let gf = (yf * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (yr * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            match (gf.get(v.as_tensor()), gr.get(v.as_tensor())) {
                (Some(a), Some(c)) => {
                    // candle's own GELU backward uses 0.398942 for 1/√(2π): agree to 1e-6 there.
                    let tol = if name.starts_with("gelu") { 1e-6 } else { 1e-9 };
                    for (a, c) in flat(a).iter().zip(flat(c)) {
                        assert!((a - c).abs() < tol, "{name} gradient: {a} vs {c}");
                    }
                }
                (None, None) => {}
                _ => panic!("{name}: gradient present in only one version"),
            }
        }
    }
}

/// The same inputs give the same gradient bits on 1, 2, 3 or 8 threads: partial sums over rows
/// (a bias's gradient, a norm's weights) are added in a fixed order, not in whatever order work
/// stealing finishes them, so a seeded training run is repeatable on a busy machine.
#[test]
fn gradients_are_the_same_bits_on_any_number_of_threads() {
    use rand::Rng as _;
    let dev = Device::Cpu;
    let (rows, inp, out) = (4096, 24, 64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // Magnitudes spread over six decades, so that adding in another order changes the rounding.
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-3..3))).collect() };
    let x = Tensor::from_vec(values(rows * inp), (rows, inp), &dev).unwrap();
    let w = Tensor::from_vec(values(out * inp), (out, inp), &dev).unwrap();
    let b = Tensor::from_vec(values(out), out, &dev).unwrap();
    let proj = Tensor::from_vec(values(rows * out), (rows, out), &dev).unwrap();
    let (nw, nb) = (Tensor::from_vec(values(out), out, &dev).unwrap(), Tensor::from_vec(values(out), out, &dev).unwrap());
    let grads = |threads: usize| -> Vec<Vec<u32>> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let vars: Vec<candle_core::Var> = [&x, &w, &b, &nw, &nb].iter().map(|t| candle_core::Var::from_tensor(t).unwrap()).collect();
            let y = nn::fused::linear(vars[0].as_tensor(), vars[1].as_tensor(), Some(vars[2].as_tensor()), false).unwrap();
            let y = nn::fused::layer_norm(&y, vars[3].as_tensor(), vars[4].as_tensor(), 1e-5).unwrap();
            let g = (y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
            vars.iter().map(|v| g.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|f| f.to_bits()).collect()).collect()
        })
    };
    let one = grads(1);
    for threads in [2, 3, 8] {
        for _ in 0..3 {
            let many = grads(threads);
            for (i, name) in ["x", "weight", "bias", "norm weight", "norm bias"].iter().enumerate() {
                assert!(one[i] == many[i], "the gradient of the {name} differs between 1 and {threads} threads");
            }
        }
    }
}
